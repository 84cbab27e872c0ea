#include "supervisor/session_timer.h"

#include <chrono>

namespace wsvisor {

namespace {

// Timers expire on a 10 ms grid. Endpoints whose deadlines fall in the same slot are then served
// by one reactor pass: their pings leave together and their pongs come back together, so one
// wake-up handles many sockets instead of one each. Costs at most 10 ms of detection time; the
// Session does what is due at the moment the timer runs, so a later timer is harmless.
constexpr core::Duration kTimerSlot = std::chrono::milliseconds(10);

core::MonoTime onSlotBoundary(core::MonoTime deadline) {
  const core::Duration since_epoch = deadline.time_since_epoch();
  const core::Duration into_slot = since_epoch % kTimerSlot;
  return into_slot == core::Duration::zero() ? deadline : deadline - into_slot + kTimerSlot;
}

}  // namespace

SessionTimer::SessionTimer(ShardContext& shard, uint64_t key)
    : shard_(shard), key_(key), timer_(shard.io) {}

void SessionTimer::arm(std::optional<core::MonoTime> deadline) {
  if (deadline == armed_for_) return;
  armed_for_ = deadline;
  if (!deadline) {
    timer_.cancel();
    return;
  }
  waitFor(onSlotBoundary(*deadline), *deadline);
}

void SessionTimer::cancel() {
  armed_for_.reset();
  timer_.cancel();
}

bool SessionTimer::expired(core::MonoTime deadline, bool heartbeat_fails_now,
                           const ConnectionRef& connection) {
  if (armed_for_ == deadline) armed_for_.reset();
  if (deferred_for_ != deadline && heartbeat_fails_now &&
      shard_.transport.hasUnreadInput(connection)) {
    // Bytes are waiting in our own socket: the loop is behind, not necessarily the upstream.
    // Re-arm for now: Asio runs socket completions found in a reactor pass before the timers
    // that expire in it, so the waiting answer is read before the verdict. Once per deadline,
    // so a peer that floods cannot put it off for ever.
    deferred_for_ = deadline;
    armed_for_ = deadline;
    waitFor(core::MonoClock::now(), deadline);
    return false;
  }
  return true;
}

void SessionTimer::waitFor(core::MonoTime expiry, core::MonoTime deadline) {
  timer_.expires_at(expiry);  // cancels the previous wait
  timer_.async_wait([shard = &shard_, key = key_, deadline](const std::error_code& ec) {
    if (ec == asio::error::operation_aborted) return;
    shard->timer_fired(key, deadline);
  });
}

}  // namespace wsvisor
