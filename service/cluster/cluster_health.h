#pragma once

#include <map>
#include <optional>
#include <string>

#include "supervisor/mutex.h"
#include "wsvisor/v1/supervisor.pb.h"

namespace wsvisor::service {

// The health of every endpoint of the cluster as its owners published it under
// `<prefix>/health/<endpoint-id>`, kept by ClusterMember from a watch. ClusterMember hands each
// status to the registry's health bus (ClusteredRegistry::applyRemoteStatus), which is what Get,
// List, WatchHealth and GetEndpointHistory read; this copy is for statuses that arrive before their
// endpoint's registration does (the two watches run apart). A status here is as fresh as the
// owner's last change of state, not its last heartbeat: owners publish on change only.
//
// Thread-safe.
class ClusterHealth {
 public:
  void set(const std::string& id, v1::EndpointStatus status);
  void erase(const std::string& id);
  void replaceAll(std::map<std::string, v1::EndpointStatus> all);
  std::optional<v1::EndpointStatus> get(const std::string& id) const;

  // Whether `b` differs from `a` in what is worth publishing: health, phase, the health under
  // flap damping, the replica supervising it and the time of the last transition. RTTs and
  // counters change with every heartbeat and are left to the owner's own Get, WatchHealth and
  // metrics.
  static bool sameState(const v1::EndpointStatus& a, const v1::EndpointStatus& b);

 private:
  mutable Mutex mu_;
  std::map<std::string, v1::EndpointStatus> statuses_ WSV_GUARDED_BY(mu_);
};

}  // namespace wsvisor::service
