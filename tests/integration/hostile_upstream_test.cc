// Hostile upstreams: rejected handshakes, oversized messages, floods of messages and of
// continuation frames, invalid UTF-8, odd close codes, a server that never finishes the opening
// handshake, and one that keeps restarting. Each failure must carry the precise reason, and a
// well-behaved "bystander" endpoint on the same wsvisor (same io thread) must stay HEALTHY with no
// failed heartbeat throughout.
//
// Upstreams: our websocketpp TestUpstream, tests/support/python_raw_ws_upstream.py (raw RFC 6455
// frames from Python's standard library, for what no WebSocket library will send) and
// tests/support/python_ws_upstream.py (python3-websockets, restarted on a fixed port). Everything
// is on 127.0.0.1, every wait is bounded, and each test prints what it measured.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/test_upstream.h"
#include "support/wait.h"
#include "support/wsvisor_harness.h"

extern char** environ;

namespace wsvisor::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// fastSpec: heartbeat interval and timeout 200 ms each.
constexpr long long kIntervalMs = 200;
constexpr long long kTimeoutMs = 200;
// Slack for detections on a loaded two-core machine (other builds and tests run beside these).
constexpr long long kSlackMs = 300;

long long millisSince(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration_cast<milliseconds>(end - start).count();
}

long long timestampMs(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000 + t.nanos() / 1000000;
}

long long durationUs(const google::protobuf::Duration& d) {
  return d.seconds() * 1000000 + d.nanos() / 1000;
}

void setMillis(google::protobuf::Duration* d, long long ms) {
  d->set_seconds(ms / 1000);
  d->set_nanos(static_cast<int32_t>((ms % 1000) * 1000000));
}

// tests/support/python_raw_ws_upstream.py (raw RFC 6455): prints "PORT <n>", misbehaves on every
// open connection when trigger() writes "go" to its stdin, exits on EOF of that stdin.
class RawUpstream : public PythonUpstream {
 public:
  explicit RawUpstream(const std::vector<std::string>& args)
      : PythonUpstream(Script{"python_raw_ws_upstream.py"}, args) {}
  // Starts the misbehaviour on every connection open now.
  void trigger() { sendLine("go"); }
};

class HostileUpstreamTest : public ::testing::Test {
 protected:
  static constexpr char kBystander[] = "bystander";

  void SetUp() override {
    ASSERT_TRUE(wsvisor_.registerEndpoint(fastSpec(kBystander, bystander_.url())).ok());
    auto healthy = watch_.waitFor(healthIs(kBystander, v1::HEALTH_HEALTHY), milliseconds(2000));
    ASSERT_TRUE(healthy.has_value());
    bystander_healthy_at_ = healthy->at;
  }

  // The bystander never left HEALTHY, never recorded a failure and kept heartbeating.
  void TearDown() override {
    if (bystander_healthy_at_ == Clock::time_point{}) return;  // SetUp failed
    for (const auto& r : watch_.events()) {
      if (r.at <= bystander_healthy_at_ || r.event.endpoint_id() != kBystander) continue;
      // A CHANGED event that only resets reconnect_attempts (after reset_after) is fine.
      if (r.event.status().health() == v1::HEALTH_HEALTHY && !r.event.status().has_last_failure()) {
        continue;
      }
      ADD_FAILURE() << "bystander wavered while its neighbour misbehaved: "
                    << r.event.ShortDebugString();
    }
    v1::Endpoint endpoint;
    ASSERT_TRUE(wsvisor_.getEndpoint(kBystander, &endpoint).ok());
    EXPECT_EQ(endpoint.status().health(), v1::HEALTH_HEALTHY);
    EXPECT_EQ(endpoint.status().consecutive_failures(), 0u);
    EXPECT_FALSE(endpoint.status().has_last_failure())
        << endpoint.status().last_failure().ShortDebugString();
    const long long healthy_for = millisSince(bystander_healthy_at_, Clock::now());
    // One heartbeat per interval while healthy; allow for a slow machine.
    EXPECT_GE(static_cast<long long>(endpoint.status().heartbeats_sent()),
              healthy_for / kIntervalMs / 2)
        << "bystander stopped heartbeating";
    std::printf("bystander: HEALTHY throughout (%lld ms), %llu heartbeats, last RTT %lld us\n",
                healthy_for, static_cast<unsigned long long>(endpoint.status().heartbeats_sent()),
                durationUs(endpoint.status().last_rtt()));
  }

  // Registers `spec` and waits until it is HEALTHY.
  void registerHealthy(const v1::EndpointSpec& spec) {
    ASSERT_TRUE(wsvisor_.registerEndpoint(spec).ok());
    ASSERT_TRUE(watch_.waitFor(healthIs(spec.id(), v1::HEALTH_HEALTHY), milliseconds(3000)))
        << spec.id() << " never became HEALTHY";
  }

  v1::Endpoint get(const std::string& id) {
    v1::Endpoint endpoint;
    EXPECT_TRUE(wsvisor_.getEndpoint(id, &endpoint).ok()) << id;
    return endpoint;
  }

  // Waits until endpoint `id` has sent `more` heartbeats beyond those sent by now: everything the
  // upstream queued before it answered them has been read by then.
  bool waitForMoreHeartbeats(const std::string& id, uint64_t more, milliseconds timeout) {
    const uint64_t target = get(id).status().heartbeats_sent() + more;
    return waitUntil([&] { return get(id).status().heartbeats_sent() >= target; }, timeout);
  }

  InProcessWsvisor wsvisor_;
  TestUpstream bystander_;
  HealthRecorder watch_{wsvisor_.stub()};
  Clock::time_point bystander_healthy_at_{};
};

// --- the opening handshake ---------------------------------------------------------------------

TEST_F(HostileUpstreamTest, RejectedHandshakesCarryTheHttpStatus) {
  const int statuses[] = {403, 404, 500};
  std::vector<std::unique_ptr<TestUpstream>> upstreams;
  const auto start = Clock::now();
  for (int status : statuses) {
    upstreams.push_back(std::make_unique<TestUpstream>());
    upstreams.back()->setRejectHandshake(status);
    ASSERT_TRUE(
        wsvisor_
            .registerEndpoint(fastSpec("http-" + std::to_string(status), upstreams.back()->url()))
            .ok());
  }
  for (int status : statuses) {
    const std::string id = "http-" + std::to_string(status);
    auto rejected =
        watch_.waitFor(failedWith(id, v1::FAILURE_REASON_HANDSHAKE_REJECTED), milliseconds(3000));
    ASSERT_TRUE(rejected.has_value()) << id;
    const v1::Failure& failure = rejected->event.status().last_failure();
    std::printf("%s: HANDSHAKE_REJECTED after %lld ms, http_status %d, detail \"%s\"\n", id.c_str(),
                millisSince(start, rejected->at), failure.http_status(), failure.detail().c_str());
    EXPECT_EQ(failure.http_status(), status);
    EXPECT_EQ(failure.detail().rfind("HTTP " + std::to_string(status), 0), 0u) << failure.detail();
    EXPECT_EQ(failure.close_code(), 0);
  }
}

TEST_F(HostileUpstreamTest, UpstreamThatNeverAnswersTheHandshakeIsConnectTimeout) {
  RawUpstream silent({"--mode", "accept-no-handshake"});
  constexpr long long kConnectTimeoutMs = 500;
  v1::EndpointSpec spec = fastSpec("no-handshake", silent.url());
  setMillis(spec.mutable_connect_timeout(), kConnectTimeoutMs);
  const auto start = Clock::now();
  ASSERT_TRUE(wsvisor_.registerEndpoint(spec).ok());
  auto timed_out = watch_.waitFor(failedWith("no-handshake", v1::FAILURE_REASON_CONNECT_TIMEOUT),
                                  milliseconds(kConnectTimeoutMs + 3000));
  ASSERT_TRUE(timed_out.has_value());
  const long long detection_ms = millisSince(start, timed_out->at);
  std::printf(
      "no handshake: CONNECT_TIMEOUT %lld ms after registering (connect_timeout %lld ms, "
      "bound %lld ms), detail \"%s\"\n",
      detection_ms, kConnectTimeoutMs, kConnectTimeoutMs + kSlackMs,
      timed_out->event.status().last_failure().detail().c_str());
  EXPECT_GE(detection_ms, kConnectTimeoutMs - 20);  // not before the timeout
  EXPECT_LE(detection_ms, kConnectTimeoutMs + kSlackMs);
  EXPECT_EQ(timed_out->event.status().phase(), v1::CONNECTION_PHASE_BACKING_OFF);
  // The next attempt times out the same way: the abandoned attempt left nothing stuck.
  auto again = watch_.waitForAfter(
      timed_out->at,
      [](const v1::HealthEvent& e) {
        return e.endpoint_id() == "no-handshake" && e.status().consecutive_failures() >= 2 &&
               e.status().last_failure().reason() == v1::FAILURE_REASON_CONNECT_TIMEOUT;
      },
      milliseconds(kConnectTimeoutMs + 3000));
  EXPECT_TRUE(again.has_value());
}

// A reset in the middle of the opening handshake (a crashing server, a load balancer giving up)
// is a network error whose detail says that the connection was reset.
TEST_F(HostileUpstreamTest, ResetDuringTheHandshakeIsNetworkErrorNamingTheReset) {
  for (const std::string mode : {"reset-on-accept", "reset-handshake"}) {
    RawUpstream resetter({"--mode", mode});
    const auto start = Clock::now();
    ASSERT_TRUE(wsvisor_.registerEndpoint(fastSpec(mode, resetter.url())).ok());
    auto failed = watch_.waitFor(healthIs(mode, v1::HEALTH_UNHEALTHY), milliseconds(3000));
    ASSERT_TRUE(failed.has_value()) << mode;
    const v1::Failure& failure = failed->event.status().last_failure();
    std::printf("%s: %s after %lld ms, detail \"%s\"\n", mode.c_str(),
                v1::FailureReason_Name(failure.reason()).c_str(), millisSince(start, failed->at),
                failure.detail().c_str());
    EXPECT_EQ(failure.reason(), v1::FAILURE_REASON_NETWORK_ERROR) << mode;
    std::string lower = failure.detail();
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    EXPECT_NE(lower.find("reset"), std::string::npos)
        << mode << ": the detail does not say the connection was reset: \"" << failure.detail()
        << "\"";
  }
}

// --- messages ----------------------------------------------------------------------------------

TEST_F(HostileUpstreamTest, MessageOverMaxMessageBytesIsMessageTooBigWithCloseCode1009) {
  TestUpstream upstream;
  v1::EndpointSpec spec = fastSpec("big", upstream.url());
  spec.set_max_message_bytes(64 * 1024);
  registerHealthy(spec);

  // Exactly the limit is allowed.
  upstream.sendToAll(std::string(64 * 1024, 'x'));
  ASSERT_TRUE(waitForMoreHeartbeats("big", 2, milliseconds(3000)));
  EXPECT_FALSE(get("big").status().has_last_failure())
      << "a message of exactly max_message_bytes was refused: "
      << get("big").status().last_failure().ShortDebugString();

  const auto sent_at = Clock::now();
  upstream.sendToAll(std::string(100 * 1024, 'x'));
  auto too_big =
      watch_.waitFor(failedWith("big", v1::FAILURE_REASON_MESSAGE_TOO_BIG), milliseconds(3000));
  ASSERT_TRUE(too_big.has_value());
  const v1::Failure& failure = too_big->event.status().last_failure();
  std::printf(
      "100 KiB message over a 64 KiB limit: MESSAGE_TOO_BIG after %lld ms, close_code %d, "
      "detail \"%s\"\n",
      millisSince(sent_at, too_big->at), failure.close_code(), failure.detail().c_str());
  EXPECT_EQ(failure.close_code(), 1009);
  // wsvisor said so to the upstream too.
  EXPECT_TRUE(waitUntil(
      [&] {
        const auto codes = upstream.closeCodesReceived();
        return std::find(codes.begin(), codes.end(), 1009) != codes.end();
      },
      milliseconds(2000)));
  // It reconnects and is healthy again (the upstream sends nothing big any more).
  EXPECT_TRUE(
      watch_.waitForAfter(too_big->at, healthIs("big", v1::HEALTH_HEALTHY), milliseconds(3000)));
}

TEST_F(HostileUpstreamTest, FloodOfMessagesLeavesTheNeighbourUntouched) {
  constexpr int kMessages = 50000;
  RawUpstream flood(
      {"--mode", "flood", "--count", std::to_string(kMessages), "--message-bytes", "16"});
  registerHealthy(fastSpec("flood", flood.url()));

  // Sample the bystander's round-trip time for 1.5 s from the start of the flood (the upstream
  // writes all 50,000 messages in well under a second).
  long long bystander_rtt_max_us = 0;
  const auto start = Clock::now();
  flood.trigger();
  waitUntil(
      [&] {
        bystander_rtt_max_us =
            std::max(bystander_rtt_max_us, durationUs(get(kBystander).status().last_rtt()));
        return millisSince(start, Clock::now()) >= 1500;
      },
      milliseconds(5000));
  // Every pong the flooder sends comes after the flood messages written before it, so two more
  // answered heartbeats mean wsvisor has read the flood.
  ASSERT_TRUE(waitForMoreHeartbeats("flood", 2, milliseconds(5000)))
      << "the flooded endpoint stopped heartbeating";
  const v1::Endpoint flooded = get("flood");
  std::printf(
      "flood of %d messages: flooded endpoint %s (last failure: %s), last RTT %lld us; "
      "bystander max RTT during the flood %lld us\n",
      kMessages, v1::Health_Name(flooded.status().health()).c_str(),
      flooded.status().has_last_failure()
          ? v1::FailureReason_Name(flooded.status().last_failure().reason()).c_str()
          : "none",
      durationUs(flooded.status().last_rtt()), bystander_rtt_max_us);
  // The bystander's heartbeats were answered well within their timeout.
  EXPECT_LT(bystander_rtt_max_us, kTimeoutMs * 1000);
}

TEST_F(HostileUpstreamTest, EndlessContinuationFramesAreMessageTooBig) {
  RawUpstream fragments({"--mode", "fragments", "--count", "0", "--fragment-bytes", "1"});
  v1::EndpointSpec spec = fastSpec("fragments", fragments.url());
  spec.set_max_message_bytes(64 * 1024);
  registerHealthy(spec);
  const auto start = Clock::now();
  fragments.trigger();
  auto too_big = watch_.waitFor(failedWith("fragments", v1::FAILURE_REASON_MESSAGE_TOO_BIG),
                                milliseconds(5000));
  ASSERT_TRUE(too_big.has_value()) << get("fragments").status().ShortDebugString();
  std::printf(
      "endless 1-byte continuation frames: MESSAGE_TOO_BIG after %lld ms (65,536 frames "
      "to reach the 64 KiB limit), close_code %d\n",
      millisSince(start, too_big->at), too_big->event.status().last_failure().close_code());
  EXPECT_EQ(too_big->event.status().last_failure().close_code(), 1009);
}

TEST_F(HostileUpstreamTest, ManyContinuationFramesWithinTheLimitAreFine) {
  constexpr int kFragments = 30000;
  RawUpstream fragments(
      {"--mode", "fragments", "--count", std::to_string(kFragments), "--fragment-bytes", "1"});
  registerHealthy(fastSpec("fragments-ok", fragments.url()));
  const auto start = Clock::now();
  fragments.trigger();
  // Pongs interleaved between the fragments keep it healthy; wait for a few more heartbeats,
  // which come after the whole message.
  ASSERT_TRUE(waitForMoreHeartbeats("fragments-ok", 3, milliseconds(5000)));
  const v1::Endpoint endpoint = get("fragments-ok");
  std::printf("%d continuation frames of 1 byte: %s %lld ms later, last RTT %lld us\n", kFragments,
              v1::Health_Name(endpoint.status().health()).c_str(), millisSince(start, Clock::now()),
              durationUs(endpoint.status().last_rtt()));
  EXPECT_EQ(endpoint.status().health(), v1::HEALTH_HEALTHY);
  EXPECT_FALSE(endpoint.status().has_last_failure())
      << endpoint.status().last_failure().ShortDebugString();
}

TEST_F(HostileUpstreamTest, InvalidUtf8InATextFrameIsAProtocolError) {
  RawUpstream bad({"--mode", "invalid-utf8"});
  registerHealthy(fastSpec("utf8", bad.url()));
  const auto start = Clock::now();
  bad.trigger();
  auto failed = watch_.waitFor(healthIs("utf8", v1::HEALTH_UNHEALTHY), milliseconds(3000));
  ASSERT_TRUE(failed.has_value());
  const v1::Failure& failure = failed->event.status().last_failure();
  std::printf("invalid UTF-8: %s after %lld ms, close_code %d, detail \"%s\"\n",
              v1::FailureReason_Name(failure.reason()).c_str(), millisSince(start, failed->at),
              failure.close_code(), failure.detail().c_str());
  EXPECT_EQ(failure.reason(), v1::FAILURE_REASON_NETWORK_ERROR);
  EXPECT_EQ(failure.detail().rfind("protocol error", 0), 0u) << failure.detail();
  EXPECT_EQ(failure.close_code(), 1007);  // what wsvisor sent: invalid frame payload data
}

// Close codes an upstream may legitimately send (RFC 6455 7.4: 3000-4999 registered and private
// codes) are reported as they came.
TEST_F(HostileUpstreamTest, UnusualCloseCodesAreClosedByPeerWithThatCode) {
  for (int code : {3000, 4999}) {
    const std::string id = "close-" + std::to_string(code);
    RawUpstream closer({"--mode", "close-code=" + std::to_string(code)});
    registerHealthy(fastSpec(id, closer.url()));
    const auto start = Clock::now();
    closer.trigger();
    auto closed = watch_.waitFor(healthIs(id, v1::HEALTH_UNHEALTHY), milliseconds(3000));
    ASSERT_TRUE(closed.has_value()) << id;
    const v1::Failure& failure = closed->event.status().last_failure();
    std::printf("close code %d: %s after %lld ms, close_code %d, detail \"%s\"\n", code,
                v1::FailureReason_Name(failure.reason()).c_str(), millisSince(start, closed->at),
                failure.close_code(), failure.detail().c_str());
    EXPECT_EQ(failure.reason(), v1::FAILURE_REASON_CLOSED_BY_PEER) << id;
    EXPECT_EQ(failure.close_code(), code);
    EXPECT_NE(failure.detail().find("odd code " + std::to_string(code)), std::string::npos)
        << "the close reason belongs in the detail: " << failure.detail();
  }
}

// 1015 (TLS handshake failure) is one of the codes RFC 6455 7.4.1 says MUST NOT be sent in a close
// frame. Receiving it is a protocol violation by the upstream, which websocketpp answers with 1002;
// wsvisor reports it as a protocol error (NETWORK_ERROR, close_code 1002, what it sent). Reporting
// it as CLOSED_BY_PEER with 1015 would be acceptable too.
TEST_F(HostileUpstreamTest, CloseCodeThatMustNotBeSentIsAProtocolError) {
  RawUpstream closer({"--mode", "close-code=1015"});
  registerHealthy(fastSpec("close-1015", closer.url()));
  const auto start = Clock::now();
  closer.trigger();
  auto closed = watch_.waitFor(healthIs("close-1015", v1::HEALTH_UNHEALTHY), milliseconds(3000));
  ASSERT_TRUE(closed.has_value());
  const v1::Failure& failure = closed->event.status().last_failure();
  std::printf("close code 1015: %s after %lld ms, close_code %d, detail \"%s\"\n",
              v1::FailureReason_Name(failure.reason()).c_str(), millisSince(start, closed->at),
              failure.close_code(), failure.detail().c_str());
  const bool as_sent =
      failure.reason() == v1::FAILURE_REASON_CLOSED_BY_PEER && failure.close_code() == 1015;
  const bool as_protocol_error = failure.reason() == v1::FAILURE_REASON_NETWORK_ERROR &&
                                 failure.detail().rfind("protocol error", 0) == 0;
  EXPECT_TRUE(as_sent || as_protocol_error) << failure.ShortDebugString();
  if (as_protocol_error) {
    EXPECT_EQ(failure.close_code(), 1002);
  }
}

// --- reconnect backoff against an upstream that keeps going away ------------------------------

// One failure while backing off: why, and how long until the next attempt.
struct Retry {
  v1::FailureReason reason;
  long long delay_ms;  // next_attempt_time - failure time
  uint32_t reconnect_attempts;
};

TEST_F(HostileUpstreamTest, RestartingUpstreamBackoffGrowsThenResetsAfterStableHealth) {
  // No jitter, so every delay is exact: initial 100 ms, x2, capped at 800 ms, reset after 1 s of
  // health. Delays count from the start of the failed attempt; a refused connect takes ~1 ms on
  // loopback, so next_attempt_time - failure time is the delay minus that (kEarlyMs allows for a
  // loaded machine).
  constexpr long long kEarlyMs = 100;
  constexpr long long kResetAfterMs = 1000;
  auto upstream = std::make_unique<PythonUpstream>();
  const std::string port = std::to_string(upstream->port());
  v1::EndpointSpec spec = fastSpec("restarts", upstream->url());
  setMillis(spec.mutable_backoff()->mutable_initial(), 100);
  spec.mutable_backoff()->set_multiplier(2.0);
  setMillis(spec.mutable_backoff()->mutable_max(), 800);
  setMillis(spec.mutable_backoff()->mutable_reset_after(), kResetAfterMs);
  spec.mutable_backoff()->set_no_jitter(true);
  registerHealthy(spec);

  // Distinct failures seen on the watch after `since`, in order.
  const auto retriesSince = [&](Clock::time_point since) {
    std::vector<Retry> retries;
    long long last_failure_ms = -1;
    for (const auto& r : watch_.events()) {
      const auto& s = r.event.status();
      if (r.at < since || r.event.endpoint_id() != "restarts" ||
          s.phase() != v1::CONNECTION_PHASE_BACKING_OFF || !s.has_next_attempt_time()) {
        continue;
      }
      const long long failed_ms = timestampMs(s.last_failure().time());
      if (failed_ms == last_failure_ms) continue;
      last_failure_ms = failed_ms;
      retries.push_back({s.last_failure().reason(), timestampMs(s.next_attempt_time()) - failed_ms,
                         s.reconnect_attempts()});
    }
    return retries;
  };
  const auto print = [](const char* phase, const std::vector<Retry>& retries) {
    std::printf("%s:", phase);
    for (const Retry& r : retries) {
      std::printf(" [%s %lld ms, attempts %u]",
                  v1::FailureReason_Name(r.reason).c_str() + sizeof("FAILURE_REASON_") - 1,
                  r.delay_ms, r.reconnect_attempts);
    }
    std::printf("\n");
  };
  const auto waitForRetries = [&](Clock::time_point since, size_t count) {
    return waitUntil([&] { return retriesSince(since).size() >= count; }, milliseconds(6000));
  };
  const auto restartAndWaitHealthy = [&](Clock::time_point* healthy_at) {
    const auto restarted = Clock::now();
    upstream = std::make_unique<PythonUpstream>(std::vector<std::string>{"--port", port});
    auto healthy = watch_.waitForAfter(restarted, healthIs("restarts", v1::HEALTH_HEALTHY),
                                       milliseconds(5000));
    ASSERT_TRUE(healthy.has_value());
    *healthy_at = healthy->at;
  };

  // 1. The upstream goes away: one CLOSED_BY_PEER, then refused connects with growing delays.
  auto down = Clock::now();
  upstream->stop();
  ASSERT_TRUE(waitForRetries(down, 5));
  std::vector<Retry> retries = retriesSince(down);
  print("down #1", retries);
  EXPECT_EQ(retries[0].reason, v1::FAILURE_REASON_CLOSED_BY_PEER);
  const long long expected_first[] = {200, 400, 800, 800};  // retries 2..5
  for (size_t i = 1; i < 5; ++i) {
    EXPECT_EQ(retries[i].reason, v1::FAILURE_REASON_CONNECTION_REFUSED) << i;
    EXPECT_LE(retries[i].delay_ms, expected_first[i - 1]) << i;
    EXPECT_GE(retries[i].delay_ms, expected_first[i - 1] - kEarlyMs) << i;
  }
  EXPECT_GT(retries[2].delay_ms, retries[1].delay_ms);
  EXPECT_GT(retries[3].delay_ms, retries[2].delay_ms);

  // 2. It comes back, but goes away again before reset_after: the schedule is not reset.
  Clock::time_point healthy_at;
  ASSERT_NO_FATAL_FAILURE(restartAndWaitHealthy(&healthy_at));
  down = Clock::now();
  upstream->stop();
  ASSERT_LT(millisSince(healthy_at, down), kResetAfterMs) << "too slow to test a short health";
  ASSERT_TRUE(waitForRetries(down, 2));
  retries = retriesSince(down);
  print("down #2 (healthy < reset_after)", retries);
  EXPECT_EQ(retries[1].reason, v1::FAILURE_REASON_CONNECTION_REFUSED);
  EXPECT_GE(retries[1].delay_ms, 800 - kEarlyMs) << "backoff was reset by a short-lived connection";
  EXPECT_GT(retries[1].reconnect_attempts, 5u);

  // 3. It comes back and stays healthy for reset_after: the schedule starts again.
  ASSERT_NO_FATAL_FAILURE(restartAndWaitHealthy(&healthy_at));
  ASSERT_TRUE(waitUntil([&] { return get("restarts").status().reconnect_attempts() == 0; },
                        milliseconds(kResetAfterMs + 3000)));
  const long long reset_ms = millisSince(healthy_at, Clock::now());
  std::printf("reconnect_attempts back to 0 %lld ms after HEALTHY (reset_after %lld ms)\n",
              reset_ms, kResetAfterMs);
  EXPECT_GE(reset_ms, kResetAfterMs - 20);
  down = Clock::now();
  upstream->stop();
  ASSERT_TRUE(waitForRetries(down, 3));
  retries = retriesSince(down);
  print("down #3 (after reset)", retries);
  EXPECT_EQ(retries[0].reconnect_attempts, 1u);
  EXPECT_LE(retries[1].delay_ms, 200);
  EXPECT_GE(retries[1].delay_ms, 200 - kEarlyMs);
  EXPECT_LE(retries[2].delay_ms, 400);
  EXPECT_GE(retries[2].delay_ms, 400 - kEarlyMs);
}

}  // namespace
}  // namespace wsvisor::testing
