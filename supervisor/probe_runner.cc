#include "supervisor/probe_runner.h"

#include <memory>
#include <string>
#include <utility>

#include "supervisor/log.h"

namespace wsvisor {

namespace {

RegistryError shuttingDown() {
  return RegistryError{RegistryError::Code::kUnavailable, "wsvisor is shutting down"};
}

}  // namespace

std::variant<ProbeRunner::Ticket, RegistryError> ProbeRunner::probe(core::EndpointSpec spec,
                                                                    uint32_t heartbeats,
                                                                    Done done) {
  if (auto error = core::prepareProbe(spec, heartbeats)) {
    return RegistryError{RegistryError::Code::kInvalidArgument, error->toString()};
  }
  MutexLock lock(start_mu_);
  if (shards_.shutDown()) return shuttingDown();
  const size_t running = shards_.probesRunning();
  if (running >= max_probes_) {
    return RegistryError{RegistryError::Code::kResourceExhausted,
                         "probe limit reached: " + std::to_string(running) +
                             " probes are running; at most " + std::to_string(max_probes_) +
                             " run at once"};
  }
  const size_t endpoints = shards_.endpointsPlaced();
  if (endpoints + running >= shards_.maxConnections()) {
    return RegistryError{
        RegistryError::Code::kResourceExhausted,
        "no file descriptor left for a probe: " + std::to_string(endpoints) + " endpoints and " +
            std::to_string(running) + " probes use the open-files budget of " +
            std::to_string(shards_.maxConnections()) + " connections (see the start-up log)"};
  }
  auto shared = std::make_shared<const core::EndpointSpec>(std::move(spec));
  const std::string url = shared->url;
  auto ticket = shards_.startProbe(std::move(shared), heartbeats, std::move(done));
  if (!ticket) return shuttingDown();
  WSV_LOG(kDebug) << "probe of " << url << " started: " << heartbeats << " heartbeats";
  return *ticket;
}

}  // namespace wsvisor
