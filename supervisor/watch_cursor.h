#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "supervisor/change_log.h"
#include "supervisor/core/health_event.h"
#include "supervisor/core/label_selector.h"
#include "supervisor/latest_changes.h"
#include "supervisor/live_stats.h"
#include "supervisor/shared_health_event.h"

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

// What a watcher is sent next.
struct WatchDelivery {
  SharedHealthEvent event;
  // Snapshot entries point at the endpoint's last change and are delivered as SNAPSHOT events
  // with the live figures (RTT, heartbeats) read when they are delivered, not when queued.
  bool snapshot = false;
  std::shared_ptr<const LiveStats> live;
  // The endpoint's latest change, sent to a watcher that fell behind in place of every change it
  // missed.
  bool coalesced = false;
};

// Why a watcher gets nothing more; its owner ends the watch.
struct WatchExhaustion {
  enum class Why {
    // Even with only the latest change per endpoint, what it would have to be sent exceeds its
    // byte budget (or its snapshot or replay alone does).
    kByteBudget,
    // It fell behind so far that unregistrations it missed are no longer kept.
    kTooFarBehind,
  };
  Why why = Why::kByteBudget;
  size_t bytes = 0;   // of what it would have to be sent
  size_t events = 0;  // how many events that is
};

// One watcher's position in the bus's changes, and what it is sent next.
//
// At subscription the watcher gets its own queue of snapshot (or replayed) events and the
// snapshot-complete marker, bounded by the endpoints (or the replay log). After that it reads the
// live changes from the bus's shared ChangeLog at its own position: publishing costs nothing per
// watcher, and a watcher that reads nothing — a stuck client — costs nothing but its position.
//
// A watcher that falls behind is coalesced: once it is more than `live_capacity` events behind,
// or the events it has yet to read exceed `byte_budget` bytes, or the log no longer holds them, it
// is sent the latest change of each endpoint that changed since its position instead
// (LatestChanges, marked coalesced, in revision order), then goes back to the log once it has
// caught up. If those latest changes alone exceed `byte_budget` (or its snapshot or replay does),
// the watcher is exhausted: it is sent nothing more and its owner ends the watch. The event count
// and byte backlog count every published event after the position, whether or not the filter
// matches it.
//
// Not thread-safe: HealthBus calls it under its lock.
class WatchCursor {
 public:
  static constexpr size_t kNoByteBudget = std::numeric_limits<size_t>::max();

  WatchCursor(WatchFilter filter, size_t live_capacity, size_t byte_budget)
      : filter_(std::move(filter)), live_capacity_(live_capacity), byte_budget_(byte_budget) {}

  const WatchFilter& filter() const { return filter_; }

  // Queues an event sent before any live change: a snapshot entry (with the endpoint's live
  // figures), a replayed change, or the snapshot-complete marker.
  void queueSnapshot(SharedHealthEvent event, std::shared_ptr<const LiveStats> live);
  void queueReplay(SharedHealthEvent event);
  // After the queued events, the live changes after `revision`. Exhausts the watcher when the
  // queued events exceed its byte budget.
  void startLiveAfter(uint64_t revision);

  // The next event to send; nullopt when the watcher has caught up with `head` (the bus's current
  // revision) or is exhausted.
  std::optional<WatchDelivery> next(const ChangeLog& log, const LatestChanges& latest,
                                    uint64_t head);

  // For a watcher that has caught up (next() returned nullopt and it is not exhausted): whether the
  // change just published at `position() + 1` is for it; if not, the watcher moves past it, so
  // that a filtered watcher waiting for its endpoints never falls behind the others' changes.
  bool takesNextPublished(const core::HealthEvent& event, const core::HealthEvent* relabelled_from);

  uint64_t position() const { return position_; }
  const std::optional<WatchExhaustion>& exhaustion() const { return exhaustion_; }

 private:
  struct Queued {
    SharedHealthEvent event;
    std::shared_ptr<const LiveStats> live;
    bool snapshot = false;
  };

  bool fellBehind(const ChangeLog& log, uint64_t head) const;
  // Starts sending latest changes; false (and exhausted) when they exceed the byte budget.
  bool startCoalescing(const LatestChanges& latest);
  void exhaust(WatchExhaustion exhaustion);

  const WatchFilter filter_;
  const size_t live_capacity_;
  const size_t byte_budget_;
  std::deque<Queued> queued_;
  size_t queued_bytes_ = 0;
  uint64_t position_ = 0;  // the last live revision read (sent or skipped)
  bool coalescing_ = false;
  std::optional<WatchExhaustion> exhaustion_;
};

}  // namespace wsvisor
