#include "supervisor/health_history.h"

#include <utility>

namespace wsvisor {

void HealthHistory::record(const std::string& id, HealthTransition transition) {
  if (per_endpoint_ == 0) return;
  auto it = rings_.try_emplace(id, per_endpoint_).first;
  if (it->second.transitions.push(std::move(transition))) ++it->second.dropped;
}

EndpointHistory HealthHistory::get(const std::string& id) const {
  EndpointHistory history;
  auto it = rings_.find(id);
  if (it == rings_.end()) return history;
  const Ring& ring = it->second;
  history.transitions.reserve(ring.transitions.size());
  for (size_t i = 0; i < ring.transitions.size(); ++i) {
    history.transitions.push_back(ring.transitions[i]);
  }
  history.dropped = ring.dropped;
  return history;
}

void HealthHistory::forget(const std::string& id) { rings_.erase(id); }

size_t HealthHistory::allocatedForTest(const std::string& id) const {
  auto it = rings_.find(id);
  return it == rings_.end() ? 0 : it->second.transitions.allocated();
}

}  // namespace wsvisor
