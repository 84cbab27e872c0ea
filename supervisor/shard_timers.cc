#include "supervisor/shard_timers.h"

#include <utility>

namespace wsvisor {

namespace {

// One revolution of the wheel covers 10.24 s. A deadline further away (a long backoff, a long
// connect timeout) stays in its slot until its revolution comes.
constexpr size_t kSlots = 1024;

}  // namespace

ShardTimers::ShardTimers(asio::io_context& io, Fire fire)
    : wheel_(kSlotWidth, kSlots, core::MonoClock::now()), timer_(io), fire_(std::move(fire)) {}

void ShardTimers::arm(core::TimerWheel::Entry& entry, core::MonoTime expiry,
                      core::MonoTime deadline) {
  wheel_.arm(entry, expiry, deadline);
  if (running_) return;  // the Asio timer is set once the run ends
  const core::MonoTime at = wheel_.firesAt(entry);
  if (!waiting_until_ || at < *waiting_until_) waitUntil(at);
}

void ShardTimers::waitForNextDue() {
  const std::optional<core::MonoTime> next = wheel_.nextDue();
  if (next && (!waiting_until_ || *next < *waiting_until_)) waitUntil(*next);
}

void ShardTimers::waitUntil(core::MonoTime at) {
  waiting_until_ = at;
  timer_.expires_at(at);  // cancels the previous wait
  timer_.async_wait([this](const std::error_code& ec) {
    if (ec == asio::error::operation_aborted) return;
    waiting_until_.reset();
    running_ = true;
    wheel_.runDue(core::MonoClock::now(), fire_);
    running_ = false;
    waitForNextDue();
  });
}

}  // namespace wsvisor
