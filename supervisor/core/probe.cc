#include "supervisor/core/probe.h"

#include <utility>

namespace wsvisor::core {

namespace {

// The Session a probe runs: the first failure closes, and heartbeats follow `interval` from the
// first one on (see Probe).
HeartbeatPolicy probePolicy(const HeartbeatPolicy& heartbeat) {
  HeartbeatPolicy policy = heartbeat;
  policy.unhealthy_threshold = 1;
  policy.healthy_threshold = 1;
  if (policy.mode == HeartbeatMode::kPing || policy.mode == HeartbeatMode::kText) {
    policy.unhealthy_interval = policy.interval;
  }
  return policy;
}

}  // namespace

std::optional<FieldError> prepareProbe(EndpointSpec& spec, uint32_t& heartbeats) {
  if (spec.id.empty()) spec.id = kProbeId;
  // Labels select registered endpoints; a probe is never selected, so they cannot be wrong.
  spec.labels.clear();
  if (auto error = validateSpec(spec)) return error;
  if (heartbeats == 0) {
    heartbeats = defaults::kProbeHeartbeats;
  } else if (heartbeats > limits::kMaxProbeHeartbeats) {
    return FieldError{"heartbeats", "must be 1 to " + std::to_string(limits::kMaxProbeHeartbeats) +
                                        ", got " + std::to_string(heartbeats)};
  }
  applyDefaults(spec);
  return std::nullopt;
}

Duration probeTimeLimit(const EndpointSpec& spec, uint32_t heartbeats) {
  return spec.connect_timeout + heartbeats * (spec.heartbeat.interval + spec.heartbeat.timeout);
}

Probe::Probe(const EndpointSpec& spec, uint32_t heartbeats, JitterSource& jitter)
    : wanted_(heartbeats),
      session_(probePolicy(spec.heartbeat), spec.backoff, spec.connect_timeout, jitter) {}

SessionActions Probe::start(MonoTime now) {
  started_at_ = now;
  return digest(session_.onEvent(event::Start{}, now), now);
}

SessionActions Probe::onEvent(const SessionEvent& event, MonoTime now) {
  if (finished_) return {};
  return digest(session_.onEvent(event, now), now);
}

SessionActions Probe::cancel(bool shutting_down, MonoTime now) {
  if (finished_) return {};
  const SessionActions stopped = session_.onEvent(event::Stop{shutting_down}, now);
  SessionActions out;
  out.abandon_connection = stopped.abandon_connection;
  if (stopped.close) {
    out.close = shutting_down ? *stopped.close : CloseRequest{kCloseNormal, "probe cancelled"};
  }
  finish(shutting_down ? ProbeResult::Outcome::kShutDown : ProbeResult::Outcome::kCancelled, now);
  return out;
}

std::optional<MonoTime> Probe::nextDeadline() const {
  if (finished_) return std::nullopt;
  return session_.nextDeadline();
}

bool Probe::heartbeatFailsAt(MonoTime now) const {
  return !finished_ && session_.heartbeatFailsAt(now);
}

SessionActions Probe::digest(SessionActions actions, MonoTime now) {
  const EndpointStatus& status = session_.status();
  if (status.phase == ConnectionPhase::kOpen && !result_.connect_time) {
    result_.connect_time = now - started_at_;
  }
  if (actions.rtt_sampled && status.last_rtt) result_.rtts.push_back(*status.last_rtt);
  if (actions.heartbeat_succeeded) ++successes_;

  SessionActions out;
  out.close = std::move(actions.close);
  out.abandon_connection = actions.abandon_connection;
  if (actions.failure_recorded) {
    // The first failure is the answer. The Session has already closed or dropped the connection
    // (threshold 1), or lost it; it would redial after its backoff, which the probe never asks
    // for: nothing after finish() reaches the runtime.
    result_.failure = status.last_failure;
    finish(ProbeResult::Outcome::kFailed, now);
    if (status.phase == ConnectionPhase::kOpen && !out.close) {
      out.close = CloseRequest{kCloseNormal, "probe failed"};
    }
    return out;
  }
  const bool succeeded = session_.heartbeatPolicy().mode == HeartbeatMode::kNone
                             ? status.phase == ConnectionPhase::kOpen
                             : successes_ >= wanted_;
  if (succeeded) {
    // Any heartbeat the same event released is not sent: the probe has its answer.
    finish(ProbeResult::Outcome::kSucceeded, now);
    out.close = CloseRequest{kCloseNormal, "probe complete"};
    return out;
  }
  out.send_ping = actions.send_ping;
  out.send_text = actions.send_text;
  out.connect = actions.connect;
  if (out.send_ping || out.send_text) ++result_.heartbeats_sent;
  return out;
}

void Probe::finish(ProbeResult::Outcome outcome, MonoTime now) {
  finished_ = true;
  result_.outcome = outcome;
  result_.duration = now - started_at_;
}

}  // namespace wsvisor::core
