#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/core/backoff_schedule.h"
#include "supervisor/core/endpoint_spec.h"
#include "supervisor/core/endpoint_status.h"
#include "supervisor/core/flap_detector.h"
#include "supervisor/core/jitter_source.h"
#include "supervisor/core/reply_matcher.h"
#include "supervisor/core/rtt_estimator.h"
#include "supervisor/core/session_event.h"
#include "supervisor/core/time.h"

namespace wsvisor::core {

// Close codes the session asks for.
inline constexpr int kCloseNormal = 1000;
inline constexpr int kCloseGoingAway = 1001;

struct CloseRequest {
  int code = kCloseNormal;
  std::string reason;
};

// A change of the reported health; status().transition_reason says why.
struct HealthTransition {
  Health from;
  Health to;
};

// Heartbeats that may be outstanding at once (timeout > interval); while this many are, the next
// one waits for an answer or a timeout.
inline constexpr size_t kMaxOutstandingHeartbeats = 16;

// What the runtime must do after one event, in this order: close or abandon the current
// connection, send the heartbeat, start a new connection, then publish the status and re-arm the
// single timer at Session::nextDeadline().
struct SessionActions {
  // Close the open connection with a close frame. The session has already moved on: whatever the
  // old connection reports afterwards must not reach it.
  std::optional<CloseRequest> close;
  // Drop the connection attempt in progress (connect timeout or stop while connecting).
  bool abandon_connection = false;
  bool send_ping = false;  // payload: pingPayload()
  bool send_text = false;  // payload: the policy's TEXT payload
  bool connect = false;    // begin a new connection attempt
  // Health, phase, failure count or last failure changed: publish status().
  bool status_changed = false;
  // A heartbeat was answered: status().last_rtt and smoothed_rtt are new.
  bool rtt_sampled = false;
  // A heartbeat succeeded: answered (PING, TEXT), a message arrived (PASSIVE), or the connection
  // opened (NONE, where the open connection is the only check).
  bool heartbeat_succeeded = false;
  // A heartbeat or connection failed: status().last_failure is new.
  bool failure_recorded = false;
  std::optional<HealthTransition> transition;
};

// The pure supervision state machine of one endpoint: events and the current time in, actions
// out. No clock, socket, thread or sleep in here; the runtime owns all of those.
//
// Phases: CONNECTING → OPEN → (failure) → BACKING_OFF → CONNECTING …; STOPPED is final.
//
// Heartbeat schedule (PING and TEXT), with interval I and timeout T:
//   - the first heartbeat goes out the moment the connection opens, at t0;
//   - heartbeat k+1 goes out at send(k) + I, whether or not k has been answered (at most
//     kMaxOutstandingHeartbeats outstanding: beyond that the next one waits for an answer or a
//     timeout);
//   - heartbeat k fails if no answer arrives by send(k) + T; an answer after that is ignored.
//     A pong answers its own ping and every older one still outstanding (RFC 6455 lets a peer
//     answer only the latest ping); a TEXT reply answers the oldest outstanding heartbeat, once
//     the late replies of heartbeats that already timed out have been discounted.
//   - I is `unhealthy_interval` instead while the endpoint is not HEALTHY by its thresholds or
//     its last heartbeat failed, so a failure is confirmed and a recovery seen on that cadence.
//   Example, I = T = 10 s, peer dies at 12 s: pings at 0, 10 (answered), 20; the ping of 20 s
//   times out at 30 s → with unhealthy_threshold 1 the endpoint is UNHEALTHY at 30 s, i.e.
//   within I + T of the last answer.
// PASSIVE: every message is a successful heartbeat; T of silence is one failed heartbeat, and the
// silence clock restarts after each failure.
// NONE: the open connection is the heartbeat: HEALTHY on open, UNHEALTHY when it is lost.
//
// Health: `unhealthy_threshold` failed heartbeats in a row on one connection → UNHEALTHY, close
// (code 1000) and redial after backoff. A lost or failed connection → UNHEALTHY at once.
// `healthy_threshold` successful heartbeats in a row → HEALTHY. A connection that stays HEALTHY
// for `reset_after` resets the backoff schedule; a bare TCP or WebSocket connect does not.
// That is the underlying health; the reported one is FLAPPING instead while FlapDetector says so.
//
// Backoff: the next attempt starts at max(now, start of the failed attempt + delay), where the
// delay comes from BackoffSchedule, as in gRPC's connection-backoff spec. The connect timeout
// bounds each attempt from its start to the open connection.
class Session {
 public:
  Session(const HeartbeatPolicy& heartbeat, const BackoffPolicy& backoff, Duration connect_timeout,
          JitterSource& jitter, const FlapPolicy& flapping = FlapPolicy::off());

  SessionActions onEvent(const SessionEvent& event, MonoTime now);

  // Applies new heartbeat and backoff policies without touching the connection. The heartbeat
  // in flight keeps its send time and is judged by the new timeout; the next one follows the new
  // interval from the last send. Thresholds apply from the next heartbeat on.
  SessionActions updatePolicy(const HeartbeatPolicy& heartbeat, const BackoffPolicy& backoff,
                              Duration connect_timeout, MonoTime now);
  // Applies a new flap policy to the changes already seen. Turning detection off ends FLAPPING.
  SessionActions updateFlapPolicy(const FlapPolicy& flapping, MonoTime now);

  // The earliest moment at which a TimerFired event has work to do; nullopt when stopped. Timers
  // that fire early or late are harmless: onEvent(TimerFired) does what is due at `now` and no
  // more.
  std::optional<MonoTime> nextDeadline() const;

  // True when a TimerFired at `now` would fail a heartbeat (a reply or silence deadline has
  // passed). The runtime asks before acting on a late timer, so that input that already arrived
  // is read first.
  bool heartbeatFailsAt(MonoTime now) const;

  const EndpointStatus& status() const { return status_; }
  const HeartbeatPolicy& heartbeatPolicy() const { return heartbeat_; }
  // Payload of the ping last requested by `send_ping` (its sequence number in decimal).
  const std::string& pingPayload() const { return ping_payload_; }

 private:
  void handle(const event::Start&, MonoTime now, SessionActions& out);
  void handle(const event::Stop&, MonoTime now, SessionActions& out);
  void handle(const event::Connected&, MonoTime now, SessionActions& out);
  void handle(const event::ConnectFailed& e, MonoTime now, SessionActions& out);
  void handle(const event::MessageReceived& e, MonoTime now, SessionActions& out);
  void handle(const event::PongReceived& e, MonoTime now, SessionActions& out);
  void handle(const event::Closed& e, MonoTime now, SessionActions& out);
  void handle(const event::TimerFired&, MonoTime now, SessionActions& out);

  void beginAttempt(MonoTime now, SessionActions& out);
  // The connection is open (or its heartbeat mode changed): the first check of the mode.
  void startHeartbeats(MonoTime now, SessionActions& out);
  void sendHeartbeat(MonoTime now, SessionActions& out);
  void heartbeatSucceeded(MonoTime now, std::optional<Duration> rtt, SessionActions& out);
  void heartbeatFailed(Failure failure, MonoTime now, SessionActions& out);
  void connectionLost(Failure failure, MonoTime now, SessionActions& out);
  void recordFailure(Failure failure, MonoTime now, SessionActions& out);
  // Sets the underlying health; the reported one follows unless the endpoint is flapping.
  void setHealth(Health health, std::string reason, MonoTime now, SessionActions& out);
  void report(Health health, std::string reason, MonoTime now, SessionActions& out);
  // Ends FLAPPING if its quiet period has run out at `now`.
  void settleFlapping(MonoTime now, SessionActions& out);
  void enterBackoff(MonoTime now, SessionActions& out);
  // PING/TEXT: times out every outstanding heartbeat whose deadline has passed, oldest first.
  void failOverdueHeartbeats(MonoTime now, SessionActions& out);
  // The pong's payload names an outstanding ping: how many outstanding ones it answers.
  size_t pingsAnsweredBy(std::string_view payload) const;
  bool isHeartbeatSender() const {
    return heartbeat_.mode == HeartbeatMode::kPing || heartbeat_.mode == HeartbeatMode::kText;
  }
  // The interval in force: `unhealthy_interval` while not HEALTHY or after a failed heartbeat.
  Duration currentInterval() const;
  MonoTime nextSendAt() const { return last_sent_at_ + currentInterval(); }
  bool maySendMore() const { return sent_times_.size() < kMaxOutstandingHeartbeats; }

  HeartbeatPolicy heartbeat_;
  Duration reset_after_;
  Duration connect_timeout_;
  BackoffSchedule backoff_;
  JitterSource& jitter_;
  ReplyMatcher reply_matcher_;
  RttEstimator rtt_;
  EndpointStatus status_;

  bool started_ = false;
  // CONNECTING
  MonoTime attempt_started_{};
  MonoTime connect_deadline_{};
  // OPEN
  uint32_t failures_on_connection_ = 0;
  uint32_t consecutive_successes_ = 0;
  std::optional<MonoTime> stable_deadline_;  // backoff resets here if still HEALTHY
  // PING/TEXT: send times of the outstanding heartbeats, oldest first. Their sequence numbers
  // are consecutive and end at ping_sequence_.
  std::vector<MonoTime> sent_times_;
  MonoTime last_sent_at_{};
  uint64_t ping_sequence_ = 0;
  std::string ping_payload_;
  std::optional<std::string> mismatched_reply_;  // TEXT: last non-matching reply
  // TEXT: heartbeats that timed out on this connection and whose replies may still come.
  // Replies carry no id and come in order, so the next this many matching replies are theirs,
  // too late to count, and must not be taken as answers to later heartbeats.
  uint32_t late_replies_owed_ = 0;
  MonoTime silence_deadline_{};  // PASSIVE
  // BACKING_OFF
  MonoTime retry_at_{};
  FlapDetector flap_;
};

}  // namespace wsvisor::core
