// What a watcher is sent as it reads the bus's changes at its own pace: every change while it
// keeps up, the latest per endpoint once it falls behind, nothing more once even that is too
// much; and what a watcher that reads nothing costs a publish (nothing).

#include "supervisor/watch_cursor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "supervisor/health_bus.h"

namespace wsvisor {
namespace {

using core::Health;
using Type = core::HealthEvent::Type;
using Labels = std::map<std::string, std::string>;

constexpr uint64_t kStart = 1000;
const core::WallTime kAt{std::chrono::seconds(1714564800)};

HealthBusOptions options(size_t replay_log_size = 16384, size_t tombstone_bound = 16384) {
  HealthBusOptions options;
  options.start_revision = kStart;
  options.replay_log_size = replay_log_size;
  options.tombstone_bound = tombstone_bound;
  return options;
}

core::EndpointStatus statusOf(Health health) {
  core::EndpointStatus status;
  status.health = health;
  status.underlying_health = health;
  return status;
}

std::vector<core::HealthEvent> drain(WatchSubscription& subscription) {
  std::vector<core::HealthEvent> events;
  while (auto event = subscription.next()) events.push_back(std::move(*event));
  return events;
}

// "id@revision" per event, with " coalesced" or " replayed" where the event says so.
std::vector<std::string> described(const std::vector<core::HealthEvent>& events) {
  std::vector<std::string> out;
  for (const auto& event : events) {
    std::string text =
        event.type == Type::kSnapshotComplete ? std::string("complete") : event.endpoint_id;
    text += "@" + std::to_string(event.revision);
    if (event.coalesced) text += " coalesced";
    out.push_back(std::move(text));
  }
  return out;
}

class WatchCursorTest : public ::testing::Test {
 protected:
  explicit WatchCursorTest(HealthBusOptions bus_options = options()) : bus_(bus_options) {}

  void add(const std::string& id, uint64_t incarnation, Labels labels = {}) {
    bus_.publishRegistered(id, incarnation, std::move(labels), statusOf(Health::kUnknown), live_,
                           kAt);
  }
  void flip(const std::string& id, uint64_t incarnation, int n) {
    bus_.publishChanged(id, incarnation, statusOf(n % 2 ? Health::kUnhealthy : Health::kHealthy),
                        kAt);
  }

  HealthBus bus_;
  std::shared_ptr<LiveStats> live_ = std::make_shared<LiveStats>();
};

TEST_F(WatchCursorTest, AWatcherThatKeepsUpGetsEveryChangeInOrder) {
  add("a", 1);  // 1001
  auto watch = bus_.subscribe({}, 8, [] {});
  EXPECT_EQ(described(drain(*watch)), (std::vector<std::string>{"a@1001", "complete@1001"}));
  for (int n = 0; n < 5; ++n) flip("a", 1, n);
  EXPECT_EQ(described(drain(*watch)),
            (std::vector<std::string>{"a@1002", "a@1003", "a@1004", "a@1005", "a@1006"}));
}

TEST_F(WatchCursorTest, TheSnapshotDoesNotCountAgainstTheCapacity) {
  for (int n = 0; n < 5; ++n) add("e" + std::to_string(n), 1);
  auto watch = bus_.subscribe({}, 1, [] {});
  std::vector<core::HealthEvent> events = drain(*watch);
  ASSERT_EQ(events.size(), 6u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(events[i].type, Type::kSnapshot);
    EXPECT_FALSE(events[i].coalesced);
  }
  flip("e0", 1, 0);
  EXPECT_EQ(described(drain(*watch)), (std::vector<std::string>{"e0@1006"}));
}

TEST_F(WatchCursorTest, AWatcherBeyondItsCapacityGetsTheLatestPerEndpointThenEveryChangeAgain) {
  add("a", 1);  // 1001
  add("b", 2);  // 1002
  auto watch = bus_.subscribe({}, 2, [] {});
  drain(*watch);
  flip("a", 1, 0);  // 1003
  flip("b", 2, 0);  // 1004
  flip("a", 1, 1);  // 1005
  add("c", 3);      // 1006
  flip("a", 1, 2);  // 1007: five behind, more than 2
  EXPECT_EQ(described(drain(*watch)),
            (std::vector<std::string>{"b@1004 coalesced", "c@1006 coalesced", "a@1007 coalesced"}));
  flip("b", 2, 1);  // caught up: read from the log again
  EXPECT_EQ(described(drain(*watch)), (std::vector<std::string>{"b@1008"}));
}

TEST_F(WatchCursorTest, ReplayedChangesAreNeitherCoalescedNorCountedAgainstTheCapacity) {
  add("a", 1);                                  // 1001
  for (int n = 0; n < 5; ++n) flip("a", 1, n);  // 1002 to 1006
  auto result = bus_.resume({}, 1001, 1, [] {});
  auto* watch = std::get_if<std::shared_ptr<WatchSubscription>>(&result);
  ASSERT_NE(watch, nullptr);
  std::vector<core::HealthEvent> events = drain(**watch);
  ASSERT_EQ(events.size(), 6u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(events[i].revision, 1002 + i);
    EXPECT_EQ(events[i].type, Type::kChanged);
    EXPECT_FALSE(events[i].coalesced);
  }
  EXPECT_EQ(events[5].type, Type::kSnapshotComplete);
  flip("a", 1, 5);
  EXPECT_EQ(described(drain(**watch)), (std::vector<std::string>{"a@1007"}));
}

TEST_F(WatchCursorTest, AWatcherThatFellBehindGetsTheLatestPerIdUnregistrationsIncluded) {
  add("a", 1);  // 1001
  add("b", 2);  // 1002
  auto watch = bus_.subscribe({}, 1, [] {});
  drain(*watch);
  bus_.publishUnregistered("a", 1, kAt);  // 1003
  flip("b", 2, 0);                        // 1004
  bus_.publishUnregistered("b", 2, kAt);  // 1005
  add("b", 3);                            // 1006: b again, a new registration
  // Latest per id: b's new registration stands for its unregistration too.
  std::vector<core::HealthEvent> events = drain(*watch);
  ASSERT_EQ(described(events), (std::vector<std::string>{"a@1003 coalesced", "b@1006 coalesced"}));
  EXPECT_EQ(events[0].type, Type::kUnregistered);
  EXPECT_EQ(events[1].type, Type::kRegistered);
}

TEST_F(WatchCursorTest, AWatcherThatFellBehindLearnsThatAnEndpointLeftItsSelection) {
  add("a", 1, {{"team", "x"}});  // 1001
  add("b", 2, {{"team", "x"}});  // 1002
  WatchFilter team_x;
  std::string error;
  auto selector = core::LabelSelector::parse("team=x", error);
  ASSERT_TRUE(selector.has_value()) << error;
  team_x.selector = *selector;
  auto watch = bus_.subscribe(team_x, 1, [] {});
  EXPECT_EQ(drain(*watch).size(), 3u);
  bus_.replaceRegistration("a", 1, {{"team", "y"}}, std::nullopt, nullptr, kAt);  // 1003: leaves
  flip("a", 1, 0);                                                                // 1004
  flip("b", 2, 0);                                                                // 1005
  std::vector<core::HealthEvent> events = drain(*watch);
  ASSERT_EQ(described(events), (std::vector<std::string>{"a@1004 coalesced", "b@1005 coalesced"}));
  EXPECT_EQ(events[0].labels.at("team"), "y");
  // Once caught up, a's later changes are no longer for this watcher.
  flip("a", 1, 1);
  EXPECT_TRUE(drain(*watch).empty());
}

TEST(WatchCursorLogTest, AWatcherPastTheChangeLogIsCoalesced) {
  // No replay log: the change log keeps its minimum.
  HealthBus bus(options(/*replay_log_size=*/0));
  auto live = std::make_shared<LiveStats>();
  bus.publishRegistered("a", 1, {}, statusOf(Health::kUnknown), live, kAt);
  bus.publishRegistered("b", 2, {}, statusOf(Health::kUnknown), live, kAt);
  auto watch = bus.subscribe({}, 1000000, [] {});
  drain(*watch);
  for (size_t n = 0; n < HealthBus::kMinLiveChanges + 10; ++n) {
    bus.publishChanged(n % 2 ? "a" : "b", n % 2 ? 1 : 2,
                       statusOf(n % 4 < 2 ? Health::kHealthy : Health::kUnhealthy), kAt);
  }
  std::vector<core::HealthEvent> events = drain(*watch);
  ASSERT_EQ(described(events).size(), 2u);
  EXPECT_TRUE(events[0].coalesced);
  EXPECT_TRUE(events[1].coalesced);
  EXPECT_EQ(events[1].revision, bus.revision());
}

TEST_F(WatchCursorTest, OnlyWatchersThatCaughtUpAreWokenAndStuckOnesCostNothing) {
  std::atomic<int> stuck_wakes{0};
  std::vector<std::shared_ptr<WatchSubscription>> stuck;
  for (int n = 0; n < 200; ++n) stuck.push_back(bus_.subscribe({}, 1024, [&] { ++stuck_wakes; }));
  EXPECT_EQ(stuck_wakes.load(), 200);  // each once, for its snapshot
  std::atomic<int> reader_wakes{0};
  auto reader = bus_.subscribe({}, 1024, [&] { ++reader_wakes; });
  reader_wakes = 0;
  drain(*reader);  // caught up: parked

  add("a", 1);
  flip("a", 1, 0);  // the reader was woken by the first and has not read since
  EXPECT_EQ(reader_wakes.load(), 1);
  EXPECT_EQ(stuck_wakes.load(), 200);  // they never read their snapshot: never woken again
  EXPECT_EQ(drain(*reader).size(), 2u);
  flip("a", 1, 1);
  EXPECT_EQ(reader_wakes.load(), 2);
  for (const auto& watch : stuck) bus_.unsubscribe(watch);
}

TEST_F(WatchCursorTest, AFilteredWatcherIsWokenOnlyForItsEndpointsAndNeverFallsBehind) {
  add("a", 1);
  add("b", 2);
  std::atomic<int> wakes{0};
  WatchFilter only_a;
  only_a.ids = {"a"};
  auto watch = bus_.subscribe(only_a, 2, [&] { ++wakes; });
  drain(*watch);
  wakes = 0;
  for (int n = 0; n < 50; ++n) flip("b", 2, n);  // far more than its capacity, none for it
  EXPECT_EQ(wakes.load(), 0);
  flip("a", 1, 0);
  EXPECT_EQ(wakes.load(), 1);
  std::vector<core::HealthEvent> events = drain(*watch);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].endpoint_id, "a");
  EXPECT_FALSE(events[0].coalesced);
}

TEST_F(WatchCursorTest, AWatcherOverItsByteBudgetIsCoalescedThenExhausted) {
  Labels big;
  for (int n = 0; n < 16; ++n) big["label-" + std::to_string(n)] = std::string(256, 'v');
  core::HealthEvent sample;
  sample.endpoint_id = "a";
  sample.labels = big;
  const size_t event_bytes = sizeof(LoggedEvent) + approximateEventBytes(sample);
  add("a", 1, big);
  add("b", 2, big);
  // Room for two endpoints' latest changes and a half; not for three.
  auto watch = bus_.subscribe(
      {}, 1024, [] {}, 5 * event_bytes / 2);
  EXPECT_EQ(drain(*watch).size(), 3u);  // the snapshot of two fits
  for (int n = 0; n < 20; ++n) flip(n % 2 ? "a" : "b", n % 2 ? 1 : 2, n / 2);
  EXPECT_FALSE(watch->exhaustion().has_value());
  std::vector<core::HealthEvent> events = drain(*watch);
  ASSERT_EQ(events.size(), 2u);  // the latest of b and of a
  EXPECT_TRUE(events[0].coalesced);
  EXPECT_TRUE(events[1].coalesced);
  EXPECT_EQ(events[1].revision, bus_.revision());

  add("c", 3, big);
  flip("a", 1, 0);
  flip("b", 2, 0);  // three endpoints behind: too many
  EXPECT_FALSE(watch->next().has_value());
  ASSERT_TRUE(watch->exhaustion().has_value());
  EXPECT_EQ(watch->exhaustion()->why, WatchExhaustion::Why::kByteBudget);
  EXPECT_GT(watch->exhaustion()->bytes, 5 * event_bytes / 2);
  EXPECT_EQ(watch->exhaustion()->events, 3u);
  flip("c", 3, 0);
  EXPECT_FALSE(watch->next().has_value());  // nothing more, ever
  bus_.unsubscribe(watch);
}

TEST_F(WatchCursorTest, ASnapshotLargerThanTheByteBudgetExhaustsAtOnce) {
  for (int n = 0; n < 3; ++n) add("e" + std::to_string(n), 1, {{"k", std::string(512, 'v')}});
  auto watch = bus_.subscribe(
      {}, 1024, [] {}, 1024);
  EXPECT_FALSE(watch->next().has_value());
  ASSERT_TRUE(watch->exhaustion().has_value());
  EXPECT_EQ(watch->exhaustion()->events, 4u);  // three endpoints and the marker
}

class WatchCursorTombstoneTest : public WatchCursorTest {
 protected:
  WatchCursorTombstoneTest() : WatchCursorTest(options(16384, /*tombstone_bound=*/4)) {}
};

TEST_F(WatchCursorTombstoneTest, AWatcherBehindForgottenUnregistrationsIsExhausted) {
  auto stuck = bus_.subscribe({}, 1, [] {});
  auto reader = bus_.subscribe({}, 1024, [] {});
  for (int n = 0; n < 10; ++n) {
    const std::string id = "e" + std::to_string(n);
    add(id, 1);
    bus_.publishUnregistered(id, 1, kAt);
    drain(*reader);  // keeps up: never needs a tombstone
  }
  EXPECT_FALSE(reader->exhaustion().has_value());
  std::optional<core::HealthEvent> marker = stuck->next();
  ASSERT_TRUE(marker.has_value());
  EXPECT_EQ(marker->type, Type::kSnapshotComplete);
  EXPECT_FALSE(stuck->next().has_value());  // ten unregistrations behind, two of them kept
  ASSERT_TRUE(stuck->exhaustion().has_value());
  EXPECT_EQ(stuck->exhaustion()->why, WatchExhaustion::Why::kTooFarBehind);
}

// Publishers on two threads, readers woken on others, stuck watchers beside them: every reader
// gets every change, in order, none coalesced (the log holds them all, so none falls behind).
TEST(WatchCursorConcurrencyTest, EveryReaderGetsEveryChangeWhileOthersAreStuck) {
  constexpr int kPerPublisher = 2000;
  constexpr int kReaders = 3;
  HealthBus bus(options(/*replay_log_size=*/4 * kPerPublisher));
  auto live = std::make_shared<LiveStats>();
  bus.publishRegistered("p0", 1, {}, statusOf(Health::kUnknown), live, kAt);
  bus.publishRegistered("p1", 1, {}, statusOf(Health::kUnknown), live, kAt);
  std::vector<std::shared_ptr<WatchSubscription>> stuck;
  for (int n = 0; n < 50; ++n) stuck.push_back(bus.subscribe({}, 1024, [] {}));

  struct Reader {
    std::mutex mu;
    std::condition_variable woken;
    bool wake = false;
    std::shared_ptr<WatchSubscription> watch;
    std::vector<core::HealthEvent> events;
  };
  std::vector<std::unique_ptr<Reader>> readers;
  for (int r = 0; r < kReaders; ++r) {
    auto reader = std::make_unique<Reader>();
    Reader* raw = reader.get();
    reader->watch = bus.subscribe({}, 1000000, [raw] {
      {
        std::lock_guard<std::mutex> lock(raw->mu);
        raw->wake = true;
      }
      raw->woken.notify_one();
    });
    readers.push_back(std::move(reader));
  }
  const uint64_t last = kStart + 2 + 2 * kPerPublisher;
  std::vector<std::thread> threads;
  for (auto& reader : readers) {
    threads.emplace_back([&reader, last] {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      for (;;) {
        while (auto event = reader->watch->next()) reader->events.push_back(std::move(*event));
        if (!reader->events.empty() && reader->events.back().revision >= last) return;
        std::unique_lock<std::mutex> lock(reader->mu);
        if (!reader->woken.wait_until(lock, deadline, [&] { return reader->wake; })) return;
        reader->wake = false;
      }
    });
  }
  for (int p = 0; p < 2; ++p) {
    threads.emplace_back([&bus, p] {
      for (int n = 0; n < kPerPublisher; ++n) {
        bus.publishChanged("p" + std::to_string(p), 1,
                           statusOf(n % 2 ? Health::kUnhealthy : Health::kHealthy), kAt);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& reader : readers) {
    std::vector<uint64_t> live_revisions;
    for (const auto& event : reader->events) {
      EXPECT_FALSE(event.coalesced);
      if (event.type == Type::kChanged) live_revisions.push_back(event.revision);
    }
    ASSERT_EQ(live_revisions.size(), static_cast<size_t>(2 * kPerPublisher));
    for (size_t i = 1; i < live_revisions.size(); ++i) {
      ASSERT_EQ(live_revisions[i], live_revisions[i - 1] + 1);
    }
    EXPECT_EQ(live_revisions.back(), last);
  }
  for (const auto& watch : stuck) bus.unsubscribe(watch);
}

}  // namespace
}  // namespace wsvisor
