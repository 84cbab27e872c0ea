#include "supervisor/health_bus.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <numeric>
#include <thread>
#include <variant>

namespace wsvisor {
namespace {

using core::Health;
using Type = core::HealthEvent::Type;
using Labels = std::map<std::string, std::string>;

constexpr uint64_t kStart = 1000;
const core::WallTime kAt{std::chrono::seconds(1714564800)};

HealthBusOptions startingAt(uint64_t revision, size_t replay_log_size = 16384,
                            size_t history_size = 64) {
  HealthBusOptions options;
  options.start_revision = revision;
  options.replay_log_size = replay_log_size;
  options.history_size = history_size;
  return options;
}

core::EndpointStatus statusOf(Health health, std::string reason = {}) {
  core::EndpointStatus status;
  status.health = health;
  status.underlying_health = health;
  status.phase = health == Health::kHealthy ? core::ConnectionPhase::kOpen
                                            : core::ConnectionPhase::kBackingOff;
  status.transition_reason = std::move(reason);
  if (health == Health::kUnhealthy) {
    status.last_failure = core::Failure::make(core::FailureReason::kPongTimeout, "no pong");
  }
  return status;
}

WatchFilter everything() { return {}; }

std::shared_ptr<WatchSubscription> resumed(HealthBus& bus, WatchFilter filter, uint64_t since,
                                           size_t live_capacity = 1024) {
  auto result = bus.resume(std::move(filter), since, live_capacity, [] {});
  if (auto* refused = std::get_if<ResumeRefused>(&result)) {
    ADD_FAILURE() << "resume after " << since << " refused: " << refused->message;
    return nullptr;
  }
  return std::get<std::shared_ptr<WatchSubscription>>(result);
}

std::string refusal(HealthBus& bus, uint64_t since) {
  auto result = bus.resume(everything(), since, 1024, [] {});
  if (auto* refused = std::get_if<ResumeRefused>(&result)) return refused->message;
  ADD_FAILURE() << "resume after " << since << " was accepted";
  return {};
}

std::vector<core::HealthEvent> drain(WatchSubscription& subscription) {
  std::vector<core::HealthEvent> events;
  while (auto event = subscription.next()) events.push_back(std::move(*event));
  return events;
}

std::vector<uint64_t> revisionsOf(const std::vector<core::HealthEvent>& events) {
  std::vector<uint64_t> revisions;
  for (const auto& event : events) revisions.push_back(event.revision);
  return revisions;
}

class HealthBusTest : public ::testing::Test {
 protected:
  void add(const std::string& id, uint64_t incarnation, Labels labels = {}) {
    bus_.publishRegistered(id, incarnation, std::move(labels), core::EndpointStatus{}, live_, kAt);
  }

  HealthBus bus_{startingAt(kStart)};
  std::shared_ptr<LiveStats> live_ = std::make_shared<LiveStats>();
};

TEST(HealthBusStartTest, CountsFromItsStartTimeInMicrosecondsSinceTheEpoch) {
  auto micros = [] {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  };
  const uint64_t before = micros();
  HealthBus bus;
  const uint64_t after = micros();
  EXPECT_GE(bus.revision(), before);
  EXPECT_LE(bus.revision(), after);
}

TEST_F(HealthBusTest, ResumeReplaysExactlyTheLaterChangesThenGoesLive) {
  add("a", 1);                                                     // 1001
  add("b", 2);                                                     // 1002
  bus_.publishChanged("a", 1, statusOf(Health::kHealthy), kAt);    // 1003
  bus_.publishChanged("b", 2, statusOf(Health::kUnhealthy), kAt);  // 1004
  bus_.publishChanged("a", 1, statusOf(Health::kUnhealthy), kAt);  // 1005
  bus_.publishUnregistered("b", 2, kAt);                           // 1006

  auto subscription = resumed(bus_, everything(), 1003);
  ASSERT_NE(subscription, nullptr);
  std::vector<core::HealthEvent> events = drain(*subscription);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(revisionsOf(events), (std::vector<uint64_t>{1004, 1005, 1006, 1006}));
  // Original types and contents, no snapshot, nothing coalesced.
  EXPECT_EQ(events[0].type, Type::kChanged);
  EXPECT_EQ(events[0].endpoint_id, "b");
  EXPECT_EQ(events[0].previous_health, Health::kUnknown);
  EXPECT_EQ(events[0].status.health, Health::kUnhealthy);
  EXPECT_EQ(events[1].type, Type::kChanged);
  EXPECT_EQ(events[1].endpoint_id, "a");
  EXPECT_EQ(events[1].previous_health, Health::kHealthy);
  EXPECT_EQ(events[2].type, Type::kUnregistered);
  EXPECT_EQ(events[2].endpoint_id, "b");
  EXPECT_EQ(events[3].type, Type::kSnapshotComplete);
  for (const auto& event : events) EXPECT_FALSE(event.coalesced);

  bus_.publishChanged("a", 1, statusOf(Health::kHealthy), kAt);  // 1007
  events = drain(*subscription);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].revision, 1007u);
  EXPECT_EQ(events[0].type, Type::kChanged);
  EXPECT_EQ(events[0].previous_health, Health::kUnhealthy);
}

TEST_F(HealthBusTest, ResumeAtTheCurrentRevisionReplaysNothing) {
  add("a", 1);
  auto subscription = resumed(bus_, everything(), bus_.revision());
  ASSERT_NE(subscription, nullptr);
  std::vector<core::HealthEvent> events = drain(*subscription);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, Type::kSnapshotComplete);
  EXPECT_EQ(events[0].revision, 1001u);

  // A bus that has published nothing yet can be resumed at its start revision.
  HealthBus fresh(startingAt(5000));
  auto at_start = resumed(fresh, everything(), 5000);
  ASSERT_NE(at_start, nullptr);
  EXPECT_EQ(revisionsOf(drain(*at_start)), (std::vector<uint64_t>{5000}));
}

TEST_F(HealthBusTest, ResumeReplaysOnlyWhatTheFilterMatches) {
  add("a", 1, {{"team", "red"}});                                                    // 1001
  add("b", 2, {{"team", "red"}});                                                    // 1002
  add("c", 3, {{"team", "blue"}});                                                   // 1003
  bus_.publishChanged("a", 1, statusOf(Health::kHealthy), kAt);                      // 1004
  bus_.publishChanged("c", 3, statusOf(Health::kHealthy), kAt);                      // 1005
  bus_.replaceRegistration("b", 2, {{"team", "blue"}}, std::nullopt, nullptr, kAt);  // 1006
  bus_.publishChanged("b", 2, statusOf(Health::kHealthy), kAt);  // 1007: b is blue now

  WatchFilter red;
  std::string error;
  red.selector = *core::LabelSelector::parse("team=red", error);
  auto by_selector = resumed(bus_, red, 1000);
  ASSERT_NE(by_selector, nullptr);
  // b leaving the selection (1006) is replayed, as it was sent live; its later change is not.
  EXPECT_EQ(revisionsOf(drain(*by_selector)),
            (std::vector<uint64_t>{1001, 1002, 1004, 1006, 1007 /* the marker */}));

  WatchFilter only_c;
  only_c.ids = {"c"};
  auto by_id = resumed(bus_, only_c, 1003);
  ASSERT_NE(by_id, nullptr);
  EXPECT_EQ(revisionsOf(drain(*by_id)), (std::vector<uint64_t>{1005, 1007}));
}

TEST_F(HealthBusTest, ResumeRefusesARevisionTheLogNoLongerHolds) {
  HealthBus bus(startingAt(kStart, /*replay_log_size=*/3));
  bus.publishRegistered("a", 1, {}, core::EndpointStatus{}, live_, kAt);  // 1001
  for (int i = 0; i < 4; ++i) {                                           // 1002 to 1005
    bus.publishChanged("a", 1, statusOf(i % 2 ? Health::kHealthy : Health::kUnhealthy), kAt);
  }
  // The log keeps 1003 to 1005: a watcher that has seen 1002 can resume, one at 1001 cannot.
  auto ok = resumed(bus, everything(), 1002);
  ASSERT_NE(ok, nullptr);
  EXPECT_EQ(revisionsOf(drain(*ok)), (std::vector<uint64_t>{1003, 1004, 1005, 1005}));

  const std::string message = refusal(bus, 1001);
  EXPECT_NE(message.find("since_revision 1001 is too old"), std::string::npos) << message;
  EXPECT_NE(message.find("1003 to 1005"), std::string::npos) << message;
  EXPECT_NE(message.find("since_revision 0"), std::string::npos) << message;
  EXPECT_EQ(bus.subscriptionCount(), 1u);  // only `ok`: a refused resume subscribes nothing
}

TEST_F(HealthBusTest, ResumeRefusesARevisionAheadOfTheCurrentOne) {
  add("a", 1);
  const std::string message = refusal(bus_, 1002);
  EXPECT_NE(message.find("since_revision 1002 is ahead of the current revision 1001"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("since_revision 0"), std::string::npos) << message;
  EXPECT_EQ(bus_.subscriptionCount(), 0u);
}

TEST_F(HealthBusTest, ResumeRefusesARevisionOfAnEarlierRun) {
  for (int i = 0; i < 3; ++i) add("e" + std::to_string(i), i + 1);
  const uint64_t seen = bus_.revision();  // 1003
  // The next run starts counting later (its start time), so nothing it logged follows `seen`.
  HealthBus next_run(startingAt(kStart + 1'000'000));
  next_run.publishRegistered("e0", 1, {}, core::EndpointStatus{}, live_, kAt);
  const std::string message = refusal(next_run, seen);
  EXPECT_NE(message.find("since_revision 1003 is too old"), std::string::npos) << message;
  EXPECT_NE(message.find("1001001 to 1001001"), std::string::npos) << message;
}

TEST_F(HealthBusTest, ARunGivenItsOwnRevisionRangeRefusesAnotherRunsRevisions) {
  // Cluster mode: each replica's run starts at (etcd revision of its join) * 2^32.
  HealthBus first;
  ASSERT_TRUE(first.startRevisionsAfter(7ull << 32));
  first.publishRegistered("a", 1, {}, core::EndpointStatus{}, live_, kAt);
  EXPECT_EQ(first.revision(), (7ull << 32) + 1);
  EXPECT_FALSE(first.startRevisionsAfter(9ull << 32)) << "only before the first publish";
  EXPECT_EQ(first.revision(), (7ull << 32) + 1);

  HealthBus second;
  ASSERT_TRUE(second.startRevisionsAfter(9ull << 32));
  second.publishRegistered("a", 1, {}, core::EndpointStatus{}, live_, kAt);
  EXPECT_NE(refusal(second, first.revision()).find("is too old"), std::string::npos);
  EXPECT_NE(refusal(first, second.revision()).find("is ahead of the current revision"),
            std::string::npos);
  EXPECT_NE(resumed(second, everything(), second.revision()), nullptr);
}

TEST_F(HealthBusTest, EndpointsSupervisedElsewhereAreWatchedButNotCounted) {
  add("here", 1);
  bus_.publishRegisteredElsewhere("there", 2, {{"team", "red"}},
                                  statusOf(Health::kUnknown, "awaiting"), kAt);
  auto watch = bus_.subscribe(everything(), 64, [] {});
  const auto snapshot = drain(*watch);
  ASSERT_EQ(snapshot.size(), 3u);  // two endpoints and the marker
  auto counts = bus_.countByHealth();
  EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), size_t{0}), 1u);

  // Its owner's reports arrive as changes, with history.
  bus_.publishChanged("there", 2, statusOf(Health::kHealthy, "2 heartbeats answered"), kAt);
  auto events = drain(*watch);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, Type::kChanged);
  EXPECT_EQ(events[0].status.health, Health::kHealthy);
  EXPECT_EQ(*events[0].previous_health, Health::kUnknown);
  ASSERT_EQ(bus_.history("there")->transitions.size(), 1u);
  EXPECT_EQ(bus_.history("there")->transitions[0].reason, "2 heartbeats answered");
  counts = bus_.countByHealth();
  EXPECT_EQ(counts[static_cast<size_t>(Health::kHealthy)], 0u);

  // Handed over to this process: a new incarnation, counted; the old one's reports are dropped.
  bus_.publishHandover("there", 3, statusOf(Health::kUnknown, "supervised here"), live_, kAt);
  bus_.publishChanged("there", 2, statusOf(Health::kUnhealthy), kAt);
  events = drain(*watch);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].status.transition_reason, "supervised here");
  EXPECT_EQ(events[0].labels, (Labels{{"team", "red"}}));
  counts = bus_.countByHealth();
  EXPECT_EQ(counts[static_cast<size_t>(Health::kUnknown)], 2u);

  // And away again: no longer counted.
  bus_.publishHandover("there", 4, statusOf(Health::kUnknown, "handed over"), nullptr, kAt);
  counts = bus_.countByHealth();
  EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), size_t{0}), 1u);
  EXPECT_FALSE(bus_.state("there")->supervised_here);
  EXPECT_TRUE(bus_.state("here")->supervised_here);
}

TEST(HealthBusSupervisorTest, StatusesNameTheReplicaThatSupervisesThem) {
  HealthBusOptions options = startingAt(kStart);
  options.supervisor_name = "replica-1";
  HealthBus bus(options);
  auto live = std::make_shared<LiveStats>();
  bus.publishRegistered("here", 1, {}, statusOf(Health::kUnknown), live, kAt);
  bus.publishChanged("here", 1, statusOf(Health::kHealthy), kAt);
  EXPECT_EQ(bus.state("here")->currentStatus().supervised_by, "replica-1");

  // Another replica's report keeps that replica's name; an unreported one names none.
  bus.publishRegisteredElsewhere("there", 2, {}, statusOf(Health::kUnknown, "awaiting"), kAt);
  EXPECT_EQ(bus.state("there")->currentStatus().supervised_by, "");
  core::EndpointStatus remote = statusOf(Health::kHealthy);
  remote.supervised_by = "replica-2";
  bus.publishChanged("there", 2, remote, kAt);
  EXPECT_EQ(bus.state("there")->currentStatus().supervised_by, "replica-2");

  // Handed over here, and away again.
  bus.publishHandover("there", 3, statusOf(Health::kUnknown, "supervised here"), live, kAt);
  EXPECT_EQ(bus.state("there")->currentStatus().supervised_by, "replica-1");
  bus.publishHandover("there", 4, statusOf(Health::kUnknown, "handed over"), nullptr, kAt);
  EXPECT_EQ(bus.state("there")->currentStatus().supervised_by, "");
}

TEST_F(HealthBusTest, ASingleNodeBusNamesNoReplica) {
  add("a", 1);
  bus_.publishChanged("a", 1, statusOf(Health::kHealthy), kAt);
  EXPECT_EQ(bus_.state("a")->currentStatus().supervised_by, "");
}

TEST_F(HealthBusTest, ZeroSizedLogResumesOnlyAtTheCurrentRevision) {
  HealthBus bus(startingAt(kStart, /*replay_log_size=*/0));
  bus.publishRegistered("a", 1, {}, core::EndpointStatus{}, live_, kAt);
  EXPECT_NE(refusal(bus, kStart).find("keeps none"), std::string::npos);
  EXPECT_NE(resumed(bus, everything(), kStart + 1), nullptr);
}

TEST_F(HealthBusTest, NoChangeIsLostOrDuplicatedBetweenReplayAndLive) {
  constexpr int kChanges = 2000;
  constexpr size_t kMaxResumes = 50;
  add("a", 1);
  std::atomic<bool> go{false};
  std::atomic<bool> done{false};
  std::thread publisher([&] {
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; i < kChanges; ++i) {
      bus_.publishChanged("a", 1, statusOf(i % 2 ? Health::kHealthy : Health::kUnhealthy), kAt);
    }
    done.store(true);
  });
  // Resume while the publisher runs, each a few revisions behind the current one, so that some
  // changes are replayed and the rest arrive live.
  std::vector<std::pair<uint64_t, std::shared_ptr<WatchSubscription>>> watchers;
  go.store(true);
  while (!done.load() && watchers.size() < kMaxResumes) {
    const uint64_t behind = watchers.size() % 5;
    const uint64_t since = std::max(kStart, bus_.revision() - behind);
    watchers.emplace_back(since, resumed(bus_, everything(), since, kChanges + 1));
    ASSERT_NE(watchers.back().second, nullptr);
  }
  publisher.join();
  const uint64_t last = bus_.revision();
  ASSERT_EQ(last, kStart + 1 + kChanges);

  size_t replayed_and_live = 0;  // watchers that resumed mid-stream: the case under test
  for (const auto& [since, subscription] : watchers) {
    std::vector<core::HealthEvent> events = drain(*subscription);
    std::vector<uint64_t> changes;
    std::optional<size_t> marker;
    size_t coalesced = 0;
    for (const auto& event : events) {
      if (event.coalesced) ++coalesced;
      if (event.type != Type::kSnapshotComplete) {
        changes.push_back(event.revision);
        continue;
      }
      EXPECT_FALSE(marker.has_value()) << "a second marker";
      marker = changes.size();
      EXPECT_EQ(event.revision, since + changes.size()) << "the marker follows the replay";
    }
    std::vector<uint64_t> expected(last - since);
    std::iota(expected.begin(), expected.end(), since + 1);
    EXPECT_EQ(changes, expected) << "resumed after " << since;
    EXPECT_EQ(coalesced, 0u);
    ASSERT_TRUE(marker.has_value());
    if (*marker > 0 && *marker < changes.size()) ++replayed_and_live;
  }
  std::cout << watchers.size() << " resumes, " << replayed_and_live
            << " with both replayed and live changes\n";
}

TEST_F(HealthBusTest, HistoryRecordsEachHealthTransitionWithItsReasonFailureAndRtt) {
  add("a", 1);
  live_->last_rtt_ns = 3'000'000;
  live_->smoothed_rtt_ns = 2'000'000;
  bus_.publishChanged("a", 1, statusOf(Health::kHealthy, "heartbeat answered"), kAt);  // 1002
  core::EndpointStatus same_health = statusOf(Health::kHealthy);
  same_health.phase = core::ConnectionPhase::kConnecting;
  bus_.publishChanged("a", 1, same_health, kAt);  // 1003: no health change, not history
  const core::WallTime later = kAt + std::chrono::seconds(5);
  bus_.publishChanged("a", 1, statusOf(Health::kUnhealthy, "heartbeat failed: pong_timeout"),
                      later);  // 1004

  std::optional<EndpointHistory> history = bus_.history("a");
  ASSERT_TRUE(history.has_value());
  ASSERT_EQ(history->transitions.size(), 2u);
  EXPECT_EQ(history->dropped, 0u);
  const HealthTransition& up = history->transitions[0];
  EXPECT_EQ(up.revision, 1002u);
  EXPECT_EQ(up.time, kAt);
  EXPECT_EQ(up.previous_health, Health::kUnknown);
  EXPECT_EQ(up.health, Health::kHealthy);
  EXPECT_EQ(up.reason, "heartbeat answered");
  EXPECT_FALSE(up.failure.has_value());
  EXPECT_EQ(up.last_rtt, std::chrono::milliseconds(3));
  EXPECT_EQ(up.smoothed_rtt, std::chrono::milliseconds(2));
  const HealthTransition& down = history->transitions[1];
  EXPECT_EQ(down.revision, 1004u);
  EXPECT_EQ(down.time, later);
  EXPECT_EQ(down.previous_health, Health::kHealthy);
  EXPECT_EQ(down.health, Health::kUnhealthy);
  EXPECT_EQ(down.reason, "heartbeat failed: pong_timeout");
  ASSERT_TRUE(down.failure.has_value());
  EXPECT_EQ(down.failure->reason, core::FailureReason::kPongTimeout);
}

TEST_F(HealthBusTest, FlappingCarriesTheFailureOnlyWhileDown) {
  add("a", 1);
  core::EndpointStatus flapping_up = statusOf(Health::kFlapping);
  flapping_up.underlying_health = Health::kHealthy;
  flapping_up.last_failure = core::Failure::make(core::FailureReason::kSilence, "old news");
  bus_.publishChanged("a", 1, flapping_up, kAt);
  core::EndpointStatus unhealthy = statusOf(Health::kUnhealthy);
  bus_.publishChanged("a", 1, unhealthy, kAt);
  core::EndpointStatus flapping_down = statusOf(Health::kFlapping);
  flapping_down.underlying_health = Health::kUnhealthy;
  flapping_down.last_failure = unhealthy.last_failure;
  bus_.publishChanged("a", 1, flapping_down, kAt);

  const std::vector<HealthTransition> transitions = bus_.history("a")->transitions;
  ASSERT_EQ(transitions.size(), 3u);
  EXPECT_FALSE(transitions[0].failure.has_value());
  EXPECT_TRUE(transitions[1].failure.has_value());
  EXPECT_TRUE(transitions[2].failure.has_value());
}

TEST_F(HealthBusTest, HistorySurvivesAnUpdateAndEndsWithTheRegistration) {
  EXPECT_FALSE(bus_.history("a").has_value());  // not registered
  add("a", 1, {{"team", "red"}});
  EXPECT_TRUE(bus_.history("a")->transitions.empty());
  bus_.publishChanged("a", 1, statusOf(Health::kHealthy), kAt);
  // An update that keeps the connection, then one that redials (a fresh status: UNKNOWN).
  bus_.replaceRegistration("a", 1, {{"team", "blue"}}, std::nullopt, nullptr, kAt);
  bus_.replaceRegistration("a", 2, {{"team", "blue"}}, core::EndpointStatus{},
                           std::make_shared<LiveStats>(), kAt);
  std::vector<HealthTransition> transitions = bus_.history("a")->transitions;
  ASSERT_EQ(transitions.size(), 2u);
  EXPECT_EQ(transitions[1].previous_health, Health::kHealthy);
  EXPECT_EQ(transitions[1].health, Health::kUnknown);

  bus_.publishUnregistered("a", 2, kAt);
  EXPECT_FALSE(bus_.history("a").has_value());
  add("a", 3);
  EXPECT_TRUE(bus_.history("a")->transitions.empty());
}

TEST_F(HealthBusTest, HistoryIsBoundedPerEndpoint) {
  HealthBus bus(startingAt(kStart, 16384, /*history_size=*/4));
  bus.publishRegistered("a", 1, {}, core::EndpointStatus{}, live_, kAt);
  for (int i = 0; i < 10; ++i) {
    bus.publishChanged("a", 1, statusOf(i % 2 ? Health::kUnhealthy : Health::kHealthy), kAt);
  }
  std::optional<EndpointHistory> history = bus.history("a");
  ASSERT_EQ(history->transitions.size(), 4u);
  EXPECT_EQ(history->dropped, 6u);
  EXPECT_EQ(history->transitions.back().revision, bus.revision());
}

}  // namespace
}  // namespace wsvisor
