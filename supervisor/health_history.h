#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "supervisor/bounded_ring.h"
#include "supervisor/core/endpoint_status.h"
#include "supervisor/core/health_event.h"

namespace wsvisor {

// One change of an endpoint's reported health (HealthTransition in the API).
struct HealthTransition {
  core::WallTime time{};  // of the event that reported it
  core::Health previous_health = core::Health::kUnknown;
  core::Health health = core::Health::kUnknown;
  std::string reason;                    // EndpointStatus::transition_reason
  std::optional<core::Failure> failure;  // set when the change is to a down state
  std::optional<core::Duration> last_rtt;
  std::optional<core::Duration> smoothed_rtt;
  uint64_t revision = 0;  // of the event that reported it
};

// What is kept of one endpoint's transitions.
struct EndpointHistory {
  std::vector<HealthTransition> transitions;  // oldest first
  uint64_t dropped = 0;                       // older transitions no longer kept
};

// The last `per_endpoint` health transitions of every endpoint, in memory only.
//
// Memory: an endpoint whose health never changed costs nothing; the first transition allocates
// its ring, which then grows with its transitions up to `per_endpoint` entries of about 150
// bytes each (plus the reason and failure texts when they are longer than a short string), so a
// fleet of steady endpoints stays cheap and only flapping ones reach the bound.
//
// Not thread-safe: HealthBus calls it under its lock.
class HealthHistory {
 public:
  // `per_endpoint` 0 keeps nothing (and allocates nothing).
  explicit HealthHistory(size_t per_endpoint) : per_endpoint_(per_endpoint) {}

  void record(const std::string& id, HealthTransition transition);
  // Empty (nothing kept, nothing dropped) for an endpoint that has no transitions.
  EndpointHistory get(const std::string& id) const;
  // The endpoint was unregistered: a later registration under the same id starts afresh.
  void forget(const std::string& id);

  size_t trackedEndpointsForTest() const { return rings_.size(); }
  // Transitions `id`'s storage has room for; 0 when it has none.
  size_t allocatedForTest(const std::string& id) const;

 private:
  struct Ring {
    explicit Ring(size_t bound) : transitions(bound) {}
    BoundedRing<HealthTransition> transitions;
    uint64_t dropped = 0;
  };

  const size_t per_endpoint_;
  std::unordered_map<std::string, Ring> rings_;  // only endpoints with a transition
};

}  // namespace wsvisor
