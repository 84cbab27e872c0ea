#include "supervisor/probe_run.h"

#include <chrono>
#include <utility>

#include "supervisor/log.h"

namespace wsvisor {

ProbeRun::ProbeRun(uint64_t key, std::shared_ptr<const core::EndpointSpec> spec,
                   uint32_t heartbeats, Done done, ShardContext& shard)
    : spec_(std::move(spec)),
      shard_(shard),
      probe_(*spec_, heartbeats, shard.jitter),
      done_(std::move(done)),
      timer_(shard, key),
      connection_(shard.transport, key) {}

ProbeRun::~ProbeRun() {
  // The caller is waiting for an answer whatever happens, and a probe must not leave a
  // connection behind.
  cancel(/*shutting_down=*/true);
}

void ProbeRun::start() { apply(probe_.start(core::MonoClock::now())); }

void ProbeRun::cancel(bool shutting_down) {
  if (probe_.finished()) return;
  apply(probe_.cancel(shutting_down, core::MonoClock::now()));
}

void ProbeRun::onTransportEvent(uint64_t attempt, const ConnectionRef& ref,
                                const core::SessionEvent& event) {
  if (!connection_.isCurrent(attempt) || probe_.finished()) {
    // A connection the probe has given up on opened after all: close it at once.
    if (std::holds_alternative<core::event::Connected>(event)) {
      shard_.transport.close(ref, core::kCloseNormal, "probe ended");
    }
    return;
  }
  if (std::holds_alternative<core::event::Connected>(event)) connection_.opened(ref);
  apply(probe_.onEvent(event, core::MonoClock::now()));
}

void ProbeRun::onTimer(core::MonoTime deadline) {
  if (!timer_.expired(deadline, probe_.heartbeatFailsAt(core::MonoClock::now()),
                      connection_.ref())) {
    return;
  }
  apply(probe_.onEvent(core::event::TimerFired{}, core::MonoClock::now()));
}

void ProbeRun::apply(const core::SessionActions& actions) {
  connection_.carryOut(actions, probe_.pingPayload(), probe_.heartbeatPolicy().payload, *spec_);
  timer_.arm(probe_.nextDeadline());
  if (probe_.finished()) report();
}

void ProbeRun::report() {
  if (!done_) return;
  const core::ProbeResult& result = probe_.result();
  shard_.metrics.probeFinished(result.outcome);
  if (logEnabled(LogLevel::kInfo)) {
    LogLine line(LogLevel::kInfo);
    line.stream() << "probe of " << spec_->url << " ";
    switch (result.outcome) {
      case core::ProbeResult::Outcome::kSucceeded:
        line.stream() << "succeeded";
        break;
      case core::ProbeResult::Outcome::kFailed:
        line.stream() << "failed reason=" << core::toString(result.failure->reason) << " detail=\""
                      << result.failure->detail << "\"";
        break;
      case core::ProbeResult::Outcome::kCancelled:
        line.stream() << "cancelled";
        break;
      case core::ProbeResult::Outcome::kShutDown:
        line.stream() << "ended by shutdown";
        break;
    }
    line.stream() << " after "
                  << std::chrono::duration_cast<std::chrono::microseconds>(result.duration).count()
                  << "us";
  }
  // Moved out first: whatever `done` does, it is called once.
  Done done = std::move(done_);
  done_ = nullptr;
  done(result);
}

}  // namespace wsvisor
