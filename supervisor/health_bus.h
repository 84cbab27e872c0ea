#pragma once

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "supervisor/core/health_event.h"
#include "supervisor/core/label_selector.h"
#include "supervisor/health_history.h"
#include "supervisor/live_stats.h"
#include "supervisor/mutex.h"
#include "supervisor/replay_log.h"
#include "supervisor/watch_queue.h"

namespace wsvisor {

// Which endpoints a watcher wants: all listed ids (or any id when the list is empty) that also
// match the selector.
struct WatchFilter {
  std::set<std::string> ids;
  core::LabelSelector selector;

  bool matches(const std::string& id, const std::map<std::string, std::string>& labels) const {
    return (ids.empty() || ids.count(id) != 0) && selector.matches(labels);
  }
  // A published event goes to a watcher matching its labels or, when the event changed them, the
  // labels before (`relabelled_from`, may be null): an endpoint leaving a selection is not lost.
  bool matches(const core::HealthEvent& event, const core::HealthEvent* relabelled_from) const {
    return matches(event.endpoint_id, event.labels) ||
           (relabelled_from != nullptr && matches(event.endpoint_id, relabelled_from->labels));
  }
};

struct HealthBusOptions {
  // Health transitions kept per endpoint for GetEndpointHistory; 0 keeps none.
  size_t history_size = 64;
  // Published events kept for resuming watches (see ReplayLog for the memory per event); 0 keeps
  // none, so that only a watcher already at the current revision can resume.
  size_t replay_log_size = 16384;
  // The revision before the first event. Unset: the bus's start time in microseconds since the
  // Unix epoch, so that every revision of a later run is higher than those of an earlier one
  // (as long as a run publishes fewer than a million events per second on average) and a
  // watcher resuming across a restart is refused rather than handed the wrong events.
  std::optional<uint64_t> start_revision;
  // Cluster mode: this replica's member id, written into the status of every endpoint supervised
  // here (EndpointStatus::supervised_by) as it is published, so that watchers, Get and the status
  // this replica puts in etcd all name it. Empty in single-node mode: nothing is written.
  std::string supervisor_name;
};

// Why a watch cannot be resumed from the revision it asked for.
struct ResumeRefused {
  std::string message;  // names the revisions and says to start again with a snapshot
};

class HealthBus;

// One watcher's end of the bus. The bus pushes events into its queue and then calls `wake`
// (outside the bus lock, from whichever thread published); the consumer pops with next().
class WatchSubscription {
 public:
  // `byte_budget` bounds the bytes queued (see WatchQueue); the default sets no such bound.
  WatchSubscription(WatchFilter filter, size_t live_capacity, std::function<void()> wake,
                    size_t byte_budget = WatchQueue::kNoByteBudget)
      : filter_(std::move(filter)), queue_(live_capacity, byte_budget), wake_(std::move(wake)) {}

  // The next event to deliver, or nullopt when none is waiting. Thread-safe; the event is built
  // on the caller's thread, outside every lock the publishers take.
  std::optional<core::HealthEvent> next();
  uint64_t droppedEvents();
  // Set once the queue went over its byte budget even coalesced: the subscription delivers
  // nothing more and its owner should end the watch (wake is called when it happens).
  std::optional<WatchQueue::Exhaustion> exhaustion();

 private:
  friend class HealthBus;
  const WatchFilter filter_;
  // Taken after the bus's mu_ when both are held (the bus queues under its own lock).
  Mutex mu_;
  WatchQueue queue_ WSV_GUARDED_BY(mu_);
  const std::function<void()> wake_;
};

// The ordered record of every endpoint's health. Publishers (the registry and the io threads)
// report changes; each change gets the next revision and goes, in revision order, to every
// subscription whose filter matches. Publishing happens only on changes (health, phase, failure),
// never per heartbeat, so one mutex is enough. Under the same mutex the bus keeps the last
// changes in a ReplayLog (for resume()) and each endpoint's last health transitions in a
// HealthHistory (for history()).
//
// Late publishes from a session that was already unregistered are dropped by comparing the
// registration's incarnation number.
class HealthBus {
 public:
  explicit HealthBus(HealthBusOptions options = {});

  struct EndpointState {
    uint64_t incarnation = 0;
    // The endpoint's last change as it was published (labels, status, revision, time). Shared
    // and immutable: handing out a state or a snapshot copies a pointer, not the labels.
    SharedHealthEvent latest;
    // Figures that change with every heartbeat (RTT, heartbeats sent) are not published as
    // changes; they are read from here whenever a state is handed out.
    std::shared_ptr<const LiveStats> live;
    // False in cluster mode for an endpoint another replica supervises: its status is what that
    // replica published (see publishRegisteredElsewhere), and countByHealth() leaves it out.
    bool supervised_here = true;

    const std::map<std::string, std::string>& labels() const { return latest->labels; }
    uint64_t revision() const { return latest->revision; }
    // The published status with the live figures filled in.
    core::EndpointStatus currentStatus() const;
  };

  void publishRegistered(const std::string& id, uint64_t incarnation,
                         std::map<std::string, std::string> labels,
                         const core::EndpointStatus& status, std::shared_ptr<const LiveStats> live,
                         core::WallTime at);
  // Cluster mode: a registered endpoint that another replica supervises. Its changes arrive with
  // publishChanged() as that replica publishes them; it has no live figures here.
  void publishRegisteredElsewhere(const std::string& id, uint64_t incarnation,
                                  std::map<std::string, std::string> labels,
                                  const core::EndpointStatus& status, core::WallTime at);
  // Cluster mode: the supervision of a registered endpoint moved to this process (`live` set: a
  // connection starts here) or away from it (`live` null: another replica's reports follow).
  // A new incarnation, so that whatever the previous supervisor still reports is dropped, and a
  // fresh status; published as a CHANGED event.
  void publishHandover(const std::string& id, uint64_t incarnation,
                       const core::EndpointStatus& status, std::shared_ptr<const LiveStats> live,
                       core::WallTime at);
  // The event's previous_health is the health before this change. Returns false, publishing
  // nothing, when `incarnation` is no longer the endpoint's registration (unregistered or
  // replaced): the caller then must not log or count the change either.
  bool publishChanged(const std::string& id, uint64_t incarnation,
                      const core::EndpointStatus& status, core::WallTime at);
  void publishUnregistered(const std::string& id, uint64_t incarnation, core::WallTime at);
  // The registration was updated: new labels, possibly a new incarnation (the connection is
  // being redialled) and a fresh status. Publishes a CHANGED event.
  // `live` replaces the live figures when a new connection starts (with `status`), and marks the
  // endpoint supervised here.
  void replaceRegistration(const std::string& id, uint64_t incarnation,
                           std::map<std::string, std::string> labels,
                           const std::optional<core::EndpointStatus>& status,
                           std::shared_ptr<const LiveStats> live, core::WallTime at);

  // Moves the revision before the first event to `last_revision`; only before anything was
  // published (returns false otherwise and changes nothing). Cluster mode gives each replica's run
  // its own range of revisions this way (see ClusterMember::join), so that a revision issued by
  // one replica is never mistaken for another's.
  bool startRevisionsAfter(uint64_t last_revision);

  std::optional<EndpointState> state(const std::string& id) const;
  // The endpoint's last health transitions; nullopt when it is not registered.
  std::optional<EndpointHistory> history(const std::string& id) const;
  // Endpoints supervised here per health, indexed by core::Health.
  std::array<size_t, core::kHealthCount> countByHealth() const;
  uint64_t revision() const;

  // Queues the current state of every matching endpoint and the snapshot-complete marker, then
  // every later matching change. `live_capacity` bounds the queued changes, `byte_budget` the
  // bytes of everything queued (see WatchQueue).
  std::shared_ptr<WatchSubscription> subscribe(WatchFilter filter, size_t live_capacity,
                                               std::function<void()> wake,
                                               size_t byte_budget = WatchQueue::kNoByteBudget);
  // Resumes a watch that has seen every change up to `since_revision`: queues every later
  // matching change from the replay log, with its original type and uncoalesced, then the
  // snapshot-complete marker with the current revision, then every later matching change.
  // Refused when the log no longer holds every change after `since_revision`, or when
  // `since_revision` is greater than the current revision. The check, the replay and the
  // subscription happen under one lock, so no change falls between replay and live.
  std::variant<std::shared_ptr<WatchSubscription>, ResumeRefused> resume(
      WatchFilter filter, uint64_t since_revision, size_t live_capacity, std::function<void()> wake,
      size_t byte_budget = WatchQueue::kNoByteBudget);
  // After this returns, the subscription receives nothing more and `wake` is not called again
  // by publishes that start later.
  void unsubscribe(const std::shared_ptr<WatchSubscription>& subscription);
  size_t subscriptionCount() const;

 private:
  void registerState(const std::string& id, uint64_t incarnation,
                     std::map<std::string, std::string> labels, const core::EndpointStatus& status,
                     std::shared_ptr<const LiveStats> live, bool supervised_here,
                     core::WallTime at);
  // Publishes `event` as `state`'s latest change: to the replay log, to the endpoint's history
  // when its health changed, and to every matching subscription (by its labels, and also by
  // those of `relabelled_from`, the endpoint's previous event, when the event changed them).
  void deliver(EndpointState& state, std::shared_ptr<core::HealthEvent> event,
               std::vector<std::shared_ptr<WatchSubscription>>& woken,
               SharedHealthEvent relabelled_from = nullptr) WSV_REQUIRES(mu_);
  // Publishes `status` as a CHANGED event of `state` with its current labels.
  void deliverChange(EndpointState& state, const std::string& id,
                     const core::EndpointStatus& status, core::WallTime at,
                     std::vector<std::shared_ptr<WatchSubscription>>& woken) WSV_REQUIRES(mu_);
  // Queues the snapshot-complete marker (at the current revision) and starts delivering live
  // changes to `subscription`.
  // `status` as published for `state`: named after this replica when it is supervised here.
  core::EndpointStatus stamped(const EndpointState& state,
                               const core::EndpointStatus& status) const;
  void completeSubscriptionUnderLocks(const std::shared_ptr<WatchSubscription>& subscription)
      WSV_REQUIRES(mu_, subscription->mu_);

  const size_t replay_log_size_;
  const std::string supervisor_name_;
  // Lock order: a Registry's locks (changes_mu_, map_mu_) may be held when this one is taken
  // (the registry publishes under them); a subscription's mu_ is taken after it. Nothing here
  // calls out to other code while holding it (wake callbacks run after it is released).
  mutable Mutex mu_;
  uint64_t revision_ WSV_GUARDED_BY(mu_);
  bool published_ WSV_GUARDED_BY(mu_) = false;  // anything was delivered
  std::map<std::string, EndpointState> endpoints_ WSV_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<WatchSubscription>> subscriptions_ WSV_GUARDED_BY(mu_);
  HealthHistory history_ WSV_GUARDED_BY(mu_);
  ReplayLog replay_log_ WSV_GUARDED_BY(mu_);
};

}  // namespace wsvisor
