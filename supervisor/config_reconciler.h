#pragma once

#include <cstddef>
#include <string>
#include <variant>
#include <vector>

#include "supervisor/core/endpoint_spec.h"
#include "supervisor/registry.h"

namespace wsvisor {

// Keeps the endpoints of the declarative config file (--config) in the registry: on start-up and
// on every reload (SIGHUP) it makes the config-file-owned endpoints exactly those of the file, as
// one all-or-nothing change (Registry::applyBatch). Endpoints registered over the API are never
// touched: an id the API owns is a conflict that refuses the whole file.
//
// Thread-safe (the registry serializes the changes).
class ConfigReconciler {
 public:
  explicit ConfigReconciler(Registry& registry) : registry_(registry) {}

  struct Diff {
    size_t added = 0, updated = 0, removed = 0, unchanged = 0;
  };
  // Adds, updates and removes config-file-owned endpoints until they are exactly `specs`.
  // Every spec is validated first; returns a description of the first problem (naming the
  // entry and field) and changes nothing, or what changed.
  std::variant<Diff, std::string> apply(std::vector<core::EndpointSpec> specs);

  // Makes every config-file-owned endpoint API-owned, in the store too (wsvisor started without
  // --config). Returns how many changed; 0 also when the store refused (logged).
  size_t adoptAll();

 private:
  Registry& registry_;
};

}  // namespace wsvisor
