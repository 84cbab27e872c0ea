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

// For reasons people read: "2m", "30s", "1500ms".
std::string formatRoundDuration(Duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms != 0 && ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

// Heartbeat replies quoted in a failure detail are cut to this length.
constexpr size_t kQuotedReplyBytes = 64;

}  // namespace

Session::Session(const HeartbeatPolicy& heartbeat, const BackoffPolicy& backoff,
                 Duration connect_timeout, JitterSource& jitter, const FlapPolicy& flapping)
    : heartbeat_(heartbeat),
      reset_after_(backoff.reset_after),
      connect_timeout_(connect_timeout),
      backoff_(backoff),
      jitter_(jitter),
      reply_matcher_(heartbeat.payload, heartbeat.expect),
      flap_(flapping) {}

SessionActions Session::onEvent(const SessionEvent& event, MonoTime now) {
  SessionActions out;
  std::visit([&](const auto& e) { handle(e, now, out); }, event);
  return out;
}

Duration Session::currentInterval() const {
  const bool down = status_.underlying_health != Health::kHealthy || failures_on_connection_ > 0;
  if (down && heartbeat_.unhealthy_interval > Duration::zero())
    return heartbeat_.unhealthy_interval;
  return heartbeat_.interval;
}

std::optional<MonoTime> Session::nextDeadline() const {
  if (!started_) return std::nullopt;
  // Plain times with "never" as the largest one: this runs several times per heartbeat.
  constexpr MonoTime kNever = MonoTime::max();
  MonoTime due = kNever;
  switch (status_.phase) {
    case ConnectionPhase::kConnecting:
      due = connect_deadline_;
      break;
    case ConnectionPhase::kBackingOff:
      due = retry_at_;
      break;
    case ConnectionPhase::kOpen:
      if (heartbeat_.mode == HeartbeatMode::kPassive) {
        due = silence_deadline_;
      } else if (isHeartbeatSender()) {
        if (maySendMore()) due = nextSendAt();
        if (!sent_times_.empty()) due = std::min(due, sent_times_.front() + heartbeat_.timeout);
      }
      if (stable_deadline_) due = std::min(due, *stable_deadline_);
      break;
    case ConnectionPhase::kStopped:
    case ConnectionPhase::kStoredSpecInvalid:
      return std::nullopt;
  }
  if (const auto quiet = flap_.quietDeadline()) due = std::min(due, *quiet);
  if (due == kNever) return std::nullopt;
  return due;
}

bool Session::heartbeatFailsAt(MonoTime now) const {
  if (!started_ || status_.phase != ConnectionPhase::kOpen) return false;
  if (heartbeat_.mode == HeartbeatMode::kPassive) return now >= silence_deadline_;
  return !sent_times_.empty() && now >= sent_times_.front() + heartbeat_.timeout;
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
    sent_times_.clear();
    late_replies_owed_ = 0;
    startHeartbeats(now, out);
    return out;
  }
  // Outstanding heartbeats keep their send times and are judged by the new timeout; the next one
  // follows the new interval from the last send (both read at their moment of use).
  if (heartbeat_.mode == HeartbeatMode::kPassive) {
    silence_deadline_ = std::min(silence_deadline_, now + heartbeat_.timeout);
  }
  return out;
}

SessionActions Session::updateFlapPolicy(const FlapPolicy& flapping, MonoTime now) {
  SessionActions out;
  if (flap_.setPolicy(flapping)) {
    report(status_.underlying_health, "flap detection turned off", now, out);
  }
  settleFlapping(now, out);  // a shorter quiet period may have run out already
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
  sent_times_.clear();
  mismatched_reply_.reset();
  late_replies_owed_ = 0;
  out.status_changed = true;
  startHeartbeats(now, out);
}

void Session::startHeartbeats(MonoTime now, SessionActions& out) {
  switch (heartbeat_.mode) {
    case HeartbeatMode::kPing:
    case HeartbeatMode::kText:
      sendHeartbeat(now, out);
      break;
    case HeartbeatMode::kPassive:
      silence_deadline_ = now + heartbeat_.timeout;
      break;
    case HeartbeatMode::kNone:
      heartbeatSucceeded(now, std::nullopt, out);  // the open connection is the check
      break;
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
      if (reply_matcher_.matches(e.payload) && late_replies_owed_ > 0) {
        --late_replies_owed_;  // the reply of a heartbeat that already failed
        return;
      }
      if (sent_times_.empty()) return;  // unsolicited or late: neither success nor failure
      if (reply_matcher_.matches(e.payload)) {
        // Replies carry no id: a matching one answers the oldest outstanding heartbeat.
        const MonoTime sent_at = sent_times_.front();
        sent_times_.erase(sent_times_.begin());
        heartbeatSucceeded(now, now - sent_at, out);
      } else {
        mismatched_reply_ = std::string(e.payload.substr(0, kQuotedReplyBytes));
      }
      return;
    case HeartbeatMode::kPing:
    case HeartbeatMode::kNone:
      return;  // application traffic does not answer a ping
  }
}

size_t Session::pingsAnsweredBy(std::string_view payload) const {
  if (sent_times_.empty()) return 0;
  if (payload == ping_payload_) return sent_times_.size();  // the usual case: the latest ping
  // Payloads are sequence numbers in decimal without leading zeros.
  uint64_t sequence = 0;
  if (payload.empty() || payload.size() > 20 || payload[0] == '0') return 0;
  for (char c : payload) {
    if (c < '0' || c > '9') return 0;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (sequence > (UINT64_MAX - digit) / 10) return 0;
    sequence = sequence * 10 + digit;
  }
  const uint64_t oldest = ping_sequence_ - sent_times_.size() + 1;
  if (sequence < oldest || sequence > ping_sequence_) return 0;
  return static_cast<size_t>(sequence - oldest + 1);
}

void Session::handle(const event::PongReceived& e, MonoTime now, SessionActions& out) {
  if (status_.phase != ConnectionPhase::kOpen || heartbeat_.mode != HeartbeatMode::kPing) return;
  // Only the pong of an outstanding ping counts; unsolicited pongs (RFC 6455 allows them) and
  // late pongs of timed-out pings carry another payload. A pong answers its ping and the older
  // ones: a peer may answer only the latest of several pings.
  const size_t answered = pingsAnsweredBy(e.payload);
  if (answered == 0) return;
  const MonoTime sent_at = sent_times_[answered - 1];
  if (answered == sent_times_.size()) {
    sent_times_.clear();  // the usual case, without a call to memmove
  } else {
    sent_times_.erase(sent_times_.begin(), sent_times_.begin() + static_cast<ptrdiff_t>(answered));
  }
  heartbeatSucceeded(now, now - sent_at, out);
}

void Session::settleFlapping(MonoTime now, SessionActions& out) {
  if (flap_.settle(now)) {
    report(status_.underlying_health,
           "no change for " + formatRoundDuration(flap_.policy().quiet_period), now, out);
  }
}

void Session::handle(const event::TimerFired&, MonoTime now, SessionActions& out) {
  settleFlapping(now, out);
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
    case ConnectionPhase::kStoredSpecInvalid:
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

  switch (heartbeat_.mode) {
    case HeartbeatMode::kNone:
      return;
    case HeartbeatMode::kPassive:
      if (now >= silence_deadline_) {
        const Duration silent_for = now - (silence_deadline_ - heartbeat_.timeout);
        silence_deadline_ = now + heartbeat_.timeout;  // the next window starts now
        heartbeatFailed(
            Failure::make(FailureReason::kSilence, "no message for " + formatDuration(silent_for)),
            now, out);
      }
      return;
    case HeartbeatMode::kPing:
    case HeartbeatMode::kText:
      failOverdueHeartbeats(now, out);
      if (status_.phase != ConnectionPhase::kOpen) return;
      if (maySendMore() && now >= nextSendAt()) sendHeartbeat(now, out);
      return;
  }
}

void Session::failOverdueHeartbeats(MonoTime now, SessionActions& out) {
  while (!sent_times_.empty() && now >= sent_times_.front() + heartbeat_.timeout) {
    const std::string waited = formatDuration(now - sent_times_.front());
    sent_times_.erase(sent_times_.begin());
    if (heartbeat_.mode == HeartbeatMode::kText && late_replies_owed_ < UINT32_MAX) {
      ++late_replies_owed_;
    }
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
  // A TEXT mismatch is quoted by the failure of the round it belongs to; a round starts when
  // nothing is outstanding.
  if (sent_times_.empty()) mismatched_reply_.reset();
  sent_times_.push_back(now);
  last_sent_at_ = now;
  ++status_.heartbeats_sent;
  if (heartbeat_.mode == HeartbeatMode::kPing) {
    ping_payload_ = std::to_string(++ping_sequence_);
    out.send_ping = true;
  } else {
    ++ping_sequence_;
    out.send_text = true;
  }
}

void Session::heartbeatSucceeded(MonoTime now, std::optional<Duration> rtt, SessionActions& out) {
  failures_on_connection_ = 0;
  mismatched_reply_.reset();
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
  if (status_.underlying_health != Health::kHealthy &&
      consecutive_successes_ >= heartbeat_.healthy_threshold) {
    std::string reason;
    switch (heartbeat_.mode) {
      case HeartbeatMode::kNone:
        reason = "connection open";
        break;
      case HeartbeatMode::kPassive:
        reason = heartbeat_.healthy_threshold == 1
                     ? "message received"
                     : std::to_string(heartbeat_.healthy_threshold) + " messages received";
        break;
      case HeartbeatMode::kPing:
      case HeartbeatMode::kText:
        reason = heartbeat_.healthy_threshold == 1
                     ? "heartbeat answered"
                     : std::to_string(heartbeat_.healthy_threshold) + " heartbeats answered";
        break;
    }
    setHealth(Health::kHealthy, std::move(reason), now, out);
    stable_deadline_ = now + reset_after_;
  }
  // An answer that comes after the next send time (all slots were taken) releases the next
  // heartbeat at once.
  if (isHeartbeatSender() && status_.phase == ConnectionPhase::kOpen && maySendMore() &&
      now >= nextSendAt()) {
    sendHeartbeat(now, out);
  }
}

void Session::heartbeatFailed(Failure failure, MonoTime now, SessionActions& out) {
  consecutive_successes_ = 0;
  if (failures_on_connection_ < UINT32_MAX) ++failures_on_connection_;
  const char* reason = toString(failure.reason);
  recordFailure(std::move(failure), now, out);
  if (failures_on_connection_ < heartbeat_.unhealthy_threshold) return;
  const std::string why = std::string("heartbeat failed: ") + reason;
  setHealth(Health::kUnhealthy,
            heartbeat_.unhealthy_threshold == 1
                ? why
                : std::to_string(heartbeat_.unhealthy_threshold) +
                      " heartbeats failed in a row, last: " + reason,
            now, out);
  out.close = CloseRequest{kCloseNormal, why};
  sent_times_.clear();
  enterBackoff(now, out);
}

void Session::connectionLost(Failure failure, MonoTime now, SessionActions& out) {
  const bool was_open = status_.phase == ConnectionPhase::kOpen;
  consecutive_successes_ = 0;
  sent_times_.clear();
  const std::string reason =
      std::string(was_open ? "connection lost: " : "connect failed: ") + toString(failure.reason);
  recordFailure(std::move(failure), now, out);
  setHealth(Health::kUnhealthy, reason, now, out);
  enterBackoff(now, out);
}

void Session::recordFailure(Failure failure, MonoTime now, SessionActions& out) {
  failure.at = now;
  status_.last_failure = std::move(failure);
  if (status_.consecutive_failures < UINT32_MAX) ++status_.consecutive_failures;
  out.status_changed = true;
  out.failure_recorded = true;
}

void Session::setHealth(Health health, std::string reason, MonoTime now, SessionActions& out) {
  if (health != Health::kHealthy) stable_deadline_.reset();
  const Health before = status_.underlying_health;
  if (before == health) return;
  status_.underlying_health = health;
  out.status_changed = true;
  // The quiet period may have run out before the timer that reports it: settle first, so that
  // this change is counted afresh rather than extending a flap that is over.
  settleFlapping(now, out);
  // Only changes between HEALTHY and UNHEALTHY count; the first verdict after UNKNOWN does not.
  if (before != Health::kUnknown) {
    const bool was_flapping = flap_.flapping();
    if (flap_.recordChange(now)) {
      report(Health::kFlapping,
             std::to_string(flap_.policy().threshold + 1) + " changes within " +
                 formatRoundDuration(flap_.policy().window),
             now, out);
      return;
    }
    if (was_flapping) return;  // still FLAPPING: the quiet period starts again
  }
  report(health, std::move(reason), now, out);
}

void Session::report(Health health, std::string reason, MonoTime now, SessionActions& out) {
  if (status_.health == health) return;
  // One event can change the reported health twice (flapping ends, then a heartbeat fails):
  // the transition runs from the health before the event to the last one.
  if (out.transition) {
    out.transition->to = health;
    if (out.transition->from == health) out.transition.reset();  // back where it started
  } else {
    out.transition = HealthTransition{status_.health, health};
  }
  status_.health = health;
  status_.last_transition = now;
  status_.transition_reason = std::move(reason);
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
