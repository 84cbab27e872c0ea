// GetEndpointHistory and resumed WatchHealth streams, end to end through a real gRPC socket with
// wsvisor supervising a real WebSocket upstream. Every wait is bounded; nothing sleeps for a
// fixed time.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "support/test_upstream.h"
#include "support/wsvisor_harness.h"

namespace wsvisor::testing {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kPrompt{3000};

bool isMarker(const v1::HealthEvent& event) {
  return event.type() == v1::HealthEvent::TYPE_SNAPSHOT_COMPLETE;
}

grpc::Status getHistory(InProcessWsvisor& wsvisor, const std::string& id,
                        v1::GetEndpointHistoryResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::GetEndpointHistoryRequest request;
  request.set_id(id);
  return wsvisor.stub().GetEndpointHistory(&context, request, response);
}

v1::WatchHealthRequest resumeAfter(uint64_t revision) {
  v1::WatchHealthRequest request;
  request.set_since_revision(revision);
  return request;
}

// The revision a fresh watch reports as current (its SNAPSHOT_COMPLETE).
uint64_t currentRevision(InProcessWsvisor& wsvisor) {
  HealthRecorder watch(wsvisor.stub());
  auto marker = watch.waitFor(isMarker, kPrompt);
  EXPECT_TRUE(marker.has_value());
  return marker ? marker->event.revision() : 0;
}

// Waits for a resumed watch to be refused and returns its final status.
grpc::Status refusedStatus(HealthRecorder& watch) {
  EXPECT_TRUE(watch.waitForEnd(kPrompt));
  EXPECT_TRUE(watch.events().empty()) << "a refused resume sent events";
  return watch.finalStatus().value_or(grpc::Status::OK);
}

class HistoryAndResumeTest : public ::testing::Test {
 protected:
  InProcessWsvisor wsvisor_;
  TestUpstream upstream_;
};

TEST_F(HistoryAndResumeTest, HistoryShowsAnUpstreamGoingDownAndUpAgain) {
  HealthRecorder watch(wsvisor_.stub());
  ASSERT_TRUE(wsvisor_.registerEndpoint(fastSpec("flaky", upstream_.url())).ok());
  auto up = watch.waitFor(healthIs("flaky", v1::HEALTH_HEALTHY), kPrompt);
  ASSERT_TRUE(up.has_value());
  upstream_.setAnswerPings(false);
  auto down = watch.waitFor(failedWith("flaky", v1::FAILURE_REASON_PONG_TIMEOUT), kPrompt);
  ASSERT_TRUE(down.has_value());
  upstream_.setAnswerPings(true);
  auto again = watch.waitForAfter(down->at, healthIs("flaky", v1::HEALTH_HEALTHY), kPrompt);
  ASSERT_TRUE(again.has_value());

  v1::GetEndpointHistoryResponse history;
  ASSERT_TRUE(getHistory(wsvisor_, "flaky", &history).ok());
  ASSERT_EQ(history.transitions_size(), 3);
  EXPECT_EQ(history.dropped(), 0u);
  const struct {
    v1::Health from, to;
    const HealthRecorder::Received& event;
  } expected[] = {{v1::HEALTH_UNKNOWN, v1::HEALTH_HEALTHY, *up},
                  {v1::HEALTH_HEALTHY, v1::HEALTH_UNHEALTHY, *down},
                  {v1::HEALTH_UNHEALTHY, v1::HEALTH_HEALTHY, *again}};
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE("transition " + std::to_string(i));
    const v1::HealthTransition& transition = history.transitions(i);
    const v1::HealthEvent& event = expected[i].event.event;
    EXPECT_EQ(transition.previous_health(), expected[i].from);
    EXPECT_EQ(transition.health(), expected[i].to);
    // The transition is the change the watch stream reported, at the same revision and time.
    EXPECT_EQ(transition.revision(), event.revision());
    EXPECT_EQ(transition.time().seconds(), event.time().seconds());
    EXPECT_EQ(transition.time().nanos(), event.time().nanos());
    EXPECT_EQ(transition.reason(), event.status().transition_reason());
    EXPECT_FALSE(transition.reason().empty());
    // A failure only where the change is to a down state.
    EXPECT_EQ(transition.has_failure(), expected[i].to == v1::HEALTH_UNHEALTHY);
  }
  EXPECT_EQ(history.transitions(1).failure().reason(), v1::FAILURE_REASON_PONG_TIMEOUT);
  // Healthy again after the reconnect: a heartbeat was answered, so an RTT was measured.
  EXPECT_TRUE(history.transitions(2).has_last_rtt());
}

TEST_F(HistoryAndResumeTest, HistoryOutlivesAnUpdateButNotTheRegistration) {
  HealthRecorder watch(wsvisor_.stub());
  ASSERT_TRUE(wsvisor_.registerEndpoint(fastSpec("kept", upstream_.url())).ok());
  ASSERT_TRUE(watch.waitFor(healthIs("kept", v1::HEALTH_HEALTHY), kPrompt));

  v1::UpdateEndpointRequest update;
  *update.mutable_spec() = fastSpec("kept", upstream_.url("/other"));  // a new URL redials
  v1::UpdateEndpointResponse updated;
  grpc::ClientContext context;
  const auto before_update = std::chrono::steady_clock::now();
  ASSERT_TRUE(wsvisor_.stub().UpdateEndpoint(&context, update, &updated).ok());
  ASSERT_TRUE(updated.reconnected());
  // The redial starts from UNKNOWN and becomes HEALTHY again.
  auto healthy_again = watch.waitForAfter(
      before_update,
      [](const v1::HealthEvent& e) {
        return e.endpoint_id() == "kept" && e.type() == v1::HealthEvent::TYPE_CHANGED &&
               e.previous_health() == v1::HEALTH_UNKNOWN &&
               e.status().health() == v1::HEALTH_HEALTHY;
      },
      kPrompt);
  ASSERT_TRUE(healthy_again.has_value());

  v1::GetEndpointHistoryResponse history;
  ASSERT_TRUE(getHistory(wsvisor_, "kept", &history).ok());
  ASSERT_EQ(history.transitions_size(), 3);
  EXPECT_EQ(history.transitions(0).previous_health(), v1::HEALTH_UNKNOWN);
  EXPECT_EQ(history.transitions(0).health(), v1::HEALTH_HEALTHY);
  EXPECT_EQ(history.transitions(1).previous_health(), v1::HEALTH_HEALTHY);
  EXPECT_EQ(history.transitions(1).health(), v1::HEALTH_UNKNOWN);  // the redial
  EXPECT_EQ(history.transitions(2).health(), v1::HEALTH_HEALTHY);
  EXPECT_EQ(history.transitions(2).revision(), healthy_again->event.revision());

  ASSERT_TRUE(wsvisor_.unregisterEndpoint("kept").ok());
  EXPECT_EQ(getHistory(wsvisor_, "kept", &history).error_code(), grpc::StatusCode::NOT_FOUND);
  // Registered again: a history of its own.
  ASSERT_TRUE(wsvisor_.registerEndpoint(fastSpec("kept", upstream_.url())).ok());
  v1::GetEndpointHistoryResponse fresh;
  ASSERT_TRUE(getHistory(wsvisor_, "kept", &fresh).ok());
  for (const auto& transition : fresh.transitions()) {
    EXPECT_GT(transition.revision(), healthy_again->event.revision());
  }
}

TEST_F(HistoryAndResumeTest, HistoryOfAnUnknownOrInvalidIdIsRefused) {
  v1::GetEndpointHistoryResponse history;
  const grpc::Status unknown = getHistory(wsvisor_, "nobody", &history);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(unknown.error_message().find("nobody"), std::string::npos);
  const grpc::Status invalid = getHistory(wsvisor_, "has space", &history);
  EXPECT_EQ(invalid.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(invalid.error_message().rfind("id:", 0), 0u) << invalid.error_message();
}

TEST_F(HistoryAndResumeTest, ResumedWatchReplaysExactlyTheLaterChangesThenStreamsLive) {
  HealthRecorder all(wsvisor_.stub());
  ASSERT_TRUE(all.waitFor(isMarker, kPrompt));
  ASSERT_TRUE(wsvisor_.registerEndpoint(fastSpec("a", upstream_.url())).ok());
  auto a_healthy = all.waitFor(healthIs("a", v1::HEALTH_HEALTHY), kPrompt);
  ASSERT_TRUE(a_healthy.has_value());
  ASSERT_TRUE(wsvisor_.registerEndpoint(fastSpec("b", upstream_.url())).ok());
  ASSERT_TRUE(all.waitFor(healthIs("b", v1::HEALTH_HEALTHY), kPrompt));

  // A watcher that saw everything up to a's change to HEALTHY comes back.
  const uint64_t seen = a_healthy->event.revision();
  HealthRecorder resumed(wsvisor_.stub(), resumeAfter(seen));
  auto resumed_marker = resumed.waitFor(isMarker, kPrompt);
  ASSERT_TRUE(resumed_marker.has_value());
  const uint64_t current = resumed_marker->event.revision();

  // Then live: a change made now arrives after the marker.
  ASSERT_TRUE(wsvisor_.unregisterEndpoint("b").ok());
  auto is_unregistered = [](const v1::HealthEvent& e) {
    return e.type() == v1::HealthEvent::TYPE_UNREGISTERED && e.endpoint_id() == "b";
  };
  auto live = resumed.waitFor(is_unregistered, kPrompt);
  ASSERT_TRUE(live.has_value());
  EXPECT_GT(live->event.revision(), current);
  ASSERT_TRUE(all.waitFor(is_unregistered, kPrompt));

  // Everything the resumed watcher got is what the live watcher saw after `seen`: in order, with
  // the same types and states; before the marker the replay, after it live changes. No SNAPSHOT.
  auto describe = [](const v1::HealthEvent& e) {
    return std::to_string(e.revision()) + " " + v1::HealthEvent::Type_Name(e.type()) + " " +
           e.endpoint_id() + " " + v1::Health_Name(e.status().health());
  };
  std::vector<std::string> expected;
  for (const auto& r : all.events()) {
    const v1::HealthEvent& e = r.event;
    if (e.type() == v1::HealthEvent::TYPE_SNAPSHOT || isMarker(e)) continue;
    if (e.revision() > seen && e.revision() <= live->event.revision()) {
      if (e.revision() == current + 1) expected.push_back("-- marker --");
      expected.push_back(describe(e));
    }
  }
  std::vector<std::string> got;
  for (const auto& r : resumed.events()) {
    EXPECT_FALSE(r.event.coalesced());
    got.push_back(isMarker(r.event) ? "-- marker --" : describe(r.event));
  }
  EXPECT_EQ(got, expected);
  EXPECT_GT(current, seen + 1) << "b's registration at least was replayed";
}

TEST_F(HistoryAndResumeTest, ResumeFromTheFutureIsOutOfRange) {
  const uint64_t current = currentRevision(wsvisor_);
  HealthRecorder ahead(wsvisor_.stub(), resumeAfter(current + 1));
  const grpc::Status status = refusedStatus(ahead);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_NE(status.error_message().find(std::to_string(current + 1)), std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find(std::to_string(current)), std::string::npos);
  EXPECT_NE(status.error_message().find("since_revision 0"), std::string::npos);
}

TEST(HistoryAndResumeLimitsTest, ResumeBeyondTheReplayLogIsOutOfRange) {
  service::ServerOptions options;
  options.replay_log_size = 2;
  InProcessWsvisor wsvisor(options);
  const uint64_t start = currentRevision(wsvisor);
  // Each registration is a change (and the failing connections to port 1 add more).
  for (const char* id : {"x", "y", "z"}) {
    v1::EndpointSpec spec = fastSpec(id, "ws://127.0.0.1:1/");
    ASSERT_TRUE(wsvisor.registerEndpoint(spec).ok());
  }
  HealthRecorder too_old(wsvisor.stub(), resumeAfter(start));
  const grpc::Status status = refusedStatus(too_old);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_NE(status.error_message().find("since_revision " + std::to_string(start) + " is too old"),
            std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find("since_revision 0"), std::string::npos);
}

TEST(HistoryAndResumeRestartTest, ARevisionFromBeforeARestartIsOutOfRange) {
  uint64_t seen = 0;
  {
    InProcessWsvisor first;
    ASSERT_TRUE(first.registerEndpoint(fastSpec("r", "ws://127.0.0.1:1/")).ok());
    seen = currentRevision(first);
  }
  InProcessWsvisor second;
  const uint64_t current = currentRevision(second);
  EXPECT_GT(current, seen) << "a later run counts from a later start";
  HealthRecorder stale(second.stub(), resumeAfter(seen));
  const grpc::Status status = refusedStatus(stale);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_NE(status.error_message().find("since_revision " + std::to_string(seen) + " is too old"),
            std::string::npos)
      << status.error_message();
}

}  // namespace
}  // namespace wsvisor::testing
