#include "supervisor/watch_queue.h"

#include <gtest/gtest.h>

namespace wsvisor {
namespace {

SharedHealthEvent change(const std::string& id, uint64_t revision) {
  auto e = std::make_shared<core::HealthEvent>();
  e->type = core::HealthEvent::Type::kChanged;
  e->endpoint_id = id;
  e->revision = revision;
  return e;
}

TEST(WatchQueueTest, DeliversInOrderWhileUnderCapacity) {
  WatchQueue q(3);
  q.push(change("a", 1));
  q.push(change("b", 2));
  EXPECT_EQ(q.pop()->event->revision, 1u);
  EXPECT_EQ(q.pop()->event->revision, 2u);
  EXPECT_FALSE(q.pop().has_value());
}

TEST(WatchQueueTest, SnapshotDoesNotCountAgainstCapacity) {
  WatchQueue q(1);
  for (int i = 0; i < 5; ++i) q.pushSnapshot(change("s" + std::to_string(i), i), nullptr);
  q.push(change("a", 10));
  EXPECT_EQ(q.size(), 6u);
  for (int i = 0; i < 5; ++i) {
    auto entry = q.pop();
    EXPECT_TRUE(entry->snapshot);
    EXPECT_FALSE(entry->coalesced);
  }
  auto live = q.pop();
  EXPECT_FALSE(live->snapshot);
  EXPECT_FALSE(live->coalesced);
}

TEST(WatchQueueTest, OverflowKeepsOnlyTheLatestPerEndpointMarkedCoalesced) {
  WatchQueue q(2);
  q.push(change("a", 1));
  q.push(change("b", 2));
  q.push(change("a", 3));  // full: coalescing starts
  q.push(change("c", 4));
  q.push(change("a", 5));  // replaces revision 3
  EXPECT_EQ(q.size(), 4u);
  EXPECT_EQ(q.droppedEvents(), 1u);
  EXPECT_EQ(q.pop()->event->revision, 1u);
  EXPECT_EQ(q.pop()->event->revision, 2u);
  auto c = q.pop();
  EXPECT_EQ(c->event->revision, 4u);  // oldest remaining revision first
  EXPECT_TRUE(c->coalesced);
  auto a = q.pop();
  EXPECT_EQ(a->event->revision, 5u);
  EXPECT_TRUE(a->coalesced);
  EXPECT_TRUE(q.empty());
}

TEST(WatchQueueTest, ReplayedEventsAreNeitherCoalescedNorCountedAgainstCapacity) {
  WatchQueue q(1);
  // Many changes of one endpoint, as a resumed watcher missed them.
  for (uint64_t r = 1; r <= 5; ++r) q.pushReplay(change("a", r));
  auto registered = std::make_shared<core::HealthEvent>(*change("b", 6));
  registered->type = core::HealthEvent::Type::kRegistered;
  q.pushReplay(registered);
  q.pushSnapshot(change("", 6), nullptr);  // the snapshot-complete marker
  // Live changes still get the whole capacity: the first is queued, the next coalesced.
  q.push(change("a", 7));
  q.push(change("a", 8));
  q.push(change("a", 9));
  EXPECT_EQ(q.droppedEvents(), 1u);
  for (uint64_t r = 1; r <= 6; ++r) {
    auto entry = q.pop();
    EXPECT_EQ(entry->event->revision, r);
    EXPECT_TRUE(entry->replayed);
    EXPECT_FALSE(entry->snapshot);
    EXPECT_FALSE(entry->coalesced);
    EXPECT_EQ(entry->event->type,
              r == 6 ? core::HealthEvent::Type::kRegistered : core::HealthEvent::Type::kChanged);
  }
  EXPECT_TRUE(q.pop()->snapshot);
  auto first_live = q.pop();
  EXPECT_EQ(first_live->event->revision, 7u);
  EXPECT_FALSE(first_live->coalesced);
  EXPECT_FALSE(first_live->replayed);
  auto coalesced = q.pop();
  EXPECT_EQ(coalesced->event->revision, 9u);
  EXPECT_TRUE(coalesced->coalesced);
  EXPECT_TRUE(q.empty());
}

TEST(WatchQueueTest, MemoryIsBoundedByEndpointsNotByEvents) {
  WatchQueue q(16);
  for (uint64_t r = 1; r <= 100000; ++r) q.push(change("e" + std::to_string(r % 50), r));
  EXPECT_LE(q.size(), 16u + 50u);
}

}  // namespace
}  // namespace wsvisor
