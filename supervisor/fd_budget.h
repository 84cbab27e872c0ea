#pragma once

#include <cstddef>
#include <string>

namespace wsvisor {

// Each supervised endpoint holds one socket. The open-files limit therefore caps how many
// endpoints one process can serve; past it, websocketpp would report fd exhaustion as a
// misleading connect timeout. wsvisor raises its soft limit to the hard limit at start-up and
// refuses registrations beyond what that allows.
struct FdBudget {
  size_t soft_limit = 0;  // after raising
  size_t hard_limit = 0;
  size_t reserved = 0;       // for listeners, gRPC clients, files, the store
  size_t max_endpoints = 0;  // soft_limit - reserved

  // Raises RLIMIT_NOFILE's soft limit to its hard limit and computes the budget.
  static FdBudget raiseAndMeasure(size_t reserved);
  std::string describe() const;
};

}  // namespace wsvisor
