#include "service/cluster/cluster_health.h"

#include <utility>

namespace wsvisor::service {

void ClusterHealth::set(const std::string& id, v1::EndpointStatus status) {
  MutexLock lock(mu_);
  statuses_[id] = std::move(status);
}

void ClusterHealth::erase(const std::string& id) {
  MutexLock lock(mu_);
  statuses_.erase(id);
}

void ClusterHealth::replaceAll(std::map<std::string, v1::EndpointStatus> all) {
  MutexLock lock(mu_);
  statuses_ = std::move(all);
}

std::optional<v1::EndpointStatus> ClusterHealth::get(const std::string& id) const {
  MutexLock lock(mu_);
  auto it = statuses_.find(id);
  if (it == statuses_.end()) return std::nullopt;
  return it->second;
}

bool ClusterHealth::sameState(const v1::EndpointStatus& a, const v1::EndpointStatus& b) {
  return a.health() == b.health() && a.phase() == b.phase() &&
         a.supervised_by() == b.supervised_by() && a.underlying_health() == b.underlying_health() &&
         a.last_transition_time().seconds() == b.last_transition_time().seconds() &&
         a.last_transition_time().nanos() == b.last_transition_time().nanos();
}

}  // namespace wsvisor::service
