#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "supervisor/core/endpoint_spec.h"
#include "supervisor/health_bus.h"
#include "supervisor/io_shard.h"
#include "supervisor/metrics.h"
#include "supervisor/mutex.h"
#include "supervisor/probe_run.h"

namespace wsvisor {

// The io threads of the process and the upstream connections they hold. Every connection, an
// endpoint's or a probe's, is one descriptor of the open-files budget (`max_connections`), so
// the endpoints placed on the shards and the probes running on them are counted here, against
// that one budget, for the Registry and the ProbeRunner alike.
//
// Thread-safe. Placement and the counts are atomics, read without a lock; starting a probe and
// shutting down take `probes_mu_`, so that no probe starts on a shard that shutdown() has swept.
class IoShards {
 public:
  IoShards(size_t threads, size_t max_connections, HealthBus& bus, Metrics& metrics);
  ~IoShards();
  IoShards(const IoShards&) = delete;
  IoShards& operator=(const IoShards&) = delete;

  // Counts one more endpoint on the shard with the fewest and returns that shard's index. Every
  // place() is undone by one unplace() of the same shard.
  size_t place();
  void unplace(size_t shard);
  IoShard& operator[](size_t shard) { return *shards_[shard]; }

  // Endpoints placed on the shards, probes running on them, and the budget both share.
  size_t endpointsPlaced() const;
  size_t probesRunning() const { return probes_running_.load(); }
  size_t maxConnections() const { return max_connections_; }
  // Whether one more connection fits the budget next to the placed endpoints and running probes.
  bool hasRoomForAnotherConnection() const {
    return endpointsPlaced() + probesRunning() < max_connections_;
  }

  // A running probe, to cancel it with.
  struct ProbeTicket {
    size_t shard = 0;
    uint64_t key = 0;
  };
  // Runs one probe of `spec` (defaults applied) on the least loaded shard, counted among the
  // running probes until just before `done` is called (exactly once, on that io thread). Returns
  // nullopt, and never calls `done`, once shutdown() has begun.
  std::optional<ProbeTicket> startProbe(std::shared_ptr<const core::EndpointSpec> spec,
                                        uint32_t heartbeats, ProbeRun::Done done)
      WSV_EXCLUDES(probes_mu_);
  // Ends the probe if it still runs (its `done` reports kCancelled); no-op otherwise, also after
  // shutdown.
  void cancelProbe(const ProbeTicket& ticket);

  // Whether shutdown() has begun.
  bool shutDown() const WSV_EXCLUDES(probes_mu_) {
    MutexLock lock(probes_mu_);
    return shut_down_;
  }
  // Closes every connection with 1001 and ends every probe (kShutDown), all shards in parallel,
  // each waiting at most `grace` for its closing handshakes; then stops the threads. Idempotent.
  void shutdown(std::chrono::milliseconds grace) WSV_EXCLUDES(probes_mu_);

 private:
  size_t leastLoaded() const;

  const size_t max_connections_;
  std::vector<std::unique_ptr<IoShard>> shards_;
  std::atomic<size_t> probes_running_{0};
  mutable Mutex probes_mu_;
  bool shut_down_ WSV_GUARDED_BY(probes_mu_) = false;
};

}  // namespace wsvisor
