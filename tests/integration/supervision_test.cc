// End to end through a real gRPC socket: wsvisor supervising real WebSocket upstreams (our
// websocketpp TestUpstream and the foreign Python `websockets` server). Intervals are short and
// every wait is bounded; nothing sleeps for a fixed time.
#include <gtest/gtest.h>

#include <chrono>

#include "support/test_upstream.h"
#include "support/wait.h"
#include "support/wsvisor_harness.h"

namespace wsvisor::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

long long millisSince(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration_cast<milliseconds>(end - start).count();
}

class SupervisionTest : public ::testing::Test {
 protected:
  InProcessWsvisor wsvisor_;
  TestUpstream upstream_;
};

TEST_F(SupervisionTest, RegisteredEndpointBecomesHealthyWithMeasuredRoundTrip) {
  HealthRecorder watch(wsvisor_.stub());
  // Subscribed before the registration, so that the change to HEALTHY arrives as a change and not
  // folded into the snapshot.
  ASSERT_TRUE(watch.waitFor(
      [](const v1::HealthEvent& e) { return e.type() == v1::HealthEvent::TYPE_SNAPSHOT_COMPLETE; },
      milliseconds(1000)));
  const auto start = Clock::now();
  v1::RegisterEndpointResponse response;
  ASSERT_TRUE(wsvisor_.registerEndpoint(fastSpec("up-1", upstream_.url()), &response).ok());
  EXPECT_TRUE(response.created());
  EXPECT_EQ(response.endpoint().spec().heartbeat().mode(), v1::HEARTBEAT_MODE_PING);

  auto healthy = watch.waitFor(healthIs("up-1", v1::HEALTH_HEALTHY), milliseconds(1000));
  ASSERT_TRUE(healthy.has_value());
  std::printf("time to HEALTHY: %lld ms\n", millisSince(start, healthy->at));
  EXPECT_EQ(healthy->event.type(), v1::HealthEvent::TYPE_CHANGED);
  EXPECT_EQ(healthy->event.previous_health(), v1::HEALTH_UNKNOWN);

  v1::Endpoint endpoint;
  ASSERT_TRUE(wsvisor_.getEndpoint("up-1", &endpoint).ok());
  EXPECT_EQ(endpoint.status().health(), v1::HEALTH_HEALTHY);
  EXPECT_EQ(endpoint.status().phase(), v1::CONNECTION_PHASE_OPEN);
  EXPECT_TRUE(endpoint.status().has_last_rtt());
  EXPECT_GE(endpoint.status().heartbeats_sent(), 1u);
  EXPECT_GE(upstream_.pingsReceived(), 1u);
}

TEST_F(SupervisionTest, HungUpstreamIsUnhealthyWithinIntervalPlusTimeoutThenRecovers) {
  HealthRecorder watch(wsvisor_.stub());
  ASSERT_TRUE(wsvisor_.registerEndpoint(fastSpec("hung", upstream_.url())).ok());
  ASSERT_TRUE(watch.waitFor(healthIs("hung", v1::HEALTH_HEALTHY), milliseconds(1000)));

  const auto stalled_at = Clock::now();
  upstream_.setAnswerPings(false);
  auto unhealthy =
      watch.waitFor(failedWith("hung", v1::FAILURE_REASON_PONG_TIMEOUT), milliseconds(2000));
  ASSERT_TRUE(unhealthy.has_value());
  const long long detection_ms = millisSince(stalled_at, unhealthy->at);
  std::printf("pong timeout detected after %lld ms (bound 500 ms)\n", detection_ms);
  EXPECT_LE(detection_ms, 200 + 200 + 100);

  upstream_.setAnswerPings(true);
  EXPECT_TRUE(
      watch.waitForAfter(unhealthy->at, healthIs("hung", v1::HEALTH_HEALTHY), milliseconds(3000)));
}

TEST_F(SupervisionTest, PeerCloseIsReportedWithItsCloseCode) {
  HealthRecorder watch(wsvisor_.stub());
  ASSERT_TRUE(wsvisor_.registerEndpoint(fastSpec("closer", upstream_.url())).ok());
  ASSERT_TRUE(watch.waitFor(healthIs("closer", v1::HEALTH_HEALTHY), milliseconds(1000)));
  upstream_.closeAll(4000, "maintenance");
  auto closed =
      watch.waitFor(failedWith("closer", v1::FAILURE_REASON_CLOSED_BY_PEER), milliseconds(2000));
  ASSERT_TRUE(closed.has_value());
  EXPECT_EQ(closed->event.status().last_failure().close_code(), 4000);
  EXPECT_NE(closed->event.status().last_failure().detail().find("maintenance"), std::string::npos);
  // It reconnects after the backoff and is healthy again.
  EXPECT_TRUE(
      watch.waitForAfter(closed->at, healthIs("closer", v1::HEALTH_HEALTHY), milliseconds(3000)));
}

TEST_F(SupervisionTest, RejectedHandshakeCarriesTheHttpStatus) {
  upstream_.setRejectHandshake(403);
  HealthRecorder watch(wsvisor_.stub());
  ASSERT_TRUE(wsvisor_.registerEndpoint(fastSpec("forbidden", upstream_.url())).ok());
  auto rejected = watch.waitFor(failedWith("forbidden", v1::FAILURE_REASON_HANDSHAKE_REJECTED),
                                milliseconds(2000));
  ASSERT_TRUE(rejected.has_value());
  EXPECT_EQ(rejected->event.status().last_failure().http_status(), 403);
  EXPECT_EQ(rejected->event.status().phase(), v1::CONNECTION_PHASE_BACKING_OFF);
  EXPECT_TRUE(rejected->event.status().has_next_attempt_time());
}

TEST_F(SupervisionTest, NothingListeningIsConnectionRefused) {
  uint16_t closed_port;
  {
    TestUpstream gone;
    closed_port = gone.port();
  }
  HealthRecorder watch(wsvisor_.stub());
  ASSERT_TRUE(wsvisor_
                  .registerEndpoint(
                      fastSpec("refused", "ws://127.0.0.1:" + std::to_string(closed_port) + "/"))
                  .ok());
  EXPECT_TRUE(watch.waitFor(failedWith("refused", v1::FAILURE_REASON_CONNECTION_REFUSED),
                            milliseconds(2000)));
}

TEST_F(SupervisionTest, UnresolvableHostIsDns) {
  HealthRecorder watch(wsvisor_.stub());
  ASSERT_TRUE(
      wsvisor_.registerEndpoint(fastSpec("nodns", "ws://wsvisor-test-host.invalid:9/")).ok());
  EXPECT_TRUE(watch.waitFor(failedWith("nodns", v1::FAILURE_REASON_DNS), milliseconds(5000)));
}

TEST_F(SupervisionTest, HeadersAndSubprotocolsAreSentInTheHandshake) {
  upstream_.setSelectSubprotocol(true);
  v1::EndpointSpec spec = fastSpec("headers", upstream_.url("/feed?x=1"));
  v1::Header* header = spec.add_headers();
  header->set_name("X-Api-Key");
  header->set_value("k-123");
  spec.add_subprotocols("v2.feed");
  spec.add_subprotocols("v1.feed");
  HealthRecorder watch(wsvisor_.stub());
  ASSERT_TRUE(wsvisor_.registerEndpoint(spec).ok());
  ASSERT_TRUE(watch.waitFor(healthIs("headers", v1::HEALTH_HEALTHY), milliseconds(1000)));
  const auto requests = upstream_.handshakeRequests();
  ASSERT_FALSE(requests.empty());
  EXPECT_EQ(requests[0].at("x-api-key"), "k-123");
  EXPECT_EQ(requests[0].at(":path"), "/feed?x=1");
  EXPECT_NE(requests[0].at("sec-websocket-protocol").find("v2.feed"), std::string::npos);
}

TEST_F(SupervisionTest, TextModeNeedsTheEchoedReply) {
  v1::EndpointSpec spec = fastSpec("text", upstream_.url());
  spec.mutable_heartbeat()->set_mode(v1::HEARTBEAT_MODE_TEXT);
  spec.mutable_heartbeat()->set_payload("are-you-there");
  HealthRecorder watch(wsvisor_.stub());
  ASSERT_TRUE(wsvisor_.registerEndpoint(spec).ok());
  ASSERT_TRUE(watch.waitFor(healthIs("text", v1::HEALTH_HEALTHY), milliseconds(1000)));
  upstream_.setEchoText(false);
  EXPECT_TRUE(
      watch.waitFor(failedWith("text", v1::FAILURE_REASON_PONG_TIMEOUT), milliseconds(2000)));
  const auto texts = upstream_.textsReceived();
  ASSERT_FALSE(texts.empty());
  EXPECT_EQ(texts[0], "are-you-there");
}

TEST_F(SupervisionTest, UnregisterClosesWithNormalClosureAndEndsSupervision) {
  HealthRecorder watch(wsvisor_.stub());
  ASSERT_TRUE(wsvisor_.registerEndpoint(fastSpec("bye", upstream_.url())).ok());
  ASSERT_TRUE(watch.waitFor(healthIs("bye", v1::HEALTH_HEALTHY), milliseconds(1000)));
  ASSERT_TRUE(wsvisor_.unregisterEndpoint("bye").ok());
  EXPECT_TRUE(watch.waitFor(
      [](const v1::HealthEvent& e) {
        return e.endpoint_id() == "bye" && e.type() == v1::HealthEvent::TYPE_UNREGISTERED;
      },
      milliseconds(1000)));
  EXPECT_TRUE(waitUntil(
      [&] {
        const auto codes = upstream_.closeCodesReceived();
        return !codes.empty() && codes.back() == 1000;
      },
      milliseconds(2000)));
  v1::Endpoint endpoint;
  EXPECT_EQ(wsvisor_.getEndpoint("bye", &endpoint).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(wsvisor_.unregisterEndpoint("bye").error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(SupervisionTest, WatchStartsWithSnapshotThenChangesWithRevisionsStepByOne) {
  for (const char* id : {"a", "b", "c"}) {
    ASSERT_TRUE(wsvisor_.registerEndpoint(fastSpec(id, upstream_.url())).ok());
  }
  v1::WatchHealthRequest request;
  request.add_ids("a");
  request.add_ids("b");
  HealthRecorder filtered(wsvisor_.stub(), request);
  HealthRecorder all(wsvisor_.stub());
  auto complete = all.waitFor(
      [](const v1::HealthEvent& e) { return e.type() == v1::HealthEvent::TYPE_SNAPSHOT_COMPLETE; },
      milliseconds(1000));
  ASSERT_TRUE(complete.has_value());
  ASSERT_TRUE(wsvisor_.registerEndpoint(fastSpec("d", upstream_.url())).ok());
  ASSERT_TRUE(all.waitFor(healthIs("d", v1::HEALTH_HEALTHY), milliseconds(1000)));

  // Everything before the marker is one SNAPSHOT per endpoint; after it, revisions are
  // consecutive for a watcher that sees everything.
  const auto events = all.events();
  size_t i = 0;
  for (; events[i].event.type() == v1::HealthEvent::TYPE_SNAPSHOT; ++i) {
  }
  EXPECT_EQ(i, 3u);
  ASSERT_EQ(events[i].event.type(), v1::HealthEvent::TYPE_SNAPSHOT_COMPLETE);
  uint64_t revision = events[i].event.revision();
  for (++i; i < events.size(); ++i) {
    EXPECT_EQ(events[i].event.revision(), revision + 1) << "event " << i;
    revision = events[i].event.revision();
  }
  ASSERT_TRUE(filtered.waitFor(
      [](const v1::HealthEvent& e) { return e.type() == v1::HealthEvent::TYPE_SNAPSHOT_COMPLETE; },
      milliseconds(1000)));
  for (const auto& r : filtered.events()) {
    if (r.event.type() == v1::HealthEvent::TYPE_SNAPSHOT_COMPLETE) continue;
    EXPECT_TRUE(r.event.endpoint_id() == "a" || r.event.endpoint_id() == "b");
  }
}

TEST_F(SupervisionTest, BadRequestsNameTheFieldAndChangeNothing) {
  struct Case {
    std::function<void(v1::EndpointSpec&)> mutate;
    std::string field;
  };
  const Case cases[] = {
      {[](v1::EndpointSpec& s) { s.set_url("http://127.0.0.1:1/"); }, "spec.url"},
      {[](v1::EndpointSpec& s) { s.mutable_heartbeat()->mutable_interval()->set_nanos(0); },
       "spec.heartbeat.interval"},
      {[](v1::EndpointSpec& s) {
         s.mutable_heartbeat()->set_mode(static_cast<v1::HeartbeatMode>(7));
       },
       "spec.heartbeat.mode"},
      {[](v1::EndpointSpec& s) { s.set_id("has spaces"); }, "spec.id"},
      {[](v1::EndpointSpec& s) {
         auto* h = s.add_headers();
         h->set_name("X-Evil");
         h->set_value("a\r\nInjected: yes");
       },
       "spec.headers[0].value"},
  };
  for (const Case& c : cases) {
    v1::EndpointSpec spec = fastSpec("bad", upstream_.url());
    c.mutate(spec);
    const grpc::Status status = wsvisor_.registerEndpoint(spec);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_EQ(status.error_message().rfind(c.field + ":", 0), 0u) << status.error_message();
  }
  v1::ListEndpointsResponse list;
  ASSERT_TRUE(wsvisor_.listEndpoints({}, &list).ok());
  EXPECT_EQ(list.endpoints_size(), 0);
  EXPECT_EQ(upstream_.connectionsAccepted(), 0u);
}

TEST_F(SupervisionTest, ReRegisteringIsIdempotentOnlyForAnIdenticalSpec) {
  const v1::EndpointSpec spec = fastSpec("same", upstream_.url());
  v1::RegisterEndpointResponse first, second;
  ASSERT_TRUE(wsvisor_.registerEndpoint(spec, &first).ok());
  ASSERT_TRUE(wsvisor_.registerEndpoint(spec, &second).ok());
  EXPECT_TRUE(first.created());
  EXPECT_FALSE(second.created());
  v1::EndpointSpec different = spec;
  different.set_url(upstream_.url("/other"));
  different.mutable_heartbeat()->clear_interval();  // as a register that left it out
  const grpc::Status refused = wsvisor_.registerEndpoint(different);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  // The message names each differing field with both values; a field left out is its default.
  EXPECT_EQ(refused.error_message(),
            "endpoint 'same' is already registered with a different spec; use UpdateEndpoint or "
            "unregister it first. Differences: spec.url: stored \"" +
                spec.url() + "\", requested \"" + different.url() +
                "\"; spec.heartbeat.interval: stored 200ms, requested 10s (default)");
  v1::Endpoint kept;
  ASSERT_TRUE(wsvisor_.getEndpoint("same", &kept).ok());
  EXPECT_EQ(kept.spec().url(), spec.url());
}

TEST_F(SupervisionTest, ListFiltersByLabelsAndPages) {
  for (int i = 0; i < 5; ++i) {
    v1::EndpointSpec spec = fastSpec("e" + std::to_string(i), upstream_.url());
    (*spec.mutable_labels())["team"] = i % 2 == 0 ? "red" : "blue";
    ASSERT_TRUE(wsvisor_.registerEndpoint(spec).ok());
  }
  v1::ListEndpointsRequest request;
  request.set_label_selector("team=red");
  request.set_page_size(2);
  std::vector<std::string> ids;
  for (int page = 0; page < 5; ++page) {
    v1::ListEndpointsResponse response;
    ASSERT_TRUE(wsvisor_.listEndpoints(request, &response).ok());
    for (const auto& e : response.endpoints()) ids.push_back(e.spec().id());
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"e0", "e2", "e4"}));
  v1::ListEndpointsRequest bad;
  bad.set_label_selector("team");
  v1::ListEndpointsResponse ignored;
  const grpc::Status status = wsvisor_.listEndpoints(bad, &ignored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind("label_selector:", 0), 0u);
}

TEST(SupervisionLimitsTest, RegistrationsBeyondTheLimitAreResourceExhausted) {
  service::ServerOptions options;
  options.max_endpoints = 2;
  InProcessWsvisor wsvisor(options);
  TestUpstream upstream;
  ASSERT_TRUE(wsvisor.registerEndpoint(fastSpec("one", upstream.url())).ok());
  ASSERT_TRUE(wsvisor.registerEndpoint(fastSpec("two", upstream.url())).ok());
  EXPECT_EQ(wsvisor.registerEndpoint(fastSpec("three", upstream.url())).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(SupervisionShutdownTest, ShutdownClosesUpstreamsWithGoingAwayAndEndsWatches) {
  TestUpstream upstream;
  auto wsvisor = std::make_unique<InProcessWsvisor>();
  HealthRecorder watch(wsvisor->stub());
  for (const char* id : {"s1", "s2"}) {
    ASSERT_TRUE(wsvisor->registerEndpoint(fastSpec(id, upstream.url())).ok());
  }
  // Both open on wsvisor's side, not only on the upstream's: a connection whose handshake response
  // wsvisor has not read yet is still connecting, and shutdown drops those without a close frame.
  for (const char* id : {"s1", "s2"}) {
    ASSERT_TRUE(watch.waitFor(healthIs(id, v1::HEALTH_HEALTHY), milliseconds(2000)));
  }
  ASSERT_EQ(upstream.openConnections(), 2);
  wsvisor->server().shutdown();
  // shutdown() returns once wsvisor has finished both closing handshakes; the upstream records a
  // code when its close handler runs, which may be a moment later on its own io thread.
  EXPECT_TRUE(
      waitUntil([&] { return upstream.closeCodesReceived().size() >= 2; }, milliseconds(2000)));
  EXPECT_EQ(upstream.closeCodesReceived(), (std::vector<int>{1001, 1001}));
  ASSERT_TRUE(watch.waitForEnd(milliseconds(2000)));
  EXPECT_EQ(watch.finalStatus()->error_code(), grpc::StatusCode::UNAVAILABLE);
}

// The foreign upstream of the acceptance check: Python `websockets`, paused with SIGSTOP.
TEST(ForeignUpstreamSupervisionTest, PausedUpstreamIsUnhealthyWithinBoundAndHealthyAfterResume) {
  InProcessWsvisor wsvisor;
  PythonUpstream python;
  HealthRecorder watch(wsvisor.stub());
  const auto start = Clock::now();
  ASSERT_TRUE(wsvisor.registerEndpoint(fastSpec("py", python.url())).ok());
  auto healthy = watch.waitFor(healthIs("py", v1::HEALTH_HEALTHY), milliseconds(1000));
  ASSERT_TRUE(healthy.has_value());
  std::printf("python upstream: HEALTHY %lld ms after registering (bound 1000 ms)\n",
              millisSince(start, healthy->at));

  const auto paused_at = Clock::now();
  python.pause();
  auto unhealthy = watch.waitFor(healthIs("py", v1::HEALTH_UNHEALTHY), milliseconds(2000));
  ASSERT_TRUE(unhealthy.has_value());
  const long long detection_ms = millisSince(paused_at, unhealthy->at);
  std::printf("python upstream: SIGSTOP detected after %lld ms (bound 500 ms), reason %s\n",
              detection_ms,
              v1::FailureReason_Name(unhealthy->event.status().last_failure().reason()).c_str());
  EXPECT_LE(detection_ms, 500);
  EXPECT_EQ(unhealthy->event.status().last_failure().reason(), v1::FAILURE_REASON_PONG_TIMEOUT);

  const auto resumed_at = Clock::now();
  python.resume();
  auto recovered =
      watch.waitForAfter(resumed_at, healthIs("py", v1::HEALTH_HEALTHY), milliseconds(5000));
  ASSERT_TRUE(recovered.has_value());
  std::printf("python upstream: HEALTHY again %lld ms after SIGCONT\n",
              millisSince(resumed_at, recovered->at));
}

TEST(ForeignUpstreamSupervisionTest, PassiveModeIsHealthyWhileTheUpstreamTalks) {
  InProcessWsvisor wsvisor;
  PythonUpstream python({"--send-every", "0.05"});
  v1::EndpointSpec spec = fastSpec("passive", python.url());
  spec.mutable_heartbeat()->set_mode(v1::HEARTBEAT_MODE_PASSIVE);
  spec.mutable_heartbeat()->clear_timeout();  // default: 2 x interval of silence
  HealthRecorder watch(wsvisor.stub());
  ASSERT_TRUE(wsvisor.registerEndpoint(spec).ok());
  ASSERT_TRUE(watch.waitFor(healthIs("passive", v1::HEALTH_HEALTHY), milliseconds(1000)));
  const auto paused_at = Clock::now();
  python.pause();
  auto silent =
      watch.waitFor(failedWith("passive", v1::FAILURE_REASON_SILENCE), milliseconds(2000));
  ASSERT_TRUE(silent.has_value());
  std::printf("passive: silence detected after %lld ms (bound 400 ms + one message gap)\n",
              millisSince(paused_at, silent->at));
  EXPECT_LE(millisSince(paused_at, silent->at), 400 + 50 + 100);
}

}  // namespace
}  // namespace wsvisor::testing
