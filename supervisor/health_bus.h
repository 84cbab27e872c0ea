#pragma once

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "supervisor/core/health_event.h"
#include "supervisor/core/label_selector.h"
#include "supervisor/live_stats.h"
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
};

class HealthBus;

// One watcher's end of the bus. The bus pushes events into its queue and then calls `wake`
// (outside the bus lock, from whichever thread published); the consumer pops with next().
class WatchSubscription {
 public:
  WatchSubscription(WatchFilter filter, size_t live_capacity, std::function<void()> wake)
      : filter_(std::move(filter)), queue_(live_capacity), wake_(std::move(wake)) {}

  // The next event to deliver, or nullopt when none is waiting. Thread-safe; the event is built
  // on the caller's thread, outside every lock the publishers take.
  std::optional<core::HealthEvent> next();
  uint64_t droppedEvents();

 private:
  friend class HealthBus;
  const WatchFilter filter_;
  std::mutex mu_;  // guards queue_
  WatchQueue queue_;
  const std::function<void()> wake_;
};

// The ordered record of every endpoint's health. Publishers (the registry and the io threads)
// report changes; each change gets the next revision and goes, in revision order, to every
// subscription whose filter matches. Publishing happens only on changes (health, phase, failure),
// never per heartbeat, so one mutex is enough.
//
// Late publishes from a session that was already unregistered are dropped by comparing the
// registration's incarnation number.
class HealthBus {
 public:
  struct EndpointState {
    uint64_t incarnation = 0;
    // The endpoint's last change as it was published (labels, status, revision, time). Shared
    // and immutable: handing out a state or a snapshot copies a pointer, not the labels.
    SharedHealthEvent latest;
    // Figures that change with every heartbeat (RTT, heartbeats sent) are not published as
    // changes; they are read from here whenever a state is handed out.
    std::shared_ptr<const LiveStats> live;

    const std::map<std::string, std::string>& labels() const { return latest->labels; }
    uint64_t revision() const { return latest->revision; }
    // The published status with the live figures filled in.
    core::EndpointStatus currentStatus() const;
  };

  void publishRegistered(const std::string& id, uint64_t incarnation,
                         std::map<std::string, std::string> labels,
                         const core::EndpointStatus& status, std::shared_ptr<const LiveStats> live,
                         core::WallTime at);
  // The event's previous_health is the health before this change.
  void publishChanged(const std::string& id, uint64_t incarnation,
                      const core::EndpointStatus& status, core::WallTime at);
  void publishUnregistered(const std::string& id, uint64_t incarnation, core::WallTime at);
  // The registration was updated: new labels, possibly a new incarnation (the connection is
  // being redialled) and a fresh status. Publishes a CHANGED event.
  // `live` replaces the live figures when a new connection starts (with `status`).
  void replaceRegistration(const std::string& id, uint64_t incarnation,
                           std::map<std::string, std::string> labels,
                           const std::optional<core::EndpointStatus>& status,
                           std::shared_ptr<const LiveStats> live, core::WallTime at);

  std::optional<EndpointState> state(const std::string& id) const;
  // Registered endpoints per health, indexed by core::Health.
  std::array<size_t, core::kHealthCount> countByHealth() const;
  uint64_t revision() const;

  // Queues the current state of every matching endpoint and the snapshot-complete marker, then
  // every later matching change. `live_capacity` bounds the queued changes (see WatchQueue).
  std::shared_ptr<WatchSubscription> subscribe(WatchFilter filter, size_t live_capacity,
                                               std::function<void()> wake);
  // After this returns, the subscription receives nothing more and `wake` is not called again
  // by publishes that start later.
  void unsubscribe(const std::shared_ptr<WatchSubscription>& subscription);
  size_t subscriptionCount() const;

 private:
  // Publishes `event` as `state`'s latest change to every matching subscription (by `labels`,
  // and also by `old_labels` when given). Requires mu_.
  void deliver(EndpointState& state, std::shared_ptr<core::HealthEvent> event,
               std::vector<std::shared_ptr<WatchSubscription>>& woken,
               const std::map<std::string, std::string>* old_labels = nullptr);

  mutable std::mutex mu_;
  uint64_t revision_ = 0;
  std::map<std::string, EndpointState> endpoints_;
  std::vector<std::shared_ptr<WatchSubscription>> subscriptions_;
};

}  // namespace wsvisor
