#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "service/cluster/cluster_health.h"
#include "service/cluster/etcd/etcd_endpoint_store.h"
#include "service/cluster/etcd/lease_keeper.h"
#include "service/cluster/etcd/prefix_watch.h"
#include "supervisor/clustered_registry.h"
#include "supervisor/core/ownership.h"
#include "supervisor/health_bus.h"
#include "supervisor/mutex.h"

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
//   capacity/<member-id> = how many endpoint connections the member can hold in all (decimal: its
//                          open-files budget, or --max-connections), bound to its lease, put
//                          when it joins. With the owner keys this tells every replica how much
//                          room each member has left, and so where an endpoint goes when its
//                          preferred replica is full (core::routeEndpoints): to the next replica
//                          in its rendezvous order with room, and back only as far as room
//                          frees up, so a full replica causes no claim/release churn. A member
//                          without this key (an older wsvisor) is taken to have no limit.
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
  // The prefixes this member watches, each in its slot of watches_.
  enum WatchedPrefix : size_t {
    kEndpointsWatch,
    kMembersWatch,
    kOwnersWatch,
    kHealthWatch,
    kCapacityWatch
  };
  struct WatchSlot {
    // (Re)reads the prefix and watches it from the revision after the read.
    bool (ClusterMember::*start)(std::string& error);
    // Touched by the reconciler only (and start/stop when it does not run).
    std::unique_ptr<etcd::PrefixWatch> watch;
    // etcd compacted the watch's history: the reconciler restarts it. Set under mu_, so that the
    // reconciler's wait cannot miss it.
    std::atomic<bool> compacted{false};
  };
  // One reconcile pass: what the ownership rule is asked about each endpoint, and under which
  // lease.
  struct Pass {
    std::vector<core::OwnershipView> views;
    int64_t lease = 0;
    bool may_claim = false;
  };

  // Grants a lease and puts the member key; with `exclusive`, only if no live replica holds it.
  bool join(bool exclusive, std::string& error) WSV_EXCLUDES(mu_);
  // Puts capacity/<member-id> under `lease`; a failure is logged (the others then see no limit).
  void publishCapacity(int64_t lease);
  bool startEndpointsWatch(std::string& error);
  bool startMembersWatch(std::string& error);
  bool startOwnersWatch(std::string& error);
  bool startHealthWatch(std::string& error);
  bool startCapacityWatch(std::string& error);
  // Puts a watch of `prefix` from `revision` in its slot, with the slot's on_compacted.
  void watchFrom(WatchedPrefix which, const std::string& prefix, int64_t revision,
                 etcd::PrefixWatch::Callbacks callbacks);
  // The status `health_` holds for `id` to the registry's bus; when it holds none, "no replica
  // reports it" unless `if_reported` (an endpoint just added already says it awaits its owner).
  void applyRemoteUnderRemoteLock(const std::string& id, bool if_reported) WSV_REQUIRES(remote_mu_);
  // Takes the ids of the bus's changes into health_due_.
  void collectHealthChanges();
  // Puts the status of each endpoint supervised here that changed on the bus, unless its state is
  // what was published last. Stops at the first failure; the rest stays due for the next turn.
  void publishHealth(int64_t lease);
  void reconcileLoop();
  // One pass of the reconciler, in these steps:
  void reconcileOnce();
  //  1. watches whose history etcd compacted start over from a fresh read;
  void restartCompactedWatches();
  //  2. with the lease lost: stop everything, revoke it and join with a new one (false: not yet);
  bool rejoin();
  //  3. what the ownership rule sees of every endpoint that is registered or ours, with where
  //     the members' room routes it (core::routeEndpoints);
  Pass beginPass() WSV_EXCLUDES(mu_);
  //  4. for each, what it decides: claim the owner key (false: not ours), start supervising
  //     (false: the lease or the budget does not allow it), or release;
  bool claim(const std::string& id, int64_t lease);
  bool startSupervising(const std::string& id, size_t started_this_pass) WSV_EXCLUDES(own_mu_, mu_);
  void release(const core::OwnershipView& view);
  //  5. say when endpoints stay unsupervised for want of room: this replica's budget kept it from
  //     endpoints routed to it (`no_room`), or no member has room (`nowhere`); then publish.
  void warnNoRoom(size_t no_room, size_t nowhere);
  void guardLoop();
  // Stops every connection this replica runs.
  void stopAll(const std::string& why) WSV_EXCLUDES(own_mu_);
  // The local deadline with the keeper's latest acknowledgement folded in.
  core::LeaseDeadline& leaseDeadline() WSV_REQUIRES(mu_);
  // Waits for a watch, the bus or the next periodic reconcile; returns what is due, or kStop.
  enum class Due { kStop, kReconcile, kPublish };
  Due waitForWork() WSV_EXCLUDES(mu_);

  etcd::EtcdEndpointStore& store_;
  etcd::EtcdClient& client_;
  ClusteredRegistry& registry_;
  HealthBus& bus_;
  const ClusterOptions options_;
  const std::string members_prefix_;
  const std::string owners_prefix_;
  const std::string health_prefix_;
  const std::string capacity_prefix_;

  // Locks, in the order they are taken: own_mu_, then the registry's, then mu_ (never held while
  // calling out); remote_mu_ before the registry's.
  //
  // The health each owner published, by endpoint id. remote_mu_ orders its changes with their
  // application to the registry: the health and endpoints watches run on different threads.
  Mutex remote_mu_;
  ClusterHealth health_ WSV_GUARDED_BY(remote_mu_);
  // The bus's changes: the reconciler publishes those of endpoints supervised here.
  std::shared_ptr<WatchSubscription> bus_changes_;

  // Serializes starting and stopping connections between the reconciler and the guard, so that
  // no connection is started after the guard has decided to stop everything.
  Mutex own_mu_ WSV_ACQUIRED_BEFORE(mu_);

  mutable Mutex mu_;
  CondVar wake_;
  bool stopping_ WSV_GUARDED_BY(mu_) = false;
  bool dirty_ WSV_GUARDED_BY(mu_) = true;            // a watch changed something
  bool health_changed_ WSV_GUARDED_BY(mu_) = false;  // the bus has changes
  std::chrono::steady_clock::time_point next_reconcile_ WSV_GUARDED_BY(mu_){};
  std::set<std::string> members_ WSV_GUARDED_BY(mu_);
  std::map<std::string, Holder> owners_ WSV_GUARDED_BY(mu_);      // endpoint id -> holder
  std::map<std::string, size_t> capacities_ WSV_GUARDED_BY(mu_);  // member id -> capacity/ value
  int64_t lease_id_ WSV_GUARDED_BY(mu_) = 0;
  std::optional<core::LeaseDeadline> deadline_ WSV_GUARDED_BY(mu_);
  std::string lease_lost_reason_ WSV_GUARDED_BY(mu_);  // set by the keeper's callback

  // Touched only by the reconciler (and start/stop when it does not run); keeper_ is swapped
  // under mu_ too, as leaseDeadline() reads it.
  std::unique_ptr<etcd::LeaseKeeper> keeper_;
  std::array<WatchSlot, 5> watches_{{{&ClusterMember::startEndpointsWatch, nullptr, {}},
                                     {&ClusterMember::startMembersWatch, nullptr, {}},
                                     {&ClusterMember::startOwnersWatch, nullptr, {}},
                                     {&ClusterMember::startHealthWatch, nullptr, {}},
                                     {&ClusterMember::startCapacityWatch, nullptr, {}}}};
  int64_t joined_at_revision_ = 0;       // the etcd revision that created our member key
  std::map<std::string, int64_t> held_;  // keys we created under lease_id_: id -> mod revision
  std::map<std::string, v1::EndpointStatus> published_;  // what we put under health/, by id
  std::set<std::string> health_due_;                     // changed on the bus since last published
  std::chrono::steady_clock::time_point next_no_room_warning_{};  // see warnNoRoom
  std::thread reconciler_;
  std::thread guard_;
};

}  // namespace wsvisor::service
