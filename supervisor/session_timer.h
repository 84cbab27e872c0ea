#pragma once

#include <asio/steady_timer.hpp>
#include <cstdint>
#include <optional>

#include "supervisor/core/time.h"
#include "supervisor/shard_context.h"
#include "supervisor/websocket_transport.h"

namespace wsvisor {

// The single timer of one Session driven on an io thread (a supervised endpoint or a probe):
// kept armed at the session's next deadline, rounded up to a 10 ms slot grid, and routed back by
// key through ShardContext::timer_fired, never by pointer, so that an expiry that outlives its
// owner finds nothing and does nothing.
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
  // Arms the timer to expire at `expiry` and report `deadline`.
  void waitFor(core::MonoTime expiry, core::MonoTime deadline);

  ShardContext& shard_;
  const uint64_t key_;
  asio::steady_timer timer_;
  std::optional<core::MonoTime> armed_for_;
  // The deadline whose failure verdict was put off once to read input that had already arrived.
  std::optional<core::MonoTime> deferred_for_;
};

}  // namespace wsvisor
