#pragma once

#include <cstdint>
#include <optional>

#include "supervisor/core/time.h"
#include "supervisor/core/timer_wheel.h"
#include "supervisor/shard_context.h"
#include "supervisor/websocket_transport.h"

namespace wsvisor {

// The single timer of one Session driven on an io thread (a supervised endpoint or a probe):
// kept armed at the session's next deadline on the shard's timing wheel (ShardTimers, 10 ms
// slots), and routed back by key through it, never by pointer. Destroying it disarms it, so a
// deadline never outlives its session.
//
// Used from the io thread only.
class SessionTimer {
 public:
  SessionTimer(ShardContext& shard, uint64_t key);

  // Arms the timer for `deadline`, or disarms it (nullopt). No-op when already armed for it.
  void arm(std::optional<core::MonoTime> deadline);
  void cancel();
  // The wait for `deadline` expired. True: deliver TimerFired to the session now. False: the
  // verdict is put off by one loop pass and the timer re-armed, because a TimerFired now would
  // fail a heartbeat (`heartbeat_fails_now`) while unread bytes wait on `connection`.
  bool expired(core::MonoTime deadline, bool heartbeat_fails_now, const ConnectionRef& connection);

 private:
  ShardContext& shard_;
  core::TimerWheel::Entry entry_;  // armed for the deadline the timer waits for
  // The deadline whose failure verdict was put off once to read input that had already arrived.
  std::optional<core::MonoTime> deferred_for_;
};

}  // namespace wsvisor
