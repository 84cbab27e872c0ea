// Every timing rule of the Session state machine, on simulated time: the test owns `now_` and
// moves it; nothing here sleeps or reads a clock.
#include "supervisor/core/session.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>

namespace wsvisor::core {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class ScriptedJitter : public JitterSource {
 public:
  double nextSigned() override { return value; }
  double value = 0.0;
};

class SessionTest : public ::testing::Test {
 protected:
  SessionTest() {
    spec_.id = "e1";
    spec_.url = "ws://127.0.0.1:9000/";
    spec_.heartbeat.interval = seconds(10);
    spec_.backoff.jitter_enabled = false;
  }

  // Builds the session from spec_ (after the test has adjusted it) and starts it at now_.
  SessionActions start() {
    applyDefaults(spec_);
    session_ = std::make_unique<Session>(spec_.heartbeat, spec_.backoff, spec_.connect_timeout,
                                         jitter_, spec_.flapping);
    return send(event::Start{});
  }
  SessionActions send(const SessionEvent& e) { return session_->onEvent(e, now_); }
  SessionActions advanceTo(MonoTime t) {
    now_ = t;
    return send(event::TimerFired{});
  }
  // Moves to the session's next deadline and fires the timer there.
  SessionActions fireNext() {
    const auto deadline = session_->nextDeadline();
    EXPECT_TRUE(deadline.has_value());
    return advanceTo(*deadline);
  }
  SessionActions pong() { return send(event::PongReceived{session_->pingPayload()}); }
  SessionActions openAndAnswerFirstPing(Duration rtt = milliseconds(5)) {
    start();
    send(event::Connected{});
    now_ += rtt;
    return pong();
  }
  const EndpointStatus& status() const { return session_->status(); }
  MonoTime at(Duration d) const { return t0_ + d; }

  const MonoTime t0_ = MonoTime{} + std::chrono::hours(100);
  MonoTime now_ = t0_;
  EndpointSpec spec_;
  ScriptedJitter jitter_;
  std::unique_ptr<Session> session_;
};

TEST_F(SessionTest, StartConnectsAtOnceAndArmsTheConnectTimeout) {
  const SessionActions a = start();
  EXPECT_TRUE(a.connect);
  EXPECT_FALSE(a.status_changed);  // the registration already announced "unknown, connecting"
  EXPECT_EQ(status().phase, ConnectionPhase::kConnecting);
  EXPECT_EQ(status().health, Health::kUnknown);
  EXPECT_EQ(status().last_transition, t0_);
  EXPECT_EQ(session_->nextDeadline(), at(seconds(20)));
}

TEST_F(SessionTest, FirstPingGoesOutTheMomentTheConnectionOpens) {
  start();
  now_ = at(milliseconds(3));
  const SessionActions a = send(event::Connected{});
  EXPECT_TRUE(a.send_ping);
  EXPECT_EQ(session_->pingPayload(), "1");
  EXPECT_EQ(status().phase, ConnectionPhase::kOpen);
  EXPECT_EQ(status().heartbeats_sent, 1u);
  // Interval and timeout are both 10 s: the timeout of the ping and the next send coincide.
  EXPECT_EQ(session_->nextDeadline(), at(milliseconds(3) + seconds(10)));
}

TEST_F(SessionTest, PongMarksHealthyAndMeasuresRoundTrip) {
  const SessionActions a = openAndAnswerFirstPing(milliseconds(7));
  ASSERT_TRUE(a.transition.has_value());
  EXPECT_EQ(a.transition->from, Health::kUnknown);
  EXPECT_EQ(a.transition->to, Health::kHealthy);
  EXPECT_TRUE(a.rtt_sampled);
  EXPECT_EQ(status().health, Health::kHealthy);
  EXPECT_EQ(status().last_rtt, milliseconds(7));
  EXPECT_EQ(status().smoothed_rtt, milliseconds(7));
  EXPECT_EQ(status().last_transition, at(milliseconds(7)));
}

TEST_F(SessionTest, PingsFollowTheIntervalFromEachSend) {
  openAndAnswerFirstPing();
  // After the answer, the next deadline is the next send, one interval after the first send.
  EXPECT_EQ(session_->nextDeadline(), at(seconds(10)));
  SessionActions a = advanceTo(at(seconds(10)));
  EXPECT_TRUE(a.send_ping);
  EXPECT_EQ(session_->pingPayload(), "2");
  now_ = at(seconds(10) + milliseconds(1));
  pong();
  a = advanceTo(at(seconds(20)));
  EXPECT_TRUE(a.send_ping);
  EXPECT_EQ(status().heartbeats_sent, 3u);
}

TEST_F(SessionTest, EarlyTimerDoesNothingAndKeepsTheDeadline) {
  openAndAnswerFirstPing();
  const SessionActions a = advanceTo(at(seconds(9)));
  EXPECT_FALSE(a.send_ping);
  EXPECT_FALSE(a.status_changed);
  EXPECT_EQ(session_->nextDeadline(), at(seconds(10)));
}

TEST_F(SessionTest, MissingPongWithinTimeoutMarksUnhealthyClosesAndBacksOff) {
  openAndAnswerFirstPing();
  advanceTo(at(seconds(10)));  // ping 2, never answered
  const SessionActions a = advanceTo(at(seconds(20)));
  ASSERT_TRUE(a.transition.has_value());
  EXPECT_EQ(a.transition->to, Health::kUnhealthy);
  ASSERT_TRUE(a.close.has_value());
  EXPECT_EQ(a.close->code, kCloseNormal);
  EXPECT_TRUE(a.failure_recorded);
  EXPECT_FALSE(a.send_ping);
  EXPECT_FALSE(a.connect);
  EXPECT_EQ(status().phase, ConnectionPhase::kBackingOff);
  ASSERT_TRUE(status().last_failure.has_value());
  EXPECT_EQ(status().last_failure->reason, FailureReason::kPongTimeout);
  EXPECT_EQ(status().last_failure->at, at(seconds(20)));
  EXPECT_EQ(status().consecutive_failures, 1u);
}

TEST_F(SessionTest, DeadPeerIsDeclaredWithinIntervalPlusTimeoutOfItsLastAnswer) {
  spec_.heartbeat.interval = milliseconds(200);
  spec_.heartbeat.timeout = milliseconds(200);
  openAndAnswerFirstPing(milliseconds(1));
  const MonoTime last_answer = now_;
  // The peer dies right after its last pong; fire every deadline until the session gives up.
  for (int i = 0; i < 10 && status().health == Health::kHealthy; ++i) fireNext();
  EXPECT_EQ(status().health, Health::kUnhealthy);
  EXPECT_LE(now_ - last_answer, milliseconds(400));
}

TEST_F(SessionTest, UnhealthyThresholdCountsConsecutiveFailuresOnTheConnection) {
  spec_.heartbeat.unhealthy_threshold = 3;
  openAndAnswerFirstPing();
  advanceTo(at(seconds(10)));                     // ping 2
  SessionActions a = advanceTo(at(seconds(20)));  // ping 2 times out, ping 3 goes out at once
  EXPECT_FALSE(a.transition.has_value());
  EXPECT_FALSE(a.close.has_value());
  EXPECT_TRUE(a.send_ping);
  EXPECT_TRUE(a.status_changed);
  EXPECT_EQ(status().health, Health::kHealthy);
  EXPECT_EQ(status().consecutive_failures, 1u);
  a = advanceTo(at(seconds(30)));
  EXPECT_EQ(status().consecutive_failures, 2u);
  EXPECT_EQ(status().health, Health::kHealthy);
  a = advanceTo(at(seconds(40)));
  EXPECT_EQ(status().consecutive_failures, 3u);
  EXPECT_EQ(status().health, Health::kUnhealthy);
  EXPECT_TRUE(a.close.has_value());
}

TEST_F(SessionTest, AnAnswerResetsTheFailureStreak) {
  spec_.heartbeat.unhealthy_threshold = 2;
  openAndAnswerFirstPing();
  advanceTo(at(seconds(10)));
  advanceTo(at(seconds(20)));  // failure 1, ping 3 out
  EXPECT_EQ(status().consecutive_failures, 1u);
  now_ = at(seconds(20) + milliseconds(2));
  const SessionActions a = pong();
  EXPECT_TRUE(a.status_changed);
  EXPECT_EQ(status().consecutive_failures, 0u);
  advanceTo(at(seconds(30)));
  advanceTo(at(seconds(40)));  // failure 1 again, not 2
  EXPECT_EQ(status().health, Health::kHealthy);
}

TEST_F(SessionTest, HealthyThresholdNeedsConsecutiveAnswers) {
  spec_.heartbeat.healthy_threshold = 2;
  SessionActions a = openAndAnswerFirstPing();
  EXPECT_FALSE(a.transition.has_value());
  EXPECT_EQ(status().health, Health::kUnknown);
  advanceTo(at(seconds(10)));
  now_ = at(seconds(10) + milliseconds(5));
  a = pong();
  ASSERT_TRUE(a.transition.has_value());
  EXPECT_EQ(a.transition->to, Health::kHealthy);
}

TEST_F(SessionTest, PongWithAnotherPayloadIsIgnored) {
  start();
  send(event::Connected{});
  now_ = at(milliseconds(5));
  const SessionActions a = send(event::PongReceived{"unsolicited"});
  EXPECT_FALSE(a.transition.has_value());
  EXPECT_EQ(status().health, Health::kUnknown);
}

TEST_F(SessionTest, LatePongOfATimedOutPingDoesNotCount) {
  spec_.heartbeat.unhealthy_threshold = 2;
  openAndAnswerFirstPing();
  advanceTo(at(seconds(10)));
  const std::string late_payload = session_->pingPayload();
  advanceTo(at(seconds(20)));  // ping 2 failed, ping 3 outstanding
  now_ = at(seconds(21));
  send(event::PongReceived{late_payload});
  EXPECT_EQ(status().consecutive_failures, 1u);
}

TEST_F(SessionTest, WithTimeoutLongerThanIntervalSeveralPingsAreOutstandingEachWithItsDeadline) {
  spec_.heartbeat.interval = seconds(1);
  spec_.heartbeat.timeout = seconds(3);
  start();
  send(event::Connected{});  // ping 1 at 0
  EXPECT_EQ(session_->nextDeadline(), at(seconds(1)));
  EXPECT_TRUE(advanceTo(at(seconds(1))).send_ping);  // ping 2, ping 1 still outstanding
  EXPECT_EQ(session_->pingPayload(), "2");
  EXPECT_TRUE(advanceTo(at(seconds(2))).send_ping);  // ping 3
  // The pong of ping 2 answers ping 1 as well (a peer may answer only the latest ping).
  now_ = at(milliseconds(2500));
  const SessionActions a = send(event::PongReceived{"2"});
  EXPECT_TRUE(a.heartbeat_succeeded);
  EXPECT_EQ(status().health, Health::kHealthy);
  EXPECT_EQ(status().last_rtt, milliseconds(1500));
  // Ping 3 (sent at 2 s) is now the oldest outstanding one: its deadline is 5 s.
  EXPECT_TRUE(advanceTo(at(seconds(3))).send_ping);  // ping 4
  EXPECT_TRUE(advanceTo(at(seconds(4))).send_ping);  // ping 5
  EXPECT_EQ(session_->nextDeadline(), at(seconds(5)));
  const SessionActions failed = advanceTo(at(seconds(5)));
  EXPECT_EQ(status().health, Health::kUnhealthy);
  EXPECT_EQ(status().last_failure->reason, FailureReason::kPongTimeout);
  EXPECT_EQ(status().last_failure->detail, "no pong within 3000ms");
  EXPECT_TRUE(failed.close.has_value());
  EXPECT_FALSE(failed.send_ping);  // the connection is closed, nothing more goes out on it
}

TEST_F(SessionTest, EveryOutstandingHeartbeatFailsOnItsOwnDeadline) {
  spec_.heartbeat.interval = seconds(1);
  spec_.heartbeat.timeout = seconds(3);
  spec_.heartbeat.unhealthy_threshold = 3;
  openAndAnswerFirstPing(milliseconds(1));  // ping 1 answered; the peer then goes silent
  for (int s = 1; s <= 4; ++s) advanceTo(at(seconds(s)));  // pings 2-5 at 1, 2, 3, 4 s
  EXPECT_EQ(status().consecutive_failures, 1u);            // ping 2 failed at 4 s
  advanceTo(at(seconds(5)));                               // ping 3 fails
  EXPECT_EQ(status().consecutive_failures, 2u);
  EXPECT_EQ(status().health, Health::kHealthy);
  advanceTo(at(seconds(6)));  // ping 4 fails: the third in a row
  EXPECT_EQ(status().health, Health::kUnhealthy);
  EXPECT_EQ(status().transition_reason, "3 heartbeats failed in a row, last: pong_timeout");
}

TEST_F(SessionTest, AtMostSixteenHeartbeatsAreOutstanding) {
  spec_.heartbeat.interval = milliseconds(10);
  spec_.heartbeat.timeout = seconds(60);
  start();
  send(event::Connected{});  // ping 1
  for (int i = 1; i < 40; ++i) advanceTo(at(milliseconds(10 * i)));
  EXPECT_EQ(status().heartbeats_sent, kMaxOutstandingHeartbeats);
  // Only the oldest heartbeat's deadline is left to wait for.
  EXPECT_EQ(session_->nextDeadline(), at(seconds(60)));
  now_ = at(milliseconds(395));
  const SessionActions a = send(event::PongReceived{"16"});  // frees every slot
  EXPECT_TRUE(a.send_ping);  // the next one was due long ago: it goes out at once
  EXPECT_EQ(session_->pingPayload(), "17");
}

TEST_F(SessionTest, PongOfAPingThatIsNotOutstandingIsIgnored) {
  spec_.heartbeat.interval = seconds(1);
  spec_.heartbeat.timeout = seconds(3);
  start();
  send(event::Connected{});
  advanceTo(at(seconds(1)));  // pings 1 and 2 outstanding
  now_ = at(milliseconds(1100));
  for (const char* payload : {"3", "0", "01", "", "x1", "99999999999999999999999"}) {
    EXPECT_FALSE(send(event::PongReceived{payload}).heartbeat_succeeded) << payload;
  }
  EXPECT_EQ(status().health, Health::kUnknown);
}

TEST_F(SessionTest, TextReplyAnswersTheOldestOutstandingHeartbeat) {
  spec_.heartbeat.mode = HeartbeatMode::kText;
  spec_.heartbeat.interval = seconds(1);
  spec_.heartbeat.timeout = seconds(3);
  start();
  send(event::Connected{});   // text 1 at 0
  advanceTo(at(seconds(1)));  // text 2 at 1 s
  now_ = at(milliseconds(1500));
  send(event::MessageReceived{"heartbeat"});
  EXPECT_EQ(status().last_rtt, milliseconds(1500));
  now_ = at(milliseconds(1700));
  send(event::MessageReceived{"heartbeat"});
  EXPECT_EQ(status().last_rtt, milliseconds(700));
}

TEST_F(SessionTest, TextRepliesThatComeTooLateDoNotAnswerLaterHeartbeats) {
  // The peer answers every payload 3.5 s after it was sent, past the 3 s timeout. Replies carry
  // no id: without discounting, the late reply of heartbeat k would pass for the answer to k+1.
  spec_.heartbeat.mode = HeartbeatMode::kText;
  spec_.heartbeat.interval = seconds(1);
  spec_.heartbeat.timeout = seconds(3);
  spec_.heartbeat.unhealthy_threshold = 2;
  start();
  send(event::Connected{});   // text 1 at 0
  advanceTo(at(seconds(1)));  // text 2
  advanceTo(at(seconds(2)));  // text 3
  advanceTo(at(seconds(3)));  // text 1 fails (1 of 2); text 4
  EXPECT_EQ(status().consecutive_failures, 1u);
  now_ = at(milliseconds(3500));
  const SessionActions late = send(event::MessageReceived{"heartbeat"});  // text 1's reply
  EXPECT_FALSE(late.heartbeat_succeeded);
  EXPECT_EQ(status().consecutive_failures, 1u);
  advanceTo(at(seconds(4)));  // text 2 fails: the second in a row
  EXPECT_EQ(status().health, Health::kUnhealthy);
  EXPECT_FALSE(status().last_rtt.has_value());
}

TEST_F(SessionTest, TextReplyInTimeStillAnswersAfterALateOneWasDiscounted) {
  spec_.heartbeat.mode = HeartbeatMode::kText;
  spec_.heartbeat.interval = seconds(1);
  spec_.heartbeat.timeout = seconds(3);
  spec_.heartbeat.unhealthy_threshold = 3;
  start();
  send(event::Connected{});   // text 1 at 0, never answered in time
  advanceTo(at(seconds(1)));  // text 2
  advanceTo(at(seconds(2)));  // text 3
  advanceTo(at(seconds(3)));  // text 1 fails; text 4
  now_ = at(milliseconds(3100));
  send(event::MessageReceived{"heartbeat"});  // text 1's late reply: discounted
  now_ = at(milliseconds(3200));
  const SessionActions a = send(event::MessageReceived{"heartbeat"});  // text 2's, in time
  EXPECT_TRUE(a.heartbeat_succeeded);
  EXPECT_EQ(status().last_rtt, milliseconds(2200));
}

TEST_F(SessionTest, UnhealthyIntervalProbesADownEndpointOnItsOwnCadence) {
  spec_.heartbeat.interval = seconds(10);
  spec_.heartbeat.unhealthy_interval = seconds(1);
  spec_.heartbeat.healthy_threshold = 3;
  spec_.heartbeat.unhealthy_threshold = 2;
  start();
  send(event::Connected{});  // ping 1 at 0; not HEALTHY yet: the next goes 1 s later
  EXPECT_EQ(session_->nextDeadline(), at(seconds(1)));
  now_ = at(milliseconds(5));
  pong();
  advanceTo(at(seconds(1)));
  now_ = at(milliseconds(1005));
  pong();
  advanceTo(at(seconds(2)));
  now_ = at(milliseconds(2005));
  pong();  // the third answer: HEALTHY, back to the 10 s cadence
  EXPECT_EQ(status().health, Health::kHealthy);
  EXPECT_EQ(status().transition_reason, "3 heartbeats answered");
  EXPECT_EQ(session_->nextDeadline(), at(seconds(12)));
  advanceTo(at(seconds(12)));  // ping 4, never answered
  advanceTo(at(seconds(22)));  // ping 4 fails (1 of 2); ping 5 goes out at once
  EXPECT_EQ(status().consecutive_failures, 1u);
  EXPECT_EQ(status().health, Health::kHealthy);
  // After a failed heartbeat the next ones follow the unhealthy interval: ping 6 goes out at
  // 23 s while ping 5 (timeout 10 s, the interval's default) is still outstanding.
  EXPECT_EQ(session_->nextDeadline(), at(seconds(23)));
  advanceTo(at(seconds(23)));
  EXPECT_EQ(status().heartbeats_sent, 6u);
}

TEST_F(SessionTest, UnhealthyIntervalDoesNotChangeTheBackoffOfRedials) {
  spec_.heartbeat.unhealthy_interval = milliseconds(100);
  spec_.backoff.initial = seconds(2);
  start();
  now_ = at(milliseconds(10));
  send(event::ConnectFailed{Failure::make(FailureReason::kConnectionRefused, "refused")});
  EXPECT_EQ(session_->nextDeadline(), at(seconds(2)));
  EXPECT_EQ(status().transition_reason, "connect failed: connection_refused");
}

TEST_F(SessionTest, NoneModeIsHealthyWhileTheConnectionIsOpen) {
  spec_.heartbeat = HeartbeatPolicy{};
  spec_.heartbeat.mode = HeartbeatMode::kNone;
  spec_.backoff.reset_after = seconds(30);
  start();
  now_ = at(milliseconds(4));
  const SessionActions opened = send(event::Connected{});
  EXPECT_FALSE(opened.send_ping);
  EXPECT_FALSE(opened.send_text);
  ASSERT_TRUE(opened.transition.has_value());
  EXPECT_EQ(status().health, Health::kHealthy);
  EXPECT_EQ(status().transition_reason, "connection open");
  EXPECT_EQ(status().heartbeats_sent, 0u);
  EXPECT_FALSE(status().last_rtt.has_value());
  // Nothing is timed but the backoff reset.
  EXPECT_EQ(session_->nextDeadline(), at(milliseconds(4) + seconds(30)));
  advanceTo(at(seconds(31)));
  EXPECT_EQ(session_->nextDeadline(), std::nullopt);
  advanceTo(at(std::chrono::hours(5)));  // hours of silence change nothing
  EXPECT_EQ(status().health, Health::kHealthy);
  now_ = at(std::chrono::hours(6));
  send(event::Closed{Failure::make(FailureReason::kClosedByPeer, "1001", 0, 1001)});
  EXPECT_EQ(status().health, Health::kUnhealthy);
  EXPECT_EQ(status().transition_reason, "connection lost: closed_by_peer");
  EXPECT_EQ(status().phase, ConnectionPhase::kBackingOff);
}

TEST_F(SessionTest, TransitionReasonsSayWhy) {
  openAndAnswerFirstPing();
  EXPECT_EQ(status().transition_reason, "heartbeat answered");
  advanceTo(at(seconds(10)));
  advanceTo(at(seconds(20)));
  EXPECT_EQ(status().transition_reason, "heartbeat failed: pong_timeout");
  EXPECT_EQ(status().underlying_health, Health::kUnhealthy);
}

// Flapping: the upstream bounces between up and down. Threshold 2, window 10 s, quiet 5 s.
class FlappingSessionTest : public SessionTest {
 protected:
  FlappingSessionTest() {
    spec_.heartbeat.interval = seconds(1);
    spec_.backoff.initial = milliseconds(100);
    spec_.backoff.multiplier = 1.0;
    spec_.flapping.threshold = 2;
    spec_.flapping.window = seconds(10);
    spec_.flapping.quiet_period = seconds(5);
  }
  // From BACKING_OFF or CONNECTING: the next attempt opens and its first ping is answered.
  SessionActions comeUp(MonoTime t) {
    if (status().phase == ConnectionPhase::kBackingOff) advanceTo(t);
    now_ = t;
    send(event::Connected{});
    now_ = t + milliseconds(1);
    return pong();
  }
  SessionActions goDown(MonoTime t) {
    now_ = t;
    return send(event::Closed{Failure::make(FailureReason::kClosedByPeer, "1006", 0, 1006)});
  }
  // Starts, comes up at 0 s, then down at 1 s, up at 2 s and down at 3 s: the third change
  // between up and down is more than the threshold, so the endpoint is FLAPPING (quiet until 8 s).
  void startFlappingAt3s() {
    start();
    comeUp(at(seconds(0)));
    goDown(at(seconds(1)));
    comeUp(at(seconds(2)));
    goDown(at(seconds(3)));
  }
};

TEST_F(FlappingSessionTest, MoreChangesThanTheThresholdWithinTheWindowIsFlapping) {
  start();
  comeUp(at(seconds(0)));  // UNKNOWN -> HEALTHY: not a change between up and down
  goDown(at(seconds(1)));  // change 1
  comeUp(at(seconds(2)));  // change 2
  EXPECT_EQ(status().health, Health::kHealthy);
  const SessionActions third = goDown(at(seconds(3)));  // change 3 > threshold 2
  ASSERT_TRUE(third.transition.has_value());
  EXPECT_EQ(third.transition->from, Health::kHealthy);
  EXPECT_EQ(third.transition->to, Health::kFlapping);
  EXPECT_EQ(status().health, Health::kFlapping);
  EXPECT_EQ(status().underlying_health, Health::kUnhealthy);
  EXPECT_EQ(status().transition_reason, "3 changes within 10s");
  EXPECT_EQ(status().last_transition, at(seconds(3)));
  // Further bounces keep it FLAPPING and are not reported as transitions.
  const SessionActions up = comeUp(at(seconds(4)));
  EXPECT_FALSE(up.transition.has_value());
  EXPECT_TRUE(up.status_changed);  // the underlying health is news for watchers
  EXPECT_EQ(status().health, Health::kFlapping);
  EXPECT_EQ(status().underlying_health, Health::kHealthy);
}

TEST_F(FlappingSessionTest, FlappingEndsAfterTheQuietPeriodInTheCurrentState) {
  startFlappingAt3s();
  comeUp(at(seconds(4)));  // a change (at 4.001 s) while flapping: quiet until 9.001 s
  EXPECT_LE(session_->nextDeadline(), at(seconds(9) + milliseconds(1)));
  for (int s = 5; s <= 8; ++s) {
    advanceTo(at(seconds(s)));
    now_ = at(seconds(s) + milliseconds(1));
    pong();
  }
  EXPECT_EQ(status().health, Health::kFlapping);
  EXPECT_FALSE(advanceTo(at(seconds(9))).transition.has_value());
  EXPECT_EQ(status().health, Health::kFlapping);
  const SessionActions settled = advanceTo(at(seconds(9) + milliseconds(1)));
  ASSERT_TRUE(settled.transition.has_value());
  EXPECT_EQ(settled.transition->from, Health::kFlapping);
  EXPECT_EQ(settled.transition->to, Health::kHealthy);
  EXPECT_EQ(status().transition_reason, "no change for 5s");
  // Counting starts afresh: two more changes are not flapping.
  goDown(at(seconds(10)));
  comeUp(at(seconds(11)));
  EXPECT_EQ(status().health, Health::kHealthy);
}

TEST_F(FlappingSessionTest, AnEndpointThatStaysDownLeavesFlappingAsUnhealthy) {
  startFlappingAt3s();
  // Every redial fails from now on: no change of health, so the quiet period runs out.
  for (MonoTime t = at(seconds(3)); t < at(seconds(8));) {
    advanceTo(*session_->nextDeadline());
    if (status().phase == ConnectionPhase::kConnecting) {
      send(event::ConnectFailed{Failure::make(FailureReason::kConnectionRefused, "refused")});
    }
    t = now_;
  }
  EXPECT_EQ(status().health, Health::kUnhealthy);
  EXPECT_EQ(status().underlying_health, Health::kUnhealthy);
}

TEST_F(FlappingSessionTest, ChangesSpreadWiderThanTheWindowAreNotFlapping) {
  start();
  comeUp(at(seconds(0)));
  goDown(at(seconds(1)));
  comeUp(at(seconds(6)));
  goDown(at(seconds(12)));  // three changes, but over 11 s > the 10 s window
  EXPECT_EQ(status().health, Health::kUnhealthy);
}

TEST_F(FlappingSessionTest, AChangeAfterTheQuietPeriodButBeforeItsTimerStartsAfresh) {
  startFlappingAt3s();
  // The peer comes back at 8.003 s, before the timer of 8 s has run (timers run on a 10 ms
  // grid, after socket events). Flapping ended at 8 s; this is the first change afresh.
  advanceTo(at(seconds(3) + milliseconds(100)));  // the redial starts
  now_ = at(seconds(8) + milliseconds(3));
  send(event::Connected{});
  now_ = at(seconds(8) + milliseconds(4));
  const SessionActions up = pong();
  ASSERT_TRUE(up.transition.has_value());
  EXPECT_EQ(up.transition->from, Health::kFlapping);
  EXPECT_EQ(up.transition->to, Health::kHealthy);
  EXPECT_EQ(status().health, Health::kHealthy);
}

TEST_F(FlappingSessionTest, AShorterQuietPeriodAppliesToAnEndpointAlreadyFlapping) {
  spec_.flapping.quiet_period = std::chrono::hours(24);
  startFlappingAt3s();
  ASSERT_EQ(status().health, Health::kFlapping);
  FlapPolicy shorter = spec_.flapping;
  shorter.quiet_period = seconds(5);
  now_ = at(seconds(10));  // already 7 s since the last change
  const SessionActions a = session_->updateFlapPolicy(shorter, now_);
  ASSERT_TRUE(a.transition.has_value());
  EXPECT_EQ(status().health, Health::kUnhealthy);
  EXPECT_EQ(status().transition_reason, "no change for 5s");
}

TEST_F(FlappingSessionTest, OneEventThatEndsFlappingAndFailsReportsOneTransitionFromFlapping) {
  spec_.heartbeat.timeout = seconds(1);
  startFlappingAt3s();
  comeUp(at(seconds(4)));  // up while FLAPPING: quiet until 9.001 s
  // Pings answered until 8 s; the ping of 8.001 s is never answered and fails at 9.001 s, the
  // very moment the quiet period runs out.
  for (int s = 5; s <= 8; ++s) {
    advanceTo(at(seconds(s) + milliseconds(1)));
    if (s < 8) pong();
  }
  const SessionActions a = advanceTo(at(seconds(9) + milliseconds(1)));
  ASSERT_TRUE(a.transition.has_value());
  EXPECT_EQ(a.transition->from, Health::kFlapping);
  EXPECT_EQ(a.transition->to, Health::kUnhealthy);
  EXPECT_EQ(status().health, Health::kUnhealthy);
}

TEST_F(FlappingSessionTest, ChangesWithinTheWindowFlapWhereSpreadOnesDoNot) {
  start();
  comeUp(at(seconds(0)));
  goDown(at(seconds(1)));
  comeUp(at(seconds(6)));
  goDown(at(seconds(11)));  // 1, 6, 11: within 10 s: the third change flaps
  EXPECT_EQ(status().health, Health::kFlapping);
}

TEST_F(FlappingSessionTest, TurningDetectionOffEndsFlapping) {
  startFlappingAt3s();
  ASSERT_EQ(status().health, Health::kFlapping);
  now_ = at(seconds(4));
  const SessionActions a = session_->updateFlapPolicy(FlapPolicy::off(), now_);
  ASSERT_TRUE(a.transition.has_value());
  EXPECT_EQ(status().health, Health::kUnhealthy);
  EXPECT_EQ(status().transition_reason, "flap detection turned off");
}

TEST_F(SessionTest, ConnectTimeoutAbandonsTheAttempt) {
  spec_.connect_timeout = seconds(2);
  start();
  const SessionActions a = advanceTo(at(seconds(2)));
  EXPECT_TRUE(a.abandon_connection);
  EXPECT_FALSE(a.close.has_value());
  EXPECT_EQ(status().health, Health::kUnhealthy);
  ASSERT_TRUE(status().last_failure.has_value());
  EXPECT_EQ(status().last_failure->reason, FailureReason::kConnectTimeout);
  EXPECT_EQ(status().phase, ConnectionPhase::kBackingOff);
}

TEST_F(SessionTest, ConnectFailureIsUnhealthyAtOnceWithItsReason) {
  start();
  now_ = at(milliseconds(1));
  const SessionActions a = send(event::ConnectFailed{
      Failure::make(FailureReason::kHandshakeRejected, "HTTP 403 Forbidden", 403)});
  ASSERT_TRUE(a.transition.has_value());
  EXPECT_EQ(a.transition->from, Health::kUnknown);
  EXPECT_EQ(a.transition->to, Health::kUnhealthy);
  EXPECT_EQ(status().last_failure->reason, FailureReason::kHandshakeRejected);
  EXPECT_EQ(status().last_failure->http_status, 403);
  EXPECT_EQ(status().consecutive_failures, 1u);
}

TEST_F(SessionTest, BackoffGrowsByTheMultiplierFromEachAttemptStartUpToTheCap) {
  spec_.backoff.max = seconds(5);
  start();
  // Attempt k fails 100 ms after it starts; the retry is due `delay` after the attempt started.
  const Duration expected_delays[] = {milliseconds(1000), milliseconds(1600), milliseconds(2560),
                                      milliseconds(4096), milliseconds(5000), milliseconds(5000)};
  MonoTime attempt_start = t0_;
  for (Duration delay : expected_delays) {
    now_ = attempt_start + milliseconds(100);
    send(event::ConnectFailed{Failure::make(FailureReason::kConnectionRefused, "refused")});
    EXPECT_EQ(status().phase, ConnectionPhase::kBackingOff);
    ASSERT_TRUE(status().next_attempt.has_value());
    EXPECT_EQ(*status().next_attempt, attempt_start + delay);
    EXPECT_EQ(session_->nextDeadline(), attempt_start + delay);
    const SessionActions a = fireNext();
    EXPECT_TRUE(a.connect);
    attempt_start = now_;
  }
  EXPECT_EQ(status().reconnect_attempts, 6u);
  EXPECT_EQ(status().consecutive_failures, 6u);
}

TEST_F(SessionTest, AttemptThatOutlastsItsBackoffIsRetriedAtOnce) {
  spec_.connect_timeout = seconds(5);
  start();
  const SessionActions a = advanceTo(at(seconds(5)));  // connect timeout, delay 1 s long past
  EXPECT_TRUE(a.abandon_connection);
  EXPECT_EQ(session_->nextDeadline(), at(seconds(5)));
  EXPECT_TRUE(fireNext().connect);
}

TEST_F(SessionTest, JitterMovesTheDelayWithinPlusMinusTheJitterFraction) {
  spec_.backoff.jitter_enabled = true;  // default jitter 0.2
  jitter_.value = 1.0;
  start();
  send(event::ConnectFailed{Failure::make(FailureReason::kConnectionRefused, "")});
  EXPECT_EQ(session_->nextDeadline(), at(milliseconds(1200)));
  fireNext();
  const MonoTime second_start = now_;
  jitter_.value = -1.0;
  send(event::ConnectFailed{Failure::make(FailureReason::kConnectionRefused, "")});
  EXPECT_EQ(session_->nextDeadline(), second_start + milliseconds(1280));  // 1.6 s - 20 %
}

TEST_F(SessionTest, BackoffResetsOnlyAfterStayingHealthyForResetAfter) {
  spec_.heartbeat.interval = seconds(1);
  spec_.backoff.reset_after = seconds(5);
  start();
  // Three refused attempts: the schedule is at its fourth step.
  for (int i = 0; i < 3; ++i) {
    send(event::ConnectFailed{Failure::make(FailureReason::kConnectionRefused, "")});
    fireNext();
  }
  EXPECT_EQ(status().reconnect_attempts, 3u);
  // A bare connect that closes before any heartbeat is answered does not reset it.
  send(event::Connected{});
  send(event::Closed{Failure::make(FailureReason::kClosedByPeer, "", 0, 1006)});
  EXPECT_EQ(status().reconnect_attempts, 4u);
  fireNext();
  // Now a connection that becomes HEALTHY and stays so for 5 s.
  send(event::Connected{});
  now_ += milliseconds(1);
  pong();
  const MonoTime healthy_at = now_;
  while (now_ < healthy_at + seconds(5)) {
    fireNext();
    if (session_->nextDeadline() && now_ < healthy_at + seconds(5)) pong();
  }
  EXPECT_EQ(status().reconnect_attempts, 0u);
  // The next failure starts the schedule again from `initial`.
  const MonoTime lost_at = now_;
  send(event::Closed{Failure::make(FailureReason::kClosedByPeer, "bye", 0, 1000)});
  ASSERT_TRUE(status().next_attempt.has_value());
  EXPECT_LE(*status().next_attempt, lost_at + seconds(1));
  EXPECT_EQ(status().reconnect_attempts, 1u);
}

TEST_F(SessionTest, ClosedByPeerIsUnhealthyWithItsCloseCode) {
  openAndAnswerFirstPing();
  now_ = at(seconds(3));
  const SessionActions a =
      send(event::Closed{Failure::make(FailureReason::kClosedByPeer, "going away", 0, 1001)});
  ASSERT_TRUE(a.transition.has_value());
  EXPECT_EQ(a.transition->from, Health::kHealthy);
  EXPECT_FALSE(a.close.has_value());  // nothing left to close
  EXPECT_EQ(status().last_failure->close_code, 1001);
  EXPECT_EQ(status().phase, ConnectionPhase::kBackingOff);
}

TEST_F(SessionTest, ReconnectAfterUnhealthyNeedsFreshAnswersToBeHealthyAgain) {
  openAndAnswerFirstPing();
  advanceTo(at(seconds(10)));
  advanceTo(at(seconds(20)));  // unhealthy, backing off
  ASSERT_EQ(status().health, Health::kUnhealthy);
  EXPECT_TRUE(fireNext().connect);
  SessionActions a = send(event::Connected{});
  EXPECT_TRUE(a.send_ping);
  EXPECT_EQ(status().health, Health::kUnhealthy);
  now_ += milliseconds(4);
  a = pong();
  ASSERT_TRUE(a.transition.has_value());
  EXPECT_EQ(a.transition->to, Health::kHealthy);
}

TEST_F(SessionTest, PassiveModeCountsEveryMessageAndFailsAfterSilence) {
  spec_.heartbeat.mode = HeartbeatMode::kPassive;
  spec_.heartbeat.interval = seconds(5);  // default timeout: 2 x interval = 10 s of silence
  start();
  SessionActions a = send(event::Connected{});
  EXPECT_FALSE(a.send_ping);
  EXPECT_FALSE(a.send_text);
  EXPECT_EQ(session_->nextDeadline(), at(seconds(10)));
  now_ = at(seconds(4));
  a = send(event::MessageReceived{"tick"});
  ASSERT_TRUE(a.transition.has_value());
  EXPECT_EQ(a.transition->to, Health::kHealthy);
  EXPECT_FALSE(a.rtt_sampled);  // no round trip in passive mode
  EXPECT_EQ(session_->nextDeadline(), at(seconds(14)));
  a = advanceTo(at(seconds(14)));
  EXPECT_EQ(status().health, Health::kUnhealthy);
  EXPECT_EQ(status().last_failure->reason, FailureReason::kSilence);
  EXPECT_TRUE(a.close.has_value());
}

TEST_F(SessionTest, PassiveSilenceWindowRestartsBelowTheThreshold) {
  spec_.heartbeat.mode = HeartbeatMode::kPassive;
  spec_.heartbeat.interval = seconds(1);
  spec_.heartbeat.unhealthy_threshold = 2;
  start();
  send(event::Connected{});
  advanceTo(at(seconds(2)));
  EXPECT_EQ(status().consecutive_failures, 1u);
  EXPECT_EQ(status().phase, ConnectionPhase::kOpen);
  EXPECT_EQ(session_->nextDeadline(), at(seconds(4)));
  advanceTo(at(seconds(4)));
  EXPECT_EQ(status().phase, ConnectionPhase::kBackingOff);
  EXPECT_EQ(status().health, Health::kUnhealthy);
}

TEST_F(SessionTest, TextModeCountsOnlyAMatchingReply) {
  spec_.heartbeat.mode = HeartbeatMode::kText;
  spec_.heartbeat.payload = "ping";
  spec_.heartbeat.expect = R"(\{"pong":\d+\})";
  start();
  SessionActions a = send(event::Connected{});
  EXPECT_TRUE(a.send_text);
  EXPECT_FALSE(a.send_ping);
  now_ = at(milliseconds(2));
  a = send(event::MessageReceived{"some application data"});
  EXPECT_EQ(status().health, Health::kUnknown);
  now_ = at(milliseconds(3));
  a = send(event::MessageReceived{R"({"pong":42})"});
  EXPECT_EQ(status().health, Health::kHealthy);
  EXPECT_EQ(status().last_rtt, milliseconds(3));
}

TEST_F(SessionTest, TextModeWithOnlyMismatchingRepliesFailsAsReplyMismatch) {
  spec_.heartbeat.mode = HeartbeatMode::kText;  // default payload "heartbeat", reply must equal it
  start();
  send(event::Connected{});
  now_ = at(milliseconds(1));
  send(event::MessageReceived{"HEARTBEAT"});
  advanceTo(at(seconds(10)));
  ASSERT_TRUE(status().last_failure.has_value());
  EXPECT_EQ(status().last_failure->reason, FailureReason::kReplyMismatch);
  EXPECT_NE(status().last_failure->detail.find("HEARTBEAT"), std::string::npos);
}

TEST_F(SessionTest, TextModeWithNoReplyFailsAsPongTimeout) {
  spec_.heartbeat.mode = HeartbeatMode::kText;
  start();
  send(event::Connected{});
  advanceTo(at(seconds(10)));
  EXPECT_EQ(status().last_failure->reason, FailureReason::kPongTimeout);
}

TEST_F(SessionTest, PingModeIgnoresApplicationMessages) {
  start();
  send(event::Connected{});
  now_ = at(milliseconds(1));
  send(event::MessageReceived{"1"});
  EXPECT_EQ(status().health, Health::kUnknown);
}

TEST_F(SessionTest, SmoothedRttFollowsTcpSrtt) {
  openAndAnswerFirstPing(milliseconds(80));
  advanceTo(at(seconds(10)));
  now_ += milliseconds(16);
  pong();
  EXPECT_EQ(status().last_rtt, milliseconds(16));
  EXPECT_EQ(status().smoothed_rtt, milliseconds(72));  // (7 x 80 + 16) / 8
}

TEST_F(SessionTest, StopWhileOpenClosesNormallyAndGoesQuiet) {
  openAndAnswerFirstPing();
  const SessionActions a = send(event::Stop{});
  ASSERT_TRUE(a.close.has_value());
  EXPECT_EQ(a.close->code, kCloseNormal);
  EXPECT_EQ(status().phase, ConnectionPhase::kStopped);
  EXPECT_FALSE(session_->nextDeadline().has_value());
  // Whatever the old connection reports afterwards changes nothing.
  const SessionActions late =
      send(event::Closed{Failure::make(FailureReason::kClosedByPeer, "", 0, 1000)});
  EXPECT_FALSE(late.status_changed);
  EXPECT_EQ(status().health, Health::kHealthy);
}

TEST_F(SessionTest, StopWhileConnectingAbandonsTheAttempt) {
  start();
  const SessionActions a = send(event::Stop{});
  EXPECT_TRUE(a.abandon_connection);
  EXPECT_FALSE(a.close.has_value());
  EXPECT_FALSE(session_->nextDeadline().has_value());
  EXPECT_FALSE(send(event::Connected{}).send_ping);
}

TEST_F(SessionTest, StopWhileBackingOffCancelsTheRetry) {
  start();
  send(event::ConnectFailed{Failure::make(FailureReason::kDns, "host not found")});
  const SessionActions a = send(event::Stop{});
  EXPECT_FALSE(a.close.has_value());
  EXPECT_FALSE(a.abandon_connection);
  EXPECT_FALSE(session_->nextDeadline().has_value());
  EXPECT_FALSE(status().next_attempt.has_value());
  EXPECT_FALSE(advanceTo(at(seconds(60))).connect);
}

TEST_F(SessionTest, EventsForThePhaseThatIsOverAreIgnored) {
  start();
  send(event::ConnectFailed{Failure::make(FailureReason::kConnectionRefused, "")});
  // A stray open or pong from an abandoned attempt while backing off.
  EXPECT_FALSE(send(event::Connected{}).status_changed);
  EXPECT_FALSE(send(event::PongReceived{"1"}).status_changed);
  EXPECT_EQ(status().phase, ConnectionPhase::kBackingOff);
}

TEST_F(SessionTest, PeerControlledDetailIsBoundedAndPrintable) {
  start();
  std::string detail(10000, 'x');
  detail[0] = '\n';
  detail[1] = static_cast<char>(0xff);
  send(event::ConnectFailed{Failure::make(FailureReason::kNetworkError, detail)});
  const std::string& kept = status().last_failure->detail;
  EXPECT_LE(kept.size(), kMaxFailureDetailBytes);
  EXPECT_EQ(kept.substr(0, 8), "\\x0a\\xff");
}

TEST_F(SessionTest, RestoredEndpointWaitsForItsSlotBeforeTheFirstAttempt) {
  applyDefaults(spec_);
  session_ =
      std::make_unique<Session>(spec_.heartbeat, spec_.backoff, spec_.connect_timeout, jitter_);
  const SessionActions a = send(event::Start{seconds(3)});
  EXPECT_FALSE(a.connect);
  EXPECT_TRUE(a.status_changed);
  EXPECT_EQ(status().phase, ConnectionPhase::kBackingOff);
  EXPECT_EQ(status().next_attempt, at(seconds(3)));
  EXPECT_EQ(session_->nextDeadline(), at(seconds(3)));
  EXPECT_FALSE(advanceTo(at(seconds(2))).connect);
  EXPECT_TRUE(advanceTo(at(seconds(3))).connect);
}

TEST_F(SessionTest, PolicyUpdateReschedulesTheNextPingFromTheLastSend) {
  openAndAnswerFirstPing();
  HeartbeatPolicy faster = spec_.heartbeat;
  faster.interval = seconds(2);
  faster.timeout = seconds(2);
  now_ = at(seconds(1));
  const SessionActions a =
      session_->updatePolicy(faster, spec_.backoff, spec_.connect_timeout, now_);
  EXPECT_FALSE(a.close.has_value());
  EXPECT_FALSE(a.connect);
  EXPECT_EQ(status().phase, ConnectionPhase::kOpen);
  EXPECT_EQ(session_->nextDeadline(), at(seconds(2)));
  EXPECT_TRUE(advanceTo(at(seconds(2))).send_ping);
  EXPECT_EQ(session_->nextDeadline(), at(seconds(4)));  // the new timeout of the new ping
}

TEST_F(SessionTest, PolicyUpdateShortensTheOutstandingTimeout) {
  spec_.backoff.reset_after = std::chrono::hours(1);  // keep the backoff-reset deadline out of it
  openAndAnswerFirstPing();
  advanceTo(at(seconds(10)));  // ping 2 outstanding, due at 20 s under the old timeout
  HeartbeatPolicy strict = spec_.heartbeat;
  strict.timeout = seconds(1);
  now_ = at(seconds(10) + milliseconds(500));
  session_->updatePolicy(strict, spec_.backoff, spec_.connect_timeout, now_);
  EXPECT_EQ(session_->nextDeadline(), at(seconds(11)));
  advanceTo(at(seconds(11)));
  EXPECT_EQ(status().health, Health::kUnhealthy);
  EXPECT_EQ(status().last_failure->reason, FailureReason::kPongTimeout);
}

TEST_F(SessionTest, ModeChangeStartsAFreshHeartbeatOfTheNewMode) {
  openAndAnswerFirstPing();
  HeartbeatPolicy text = spec_.heartbeat;
  text.mode = HeartbeatMode::kText;
  text.payload = "hb";
  now_ = at(seconds(1));
  const SessionActions a = session_->updatePolicy(text, spec_.backoff, spec_.connect_timeout, now_);
  EXPECT_TRUE(a.send_text);
  now_ = at(seconds(1) + milliseconds(2));
  send(event::MessageReceived{"hb"});
  EXPECT_EQ(status().last_rtt, milliseconds(2));
}

}  // namespace
}  // namespace wsvisor::core

namespace wsvisor::core {
namespace {

class HeartbeatFailsAtTest : public SessionTest {};

TEST_F(HeartbeatFailsAtTest, TrueOnlyOnceAnOutstandingPingIsPastItsDeadline) {
  spec_.heartbeat.timeout = seconds(2);
  start();
  EXPECT_FALSE(session_->heartbeatFailsAt(now_));  // connecting
  send(event::Connected{});                        // ping 1 out at t0
  EXPECT_FALSE(session_->heartbeatFailsAt(at(milliseconds(1999))));
  EXPECT_TRUE(session_->heartbeatFailsAt(at(seconds(2))));
  now_ = at(milliseconds(5));
  pong();
  // Answered: nothing can fail until the next ping is out, however late the timer runs.
  EXPECT_FALSE(session_->heartbeatFailsAt(at(seconds(30))));
  advanceTo(at(seconds(10)));  // ping 2
  EXPECT_FALSE(session_->heartbeatFailsAt(at(milliseconds(11999))));
  EXPECT_TRUE(session_->heartbeatFailsAt(at(seconds(12))));
  // The query changes nothing: the ping still fails when the timer fires.
  const SessionActions actions = advanceTo(at(seconds(12)));
  ASSERT_TRUE(actions.failure_recorded);
  EXPECT_EQ(status().last_failure->reason, FailureReason::kPongTimeout);
}

TEST_F(HeartbeatFailsAtTest, PassiveModeFailsAtItsSilenceDeadline) {
  spec_.heartbeat.mode = HeartbeatMode::kPassive;
  spec_.heartbeat.timeout = seconds(20);
  start();
  send(event::Connected{});
  EXPECT_FALSE(session_->heartbeatFailsAt(at(milliseconds(19999))));
  EXPECT_TRUE(session_->heartbeatFailsAt(at(seconds(20))));
}

}  // namespace
}  // namespace wsvisor::core
