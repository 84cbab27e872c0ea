#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <variant>

#include "supervisor/core/endpoint_spec.h"
#include "supervisor/core/probe.h"
#include "supervisor/io_shards.h"
#include "supervisor/mutex.h"
#include "supervisor/registry.h"

namespace wsvisor {

// Probes that may run at once. Each holds a socket and an io-thread timer for at most its time
// limit; the cap keeps a burst of ProbeEndpoint calls from crowding out supervision.
inline constexpr size_t kDefaultMaxProbes = 64;

// Runs ProbeEndpoint's probes: one connection with a spec, a few heartbeats, a result. A probe
// registers, stores and publishes nothing; it runs on the registry's io threads and holds a
// connection of the same open-files budget as the registered endpoints (IoShards), so neither
// can crowd the other out of descriptors.
//
// Thread-safe.
class ProbeRunner {
 public:
  ProbeRunner(Registry& registry, size_t max_probes = kDefaultMaxProbes)
      : shards_(registry.shards()), max_probes_(max_probes) {}

  using Ticket = IoShards::ProbeTicket;
  using Done = std::function<void(const core::ProbeResult& result)>;
  // Checks the request (core::prepareProbe: INVALID_ARGUMENT naming the field) and room for it
  // (RESOURCE_EXHAUSTED: max_probes running, or no connection left in the budget; UNAVAILABLE
  // once wsvisor shuts down), then runs one probe on an io thread. On success `done` is called
  // exactly once, on that io thread, also when the probe is cancelled or wsvisor shuts down; on
  // error never. `done` must not block.
  std::variant<Ticket, RegistryError> probe(core::EndpointSpec spec, uint32_t heartbeats, Done done)
      WSV_EXCLUDES(start_mu_);
  // Ends a probe that still runs: its connection is closed and `done` reports kCancelled. No-op
  // for a probe that has ended, also after shutdown.
  void cancel(const Ticket& ticket) { shards_.cancelProbe(ticket); }
  size_t running() const { return shards_.probesRunning(); }

 private:
  IoShards& shards_;
  const size_t max_probes_;
  // Held from the checks to the start, so that concurrent calls cannot both take the last slot.
  Mutex start_mu_;
};

}  // namespace wsvisor
