#include "supervisor/io_shards.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "supervisor/log.h"

namespace wsvisor {

IoShards::IoShards(size_t threads, size_t max_connections, HealthBus& bus, Metrics& metrics)
    : max_connections_(max_connections) {
  for (size_t i = 0; i < std::max<size_t>(1, threads); ++i) {
    shards_.push_back(std::make_unique<IoShard>(i, bus, metrics));
  }
}

IoShards::~IoShards() { shutdown(std::chrono::milliseconds(0)); }

size_t IoShards::leastLoaded() const {
  size_t best = 0;
  for (size_t i = 1; i < shards_.size(); ++i) {
    if (shards_[i]->assigned().load() < shards_[best]->assigned().load()) best = i;
  }
  return best;
}

size_t IoShards::place() {
  const size_t shard = leastLoaded();
  shards_[shard]->assigned().fetch_add(1);
  return shard;
}

void IoShards::unplace(size_t shard) { shards_[shard]->assigned().fetch_sub(1); }

size_t IoShards::endpointsPlaced() const {
  size_t placed = 0;
  for (const auto& shard : shards_) placed += shard->assigned().load();
  return placed;
}

std::optional<IoShards::ProbeTicket> IoShards::startProbe(
    std::shared_ptr<const core::EndpointSpec> spec, uint32_t heartbeats, ProbeRun::Done done) {
  MutexLock lock(probes_mu_);
  if (shut_down_) return std::nullopt;
  probes_running_.fetch_add(1);
  ProbeTicket ticket;
  ticket.shard = leastLoaded();
  ticket.key = shards_[ticket.shard]->startProbe(
      std::move(spec), heartbeats, [this, done = std::move(done)](const core::ProbeResult& result) {
        // The io thread calling this belongs to one of these shards, so `this` is alive.
        probes_running_.fetch_sub(1);
        done(result);
      });
  return ticket;
}

void IoShards::cancelProbe(const ProbeTicket& ticket) {
  // After shutdown the shard's loop has stopped and its probes have reported: the posted cancel
  // never runs, and that is fine.
  if (ticket.shard < shards_.size()) shards_[ticket.shard]->cancelProbe(ticket.key);
}

void IoShards::shutdown(std::chrono::milliseconds grace) {
  {
    // A startProbe() that saw the shards open has handed its probe to a shard before this lock is
    // free; any later one sees shut_down_. So every probe is on a shard before the shards sweep.
    MutexLock lock(probes_mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  // Shards close in parallel: each gets the whole grace period.
  std::vector<std::thread> closers;
  for (auto& shard : shards_) {
    closers.emplace_back([&shard, grace] {
      const size_t still_open = shard->shutdown(grace);
      if (still_open != 0) {
        WSV_LOG(kWarning) << still_open << " upstream connections did not finish closing in time";
      }
    });
  }
  for (auto& closer : closers) closer.join();
}

}  // namespace wsvisor
