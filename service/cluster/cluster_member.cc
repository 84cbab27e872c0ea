#include "service/cluster/cluster_member.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "service/api/proto_conversions.h"
#include "supervisor/log.h"

namespace wsvisor::service {

namespace {

using Clock = std::chrono::steady_clock;

// The reconciler's period when no watch wakes it: claims after a lease expiry wait at most this.
constexpr std::chrono::milliseconds kReconcileEvery{200};
// The guard's period; the lease margin (at least 200 ms) covers it and a stop of every session.
constexpr std::chrono::milliseconds kGuardEvery{25};
// join(): the pause between attempts to create the member key.
constexpr std::chrono::milliseconds kJoinRetry{250};
// Bus changes the publisher may fall behind before it is sent the latest per endpoint (nothing it
// needs is lost then: it publishes the latest status of each).
constexpr size_t kBusChangesQueued = 4096;
// A replica whose open-files budget is full says so at most this often.
constexpr std::chrono::seconds kNoRoomWarningEvery{30};

std::string suffixAfter(const std::string& key, const std::string& prefix) {
  return key.compare(0, prefix.size(), prefix) == 0 ? key.substr(prefix.size()) : std::string();
}

}  // namespace

ClusterMember::ClusterMember(etcd::EtcdEndpointStore& store, ClusteredRegistry& registry,
                             HealthBus& bus, ClusterOptions options)
    : store_(store),
      client_(*store.client()),
      registry_(registry),
      bus_(bus),
      options_(std::move(options)),
      members_prefix_(store.prefix() + "/members/"),
      owners_prefix_(store.prefix() + "/owners/"),
      health_prefix_(store.prefix() + "/health/"),
      capacity_prefix_(store.prefix() + "/capacity/") {}

ClusterMember::~ClusterMember() { stop(); }

ClusterMember::Due ClusterMember::waitForWork() {
  MutexLock lock(mu_);
  while (!stopping_ && !dirty_ && !health_changed_) {
    if (!wake_.waitUntil(lock, next_reconcile_)) break;
  }
  if (stopping_) return Due::kStop;
  health_changed_ = false;
  // A reconcile also runs every kReconcileEvery however busy the bus is: a lease may expire
  // without any watch event here.
  const Clock::time_point now = Clock::now();
  if (dirty_ || now >= next_reconcile_) {
    dirty_ = false;
    next_reconcile_ = now + kReconcileEvery;
    return Due::kReconcile;
  }
  return Due::kPublish;
}

core::LeaseDeadline& ClusterMember::leaseDeadline() {
  if (keeper_) {
    const auto acked = keeper_->lastAcknowledgedSend();
    if (acked != Clock::time_point{}) deadline_->acknowledged(acked);
  }
  return *deadline_;
}

bool ClusterMember::join(bool exclusive, std::string& error) {
  const Clock::time_point sent = Clock::now();
  etcd::EtcdLease lease;
  if (auto failure = client_.grantLease(options_.ttl.count(), lease)) {
    error = "cannot grant an etcd lease: " + failure->message;
    return false;
  }
  const auto ttl = std::chrono::duration_cast<core::Duration>(
      std::chrono::seconds(std::max<int64_t>(lease.ttl_seconds, options_.ttl.count())));
  auto keeper = std::make_unique<etcd::LeaseKeeper>(
      client_, lease, [this, id = lease.id](const std::string& reason) {
        MutexLock lock(mu_);
        if (lease_id_ != id) return;
        lease_lost_reason_ = reason;
        deadline_->lost();
        dirty_ = true;
        wake_.notifyAll();
      });
  std::unique_ptr<etcd::LeaseKeeper> old;
  {
    MutexLock lock(mu_);
    lease_id_ = lease.id;
    lease_lost_reason_.clear();
    deadline_.emplace(ttl, core::LeaseDeadline::marginFor(ttl));
    deadline_->acknowledged(sent);
    old = std::exchange(keeper_, std::move(keeper));
  }
  old.reset();  // outside mu_: its thread may be waiting for mu_ in its callback

  const std::string key = members_prefix_ + options_.member_id;
  if (!exclusive) {
    if (auto failure = client_.put(key, options_.member_id, lease.id)) {
      error = "cannot write the member key " + key + ": " + failure->message;
      // Not a member without the key: the next turn starts the join over with a new lease.
      MutexLock lock(mu_);
      deadline_->lost();
      return false;
    }
    publishCapacity(lease.id);
    return true;
  }
  // A replica killed a moment ago still holds its key until its lease expires: wait that long.
  const auto give_up = Clock::now() + options_.join_timeout;
  for (int attempt = 1;; ++attempt) {
    etcd::EtcdSwap swap;
    auto failure = client_.createIfAbsent(key, options_.member_id, lease.id, swap);
    if (!failure && swap.succeeded) {
      joined_at_revision_ = swap.revision;
      publishCapacity(lease.id);
      return true;
    }
    if (Clock::now() + kJoinRetry >= give_up) {
      error = failure ? "cannot create the member key " + key + ": " + failure->message
                      : "member id '" + options_.member_id + "' is held by a live replica (key " +
                            key + "); give each replica its own --member-id";
      return false;
    }
    if (attempt == 1 && !failure) {
      WSV_LOG(kWarning) << "member key " << key << " exists; waiting up to "
                        << options_.join_timeout.count()
                        << " ms for the previous holder's lease to expire";
    }
    std::this_thread::sleep_for(kJoinRetry);
  }
}

void ClusterMember::publishCapacity(int64_t lease) {
  const std::string key = capacity_prefix_ + options_.member_id;
  if (auto failure = client_.put(key, std::to_string(registry_.maxConnections()), lease)) {
    WSV_LOG(kWarning) << "cannot write " << key << " (the other replicas route to this one as if "
                      << "it had no limit): " << failure->message;
  }
}

bool ClusterMember::startEndpointsWatch(std::string& error) {
  std::vector<StoredEndpoint> all;
  int64_t revision = 0;
  if (auto failure = store_.loadAllAt(all, revision)) {
    error = "cannot read the endpoints: " + *failure;
    return false;
  }
  registry_.syncStored(all);
  {
    MutexLock remote(remote_mu_);
    for (const StoredEndpoint& record : all)
      applyRemoteUnderRemoteLock(record.id, /*if_reported=*/true);
  }
  // The same line as a single-node restore: operators and tests look for it.
  WSV_LOG(kInfo) << "restored " << all.size() << " endpoints from " << store_.describe()
                 << "; this replica dials those it owns";
  etcd::PrefixWatch::Callbacks callbacks;
  callbacks.on_events = [this](const std::vector<etcd::EtcdEvent>& events, int64_t) {
    for (const etcd::EtcdEvent& event : events) {
      const std::string id = suffixAfter(event.kv.key, store_.endpointsPrefix());
      if (event.type == etcd::EtcdEvent::Type::kDelete) {
        registry_.applyStoredRemove(id);
        continue;
      }
      StoredEndpoint record;
      if (auto problem = store_.decodeKeyValue(event.kv, record)) {
        WSV_LOG(kError) << "ignoring a stored endpoint: " << *problem;
        continue;
      }
      registry_.applyStoredPut(record);
      // Its owner's health may have arrived first (the watches run apart).
      MutexLock remote(remote_mu_);
      applyRemoteUnderRemoteLock(id, /*if_reported=*/true);
    }
    MutexLock lock(mu_);
    dirty_ = true;
    wake_.notifyAll();
  };
  watchFrom(kEndpointsWatch, store_.endpointsPrefix(), revision + 1, std::move(callbacks));
  return true;
}

bool ClusterMember::startMembersWatch(std::string& error) {
  etcd::EtcdRange range;
  if (auto failure = client_.getPrefix(members_prefix_, range)) {
    error = "cannot read the members: " + failure->message;
    return false;
  }
  {
    MutexLock lock(mu_);
    members_.clear();
    for (const etcd::EtcdKeyValue& kv : range.kvs) members_.insert(kv.value);
  }
  etcd::PrefixWatch::Callbacks callbacks;
  callbacks.on_events = [this](const std::vector<etcd::EtcdEvent>& events, int64_t) {
    MutexLock lock(mu_);
    for (const etcd::EtcdEvent& event : events) {
      const std::string id = suffixAfter(event.kv.key, members_prefix_);
      if (event.type == etcd::EtcdEvent::Type::kDelete) {
        members_.erase(id);
        WSV_LOG(kInfo) << "cluster member " << id << " left";
      } else if (members_.insert(id).second) {
        WSV_LOG(kInfo) << "cluster member " << id << " joined";
      }
    }
    dirty_ = true;
    wake_.notifyAll();
  };
  watchFrom(kMembersWatch, members_prefix_, range.revision + 1, std::move(callbacks));
  return true;
}

bool ClusterMember::startOwnersWatch(std::string& error) {
  etcd::EtcdRange range;
  if (auto failure = client_.getPrefix(owners_prefix_, range)) {
    error = "cannot read the owners: " + failure->message;
    return false;
  }
  {
    MutexLock lock(mu_);
    owners_.clear();
    for (const etcd::EtcdKeyValue& kv : range.kvs) {
      owners_[suffixAfter(kv.key, owners_prefix_)] = Holder{kv.value, kv.lease, kv.mod_revision};
    }
  }
  etcd::PrefixWatch::Callbacks callbacks;
  callbacks.on_events = [this](const std::vector<etcd::EtcdEvent>& events, int64_t) {
    MutexLock lock(mu_);
    for (const etcd::EtcdEvent& event : events) {
      const std::string id = suffixAfter(event.kv.key, owners_prefix_);
      if (event.type == etcd::EtcdEvent::Type::kDelete) {
        owners_.erase(id);
      } else {
        owners_[id] = Holder{event.kv.value, event.kv.lease, event.kv.mod_revision};
      }
    }
    dirty_ = true;
    wake_.notifyAll();
  };
  watchFrom(kOwnersWatch, owners_prefix_, range.revision + 1, std::move(callbacks));
  return true;
}

namespace {

// A capacity/ value; nullopt when it is not a count (then the member is taken to have no limit).
std::optional<size_t> parseCapacity(const std::string& text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  size_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<size_t>(c - '0');
  }
  return value;
}

}  // namespace

bool ClusterMember::startCapacityWatch(std::string& error) {
  etcd::EtcdRange range;
  if (auto failure = client_.getPrefix(capacity_prefix_, range)) {
    error = "cannot read the members' capacities: " + failure->message;
    return false;
  }
  {
    MutexLock lock(mu_);
    capacities_.clear();
    for (const etcd::EtcdKeyValue& kv : range.kvs) {
      if (auto capacity = parseCapacity(kv.value))
        capacities_[suffixAfter(kv.key, capacity_prefix_)] = *capacity;
    }
  }
  etcd::PrefixWatch::Callbacks callbacks;
  callbacks.on_events = [this](const std::vector<etcd::EtcdEvent>& events, int64_t) {
    MutexLock lock(mu_);
    for (const etcd::EtcdEvent& event : events) {
      const std::string member = suffixAfter(event.kv.key, capacity_prefix_);
      auto capacity = event.type == etcd::EtcdEvent::Type::kDelete ? std::nullopt
                                                                   : parseCapacity(event.kv.value);
      if (capacity) {
        capacities_[member] = *capacity;
      } else {
        capacities_.erase(member);
      }
    }
    dirty_ = true;
    wake_.notifyAll();
  };
  watchFrom(kCapacityWatch, capacity_prefix_, range.revision + 1, std::move(callbacks));
  return true;
}

bool ClusterMember::startHealthWatch(std::string& error) {
  etcd::EtcdRange range;
  if (auto failure = client_.getPrefix(health_prefix_, range)) {
    error = "cannot read the published health: " + failure->message;
    return false;
  }
  std::map<std::string, v1::EndpointStatus> all;
  for (const etcd::EtcdKeyValue& kv : range.kvs) {
    v1::EndpointStatus status;
    if (status.ParseFromString(kv.value)) all[suffixAfter(kv.key, health_prefix_)] = status;
  }
  {
    MutexLock remote(remote_mu_);
    health_.replaceAll(std::move(all));
    for (const std::string& id : registry_.ids())
      applyRemoteUnderRemoteLock(id, /*if_reported=*/false);
  }
  etcd::PrefixWatch::Callbacks callbacks;
  callbacks.on_events = [this](const std::vector<etcd::EtcdEvent>& events, int64_t) {
    MutexLock remote(remote_mu_);
    for (const etcd::EtcdEvent& event : events) {
      const std::string id = suffixAfter(event.kv.key, health_prefix_);
      v1::EndpointStatus status;
      if (event.type == etcd::EtcdEvent::Type::kDelete || !status.ParseFromString(event.kv.value)) {
        health_.erase(id);
      } else {
        health_.set(id, std::move(status));
      }
      applyRemoteUnderRemoteLock(id, /*if_reported=*/false);
    }
  };
  watchFrom(kHealthWatch, health_prefix_, range.revision + 1, std::move(callbacks));
  return true;
}

void ClusterMember::applyRemoteUnderRemoteLock(const std::string& id, bool if_reported) {
  const std::optional<v1::EndpointStatus> published = health_.get(id);
  if (!published && if_reported) return;
  registry_.applyRemoteStatus(
      id,
      published ? std::optional<core::EndpointStatus>(statusFromProto(*published)) : std::nullopt);
}

void ClusterMember::collectHealthChanges() {
  if (!bus_changes_) return;
  while (auto event = bus_changes_->next()) {
    if (event->type != core::HealthEvent::Type::kSnapshotComplete) {
      health_due_.insert(event->endpoint_id);
    }
  }
}

void ClusterMember::publishHealth(int64_t lease) {
  collectHealthChanges();
  for (auto it = health_due_.begin(); it != health_due_.end(); it = health_due_.erase(it)) {
    const std::string& id = *it;
    auto view = registry_.get(id);
    // Endpoints supervised elsewhere are that replica's to publish; ours we released are gone
    // from published_ and health/ already (see kRelease).
    if (!view || !view->supervised_here) continue;
    v1::EndpointStatus status;
    statusToProto(view->status, &status);
    auto found = published_.find(id);
    if (found != published_.end() && ClusterHealth::sameState(found->second, status)) continue;
    if (auto failure = client_.put(health_prefix_ + id, status.SerializeAsString(), lease)) {
      WSV_LOG(kWarning) << "cannot publish the health of " << id
                        << " (retrying): " << failure->message;
      return;  // the rest stays due
    }
    published_[id] = std::move(status);
  }
}

bool ClusterMember::start(std::string& error) {
  if (!join(/*exclusive=*/true, error)) return false;
  // This run's watch revisions start at (etcd revision of the join) * 2^32: etcd gives every
  // join its own revision, so no two runs of any replicas share a revision unless one publishes
  // 2^32 changes, and a client resuming a watch at another replica is refused, not misled.
  constexpr int kRunRevisionBits = 32;
  const auto epoch = static_cast<uint64_t>(joined_at_revision_);
  if (epoch >> (64 - kRunRevisionBits) != 0 ||
      !bus_.startRevisionsAfter(epoch << kRunRevisionBits)) {
    WSV_LOG(kWarning) << "watch revisions keep their single-node numbering (etcd revision " << epoch
                      << "): resuming a watch at another replica may be misread";
  }
  bus_changes_ = bus_.subscribe(WatchFilter{}, kBusChangesQueued, [this] {
    MutexLock lock(mu_);
    health_changed_ = true;
    wake_.notifyAll();
  });
  if (!startMembersWatch(error) || !startOwnersWatch(error) || !startCapacityWatch(error) ||
      !startHealthWatch(error) || !startEndpointsWatch(error)) {
    return false;
  }
  WSV_LOG(kInfo) << "joined the cluster at " << store_.describe() << " as member "
                 << options_.member_id << " (lease TTL " << options_.ttl.count() << " s; "
                 << registry_.size() << " endpoints registered)";
  reconciler_ = std::thread([this] { reconcileLoop(); });
  guard_ = std::thread([this] { guardLoop(); });
  return true;
}

void ClusterMember::stop() {
  {
    MutexLock lock(mu_);
    if (stopping_ && !reconciler_.joinable() && !keeper_) return;
    stopping_ = true;
  }
  wake_.notifyAll();
  if (reconciler_.joinable()) reconciler_.join();
  if (guard_.joinable()) guard_.join();
  for (WatchSlot& slot : watches_) {
    if (slot.watch) slot.watch->stop();
  }
  if (bus_changes_) bus_.unsubscribe(bus_changes_);
  // Connections first, lease second: the others claim only once ours are closed.
  stopAll("leaving the cluster");
  std::unique_ptr<etcd::LeaseKeeper> keeper;
  int64_t lease = 0;
  {
    MutexLock lock(mu_);
    keeper = std::move(keeper_);
    lease = lease_id_;
  }
  if (keeper) {
    keeper->stop();
    if (auto failure = client_.revokeLease(lease)) {
      WSV_LOG(kWarning) << "cannot revoke the cluster lease (the others take over when it "
                           "expires): "
                        << failure->message;
    }
  }
}

void ClusterMember::stopAll(const std::string& why) {
  MutexLock own(own_mu_);
  const size_t stopped = registry_.stopSupervisingAll(why);
  if (stopped > 0)
    WSV_LOG(kWarning) << "stopped all " << stopped << " supervised endpoints: " << why;
}

void ClusterMember::guardLoop() {
  for (;;) {
    bool expired = false;
    std::string reason;
    {
      MutexLock lock(mu_);
      const Clock::time_point next_check = Clock::now() + kGuardEvery;
      while (!stopping_ && wake_.waitUntil(lock, next_check)) {
      }
      if (stopping_) return;
      expired = !leaseDeadline().mayOwn(Clock::now());
      reason = lease_lost_reason_;
    }
    if (expired) {
      stopAll(reason.empty() ? "the cluster lease was not renewed in time; it may expire" : reason);
    }
  }
}

void ClusterMember::reconcileLoop() {
  for (;;) {
    switch (waitForWork()) {
      case Due::kStop:
        return;
      case Due::kReconcile:
        reconcileOnce();
        break;
      case Due::kPublish: {
        int64_t lease = 0;
        {
          MutexLock lock(mu_);
          if (!leaseDeadline().mayOwn(Clock::now())) break;  // the next reconcile rejoins
          lease = lease_id_;
        }
        publishHealth(lease);
        break;
      }
    }
  }
}

void ClusterMember::watchFrom(WatchedPrefix which, const std::string& prefix, int64_t revision,
                              etcd::PrefixWatch::Callbacks callbacks) {
  callbacks.on_compacted = [this, which](int64_t) {
    // Under mu_, so that the reconciler's wait cannot miss it.
    MutexLock lock(mu_);
    watches_[which].compacted = true;
    wake_.notifyAll();
  };
  watches_[which].watch =
      std::make_unique<etcd::PrefixWatch>(client_, prefix, revision, std::move(callbacks));
}

void ClusterMember::restartCompactedWatches() {
  for (WatchSlot& slot : watches_) {
    if (!slot.compacted.exchange(false)) continue;
    slot.watch->stop();
    std::string error;
    if (!(this->*slot.start)(error)) {
      WSV_LOG(kError) << "cannot restart a compacted watch (retrying): " << error;
      MutexLock lock(mu_);
      slot.compacted = true;
    }
  }
}

bool ClusterMember::rejoin() {
  // Everything we ran is stopped (the guard did it at the deadline; again here in case).
  stopAll("the cluster lease is lost");
  held_.clear();
  published_.clear();  // our health keys go with the old lease
  health_due_.clear();
  int64_t old_lease = 0;
  {
    MutexLock lock(mu_);
    old_lease = lease_id_;
  }
  // Revoking the old lease deletes its keys now rather than after its TTL: our connections
  // are closed, so the endpoints may be claimed at once.
  client_.revokeLease(old_lease);
  std::string error;
  if (!join(/*exclusive=*/false, error)) {
    WSV_LOG(kWarning) << "cannot rejoin the cluster yet: " << error;
    return false;
  }
  WSV_LOG(kInfo) << "rejoined the cluster as member " << options_.member_id;
  return true;
}

ClusterMember::Pass ClusterMember::beginPass() {
  Pass pass;
  std::vector<std::string> members;
  std::map<std::string, Holder> owners;
  std::map<std::string, size_t> capacities;
  {
    MutexLock lock(mu_);
    members.assign(members_.begin(), members_.end());
    owners = owners_;
    capacities = capacities_;
    pass.lease = lease_id_;
    pass.may_claim = leaseDeadline().mayClaim(Clock::now());
  }
  if (std::find(members.begin(), members.end(), options_.member_id) == members.end()) {
    members.push_back(options_.member_id);
  }
  const std::vector<std::string> registered = registry_.ids();
  const std::vector<std::string> supervised = registry_.supervisedIds();
  const std::set<std::string> registered_set(registered.begin(), registered.end());
  const std::set<std::string> supervised_set(supervised.begin(), supervised.end());
  // Every endpoint registered, held by us, or owned under our lease (a claim whose answer was
  // lost but that etcd applied).
  std::set<std::string> ids(registered.begin(), registered.end());
  for (const auto& [id, revision] : held_) ids.insert(id);
  for (const auto& [id, holder] : owners) {
    if (holder.member == options_.member_id && holder.lease == pass.lease) ids.insert(id);
  }
  // Where the members' room sends each endpoint. Our own claims count at once (the owners watch
  // may not show them yet), and so does our own capacity (nor may the capacity watch).
  core::ClusterPlacement placement;
  placement.members = members;
  for (const std::string& member : members) {
    if (auto it = capacities.find(member); it != capacities.end())
      placement.capacity[member] = it->second;
  }
  placement.capacity[options_.member_id] = registry_.maxConnections();
  for (const auto& [id, holder] : owners) placement.holders[id] = holder.member;
  for (const auto& [id, revision] : held_) placement.holders[id] = options_.member_id;
  placement.registered = registered;
  const std::map<std::string, std::string> routed = core::routeEndpoints(placement);
  for (const std::string& id : ids) {
    core::OwnershipView view;
    view.endpoint_id = id;
    view.self = options_.member_id;
    view.members = members;
    view.registered = registered_set.count(id) != 0;
    view.supervising = supervised_set.count(id) != 0;
    view.may_claim = pass.may_claim;
    view.routed = true;
    if (auto it = routed.find(id); it != routed.end()) view.routed_to = it->second;
    if (held_.count(id) != 0) {
      view.holder = options_.member_id;
      view.holder_is_our_lease = true;
    } else if (auto it = owners.find(id); it != owners.end()) {
      view.holder = it->second.member;
      view.holder_is_our_lease = it->second.lease == pass.lease;
      // A claim whose answer was lost but that etcd applied: the watch shows it is ours.
      if (view.holder == options_.member_id && view.holder_is_our_lease) {
        held_[id] = it->second.mod_revision;
      }
    }
    pass.views.push_back(std::move(view));
  }
  return pass;
}

bool ClusterMember::claim(const std::string& id, int64_t lease) {
  etcd::EtcdSwap swap;
  if (auto failure = client_.createIfAbsent(owners_prefix_ + id, options_.member_id, lease, swap)) {
    WSV_LOG(kWarning) << "claim of " << id << " failed: " << failure->message;
    return false;
  }
  if (!swap.succeeded) return false;  // another replica was first; its key will show in the watch
  held_[id] = swap.revision;
  return true;
}

bool ClusterMember::startSupervising(const std::string& id, size_t started_this_pass) {
  MutexLock own(own_mu_);
  {
    MutexLock lock(mu_);
    if (!leaseDeadline().mayOwn(Clock::now())) return false;
  }
  // Spread the dials of one pass (a takeover) over time, as a restart does.
  const auto delay = std::chrono::duration_cast<core::Duration>(std::chrono::duration<double>(
      static_cast<double>(started_this_pass) / options_.dials_per_second));
  if (!registry_.setSupervised(id, true, delay)) return false;
  WSV_LOG(kInfo) << "endpoint " << id << " owned by this replica";
  return true;
}

void ClusterMember::release(const core::OwnershipView& view) {
  const std::string& id = view.endpoint_id;
  const std::string to = !view.registered ? std::string("unregistered")
                         : view.routed_to ? "released to replica " + *view.routed_to
                                          : std::string("released to another replica");
  // Stop the connection first, then free the key: never two connections at once.
  registry_.setSupervised(id, false, core::Duration::zero(), to);
  auto it = held_.find(id);
  if (it == held_.end()) return;
  // Our last published status goes before the key, so the next owner's is never overwritten by
  // ours.
  if (published_.erase(id) != 0) client_.remove(health_prefix_ + id);
  etcd::EtcdSwap swap;
  // The mod revision of our creation: the key is still ours exactly when it is unchanged.
  if (auto failure = client_.removeIfModRevision(owners_prefix_ + id, it->second, swap)) {
    WSV_LOG(kWarning) << "release of " << id << " failed (retrying): " << failure->message;
    return;
  }
  held_.erase(it);
  WSV_LOG(kInfo) << "endpoint " << id << (view.registered ? " " : " released: ") << to;
}

void ClusterMember::warnNoRoom(size_t no_room, size_t nowhere) {
  if ((no_room == 0 && nowhere == 0) || Clock::now() < next_no_room_warning_) return;
  next_no_room_warning_ = Clock::now() + kNoRoomWarningEvery;
  if (no_room > 0) {
    WSV_LOG(kError) << "cannot take " << no_room << " endpoints routed to this replica: its "
                    << registry_.connectionsInUse() << " connections and running probes fill its "
                    << "budget of " << registry_.maxConnections()
                    << "; they stay unsupervised until it has room";
  }
  if (nowhere > 0) {
    WSV_LOG(kError) << nowhere << " endpoints are unsupervised: every replica's open-files budget "
                    << "is full (add replicas or raise the limit)";
  }
}

void ClusterMember::reconcileOnce() {
  restartCompactedWatches();
  bool lease_ok = false;
  {
    MutexLock lock(mu_);
    lease_ok = leaseDeadline().mayOwn(Clock::now());
  }
  if (!lease_ok && !rejoin()) return;

  const Pass pass = beginPass();
  size_t started = 0;
  size_t no_room = 0;
  size_t nowhere = 0;
  for (const core::OwnershipView& view : pass.views) {
    switch (core::decideOwnership(view)) {
      case core::OwnershipAction::kNone:
        // Unheld and routed to no one: no member has room. Counted by the replica it would go to
        // first, so that one replica says it.
        if (!view.holder && view.registered && !view.routed_to &&
            core::preferredOwner(view.members, view.endpoint_id) == options_.member_id) {
          ++nowhere;
        }
        break;
      case core::OwnershipAction::kClaim:
        // Without a descriptor for it the endpoint stays unclaimed (and unreported everywhere)
        // rather than dialled into an EMFILE.
        if (!registry_.hasRoomToSupervise()) {
          ++no_room;
        } else if (claim(view.endpoint_id, pass.lease) &&
                   startSupervising(view.endpoint_id, started)) {
          ++started;
        }
        break;
      case core::OwnershipAction::kStart:
        if (startSupervising(view.endpoint_id, started)) ++started;
        break;
      case core::OwnershipAction::kRelease:
        release(view);
        break;
    }
  }
  warnNoRoom(no_room, nowhere);
  publishHealth(pass.lease);
}

}  // namespace wsvisor::service
