#pragma once

#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <vector>

#include "supervisor/core/endpoint_status.h"
#include "supervisor/registry.h"

namespace wsvisor {

// The registry of a cluster replica. The shared store (etcd) is the truth, changed by any
// replica: this registry holds every endpoint of it (for Get, List and the health bus) but
// supervises only those its ClusterMember claims by the ownership rule. What differs from a single
// wsvisor is all here:
//   - an endpoint that arrives (registered here, or learnt from the store) is announced as
//     supervised elsewhere, awaiting the report of its owner, and holds no connection;
//   - the ClusterMember feeds it the store's changes (syncStored, applyStoredPut/Remove), starts
//     and stops supervision (setSupervised, stopSupervisingAll) and hands it the health other
//     replicas publish (applyRemoteStatus).
// Locking as Registry's.
class ClusteredRegistry final : public Registry {
 public:
  using Registry::Registry;

  // Makes the registry hold exactly `all` (a full read of the store): adds, updates, removes.
  // Nothing is written back. Records that cannot be read are skipped with an error log: another
  // replica's newer version must not stop this one. A record whose spec fails validation is held
  // unsupervised in phase kStoredSpecInvalid, as Registry::restore() holds it.
  void syncStored(const std::vector<StoredEndpoint>& all) WSV_EXCLUDES(changes_mu_, map_mu_);
  // One change another replica (or this one) made, as the store's watch reports it. A record
  // whose generation is not newer than the one held is ignored (our own writes come back).
  void applyStoredPut(const StoredEndpoint& record) WSV_EXCLUDES(changes_mu_, map_mu_);
  void applyStoredRemove(const std::string& id) WSV_EXCLUDES(changes_mu_, map_mu_);
  // Starts or stops the connection of a registered endpoint. Starting fails (false) when the
  // open-files budget is full (hasRoomToSupervise). Stopping returns once its io thread
  // has stopped the session and sent the close (bounded by 2 s): the caller may then give the
  // endpoint away. Returns false when `id` is not registered (or, stopping, not supervised).
  // The endpoint's status then says why it stopped: "handed over: <why>".
  bool setSupervised(const std::string& id, bool supervised, core::Duration first_attempt_after,
                     const std::string& why = "released") WSV_EXCLUDES(map_mu_);
  // Stops every connection supervised here at once (the guard of a cluster member whose lease
  // may expire, and leaving the cluster): all stops are queued before the first is awaited, and
  // it returns once every io thread confirmed (bounded by 2 s). Returns how many were stopped.
  size_t stopSupervisingAll(const std::string& why) WSV_EXCLUDES(map_mu_);
  // The status another replica published for an endpoint it supervises (nullopt: none does now),
  // published on the bus as the endpoint's change so that every replica's watchers, history and
  // Get see it. Ignored for endpoints supervised here and for unknown ids.
  void applyRemoteStatus(const std::string& id, const std::optional<core::EndpointStatus>& status)
      WSV_EXCLUDES(map_mu_);
  // Every registered id, and the ones supervised here.
  std::vector<std::string> ids() const WSV_EXCLUDES(map_mu_);
  std::vector<std::string> supervisedIds() const WSV_EXCLUDES(map_mu_);
  // Whether one more connection fits the open-files budget next to the running probes.
  bool hasRoomToSupervise() const { return shards_.hasRoomForAnotherConnection(); }
  // The connections this replica can hold in all (endpoints and probes): its open-files budget.
  size_t maxConnections() const { return shards_.maxConnections(); }

 protected:
  // A replica supervises only what it claims, so a registration holds no connection here; the
  // claims are bounded instead (setSupervised).
  std::optional<RegistryError> admitRegistration(size_t registered) const override;
  // Announced as supervised elsewhere until this replica claims it.
  void arrivedUnderMapLock(const std::string& id, Entry& entry,
                           core::Duration first_attempt_after) override WSV_REQUIRES(map_mu_);
  // Awaits the report of its owner, as any endpoint that arrives.
  void storedSpecReplacedUnderMapLock(const std::string& id, Entry& entry) override
      WSV_REQUIRES(map_mu_);

 private:
  void applyStoredPutInChange(const StoredEndpoint& record) WSV_REQUIRES(changes_mu_)
      WSV_EXCLUDES(map_mu_);
  // Stops the session of a supervised entry: queued on its io thread (the future is ready once it
  // is stopped and its close sent) and published as handed over.
  std::future<void> unsuperviseUnderMapLock(const std::string& id, Entry& entry,
                                            const std::string& why) WSV_REQUIRES(map_mu_);
};

}  // namespace wsvisor
