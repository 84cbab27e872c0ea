#include "supervisor/watch_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

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

// An event of `id` carrying `labels` labels of 256-byte values, as a spec with large labels has.
SharedHealthEvent labelled(const std::string& id, uint64_t revision, int labels) {
  auto e = std::make_shared<core::HealthEvent>(*change(id, revision));
  for (int n = 0; n < labels; ++n) e->labels["label-" + std::to_string(n)] = std::string(256, 'v');
  return e;
}

TEST(WatchQueueTest, ApproximateEventBytesCountsLabelsAndLongStrings) {
  const size_t bare = approximateEventBytes(*change("a", 1));
  EXPECT_GE(bare, sizeof(core::HealthEvent));
  EXPECT_LT(bare, 512u);
  // The most label bytes a spec may have: 64 labels of 256-byte values.
  const size_t most = approximateEventBytes(*labelled("a", 1, 64));
  EXPECT_GT(most, 64u * 257u);
  EXPECT_LT(most, 24u * 1024u);
  auto failed = std::make_shared<core::HealthEvent>(*change("a", 1));
  failed->status.last_failure =
      core::Failure::make(core::FailureReason::kNetworkError, std::string(400, 'x'));
  EXPECT_GE(approximateEventBytes(*failed), bare + 400u);
}

TEST(WatchQueueTest, ByteBudgetCoalescesBeforeTheEventCapacity) {
  const size_t event = sizeof(QueuedHealthEvent) + approximateEventBytes(*labelled("a", 1, 8));
  WatchQueue q(1000, 3 * event);
  q.push(labelled("a", 1, 8));
  q.push(labelled("b", 2, 8));
  q.push(labelled("a", 3, 8));  // fits: three events in order
  q.push(labelled("a", 4, 8));  // would not fit: coalescing starts
  q.push(labelled("a", 5, 8));
  EXPECT_FALSE(q.exhaustion().has_value());
  EXPECT_LE(q.bytes(), q.byteBudget());
  // Over budget, the three in order were coalesced too: the latest per endpoint is left.
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.droppedEvents(), 3u);
  auto b = q.pop();
  EXPECT_EQ(b->event->revision, 2u);
  EXPECT_TRUE(b->coalesced);
  auto a = q.pop();
  EXPECT_EQ(a->event->revision, 5u);
  EXPECT_TRUE(a->coalesced);
  EXPECT_FALSE(q.pop().has_value());
  EXPECT_EQ(q.bytes(), 0u);
}

TEST(WatchQueueTest, CoalescingByBytesKeepsSnapshotFirstAndEveryEndpointsLatest) {
  const size_t event = sizeof(QueuedHealthEvent) + approximateEventBytes(*labelled("a", 1, 8));
  WatchQueue q(1000, 6 * event);
  q.pushSnapshot(labelled("s", 1, 8), nullptr);
  q.pushSnapshot(change("", 1), nullptr);  // the snapshot-complete marker
  for (uint64_t r = 2; r <= 40; ++r) q.push(labelled(r % 2 ? "a" : "b", r, 8));
  EXPECT_FALSE(q.exhaustion().has_value());
  EXPECT_LE(q.bytes(), q.byteBudget());
  EXPECT_TRUE(q.pop()->snapshot);
  EXPECT_TRUE(q.pop()->snapshot);
  std::vector<uint64_t> revisions;
  while (auto entry = q.pop()) revisions.push_back(entry->event->revision);
  ASSERT_FALSE(revisions.empty());
  EXPECT_EQ(revisions.back(), 40u);                                                    // b's latest
  EXPECT_TRUE(std::find(revisions.begin(), revisions.end(), 39u) != revisions.end());  // a's
  EXPECT_TRUE(std::is_sorted(revisions.begin(), revisions.end()));
}

TEST(WatchQueueTest, ExhaustedWhenTheLatestPerEndpointExceedsTheBudget) {
  const size_t event = sizeof(QueuedHealthEvent) + approximateEventBytes(*labelled("a", 1, 8));
  WatchQueue q(1000, 2 * event);
  q.push(labelled("a", 1, 8));
  q.push(labelled("b", 2, 8));
  EXPECT_FALSE(q.exhaustion().has_value());
  q.push(labelled("c", 3, 8));  // three endpoints' latest state cannot fit
  ASSERT_TRUE(q.exhaustion().has_value());
  EXPECT_GT(q.exhaustion()->bytes, 2 * event);
  EXPECT_EQ(q.exhaustion()->events, 3u);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
  q.push(labelled("a", 4, 8));
  q.pushSnapshot(change("", 4), nullptr);
  EXPECT_FALSE(q.pop().has_value());
}

TEST(WatchQueueTest, ExhaustedWhenTheSnapshotAloneExceedsTheBudget) {
  const size_t event = sizeof(QueuedHealthEvent) + approximateEventBytes(*labelled("a", 1, 8));
  WatchQueue q(1000, 2 * event);
  q.pushSnapshot(labelled("a", 1, 8), nullptr);
  q.pushSnapshot(labelled("b", 2, 8), nullptr);
  EXPECT_FALSE(q.exhaustion().has_value());
  q.pushSnapshot(labelled("c", 3, 8), nullptr);
  EXPECT_TRUE(q.exhaustion().has_value());
  EXPECT_FALSE(q.pop().has_value());
}

TEST(WatchQueueTest, ManyWatchersOfLargeEventsStayWithinTheirBudget) {
  const size_t budget = 256 * 1024;
  WatchQueue q(1024, budget);
  for (uint64_t r = 1; r <= 10000; ++r) q.push(labelled("e" + std::to_string(r % 10), r, 64));
  EXPECT_FALSE(q.exhaustion().has_value());
  EXPECT_LE(q.bytes(), budget);
  EXPECT_LE(q.size(), 1024u + 10u);
}

}  // namespace
}  // namespace wsvisor
