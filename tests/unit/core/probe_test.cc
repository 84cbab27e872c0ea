// The probe's rules on simulated time: when it succeeds, fails, stops and what it reports. The
// test owns `now_` and moves it; nothing here sleeps or reads a clock.
#include "supervisor/core/probe.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>

namespace wsvisor::core {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Outcome = ProbeResult::Outcome;

class NoJitter : public JitterSource {
 public:
  double nextSigned() override { return 0.0; }
};

class ProbeTest : public ::testing::Test {
 protected:
  ProbeTest() {
    spec_.url = "ws://127.0.0.1:9000/";
    spec_.heartbeat.interval = seconds(10);
  }

  // Builds the probe from spec_ (after the test has adjusted it) and starts it at now_.
  SessionActions start(uint32_t heartbeats = 3) {
    EXPECT_FALSE(prepareProbe(spec_, heartbeats).has_value());
    probe_ = std::make_unique<Probe>(spec_, heartbeats, jitter_);
    return probe_->start(now_);
  }
  SessionActions send(const SessionEvent& e) { return probe_->onEvent(e, now_); }
  SessionActions advanceTo(MonoTime t) {
    now_ = t;
    return send(event::TimerFired{});
  }
  SessionActions fireNext() {
    const auto deadline = probe_->nextDeadline();
    EXPECT_TRUE(deadline.has_value());
    return advanceTo(deadline.value_or(now_));
  }
  SessionActions openAt(Duration d) {
    now_ = at(d);
    return send(event::Connected{});
  }
  SessionActions pongAfter(Duration rtt) {
    now_ += rtt;
    return send(event::PongReceived{probe_->pingPayload()});
  }
  const ProbeResult& result() const { return probe_->result(); }
  MonoTime at(Duration d) const { return t0_ + d; }

  const MonoTime t0_ = MonoTime{} + std::chrono::hours(100);
  MonoTime now_ = t0_;
  EndpointSpec spec_;
  NoJitter jitter_;
  std::unique_ptr<Probe> probe_;
};

bool sendsNothing(const SessionActions& a) { return !a.send_ping && !a.send_text && !a.connect; }

TEST_F(ProbeTest, PingProbeSucceedsAfterTheRequestedHeartbeatsAndCloses) {
  SessionActions a = start(3);
  EXPECT_TRUE(a.connect);
  EXPECT_EQ(probe_->nextDeadline(), at(seconds(20)));  // the connect timeout

  a = openAt(milliseconds(5));
  EXPECT_TRUE(a.send_ping);
  a = pongAfter(milliseconds(1));
  EXPECT_FALSE(a.close);
  EXPECT_FALSE(probe_->finished());

  // Heartbeat 2 one interval after the first send, heartbeat 3 one after that. (The timer may
  // also fire in between, for the Session's backoff reset: that sends nothing.)
  EXPECT_LE(probe_->nextDeadline(), at(seconds(10) + milliseconds(5)));
  a = advanceTo(at(seconds(10) + milliseconds(5)));
  EXPECT_TRUE(a.send_ping);
  pongAfter(milliseconds(2));
  EXPECT_LE(probe_->nextDeadline(), at(seconds(20) + milliseconds(5)));
  a = advanceTo(at(seconds(20) + milliseconds(5)));
  EXPECT_TRUE(a.send_ping);
  a = pongAfter(milliseconds(3));

  ASSERT_TRUE(probe_->finished());
  ASSERT_TRUE(a.close.has_value());
  EXPECT_EQ(a.close->code, kCloseNormal);
  EXPECT_TRUE(sendsNothing(a));
  EXPECT_EQ(probe_->nextDeadline(), std::nullopt);
  EXPECT_EQ(result().outcome, Outcome::kSucceeded);
  EXPECT_FALSE(result().failure.has_value());
  EXPECT_EQ(result().connect_time, milliseconds(5));
  EXPECT_EQ(result().rtts,
            (std::vector<Duration>{milliseconds(1), milliseconds(2), milliseconds(3)}));
  EXPECT_EQ(result().heartbeats_sent, 3u);
  EXPECT_EQ(result().duration, seconds(20) + milliseconds(8));
}

TEST_F(ProbeTest, OneHeartbeatIsEnough) {
  start(1);
  openAt(milliseconds(1));
  const SessionActions a = pongAfter(milliseconds(1));
  EXPECT_TRUE(probe_->finished());
  EXPECT_TRUE(a.close.has_value());
  EXPECT_EQ(result().outcome, Outcome::kSucceeded);
  EXPECT_EQ(result().heartbeats_sent, 1u);
  EXPECT_EQ(result().duration, milliseconds(2));
}

TEST_F(ProbeTest, RefusedConnectionFailsAndNeverRedials) {
  start();
  now_ = at(milliseconds(1));
  const SessionActions a = send(
      event::ConnectFailed{Failure::make(FailureReason::kConnectionRefused, "connection refused")});
  ASSERT_TRUE(probe_->finished());
  EXPECT_FALSE(a.close.has_value());  // nothing opened, nothing to close
  EXPECT_TRUE(sendsNothing(a));
  EXPECT_EQ(probe_->nextDeadline(), std::nullopt);  // no backoff timer: no redial
  EXPECT_EQ(result().outcome, Outcome::kFailed);
  ASSERT_TRUE(result().failure.has_value());
  EXPECT_EQ(result().failure->reason, FailureReason::kConnectionRefused);
  EXPECT_EQ(result().failure->at, at(milliseconds(1)));
  EXPECT_FALSE(result().connect_time.has_value());
  EXPECT_EQ(result().heartbeats_sent, 0u);
  // Whatever comes later is not news.
  EXPECT_TRUE(sendsNothing(advanceTo(at(seconds(60)))));
  EXPECT_TRUE(sendsNothing(send(event::Connected{})));
  EXPECT_EQ(result().duration, milliseconds(1));
}

TEST_F(ProbeTest, ConnectTimeoutDropsTheAttempt) {
  spec_.connect_timeout = seconds(2);
  start();
  const SessionActions a = fireNext();
  EXPECT_EQ(now_, at(seconds(2)));
  EXPECT_TRUE(a.abandon_connection);
  EXPECT_TRUE(probe_->finished());
  EXPECT_EQ(result().failure->reason, FailureReason::kConnectTimeout);
  EXPECT_EQ(result().duration, seconds(2));
}

TEST_F(ProbeTest, FirstUnansweredPingFailsEvenWithAHigherUnhealthyThreshold) {
  spec_.heartbeat.unhealthy_threshold = 3;  // supervision would wait for 3; the probe does not
  start();
  openAt(milliseconds(5));
  pongAfter(milliseconds(1));
  EXPECT_TRUE(advanceTo(at(seconds(10) + milliseconds(5))).send_ping);  // never answered
  EXPECT_FALSE(advanceTo(at(seconds(20) + milliseconds(4))).close.has_value());
  EXPECT_FALSE(probe_->finished());
  const SessionActions a = advanceTo(at(seconds(20) + milliseconds(5)));
  ASSERT_TRUE(probe_->finished());
  ASSERT_TRUE(a.close.has_value());
  EXPECT_EQ(a.close->code, kCloseNormal);
  EXPECT_TRUE(sendsNothing(a));
  EXPECT_EQ(probe_->nextDeadline(), std::nullopt);
  EXPECT_EQ(result().outcome, Outcome::kFailed);
  EXPECT_EQ(result().failure->reason, FailureReason::kPongTimeout);
  EXPECT_EQ(result().rtts.size(), 1u);
  EXPECT_EQ(result().heartbeats_sent, 2u);
  EXPECT_EQ(result().connect_time, milliseconds(5));
}

TEST_F(ProbeTest, PeerCloseFailsWithItsCode) {
  start();
  openAt(milliseconds(5));
  pongAfter(milliseconds(1));
  const SessionActions a = send(
      event::Closed{Failure::make(FailureReason::kClosedByPeer, "close code 4000: bye", 0, 4000)});
  ASSERT_TRUE(probe_->finished());
  EXPECT_FALSE(a.close.has_value());  // already gone
  EXPECT_EQ(result().failure->reason, FailureReason::kClosedByPeer);
  EXPECT_EQ(result().failure->close_code, 4000);
}

TEST_F(ProbeTest, TextProbeCountsMatchingReplies) {
  spec_.heartbeat.mode = HeartbeatMode::kText;
  spec_.heartbeat.payload = "hello";
  start(2);
  SessionActions a = openAt(milliseconds(5));
  EXPECT_TRUE(a.send_text);
  EXPECT_EQ(probe_->heartbeatPolicy().payload, "hello");
  now_ += milliseconds(4);
  send(event::MessageReceived{"hello"});
  fireNext();
  now_ += milliseconds(6);
  a = send(event::MessageReceived{"hello"});
  ASSERT_TRUE(probe_->finished());
  EXPECT_TRUE(a.close.has_value());
  EXPECT_EQ(result().outcome, Outcome::kSucceeded);
  EXPECT_EQ(result().rtts, (std::vector<Duration>{milliseconds(4), milliseconds(6)}));
}

TEST_F(ProbeTest, TextProbeWithTheWrongReplyFailsWithReplyMismatch) {
  spec_.heartbeat.mode = HeartbeatMode::kText;
  start();
  openAt(milliseconds(5));
  send(event::MessageReceived{"something else"});
  fireNext();
  ASSERT_TRUE(probe_->finished());
  EXPECT_EQ(result().failure->reason, FailureReason::kReplyMismatch);
  EXPECT_NE(result().failure->detail.find("something else"), std::string::npos);
}

TEST_F(ProbeTest, PassiveProbeCountsMessagesAndFailsOnSilence) {
  spec_.heartbeat.mode = HeartbeatMode::kPassive;
  spec_.heartbeat.interval = seconds(1);  // silence allowed: 2 s
  start(2);
  const SessionActions a = openAt(milliseconds(5));
  EXPECT_TRUE(sendsNothing(a));
  now_ = at(seconds(1));
  send(event::MessageReceived{"tick"});
  EXPECT_FALSE(probe_->finished());
  fireNext();  // 2 s of silence after the first message
  EXPECT_EQ(now_, at(seconds(3)));
  ASSERT_TRUE(probe_->finished());
  EXPECT_EQ(result().failure->reason, FailureReason::kSilence);
  EXPECT_TRUE(result().rtts.empty());
  EXPECT_EQ(result().heartbeats_sent, 0u);
}

TEST_F(ProbeTest, PassiveProbeSucceedsOnTheLastMessage) {
  spec_.heartbeat.mode = HeartbeatMode::kPassive;
  start(2);
  openAt(milliseconds(5));
  send(event::MessageReceived{"a"});
  const SessionActions a = send(event::MessageReceived{"b"});
  EXPECT_TRUE(probe_->finished());
  EXPECT_TRUE(a.close.has_value());
  EXPECT_EQ(result().outcome, Outcome::kSucceeded);
}

TEST_F(ProbeTest, NoneProbeSucceedsWhenTheConnectionOpens) {
  spec_.heartbeat = HeartbeatPolicy{};
  spec_.heartbeat.mode = HeartbeatMode::kNone;
  start(5);  // the count does not apply
  const SessionActions a = openAt(milliseconds(7));
  ASSERT_TRUE(probe_->finished());
  ASSERT_TRUE(a.close.has_value());
  EXPECT_EQ(a.close->code, kCloseNormal);
  EXPECT_TRUE(sendsNothing(a));
  EXPECT_EQ(result().outcome, Outcome::kSucceeded);
  EXPECT_EQ(result().connect_time, milliseconds(7));
  EXPECT_EQ(result().heartbeats_sent, 0u);
}

TEST_F(ProbeTest, CancelWhileConnectingDropsTheAttempt) {
  start();
  now_ = at(milliseconds(3));
  const SessionActions a = probe_->cancel(/*shutting_down=*/false, now_);
  EXPECT_TRUE(a.abandon_connection);
  EXPECT_FALSE(a.close.has_value());
  EXPECT_TRUE(probe_->finished());
  EXPECT_EQ(result().outcome, Outcome::kCancelled);
  EXPECT_EQ(result().duration, milliseconds(3));
  EXPECT_EQ(probe_->nextDeadline(), std::nullopt);
}

TEST_F(ProbeTest, CancelWhileOpenCloses) {
  start();
  openAt(milliseconds(5));
  const SessionActions a = probe_->cancel(/*shutting_down=*/false, now_);
  ASSERT_TRUE(a.close.has_value());
  EXPECT_EQ(a.close->code, kCloseNormal);
  EXPECT_EQ(result().outcome, Outcome::kCancelled);
  EXPECT_EQ(result().heartbeats_sent, 1u);
  // A second cancel, or one after the end, does nothing.
  const SessionActions again = probe_->cancel(/*shutting_down=*/true, now_);
  EXPECT_FALSE(again.close.has_value());
  EXPECT_FALSE(again.abandon_connection);
  EXPECT_EQ(result().outcome, Outcome::kCancelled);
}

TEST_F(ProbeTest, ShutdownClosesWithGoingAway) {
  start();
  openAt(milliseconds(5));
  const SessionActions a = probe_->cancel(/*shutting_down=*/true, now_);
  ASSERT_TRUE(a.close.has_value());
  EXPECT_EQ(a.close->code, kCloseGoingAway);
  EXPECT_EQ(result().outcome, Outcome::kShutDown);
}

TEST_F(ProbeTest, CancelAfterTheEndChangesNothing) {
  start(1);
  openAt(milliseconds(1));
  pongAfter(milliseconds(1));
  const SessionActions a = probe_->cancel(/*shutting_down=*/false, now_);
  EXPECT_FALSE(a.close.has_value());
  EXPECT_EQ(result().outcome, Outcome::kSucceeded);
}

// The documented bound, connect_timeout + N x (interval + timeout), against the slowest upstream
// that still answers: it opens just before the connect timeout and answers each heartbeat just
// before its timeout, with the timeout longer than the interval.
TEST_F(ProbeTest, SlowestSuccessEndsWithinTheTimeLimit) {
  spec_.connect_timeout = seconds(5);
  spec_.heartbeat.interval = seconds(1);
  spec_.heartbeat.timeout = seconds(3);
  const uint32_t n = 4;
  start(n);
  openAt(seconds(5) - milliseconds(1));
  while (!probe_->finished()) {
    // Answer just before the oldest reply deadline, or fire the timer that sends the next one.
    const MonoTime deadline = probe_->nextDeadline().value();
    if (probe_->heartbeatFailsAt(deadline)) {
      now_ = deadline - milliseconds(1);
      send(event::PongReceived{probe_->pingPayload()});
    } else {
      advanceTo(deadline);
    }
  }
  EXPECT_EQ(result().outcome, Outcome::kSucceeded);
  EXPECT_LE(result().duration, probeTimeLimit(spec_, n));
}

TEST_F(ProbeTest, SlowestFailureEndsWithinTheTimeLimit) {
  spec_.connect_timeout = seconds(5);
  spec_.heartbeat.interval = seconds(2);
  spec_.heartbeat.timeout = seconds(2);
  const uint32_t n = 3;
  start(n);
  openAt(seconds(5) - milliseconds(1));
  // The first n - 1 answered at the last moment, the last one never.
  uint32_t answered = 0;
  while (!probe_->finished()) {
    const MonoTime deadline = probe_->nextDeadline().value();
    if (probe_->heartbeatFailsAt(deadline) && answered + 1 < n) {
      now_ = deadline - milliseconds(1);
      send(event::PongReceived{probe_->pingPayload()});
      ++answered;
    } else {
      advanceTo(deadline);
    }
  }
  EXPECT_EQ(result().failure->reason, FailureReason::kPongTimeout);
  EXPECT_LE(result().duration, probeTimeLimit(spec_, n));
}

TEST(PrepareProbeTest, EmptyIdIsAllowedAndLabelsAreIgnored) {
  EndpointSpec spec;
  spec.url = "ws://127.0.0.1:9000/";
  spec.labels["not a valid key!"] = "x";
  uint32_t heartbeats = 0;
  EXPECT_EQ(prepareProbe(spec, heartbeats), std::nullopt);
  EXPECT_EQ(spec.id, kProbeId);
  EXPECT_TRUE(spec.labels.empty());
  EXPECT_EQ(heartbeats, defaults::kProbeHeartbeats);
  EXPECT_EQ(spec.heartbeat.interval, defaults::kInterval);  // defaults applied
  EXPECT_EQ(probeTimeLimit(spec, heartbeats), seconds(20) + 3 * seconds(20));
}

TEST(PrepareProbeTest, HeartbeatsMustBeAtMostOneHundred) {
  EndpointSpec spec;
  spec.url = "ws://127.0.0.1:9000/";
  uint32_t heartbeats = 100;
  EXPECT_EQ(prepareProbe(spec, heartbeats), std::nullopt);
  heartbeats = 101;
  const auto error = prepareProbe(spec, heartbeats);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "heartbeats");
  EXPECT_EQ(error->message, "must be 1 to 100, got 101");
}

TEST(PrepareProbeTest, TheSpecIsValidatedAsForARegistration) {
  EndpointSpec spec;
  spec.id = "Bad Id";
  spec.url = "ws://127.0.0.1:9000/";
  uint32_t heartbeats = 3;
  auto error = prepareProbe(spec, heartbeats);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "spec.id");

  spec.id.clear();
  spec.url = "http://127.0.0.1:9000/";
  error = prepareProbe(spec, heartbeats);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "spec.url");
}

}  // namespace
}  // namespace wsvisor::core
