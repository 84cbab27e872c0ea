#include "supervisor/config_reconciler.h"

#include <map>
#include <memory>
#include <utility>

#include "supervisor/core/spec_validation.h"
#include "supervisor/log.h"

namespace wsvisor {

std::variant<ConfigReconciler::Diff, std::string> ConfigReconciler::apply(
    std::vector<core::EndpointSpec> specs) {
  // Validate everything before changing anything: a bad file leaves the running set untouched.
  std::map<std::string, core::EndpointSpec> wanted;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (auto error = core::validateSpec(specs[i])) {
      return "endpoints[" + std::to_string(i) + "] (" + specs[i].id + "): " + error->toString();
    }
    core::applyDefaults(specs[i]);
    const std::string id = specs[i].id;
    if (!wanted.emplace(id, std::move(specs[i])).second) {
      return "endpoints[" + std::to_string(i) + "]: id '" + id + "' is listed twice";
    }
  }

  Diff diff;
  const size_t max_endpoints = registry_.maxEndpoints();
  auto made = registry_.applyBatch(
      [&](const Registry::RegisteredSet& current) -> std::variant<Registry::Batch, RegistryError> {
        // The diff against the running set.
        Registry::Batch batch;
        size_t new_count = 0;
        for (auto& [id, spec] : wanted) {
          auto it = current.find(id);
          if (it == current.end()) {
            ++new_count;
            batch.puts.push_back({std::make_shared<const core::EndpointSpec>(std::move(spec)),
                                  EndpointOwner::kConfigFile, 1});
          } else if (it->second.owner == EndpointOwner::kApi) {
            return RegistryError{RegistryError::Code::kFailedPrecondition,
                                 "endpoint '" + id +
                                     "' is registered over the API; unregister it there before "
                                     "the config file can own it"};
          } else if (*it->second.spec == spec) {
            ++diff.unchanged;
          } else {
            batch.puts.push_back({std::make_shared<const core::EndpointSpec>(std::move(spec)),
                                  EndpointOwner::kConfigFile, it->second.generation + 1});
          }
        }
        for (const auto& [id, registered] : current) {
          if (registered.owner == EndpointOwner::kConfigFile && wanted.count(id) == 0) {
            batch.removes.push_back(id);
          }
        }
        if (current.size() - batch.removes.size() + new_count > max_endpoints) {
          return RegistryError{RegistryError::Code::kResourceExhausted,
                               "the config file would exceed the endpoint limit of " +
                                   std::to_string(max_endpoints)};
        }
        diff.added = new_count;
        diff.updated = batch.puts.size() - new_count;
        diff.removed = batch.removes.size();
        return batch;
      });
  if (auto* error = std::get_if<RegistryError>(&made)) {
    if (error->code == RegistryError::Code::kUnavailable) WSV_LOG(kError) << error->message;
    return error->message;
  }
  return diff;
}

size_t ConfigReconciler::adoptAll() {
  auto made = registry_.applyBatch(
      [](const Registry::RegisteredSet& current) -> std::variant<Registry::Batch, RegistryError> {
        Registry::Batch batch;
        for (const auto& [id, registered] : current) {
          if (registered.owner != EndpointOwner::kConfigFile) continue;
          // Its record stays as stored: a new owner would mean writing the spec back.
          if (registered.stored_spec_invalid) continue;
          batch.puts.push_back({registered.spec, EndpointOwner::kApi, registered.generation});
        }
        return batch;
      });
  if (auto* error = std::get_if<RegistryError>(&made)) {
    WSV_LOG(kError) << "config-file endpoints keep their owner: " << error->message;
    return 0;
  }
  return std::get<Registry::Batch>(made).puts.size();
}

}  // namespace wsvisor
