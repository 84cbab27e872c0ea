#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "supervisor/core/endpoint_status.h"

namespace wsvisor::core {

using WallTime = std::chrono::system_clock::time_point;

// One entry of the health stream (see WatchHealth in the API).
struct HealthEvent {
  enum class Type { kSnapshot, kSnapshotComplete, kRegistered, kChanged, kUnregistered };

  Type type = Type::kChanged;
  uint64_t revision = 0;
  std::string endpoint_id;
  std::map<std::string, std::string> labels;
  EndpointStatus status;
  std::optional<Health> previous_health;  // kChanged with a health transition
  bool coalesced = false;
  WallTime time{};
};

}  // namespace wsvisor::core
