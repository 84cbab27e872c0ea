#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
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
#include "supervisor/core/probe.h"
#include "supervisor/health_bus.h"
#include "supervisor/io_shard.h"
#include "supervisor/live_stats.h"
#include "supervisor/metrics.h"
#include "supervisor/store/endpoint_store.h"

namespace wsvisor {

// Outcome of a registry command, free of any RPC framework; service/ maps it to a gRPC status.
struct RegistryError {
  enum class Code {
    kInvalidArgument,
    kNotFound,
    kAlreadyExists,
    kResourceExhausted,
    kFailedPrecondition,
    kAborted,
    kUnavailable,
    kInternal,
  };
  Code code;
  std::string message;
};

// One endpoint as the API shows it: the stored spec, who owns it, and its current status.
struct EndpointView {
  std::shared_ptr<const core::EndpointSpec> spec;
  EndpointOwner owner = EndpointOwner::kApi;
  uint64_t generation = 0;
  core::EndpointStatus status;
  // False in cluster mode when another replica supervises it: `status` is then the one its owner
  // published last (Registry::applyRemoteStatus).
  bool supervised_here = true;
};

// Probes that may run at once. Each holds a socket and an io-thread timer for at most its time
// limit; the cap keeps a burst of ProbeEndpoint calls from crowding out supervision.
inline constexpr size_t kDefaultMaxProbes = 64;

struct RegistryOptions {
  size_t io_threads = 1;
  // Registrations beyond this are refused (RESOURCE_EXHAUSTED): the smaller of --max-endpoints
  // and what the open-files limit allows; in cluster mode --max-endpoints alone, since each
  // replica supervises only its share.
  size_t max_endpoints = 100000;
  // Upstream connections the open-files limit allows (FdBudget::max_endpoints). A probe is
  // refused (RESOURCE_EXHAUSTED) when endpoints supervised here and running probes fill it; in
  // cluster mode, so is the supervision of one more endpoint (setSupervised).
  size_t max_connections = 100000;
  // Probes beyond this many at once are refused (RESOURCE_EXHAUSTED).
  size_t max_probes = kDefaultMaxProbes;
  // Restored endpoints dial at this rate at most after a restart (see restore()).
  double restore_dials_per_second = 2000;
  // Cluster mode: the registry holds every endpoint of the shared store (for Get/List) but
  // supervises only those it is told to (setSupervised), as the ownership rule decides.
  bool clustered = false;
};

// The set of supervised endpoints. Owns the io shards and places each endpoint on the least
// loaded one. Every change is written to the store (durably) before it takes effect and before
// the caller is answered; a change the store refuses changes nothing.
//
// Locking: `write_mu_` serializes changes, store write included, so that the store and memory
// see changes in the same order; `mu_` guards the map and is held only briefly, so that reads
// never wait for an fsync. Commands never wait on an io thread: they post to it.
class Registry {
 public:
  // `store` may be null (nothing persisted: tests of the runtime alone); `codec` is required
  // with a store.
  Registry(RegistryOptions options, HealthBus& bus, Metrics& metrics, EndpointStore* store,
           const SpecCodec* codec);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  struct RegisterResult {
    EndpointView endpoint;
    bool created = false;  // false: an identical spec was already registered
  };
  // Validates the spec, fills its defaults, stores it and starts supervising it.
  std::variant<RegisterResult, RegistryError> registerEndpoint(core::EndpointSpec spec,
                                                               EndpointOwner owner);

  struct UpdateResult {
    EndpointView endpoint;
    bool reconnected = false;  // the connection was redialled for the new spec
  };
  // Replaces the spec of a registered endpoint. Heartbeat, backoff and label changes apply to the
  // live connection; URL, header, subprotocol, TLS and size changes redial it. With
  // `expected_generation` != 0 the update only happens if the stored generation still matches
  // (ABORTED otherwise): compare-and-set for concurrent updaters.
  std::variant<UpdateResult, RegistryError> updateEndpoint(core::EndpointSpec spec,
                                                           uint64_t expected_generation,
                                                           EndpointOwner requester);
  // Endpoints owned by the config file cannot be removed by an API caller (FAILED_PRECONDITION).
  std::optional<RegistryError> unregisterEndpoint(const std::string& id, EndpointOwner requester);
  std::optional<EndpointView> get(const std::string& id) const;

  struct Page {
    std::vector<EndpointView> endpoints;
    std::string next_page_token;  // empty on the last page
  };
  // Endpoints in id order after `page_token` (the last id of the previous page).
  Page list(const core::LabelSelector& selector, size_t page_size,
            const std::string& page_token) const;

  // Loads every stored endpoint and starts supervising it, spreading first connection attempts
  // over a window of N / restore_dials_per_second seconds in random order. Fails (and starts
  // nothing) if any stored record cannot be read.
  std::optional<std::string> restore();

  // Makes the config-file-owned endpoints exactly `specs`: adds, updates and removes as needed.
  // All-or-nothing: every spec is validated first, and an id registered over the API is a
  // conflict. Returns a description of the first problem, or nullopt on success.
  struct ConfigDiff {
    size_t added = 0, updated = 0, removed = 0, unchanged = 0;
  };
  std::variant<ConfigDiff, std::string> applyConfig(std::vector<core::EndpointSpec> specs);

  // Makes every config-file-owned endpoint API-owned (stored too). Returns how many changed.
  size_t adoptConfigOwned();

  // A running probe, to cancel it with.
  struct ProbeTicket {
    size_t shard = 0;
    uint64_t key = 0;
  };
  using ProbeDone = std::function<void(const core::ProbeResult& result)>;
  // Checks the request (core::prepareProbe: INVALID_ARGUMENT naming the field) and room for it
  // (RESOURCE_EXHAUSTED: max_probes running, or no connection left in max_connections), then
  // runs one probe on an io thread. The probe registers, stores and publishes nothing.
  // On success `done` is called exactly once, on that io thread, also when the probe is
  // cancelled or wsvisor shuts down; on error never. `done` must not block.
  std::variant<ProbeTicket, RegistryError> probe(core::EndpointSpec spec, uint32_t heartbeats,
                                                 ProbeDone done);
  // Ends a probe that still runs: its connection is closed and `done` reports kCancelled. No-op
  // for a probe that has ended, also after shutdown.
  void cancelProbe(const ProbeTicket& ticket);
  size_t runningProbes() const { return probes_running_.load(); }

  // ----- cluster mode (options.clustered): the shared store is the truth, changed by any replica.
  // Makes the registry hold exactly `all` (a full read of the store): adds, updates, removes.
  // Nothing is written back. Records that cannot be read are skipped with an error log: another
  // replica's newer version must not stop this one.
  void syncStored(const std::vector<StoredEndpoint>& all);
  // One change another replica (or this one) made, as the store's watch reports it. A record
  // whose generation is not newer than the one held is ignored (our own writes come back).
  void applyStoredPut(const StoredEndpoint& record);
  void applyStoredRemove(const std::string& id);
  // Starts or stops the connection of a registered endpoint. Starting fails (false) when the
  // open-files budget is full (hasRoomToSupervise). Stopping returns once its io thread
  // has stopped the session and sent the close (bounded by 2 s): the caller may then give the
  // endpoint away. Returns false when `id` is not registered (or, stopping, not supervised).
  // The endpoint's status then says why it stopped: "handed over: <why>".
  bool setSupervised(const std::string& id, bool supervised, core::Duration first_attempt_after,
                     const std::string& why = "released");
  // Stops every connection supervised here at once (the guard of a cluster member whose lease
  // may expire, and leaving the cluster): all stops are queued before the first is awaited, and
  // it returns once every io thread confirmed (bounded by 2 s). Returns how many were stopped.
  size_t stopSupervisingAll(const std::string& why);
  // The status another replica published for an endpoint it supervises (nullopt: none does now),
  // published on the bus as the endpoint's change so that every replica's watchers, history and
  // Get see it. Ignored for endpoints supervised here and for unknown ids.
  void applyRemoteStatus(const std::string& id, const std::optional<core::EndpointStatus>& status);
  // Every registered id, and the ones supervised here.
  std::vector<std::string> ids() const;
  std::vector<std::string> supervisedIds() const;

  size_t size() const;
  size_t maxEndpoints() const { return options_.max_endpoints; }
  // Upstream connections held: the endpoints supervised here (all registered ones outside
  // cluster mode), not counting probes.
  size_t connectionsInUse() const;
  // Whether one more connection fits the open-files budget (max_connections) next to the running
  // probes.
  bool hasRoomToSupervise() const;

  // Closes every upstream connection with 1001 and stops the io threads, waiting at most
  // `grace` for closing handshakes; then closes the store. Commands fail with UNAVAILABLE
  // afterwards.
  void shutdown(std::chrono::milliseconds grace);

 private:
  struct Entry {
    std::shared_ptr<const core::EndpointSpec> spec;
    EndpointOwner owner = EndpointOwner::kApi;
    uint64_t generation = 1;
    uint64_t incarnation = 0;
    size_t shard = 0;
    std::shared_ptr<LiveStats> live;
    // False in cluster mode until this replica owns it: no session; the bus holds the status its
    // owner publishes.
    bool supervised = true;
  };

  std::optional<RegistryError> persist(const core::EndpointSpec& spec, EndpointOwner owner,
                                       uint64_t generation);
  std::optional<RegistryError> unpersist(const std::string& id);
  // Adds to the map and starts supervising. Requires write_mu_.
  EndpointView startLocked(std::shared_ptr<const core::EndpointSpec> spec, EndpointOwner owner,
                           uint64_t generation, core::Duration first_attempt_after);
  void stopLocked(const std::string& id);
  // Stops the session of a supervised entry: queued on its io thread (the future is ready once it
  // is stopped and its close sent) and published as handed over. Requires mu_.
  std::future<void> unsuperviseLocked(const std::string& id, Entry& entry, const std::string& why);
  // Starts the session of an entry that has none. Requires mu_.
  void superviseLocked(const std::string& id, Entry& entry, core::Duration first_attempt_after);
  // Decodes and validates a stored record; nullptr with `error` set when it cannot be used.
  std::shared_ptr<const core::EndpointSpec> decodeStored(const StoredEndpoint& record,
                                                         std::string& error) const;
  // applyStoredPut with write_mu_ held.
  void applyStoredPutLocked(const StoredEndpoint& record);
  EndpointView replaceLocked(const std::string& id, std::shared_ptr<const core::EndpointSpec> spec,
                             uint64_t generation, bool& reconnected);
  void keepRedactedSecrets(core::EndpointSpec& spec) const;
  EndpointView viewOf(const std::string& id, const Entry& entry) const;
  size_t leastLoadedShard() const;
  std::optional<RegistryError> checkOpen() const;

  const RegistryOptions options_;
  HealthBus& bus_;
  EndpointStore* const store_;
  const SpecCodec* const codec_;
  std::vector<std::unique_ptr<IoShard>> shards_;

  std::mutex write_mu_;    // serializes changes (store write + map update)
  mutable std::mutex mu_;  // guards entries_, next_incarnation_
  std::map<std::string, Entry> entries_;
  uint64_t next_incarnation_ = 0;
  std::atomic<bool> shut_down_{false};
  // Taken by probe() while it starts a probe, and once by shutdown() after shut_down_ is set: no
  // probe starts on a shard that shutdown() has already swept.
  std::mutex probe_mu_;
  std::atomic<size_t> probes_running_{0};
};

}  // namespace wsvisor
