#include "supervisor/supervised_endpoint.h"

#include <chrono>
#include <utility>

#include "supervisor/log.h"

namespace wsvisor {

namespace {

core::WallTime wallNow() { return std::chrono::system_clock::now(); }

double unixSeconds(core::WallTime t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

SupervisedEndpoint::SupervisedEndpoint(uint64_t key, uint64_t incarnation,
                                       std::shared_ptr<const core::EndpointSpec> spec,
                                       std::shared_ptr<LiveStats> live, ShardContext& shard)
    : incarnation_(incarnation),
      spec_(std::move(spec)),
      live_(std::move(live)),
      shard_(shard),
      series_(shard.metrics.endpointSeries(spec_->id, spec_->labels)),
      session_(spec_->heartbeat, spec_->backoff, spec_->connect_timeout, shard.jitter,
               spec_->flapping),
      timer_(shard, key),
      connection_(shard.transport, key) {
  if (series_) {
    series_->setUp(false);
    series_->setLastTransition(unixSeconds(wallNow()));
  }
}

SupervisedEndpoint::~SupervisedEndpoint() {
  // A destroyed endpoint must not leave a connection behind.
}

void SupervisedEndpoint::start(core::Duration first_attempt_after) {
  handle(core::event::Start{first_attempt_after});
}

void SupervisedEndpoint::stop(bool shutting_down) {
  publishing_ = false;
  handle(core::event::Stop{shutting_down});
  timer_.cancel();
}

void SupervisedEndpoint::updateSpec(std::shared_ptr<const core::EndpointSpec> spec) {
  spec_ = std::move(spec);
  // Copied labels may have changed; the series of the old values goes when nobody holds it.
  series_ = shard_.metrics.endpointSeries(spec_->id, spec_->labels);
  if (series_) {
    series_->setUp(session_.status().health == core::Health::kHealthy);
    series_->setFlapping(session_.status().health == core::Health::kFlapping);
  }
  const core::ConnectionPhase phase_before = session_.status().phase;
  const core::MonoTime now = core::MonoClock::now();
  core::SessionActions actions =
      session_.updatePolicy(spec_->heartbeat, spec_->backoff, spec_->connect_timeout, now);
  apply(actions, phase_before);
  actions = session_.updateFlapPolicy(spec_->flapping, now);
  apply(actions, phase_before);
}

void SupervisedEndpoint::onTransportEvent(uint64_t attempt, const ConnectionRef& ref,
                                          const core::SessionEvent& event) {
  if (!connection_.isCurrent(attempt) || stopped()) {
    // A connection the session has given up on opened after all: close it at once.
    if (std::holds_alternative<core::event::Connected>(event)) {
      shard_.transport.close(ref, core::kCloseNormal, "superseded");
    }
    return;
  }
  if (std::holds_alternative<core::event::Connected>(event)) connection_.opened(ref);
  handle(event);
}

void SupervisedEndpoint::onTimer(core::MonoTime deadline) {
  if (!timer_.expired(deadline, session_.heartbeatFailsAt(core::MonoClock::now()),
                      connection_.ref())) {
    return;
  }
  handle(core::event::TimerFired{});
}

void SupervisedEndpoint::handle(const core::SessionEvent& event) {
  const core::ConnectionPhase phase_before = session_.status().phase;
  const core::SessionActions actions = session_.onEvent(event, core::MonoClock::now());
  apply(actions, phase_before);
}

void SupervisedEndpoint::handleForTest(const core::SessionEvent& event) { handle(event); }

bool SupervisedEndpoint::reports(const core::SessionActions& actions) {
  if (!publishing_ || retired_) return false;
  // The registry sets `retired` before it announces the end of this registration; the bus drops
  // the changes of an ended registration under the same lock that announces the end. Either way
  // the watchers never see what follows, so neither may the log or the counters.
  if (live_->retired.load(std::memory_order_acquire)) {
    retired_ = true;
    return false;
  }
  if (actions.status_changed &&
      !shard_.bus.publishChanged(spec_->id, incarnation_, session_.status(), wallNow())) {
    retired_ = true;
    return false;
  }
  return true;
}

void SupervisedEndpoint::recordMetrics(const core::SessionActions& actions,
                                       core::ConnectionPhase phase_before) {
  Metrics& metrics = shard_.metrics;
  const core::EndpointStatus& status = session_.status();
  if (actions.send_ping || actions.send_text) shard_.counters.heartbeatSent();
  if (actions.failure_recorded) metrics.failureRecorded(status.last_failure->reason);
  if (phase_before == core::ConnectionPhase::kConnecting) {
    // An attempt ends when the phase leaves CONNECTING: opened, or failed with a reason.
    if (status.phase == core::ConnectionPhase::kOpen) {
      metrics.connectionAttempt(core::FailureReason::kNone);
    } else if (status.phase == core::ConnectionPhase::kBackingOff && actions.failure_recorded) {
      // (A restored endpoint goes from its initial phase to BACKING_OFF without any attempt.)
      metrics.connectionAttempt(status.last_failure->reason);
    }
  }
  if (actions.transition) metrics.healthTransition(actions.transition->to);
  if (!series_) return;
  if (actions.rtt_sampled) {
    series_->observeRtt(std::chrono::duration<double>(*status.last_rtt).count());
  }
  if (actions.transition) {
    series_->setUp(actions.transition->to == core::Health::kHealthy);
    series_->setFlapping(actions.transition->to == core::Health::kFlapping);
    series_->setLastTransition(unixSeconds(wallNow()));
  }
}

void SupervisedEndpoint::apply(const core::SessionActions& actions,
                               core::ConnectionPhase phase_before) {
  connection_.carryOut(actions, session_.pingPayload(), session_.heartbeatPolicy().payload, *spec_);
  if (actions.send_ping || actions.send_text) {
    live_->heartbeats_sent.store(session_.status().heartbeats_sent, std::memory_order_relaxed);
  }
  const core::EndpointStatus& status = session_.status();
  if (actions.rtt_sampled) {
    live_->last_rtt_ns.store(status.last_rtt->count(), std::memory_order_relaxed);
    live_->smoothed_rtt_ns.store(status.smoothed_rtt->count(), std::memory_order_relaxed);
  }
  // Published before anything is logged or counted: whether the bus still takes this
  // registration's changes decides that, so that the counters agree with what the watchers saw.
  if (!reports(actions)) {
    timer_.arm(session_.nextDeadline());
    return;
  }
  if (actions.transition) {
    const LogLevel level =
        actions.transition->to == core::Health::kHealthy ? LogLevel::kInfo : LogLevel::kWarning;
    if (logEnabled(level)) {
      LogLine line(level);
      line.stream() << "endpoint " << spec_->id << " " << core::toString(actions.transition->from)
                    << " -> " << core::toString(actions.transition->to) << " why=\""
                    << status.transition_reason << "\"";
      if (status.underlying_health != core::Health::kHealthy && status.last_failure) {
        line.stream() << " reason=" << core::toString(status.last_failure->reason) << " detail=\""
                      << status.last_failure->detail << "\"";
      } else if (status.last_rtt) {
        line.stream()
            << " rtt_us="
            << std::chrono::duration_cast<std::chrono::microseconds>(*status.last_rtt).count();
      }
    }
  }
  recordMetrics(actions, phase_before);
  timer_.arm(session_.nextDeadline());
}

}  // namespace wsvisor
