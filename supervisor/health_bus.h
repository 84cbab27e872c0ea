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

#include "supervisor/change_log.h"
#include "supervisor/core/health_event.h"
#include "supervisor/health_history.h"
#include "supervisor/latest_changes.h"
#include "supervisor/live_stats.h"
#include "supervisor/mutex.h"
#include "supervisor/watch_cursor.h"

namespace wsvisor {

struct HealthBusOptions {
  // Health transitions kept per endpoint for GetEndpointHistory; 0 keeps none.
  size_t history_size = 64;
  // Published events kept for resuming watches (see ChangeLog for the memory per event); 0 keeps
  // none, so that only a watcher already at the current revision can resume. The change log that
  // watchers read live changes from keeps at least kMinLiveChanges events whatever this says.
  size_t replay_log_size = 16384;
  // Tombstones (unregistrations) kept for watchers that fell behind, beyond those every watcher
  // has passed (see LatestChanges).
  size_t tombstone_bound = 16384;
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

// One watcher's end of the bus. The bus calls `wake` (outside its lock, from whichever thread
// published) when a change for the watcher is published after next() found nothing to send (and
// when the watcher's snapshot or replay is queued); a watcher that has not yet read all it was
// sent is not woken: whoever reads it calls next() again anyway.
class WatchSubscription : public std::enable_shared_from_this<WatchSubscription> {
 public:
  WatchSubscription(HealthBus& bus, WatchCursor cursor, std::function<void()> wake)
      : bus_(bus), cursor_(std::move(cursor)), wake_(std::move(wake)) {}

  // The next event to deliver, or nullopt when none is waiting. Thread-safe; the event is built
  // on the caller's thread, outside every lock the publishers take.
  std::optional<core::HealthEvent> next();
  // Set once the watcher fell too far behind (see WatchCursor): the subscription delivers nothing
  // more and its owner should end the watch. Found by next(), which then returns nullopt.
  std::optional<WatchExhaustion> exhaustion();

 private:
  friend class HealthBus;
  HealthBus& bus_;
  // Guarded by the bus's mutex: only HealthBus methods that hold it touch these. (They are not
  // annotated as such: the analysis cannot tell that `bus_.mu_` is the mutex the bus holds.)
  WatchCursor cursor_;
  bool parked_ = false;     // next() found nothing to send; the next matching publish wakes it
  bool subscribed_ = true;  // until unsubscribe(): only a subscribed watcher parks
  const std::function<void()> wake_;
};

// The ordered record of every endpoint's health. Publishers (the registry and the io threads)
// report changes; each change gets the next revision and is appended, once, to the ChangeLog
// that every subscription reads at its own position (WatchCursor), and moves the endpoint's entry
// in LatestChanges, from which a subscription that fell behind is caught up. So a publish costs
// the same however many watchers there are and however far behind they are: only watchers that
// have read everything and wait (parked) are looked at, to wake those the change is for.
// Publishing happens only on changes (health, phase, failure), never per heartbeat, so one mutex
// is enough. Under the same mutex the bus keeps each endpoint's last health transitions in a
// HealthHistory (for history()); resume() replays from the ChangeLog.
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

  // The change log keeps at least this many events, so that a watcher up to this many events
  // behind reads every change (WatchStream's are coalesced 1,024 events behind).
  static constexpr size_t kMinLiveChanges = 4096;

  // Queues the current state of every matching endpoint and the snapshot-complete marker, then
  // every later matching change. A watcher more than `live_capacity` changes or `byte_budget`
  // bytes behind is coalesced, or ended when even that exceeds `byte_budget` (see WatchCursor).
  std::shared_ptr<WatchSubscription> subscribe(WatchFilter filter, size_t live_capacity,
                                               std::function<void()> wake,
                                               size_t byte_budget = WatchCursor::kNoByteBudget);
  // Resumes a watch that has seen every change up to `since_revision`: queues every later
  // matching change from the replay log, with its original type and uncoalesced, then the
  // snapshot-complete marker with the current revision, then every later matching change.
  // Refused when the log no longer holds every change after `since_revision` (it replays at most
  // `replay_log_size` changes), or when
  // `since_revision` is greater than the current revision. The check, the replay and the
  // subscription happen under one lock, so no change falls between replay and live.
  std::variant<std::shared_ptr<WatchSubscription>, ResumeRefused> resume(
      WatchFilter filter, uint64_t since_revision, size_t live_capacity, std::function<void()> wake,
      size_t byte_budget = WatchCursor::kNoByteBudget);
  // After this returns, the subscription receives nothing more and `wake` is not called again
  // by publishes that start later.
  void unsubscribe(const std::shared_ptr<WatchSubscription>& subscription);
  size_t subscriptionCount() const;

 private:
  void registerState(const std::string& id, uint64_t incarnation,
                     std::map<std::string, std::string> labels, const core::EndpointStatus& status,
                     std::shared_ptr<const LiveStats> live, bool supervised_here,
                     core::WallTime at);
  // Publishes `event` as `state`'s latest change: to the change log and LatestChanges, to the
  // endpoint's history when its health changed, and wakes every parked subscription it is for
  // (by its labels, and also by those of `relabelled_from`, the endpoint's previous event, when
  // the event changed them).
  void deliver(EndpointState& state, std::shared_ptr<core::HealthEvent> event,
               std::vector<std::shared_ptr<WatchSubscription>>& woken,
               SharedHealthEvent relabelled_from = nullptr) WSV_REQUIRES(mu_);
  // Publishes `status` as a CHANGED event of `state` with its current labels.
  void deliverChange(EndpointState& state, const std::string& id,
                     const core::EndpointStatus& status, core::WallTime at,
                     std::vector<std::shared_ptr<WatchSubscription>>& woken) WSV_REQUIRES(mu_);
  // `status` as published for `state`: named after this replica when it is supervised here.
  core::EndpointStatus stamped(const EndpointState& state,
                               const core::EndpointStatus& status) const;
  // Queues the snapshot-complete marker (at the current revision) and starts delivering live
  // changes to `subscription`.
  void completeSubscription(const std::shared_ptr<WatchSubscription>& subscription)
      WSV_REQUIRES(mu_);
  // Drops tombstones no watcher needs, and past the bound the oldest (see LatestChanges).
  void forgetTombstones() WSV_REQUIRES(mu_);

  friend class WatchSubscription;
  // WatchSubscription::next() and exhaustion().
  std::optional<WatchDelivery> nextFor(WatchSubscription& subscription) WSV_EXCLUDES(mu_);
  std::optional<WatchExhaustion> exhaustionOf(WatchSubscription& subscription) WSV_EXCLUDES(mu_);

  const size_t replay_log_size_;
  const std::string supervisor_name_;
  // Lock order: a Registry's locks (changes_mu_, map_mu_) may be held when this one is taken
  // (the registry publishes under them). Nothing here calls out to other code while holding it
  // (wake callbacks run after it is released).
  mutable Mutex mu_;
  uint64_t revision_ WSV_GUARDED_BY(mu_);
  bool published_ WSV_GUARDED_BY(mu_) = false;  // anything was delivered
  std::map<std::string, EndpointState> endpoints_ WSV_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<WatchSubscription>> subscriptions_ WSV_GUARDED_BY(mu_);
  // The subscriptions that found nothing to send; each publish looks at these only.
  std::vector<std::shared_ptr<WatchSubscription>> parked_ WSV_GUARDED_BY(mu_);
  HealthHistory history_ WSV_GUARDED_BY(mu_);
  ChangeLog change_log_ WSV_GUARDED_BY(mu_);
  LatestChanges latest_ WSV_GUARDED_BY(mu_);
};

}  // namespace wsvisor
