#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "supervisor/core/endpoint_spec.h"
#include "supervisor/core/endpoint_status.h"
#include "supervisor/core/label_selector.h"
#include "supervisor/health_bus.h"
#include "supervisor/io_shards.h"
#include "supervisor/live_stats.h"
#include "supervisor/metrics.h"
#include "supervisor/mutex.h"
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
  // published last (ClusteredRegistry::applyRemoteStatus).
  bool supervised_here = true;
};

struct RegistryOptions {
  size_t io_threads = 1;
  // Registrations beyond this are refused (RESOURCE_EXHAUSTED): the smaller of --max-endpoints
  // and what the open-files limit allows; in cluster mode --max-endpoints alone, since each
  // replica supervises only its share.
  size_t max_endpoints = 100000;
  // Upstream connections the open-files limit allows (FdBudget::max_endpoints), shared by the
  // endpoints supervised here and the running probes (IoShards).
  size_t max_connections = 100000;
  // Restored endpoints dial at this rate at most after a restart (see restore()).
  double restore_dials_per_second = 2000;
};

// The set of registered endpoints, and the supervision of each on an io thread. Every change is
// written to the store (durably) before it takes effect and before the caller is answered; a
// change the store refuses changes nothing.
//
// This class is a single wsvisor: it supervises every endpoint it registers. Cluster mode
// (ClusteredRegistry) overrides the one decision that differs, what happens when an endpoint
// arrives (admitRegistration, arrived), and adds the calls its ClusterMember makes. Probes
// (ProbeRunner) and the config file (ConfigReconciler) are built on the public calls below.
//
// Locking, in the order the locks are taken:
//   changes_mu_  serializes changes, store write included, so that the store and memory see
//                changes in the same order. Helpers that need it end in `InChange`.
//   map_mu_      guards the map and is held only briefly, so that reads never wait for an fsync.
//                Helpers that need it end in `UnderMapLock`.
//   then the HealthBus's lock (the bus is told of changes under map_mu_).
// Commands never wait on an io thread: they post to it.
class Registry {
 public:
  // `store` may be null (nothing persisted: tests of the runtime alone); `codec` is required
  // with a store.
  Registry(RegistryOptions options, HealthBus& bus, Metrics& metrics, EndpointStore* store,
           const SpecCodec* codec);
  virtual ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  struct RegisterResult {
    EndpointView endpoint;
    bool created = false;  // false: an identical spec was already registered
  };
  // Validates the spec, fills its defaults, stores it and starts supervising it.
  std::variant<RegisterResult, RegistryError> registerEndpoint(core::EndpointSpec spec,
                                                               EndpointOwner owner)
      WSV_EXCLUDES(changes_mu_, map_mu_);

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
                                                           EndpointOwner requester)
      WSV_EXCLUDES(changes_mu_, map_mu_);
  // Endpoints owned by the config file cannot be removed by an API caller (FAILED_PRECONDITION).
  std::optional<RegistryError> unregisterEndpoint(const std::string& id, EndpointOwner requester)
      WSV_EXCLUDES(changes_mu_, map_mu_);
  std::optional<EndpointView> get(const std::string& id) const WSV_EXCLUDES(map_mu_);

  struct Page {
    std::vector<EndpointView> endpoints;
    std::string next_page_token;  // empty on the last page
  };
  // Endpoints in id order after `page_token` (the last id of the previous page).
  Page list(const core::LabelSelector& selector, size_t page_size,
            const std::string& page_token) const WSV_EXCLUDES(map_mu_);

  // Loads every stored endpoint and starts supervising it, spreading first connection attempts
  // over a window of N / restore_dials_per_second seconds in random order. Fails (and starts
  // nothing) if the store or any stored record cannot be read. A record that is read but whose
  // spec no longer passes today's validation does not stop the others: it is registered
  // unsupervised, in phase kStoredSpecInvalid (naming the field and why), logged, counted in
  // wsvisor_endpoints_stored_spec_invalid, and left unchanged in the store until UpdateEndpoint
  // replaces it or UnregisterEndpoint removes it.
  std::optional<std::string> restore() WSV_EXCLUDES(changes_mu_, map_mu_);

  // ----- changes made together (the config file: ConfigReconciler) -----
  // An endpoint as a batch sees it.
  struct Registered {
    std::shared_ptr<const core::EndpointSpec> spec;
    EndpointOwner owner = EndpointOwner::kApi;
    uint64_t generation = 0;
    // Its stored spec no longer passes validation (see restore()); `spec` is what was read, with
    // any byte that is not UTF-8 replaced. Writing it back would store the replaced bytes.
    bool stored_spec_invalid = false;
  };
  // What a batch's plan reads: every registered endpoint, by id. Valid during the plan only.
  using RegisteredSet = std::map<std::string, Registered>;
  struct Batch {
    // Each is created, or replaces the spec, owner and generation of the endpoint with its id.
    struct Put {
      std::shared_ptr<const core::EndpointSpec> spec;  // validated, defaults applied
      EndpointOwner owner = EndpointOwner::kApi;
      uint64_t generation = 1;
    };
    std::vector<Put> puts;
    std::vector<std::string> removes;
  };
  using Plan = std::function<std::variant<Batch, RegistryError>(const RegisteredSet& current)>;
  // Runs `plan` on the registered endpoints with no other change in between, then makes the
  // batch it returns: one store transaction, then every remove and put. All or nothing: the
  // plan's error or a refused store write (UNAVAILABLE) change nothing. Returns the batch made.
  // The plan checks what the batch may do (limits, owners): the registry only makes it.
  std::variant<Batch, RegistryError> applyBatch(const Plan& plan)
      WSV_EXCLUDES(changes_mu_, map_mu_);

  // Queues a ConnectFailed event with `failure` on the io thread of the endpoint supervised here
  // with `id`, handled as if its connection attempt had reported it. False if no such endpoint
  // is supervised here.
  bool failConnectAttemptForTest(const std::string& id, core::Failure failure)
      WSV_EXCLUDES(map_mu_);
  // Queues `work` on the io thread of the endpoint supervised here with `id` (if any).
  void runOnIoThreadForTest(const std::string& id, std::function<void()> work)
      WSV_EXCLUDES(map_mu_);

  // The io threads, for the probes that share them and the connection budget (ProbeRunner).
  IoShards& shards() { return shards_; }

  size_t size() const WSV_EXCLUDES(map_mu_);
  size_t maxEndpoints() const { return options_.max_endpoints; }
  // Upstream connections held: the endpoints supervised here (all registered ones outside
  // cluster mode), not counting probes.
  size_t connectionsInUse() const { return shards_.endpointsPlaced(); }

  // Closes every upstream connection with 1001 and stops the io threads, waiting at most
  // `grace` for closing handshakes; then closes the store. Commands fail with UNAVAILABLE
  // afterwards.
  void shutdown(std::chrono::milliseconds grace) WSV_EXCLUDES(changes_mu_);

 protected:
  struct Entry {
    std::shared_ptr<const core::EndpointSpec> spec;
    EndpointOwner owner = EndpointOwner::kApi;
    uint64_t generation = 1;
    uint64_t incarnation = 0;
    size_t shard = 0;
    std::shared_ptr<LiveStats> live;
    // False until the endpoint is supervised here; in cluster mode also while another replica
    // supervises it (the bus then holds the status its owner publishes).
    bool supervised = false;
    // Non-empty: the stored spec failed validation ("field: why"); never supervised until an
    // update replaces the spec. `spec` is then the stored one made displayable (core::validUtf8).
    std::string stored_spec_error;
  };

  // ----- what differs in cluster mode (ClusteredRegistry) -----
  // Whether one more registration fits, `registered` being the endpoints registered now. Here
  // every endpoint is supervised from its registration on, so each needs a connection of the
  // open-files budget next to the running probes.
  virtual std::optional<RegistryError> admitRegistration(size_t registered) const;
  // An endpoint was just added to the map: here it is supervised at once (its first connection
  // attempt after `first_attempt_after`).
  virtual void arrivedUnderMapLock(const std::string& id, Entry& entry,
                                   core::Duration first_attempt_after) WSV_REQUIRES(map_mu_);
  // An update replaced the invalid stored spec of an endpoint (its `spec` is the new one): here
  // it is supervised at once, under a new incarnation, announced as a CHANGED event.
  virtual void storedSpecReplacedUnderMapLock(const std::string& id, Entry& entry)
      WSV_REQUIRES(map_mu_);

  // ----- for ClusteredRegistry -----
  // Makes `entry` supervised here: its shard, fresh live statistics and a new incarnation.
  // Returns its initial status (backing off while `first_attempt_after` > 0). The caller
  // publishes that status under the new incarnation, then calls runSessionUnderMapLock.
  core::EndpointStatus prepareSupervisionUnderMapLock(Entry& entry,
                                                      core::Duration first_attempt_after)
      WSV_REQUIRES(map_mu_);
  void runSessionUnderMapLock(const Entry& entry, core::Duration first_attempt_after)
      WSV_REQUIRES(map_mu_);
  // Adds a stored endpoint whose spec failed validation (`error`): unsupervised, announced in
  // phase kStoredSpecInvalid. Replaces an entry with the same id. `spec` as read from the store.
  void addStoredSpecInvalidInChange(core::EndpointSpec spec, EndpointOwner owner,
                                    uint64_t generation, const core::FieldError& error)
      WSV_REQUIRES(changes_mu_) WSV_EXCLUDES(map_mu_);
  // Adds to the map (arrivedUnderMapLock decides what else happens).
  EndpointView addInChange(std::shared_ptr<const core::EndpointSpec> spec, EndpointOwner owner,
                           uint64_t generation, core::Duration first_attempt_after)
      WSV_REQUIRES(changes_mu_) WSV_EXCLUDES(map_mu_);
  // Removes from the map, the bus and its io thread.
  void removeInChange(const std::string& id) WSV_REQUIRES(changes_mu_) WSV_EXCLUDES(map_mu_);
  EndpointView replaceInChange(const std::string& id,
                               std::shared_ptr<const core::EndpointSpec> spec, uint64_t generation,
                               bool& reconnected) WSV_REQUIRES(changes_mu_) WSV_EXCLUDES(map_mu_);
  EndpointView viewOfUnderMapLock(const std::string& id, const Entry& entry) const
      WSV_REQUIRES(map_mu_);
  uint64_t nextIncarnationUnderMapLock() WSV_REQUIRES(map_mu_) { return ++next_incarnation_; }
  // A stored record read back: the spec with its defaults filled in, or the reason it fails
  // today's validation (`spec` then as stored).
  struct DecodedRecord {
    core::EndpointSpec spec;
    std::optional<core::FieldError> invalid;
  };
  // Decodes and validates a stored record; nullopt with `error` set when it cannot be read.
  std::optional<DecodedRecord> decodeStored(const StoredEndpoint& record, std::string& error) const;
  // Logs why an endpoint is not supervised: its id and the field of its stored spec that fails.
  static void logStoredSpecInvalid(const std::string& id, uint64_t generation,
                                   const core::FieldError& error);
  bool shutDown() const { return shut_down_.load(); }

  const RegistryOptions options_;
  HealthBus& bus_;
  IoShards shards_;

  Mutex changes_mu_ WSV_ACQUIRED_BEFORE(map_mu_);
  mutable Mutex map_mu_;
  std::map<std::string, Entry> entries_ WSV_GUARDED_BY(map_mu_);

 private:
  std::optional<RegistryError> persist(const core::EndpointSpec& spec, EndpointOwner owner,
                                       uint64_t generation);
  std::optional<RegistryError> unpersist(const std::string& id);
  void keepRedactedSecrets(core::EndpointSpec& spec) const WSV_EXCLUDES(map_mu_);
  // Keeps wsvisor_endpoints_stored_spec_invalid equal to stored_specs_invalid_.
  void storedSpecsInvalidChangedUnderMapLock(long delta) WSV_REQUIRES(map_mu_);
  std::optional<RegistryError> checkOpen() const;

  Metrics& metrics_;
  EndpointStore* const store_;
  const SpecCodec* const codec_;
  size_t stored_specs_invalid_ WSV_GUARDED_BY(map_mu_) = 0;  // entries with a stored_spec_error
  uint64_t next_incarnation_ WSV_GUARDED_BY(map_mu_) = 0;
  std::atomic<bool> shut_down_{false};
};

}  // namespace wsvisor
