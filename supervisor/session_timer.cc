#include "supervisor/session_timer.h"

namespace wsvisor {

SessionTimer::SessionTimer(ShardContext& shard, uint64_t key) : shard_(shard), entry_(key) {}

void SessionTimer::arm(std::optional<core::MonoTime> deadline) {
  if (deadline == entry_.armedFor()) return;
  if (!deadline) {
    shard_.timers.disarm(entry_);
    return;
  }
  // The Session does what is due at the moment the timer runs, so the up to 10 ms by which the
  // wheel's slot follows the deadline is harmless.
  shard_.timers.arm(entry_, *deadline, *deadline);
}

void SessionTimer::cancel() { shard_.timers.disarm(entry_); }

bool SessionTimer::expired(core::MonoTime deadline, bool heartbeat_fails_now,
                           const ConnectionRef& connection) {
  if (deferred_for_ != deadline && heartbeat_fails_now &&
      shard_.transport.hasUnreadInput(connection)) {
    // Bytes are waiting in our own socket: the loop is behind, not necessarily the upstream.
    // Re-arm with an expiry already past: the wheel's Asio timer then expires at once, and Asio
    // runs the socket completions found in a reactor pass before the timers that expire in it,
    // so the waiting answer is read before the verdict. Once per deadline, so a peer that floods
    // cannot put it off for ever.
    deferred_for_ = deadline;
    shard_.timers.arm(entry_, core::MonoTime{}, deadline);
    return false;
  }
  return true;
}

}  // namespace wsvisor
