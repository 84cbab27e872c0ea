#include "supervisor/core/session.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace wsvisor::core {

namespace {

std::string formatDuration(Duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return std::to_string(ms) + "ms";
}

// Heartbeat replies quoted in a failure detail are cut to this length.
constexpr size_t kQuotedReplyBytes = 64;

}  // namespace

Session::Session(const HeartbeatPolicy& heartbeat, const BackoffPolicy& backoff,
                 Duration connect_timeout, JitterSource& jitter)
    : heartbeat_(heartbeat),
      reset_after_(backoff.reset_after),
      connect_timeout_(connect_timeout),
      backoff_(backoff),
      jitter_(jitter),
      reply_matcher_(heartbeat.payload, heartbeat.expect) {}

SessionActions Session::onEvent(const SessionEvent& event, MonoTime now) {
  SessionActions out;
  std::visit([&](const auto& e) { handle(e, now, out); }, event);
  return out;
}

std::optional<MonoTime> Session::nextDeadline() const {
  if (!started_) return std::nullopt;
  switch (status_.phase) {
    case ConnectionPhase::kConnecting:
      return connect_deadline_;
    case ConnectionPhase::kBackingOff:
      return retry_at_;
    case ConnectionPhase::kOpen: {
      MonoTime due;
      if (!isHeartbeatSender()) {
        due = silence_deadline_;
      } else {
        due = outstanding_ ? reply_deadline_ : next_send_at_;
      }
      if (stable_deadline_) due = std::min(due, *stable_deadline_);
      return due;
    }
    case ConnectionPhase::kStopped:
      return std::nullopt;
  }
  return std::nullopt;
}

bool Session::heartbeatFailsAt(MonoTime now) const {
  if (!started_ || status_.phase != ConnectionPhase::kOpen) return false;
  if (!isHeartbeatSender()) return now >= silence_deadline_;
  return outstanding_ && now >= reply_deadline_;
}

void Session::handle(const event::Start& e, MonoTime now, SessionActions& out) {
  if (started_) return;
  started_ = true;
  status_.last_transition = now;  // registration counts as the first change
  if (e.first_attempt_after > Duration::zero()) {
    // Restored after a restart: wait for this endpoint's slot so that thousands of endpoints
    // do not all dial at the same instant.
    status_.phase = ConnectionPhase::kBackingOff;
    attempt_started_ = now;
    retry_at_ = now + e.first_attempt_after;
    status_.next_attempt = retry_at_;
    out.status_changed = true;
    return;
  }
  beginAttempt(now, out);
  // The registration itself announced this state (unknown, connecting); nothing new to publish.
  out.status_changed = false;
}

SessionActions Session::updatePolicy(const HeartbeatPolicy& heartbeat, const BackoffPolicy& backoff,
                                     Duration connect_timeout, MonoTime now) {
  SessionActions out;
  const bool mode_changed = heartbeat.mode != heartbeat_.mode;
  heartbeat_ = heartbeat;
  reply_matcher_ = ReplyMatcher(heartbeat.payload, heartbeat.expect);
  reset_after_ = backoff.reset_after;
  backoff_.setPolicy(backoff);
  connect_timeout_ = connect_timeout;
  if (status_.phase == ConnectionPhase::kConnecting) {
    connect_deadline_ = attempt_started_ + connect_timeout_;
  }
  if (status_.phase != ConnectionPhase::kOpen) return out;
  if (mode_changed) {
    // A heartbeat of the old mode cannot be answered in the new one: start afresh now.
    outstanding_ = false;
    if (isHeartbeatSender()) {
      sendHeartbeat(now, out);
    } else {
      silence_deadline_ = now + heartbeat_.timeout;
    }
    return out;
  }
  if (outstanding_) reply_deadline_ = outstanding_sent_at_ + heartbeat_.timeout;
  if (isHeartbeatSender()) {
    next_send_at_ = outstanding_sent_at_ + heartbeat_.interval;
  } else {
    silence_deadline_ = std::min(silence_deadline_, now + heartbeat_.timeout);
  }
  return out;
}

void Session::handle(const event::Stop& e, MonoTime, SessionActions& out) {
  if (status_.phase == ConnectionPhase::kStopped) return;
  if (status_.phase == ConnectionPhase::kOpen) {
    out.close = e.shutting_down ? CloseRequest{kCloseGoingAway, "wsvisor shutting down"}
                                : CloseRequest{kCloseNormal, "endpoint unregistered"};
  } else if (status_.phase == ConnectionPhase::kConnecting) {
    out.abandon_connection = true;
  }
  status_.phase = ConnectionPhase::kStopped;
  status_.next_attempt.reset();
  out.status_changed = true;
}

void Session::handle(const event::Connected&, MonoTime now, SessionActions& out) {
  if (status_.phase != ConnectionPhase::kConnecting) return;
  status_.phase = ConnectionPhase::kOpen;
  failures_on_connection_ = 0;
  consecutive_successes_ = 0;
  outstanding_ = false;
  out.status_changed = true;
  if (isHeartbeatSender()) {
    sendHeartbeat(now, out);
  } else {
    silence_deadline_ = now + heartbeat_.timeout;
  }
}

void Session::handle(const event::ConnectFailed& e, MonoTime now, SessionActions& out) {
  if (status_.phase != ConnectionPhase::kConnecting) return;
  connectionLost(e.failure, now, out);
}

void Session::handle(const event::Closed& e, MonoTime now, SessionActions& out) {
  if (status_.phase != ConnectionPhase::kOpen && status_.phase != ConnectionPhase::kConnecting) {
    return;
  }
  connectionLost(e.failure, now, out);
}

void Session::handle(const event::MessageReceived& e, MonoTime now, SessionActions& out) {
  if (status_.phase != ConnectionPhase::kOpen) return;
  switch (heartbeat_.mode) {
    case HeartbeatMode::kPassive:
      silence_deadline_ = now + heartbeat_.timeout;
      heartbeatSucceeded(now, std::nullopt, out);
      return;
    case HeartbeatMode::kText:
      if (!outstanding_) return;  // unsolicited or late: neither success nor failure
      if (reply_matcher_.matches(e.payload)) {
        heartbeatSucceeded(now, now - outstanding_sent_at_, out);
      } else {
        mismatched_reply_ = std::string(e.payload.substr(0, kQuotedReplyBytes));
      }
      return;
    case HeartbeatMode::kPing:
    case HeartbeatMode::kNone:
      return;  // application traffic does not answer a ping
  }
}

void Session::handle(const event::PongReceived& e, MonoTime now, SessionActions& out) {
  if (status_.phase != ConnectionPhase::kOpen || heartbeat_.mode != HeartbeatMode::kPing) return;
  // Only the pong of the outstanding ping counts; unsolicited pongs (RFC 6455 allows them) and
  // late pongs of timed-out pings carry another payload.
  if (!outstanding_ || e.payload != ping_payload_) return;
  heartbeatSucceeded(now, now - outstanding_sent_at_, out);
}

void Session::handle(const event::TimerFired&, MonoTime now, SessionActions& out) {
  switch (status_.phase) {
    case ConnectionPhase::kConnecting:
      if (now >= connect_deadline_) {
        out.abandon_connection = true;
        connectionLost(
            Failure::make(FailureReason::kConnectTimeout,
                          "no open connection within " + formatDuration(connect_timeout_)),
            now, out);
      }
      return;
    case ConnectionPhase::kBackingOff:
      if (now >= retry_at_) beginAttempt(now, out);
      return;
    case ConnectionPhase::kStopped:
      return;
    case ConnectionPhase::kOpen:
      break;
  }

  if (stable_deadline_ && now >= *stable_deadline_) {
    stable_deadline_.reset();
    backoff_.reset();
    if (status_.reconnect_attempts != 0) {
      status_.reconnect_attempts = 0;
      out.status_changed = true;
    }
  }

  if (!isHeartbeatSender()) {
    if (now >= silence_deadline_) {
      const Duration silent_for = now - (silence_deadline_ - heartbeat_.timeout);
      silence_deadline_ = now + heartbeat_.timeout;  // the next window starts now
      heartbeatFailed(
          Failure::make(FailureReason::kSilence, "no message for " + formatDuration(silent_for)),
          now, out);
    }
    return;
  }

  if (outstanding_ && now >= reply_deadline_) {
    const std::string waited = formatDuration(now - outstanding_sent_at_);
    Failure failure =
        mismatched_reply_
            ? Failure::make(
                  FailureReason::kReplyMismatch,
                  "no matching reply within " + waited + "; last reply: " + *mismatched_reply_)
            : Failure::make(
                  FailureReason::kPongTimeout,
                  std::string(heartbeat_.mode == HeartbeatMode::kPing ? "no pong" : "no reply") +
                      " within " + waited);
    heartbeatFailed(std::move(failure), now, out);
    if (status_.phase != ConnectionPhase::kOpen) return;
  }
  if (!outstanding_ && now >= next_send_at_) sendHeartbeat(now, out);
}

void Session::beginAttempt(MonoTime now, SessionActions& out) {
  status_.phase = ConnectionPhase::kConnecting;
  status_.next_attempt.reset();
  attempt_started_ = now;
  connect_deadline_ = now + connect_timeout_;
  out.connect = true;
  out.status_changed = true;
}

void Session::sendHeartbeat(MonoTime now, SessionActions& out) {
  outstanding_ = true;
  outstanding_sent_at_ = now;
  reply_deadline_ = now + heartbeat_.timeout;
  next_send_at_ = now + heartbeat_.interval;
  mismatched_reply_.reset();
  ++status_.heartbeats_sent;
  if (heartbeat_.mode == HeartbeatMode::kPing) {
    ping_payload_ = std::to_string(++ping_sequence_);
    out.send_ping = true;
  } else {
    out.send_text = true;
  }
}

void Session::heartbeatSucceeded(MonoTime now, std::optional<Duration> rtt, SessionActions& out) {
  outstanding_ = false;
  failures_on_connection_ = 0;
  out.heartbeat_succeeded = true;
  if (consecutive_successes_ < UINT32_MAX) ++consecutive_successes_;
  if (rtt) {
    rtt_.addSample(*rtt);
    status_.last_rtt = rtt_.last();
    status_.smoothed_rtt = rtt_.smoothed();
    out.rtt_sampled = true;
  }
  if (status_.consecutive_failures != 0) {
    status_.consecutive_failures = 0;
    out.status_changed = true;
  }
  if (status_.health != Health::kHealthy &&
      consecutive_successes_ >= heartbeat_.healthy_threshold) {
    setHealth(Health::kHealthy, now, out);
    stable_deadline_ = now + reset_after_;
  }
  // An answer that came after the next send time (timeout > interval) releases the next
  // heartbeat at once.
  if (isHeartbeatSender() && now >= next_send_at_) sendHeartbeat(now, out);
}

void Session::heartbeatFailed(Failure failure, MonoTime now, SessionActions& out) {
  outstanding_ = false;
  consecutive_successes_ = 0;
  if (failures_on_connection_ < UINT32_MAX) ++failures_on_connection_;
  const std::string why = std::string("heartbeat failed: ") + toString(failure.reason);
  recordFailure(std::move(failure), now, out);
  if (failures_on_connection_ < heartbeat_.unhealthy_threshold) return;
  setHealth(Health::kUnhealthy, now, out);
  out.close = CloseRequest{kCloseNormal, why};
  enterBackoff(now, out);
}

void Session::connectionLost(Failure failure, MonoTime now, SessionActions& out) {
  consecutive_successes_ = 0;
  outstanding_ = false;
  recordFailure(std::move(failure), now, out);
  setHealth(Health::kUnhealthy, now, out);
  enterBackoff(now, out);
}

void Session::recordFailure(Failure failure, MonoTime now, SessionActions& out) {
  failure.at = now;
  status_.last_failure = std::move(failure);
  if (status_.consecutive_failures < UINT32_MAX) ++status_.consecutive_failures;
  out.status_changed = true;
  out.failure_recorded = true;
}

void Session::setHealth(Health health, MonoTime now, SessionActions& out) {
  if (health != Health::kHealthy) stable_deadline_.reset();
  if (status_.health == health) return;
  out.transition = HealthTransition{status_.health, health};
  status_.health = health;
  status_.last_transition = now;
  out.status_changed = true;
}

void Session::enterBackoff(MonoTime now, SessionActions& out) {
  status_.phase = ConnectionPhase::kBackingOff;
  retry_at_ = std::max(now, attempt_started_ + backoff_.nextDelay(jitter_));
  status_.next_attempt = retry_at_;
  status_.reconnect_attempts = backoff_.retries();
  out.status_changed = true;
}

}  // namespace wsvisor::core
