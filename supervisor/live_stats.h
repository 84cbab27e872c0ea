#pragma once

#include <atomic>
#include <cstdint>

namespace wsvisor {

// Per-endpoint figures that change with every heartbeat. Written only by the endpoint's io
// thread and read by anyone, so they are atomics rather than published events: the heartbeat
// path takes no lock.
struct LiveStats {
  static constexpr int64_t kNone = -1;
  std::atomic<int64_t> last_rtt_ns{kNone};
  std::atomic<int64_t> smoothed_rtt_ns{kNone};
  std::atomic<uint64_t> heartbeats_sent{0};
  // Set by the registry, under its map lock, before it announces that this registration ended
  // (unregistered, redialled under a new incarnation, handed to another replica). From then on
  // the io thread logs, counts and publishes nothing for it, although its session runs until the
  // posted IoShard::remove arrives.
  std::atomic<bool> retired{false};
};

}  // namespace wsvisor
