#pragma once

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <optional>

#include "supervisor/core/time.h"
#include "supervisor/core/timer_wheel.h"

namespace wsvisor {

// Every session deadline of one io thread on one timing wheel (core::TimerWheel, 10 ms slots),
// driven by a single Asio timer set to the wheel's next due slot. Deadlines in the same slot are
// served by one wake-up: their pings leave together and their pongs come back together. A
// deadline costs an Entry in its session and no allocation; the Asio timer is re-armed only
// when a deadline falls before the slot it waits for.
//
// Used from the io thread only.
class ShardTimers {
 public:
  // Called for each deadline when its slot comes, with the key and deadline it was armed with.
  using Fire = std::function<void(uint64_t key, core::MonoTime deadline)>;

  // Slots are 10 ms wide: at most 10 ms of detection time for batching.
  static constexpr core::Duration kSlotWidth = std::chrono::milliseconds(10);

  ShardTimers(asio::io_context& io, Fire fire);

  // Fires `entry` at the first slot boundary at or after `expiry`, reporting `deadline`. An
  // expiry already past fires after the io thread's next pass over its sockets.
  void arm(core::TimerWheel::Entry& entry, core::MonoTime expiry, core::MonoTime deadline);
  void disarm(core::TimerWheel::Entry& entry) { wheel_.disarm(entry); }

 private:
  // Makes the Asio timer wait for the wheel's next due slot if that is sooner than its wait.
  void waitForNextDue();
  void waitUntil(core::MonoTime at);

  core::TimerWheel wheel_;
  asio::steady_timer timer_;
  std::optional<core::MonoTime> waiting_until_;
  // While the wheel runs, the sessions it fires re-arm their deadlines: the Asio timer is set
  // once afterwards instead of at each.
  bool running_ = false;
  Fire fire_;
};

}  // namespace wsvisor
