#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "service/cluster/cluster_health.h"
#include "service/cluster/etcd/etcd_endpoint_store.h"
#include "service/cluster/etcd/lease_keeper.h"
#include "service/cluster/etcd/prefix_watch.h"
#include "supervisor/clustered_registry.h"
#include "supervisor/core/ownership.h"
#include "supervisor/health_bus.h"

namespace wsvisor::service {

struct ClusterOptions {
  std::string member_id;
  std::chrono::seconds ttl{5};
  // Endpoints claimed in one pass dial no faster than this (a takeover spreads its dials).
  double dials_per_second = 2000;
  // How long start() waits for a previous holder of the member id (a killed replica) to expire.
  std::chrono::milliseconds join_timeout{30000};
};

// This replica as a member of a wsvisor cluster sharing one etcd prefix, and the owner of the
// endpoints the ownership rule gives it (see the README, "Cluster mode", for the proof).
//
// Keys under the store's prefix:
//   members/<member-id>  = member id, bound to this replica's lease: the live members
//   owners/<endpoint-id> = member id, bound to the owner's lease, created only if absent
//   health/<endpoint-id> = the owner's v1.EndpointStatus, bound to its lease, put on each change
//                          of state (not per heartbeat). Every replica watches it into its own
//                          HealthBus (ClusteredRegistry::applyRemoteStatus), so that its Get, List,
//                          WatchHealth and GetEndpointHistory cover the whole cluster.
//   endpoints/<id>       = the registrations (EtcdEndpointStore), watched into the Registry
//
// Threads: a reconciler that reads the watched state and claims, starts, releases, and publishes
// the health of the endpoints supervised here as soon as the bus reports a change; a guard that
// does nothing but stop every connection when the local lease deadline (core::LeaseDeadline)
// passes, so that a reconciler stuck in an etcd call during a partition cannot delay it; the
// lease keeper's and the three watches' own threads, which only update state under mu_.
class ClusterMember {
 public:
  ClusterMember(etcd::EtcdEndpointStore& store, ClusteredRegistry& registry, HealthBus& bus,
                ClusterOptions options);
  ~ClusterMember();
  ClusterMember(const ClusterMember&) = delete;
  ClusterMember& operator=(const ClusterMember&) = delete;

  // Joins: grants a lease, creates the member key (waiting up to join_timeout for an earlier
  // holder of the id to expire), loads every endpoint into the registry, starts the watches and
  // the threads. Returns false with `error` set if it cannot.
  bool start(std::string& error);
  // Leaves: stops the threads and watches, stops every connection (close sent), then revokes the
  // lease so that the other members take over at once. Idempotent.
  void stop();

 private:
  struct Holder {
    std::string member;
    int64_t lease = 0;
    int64_t mod_revision = 0;
  };

  // Grants a lease and puts the member key; with `exclusive`, only if no live replica holds it.
  bool join(bool exclusive, std::string& error);
  // (Re)reads a prefix and starts its watch from the revision after the read.
  bool startEndpointsWatch(std::string& error);
  bool startMembersWatch(std::string& error);
  bool startOwnersWatch(std::string& error);
  bool startHealthWatch(std::string& error);
  // The status `health_` holds for `id` to the registry's bus; when it holds none, "no replica
  // reports it" unless `if_reported` (an endpoint just added already says it awaits its owner).
  // Requires remote_mu_.
  void applyRemoteLocked(const std::string& id, bool if_reported);
  // Takes the ids of the bus's changes into health_due_.
  void collectHealthChanges();
  // Puts the status of each endpoint supervised here that changed on the bus, unless its state is
  // what was published last. Stops at the first failure; the rest stays due for the next turn.
  void publishHealth(int64_t lease);
  void reconcileLoop();
  void reconcileOnce();
  void guardLoop();
  // Stops every connection this replica runs; takes own_mu_.
  void stopAll(const std::string& why);
  // The local deadline with the keeper's latest acknowledgement folded in. Requires mu_.
  core::LeaseDeadline& deadlineLocked();
  // Waits for a watch, the bus or the next periodic reconcile; returns what is due, or kStop.
  enum class Due { kStop, kReconcile, kPublish };
  Due waitForWork();

  etcd::EtcdEndpointStore& store_;
  etcd::EtcdClient& client_;
  ClusteredRegistry& registry_;
  HealthBus& bus_;
  const ClusterOptions options_;
  const std::string members_prefix_;
  const std::string owners_prefix_;
  const std::string health_prefix_;
  // The health each owner published, by endpoint id. remote_mu_ orders its changes with their
  // application to the registry: the health and endpoints watches run on different threads.
  std::mutex remote_mu_;
  ClusterHealth health_;
  // The bus's changes: the reconciler publishes those of endpoints supervised here.
  std::shared_ptr<WatchSubscription> bus_changes_;

  // Serializes starting and stopping connections between the reconciler and the guard, so that
  // no connection is started after the guard has decided to stop everything.
  std::mutex own_mu_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;        // guarded by mu_
  bool dirty_ = true;            // a watch changed something; guarded by mu_
  bool health_changed_ = false;  // the bus has changes; guarded by mu_
  std::chrono::steady_clock::time_point next_reconcile_{};  // guarded by mu_
  bool endpoints_compacted_ = false;                        // guarded by mu_
  bool members_compacted_ = false;                          // guarded by mu_
  bool owners_compacted_ = false;                           // guarded by mu_
  bool health_compacted_ = false;                           // guarded by mu_
  std::set<std::string> members_;                           // guarded by mu_
  std::map<std::string, Holder> owners_;                    // endpoint id -> holder; guarded by mu_
  int64_t lease_id_ = 0;                                    // guarded by mu_
  std::optional<core::LeaseDeadline> deadline_;             // guarded by mu_
  std::string lease_lost_reason_;  // set by the keeper's callback; guarded by mu_

  // Touched only by the reconciler (and start/stop when it does not run).
  std::unique_ptr<etcd::LeaseKeeper> keeper_;
  int64_t joined_at_revision_ = 0;       // the etcd revision that created our member key
  std::map<std::string, int64_t> held_;  // keys we created under lease_id_: id -> mod revision
  std::unique_ptr<etcd::PrefixWatch> endpoints_watch_;
  std::unique_ptr<etcd::PrefixWatch> members_watch_;
  std::unique_ptr<etcd::PrefixWatch> owners_watch_;
  std::unique_ptr<etcd::PrefixWatch> health_watch_;
  std::map<std::string, v1::EndpointStatus> published_;  // what we put under health/, by id
  std::set<std::string> health_due_;                     // changed on the bus since last published
  std::chrono::steady_clock::time_point next_no_room_warning_{};  // see reconcileOnce
  std::thread reconciler_;
  std::thread guard_;
};

}  // namespace wsvisor::service
