#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "supervisor/core/endpoint_spec.h"
#include "supervisor/core/endpoint_status.h"
#include "supervisor/core/label_selector.h"
#include "supervisor/health_bus.h"
#include "supervisor/io_shard.h"
#include "supervisor/live_stats.h"
#include "supervisor/metrics.h"

namespace wsvisor {

// Outcome of a registry command, free of any RPC framework; service/ maps it to a gRPC status.
struct RegistryError {
  enum class Code { kInvalidArgument, kNotFound, kAlreadyExists, kResourceExhausted, kUnavailable };
  Code code;
  std::string message;
};

// One endpoint as the API shows it: the stored spec and its current status.
struct EndpointView {
  std::shared_ptr<const core::EndpointSpec> spec;
  core::EndpointStatus status;
};

struct RegistryOptions {
  size_t io_threads = 1;
  // Registrations beyond this are refused (RESOURCE_EXHAUSTED): the smaller of --max-endpoints
  // and what the open-files limit allows.
  size_t max_endpoints = 100000;
};

// The set of supervised endpoints. Owns the io shards and places each endpoint on the least
// loaded one. Commands are thread-safe and never wait on an io thread: they post to it.
class Registry {
 public:
  Registry(RegistryOptions options, HealthBus& bus, Metrics& metrics);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  struct RegisterResult {
    EndpointView endpoint;
    bool created = false;  // false: an identical spec was already registered
  };
  // Validates the spec, fills its defaults and starts supervising it.
  std::variant<RegisterResult, RegistryError> registerEndpoint(core::EndpointSpec spec);
  std::optional<RegistryError> unregisterEndpoint(const std::string& id);
  std::optional<EndpointView> get(const std::string& id) const;

  struct Page {
    std::vector<EndpointView> endpoints;
    std::string next_page_token;  // empty on the last page
  };
  // Endpoints in id order after `page_token` (the last id of the previous page).
  Page list(const core::LabelSelector& selector, size_t page_size,
            const std::string& page_token) const;

  size_t size() const;
  size_t maxEndpoints() const { return options_.max_endpoints; }

  // Closes every upstream connection with 1001 and stops the io threads, waiting at most
  // `grace` for closing handshakes. Commands fail with UNAVAILABLE afterwards.
  void shutdown(std::chrono::milliseconds grace);

 private:
  struct Entry {
    std::shared_ptr<const core::EndpointSpec> spec;
    uint64_t incarnation = 0;
    size_t shard = 0;
    std::shared_ptr<LiveStats> live;
  };

  EndpointView viewOf(const std::string& id, const Entry& entry) const;
  size_t leastLoadedShard() const;

  const RegistryOptions options_;
  HealthBus& bus_;
  std::vector<std::unique_ptr<IoShard>> shards_;

  mutable std::mutex mu_;  // guards entries_, next_incarnation_, shut_down_
  std::map<std::string, Entry> entries_;
  uint64_t next_incarnation_ = 0;
  bool shut_down_ = false;
};

}  // namespace wsvisor
