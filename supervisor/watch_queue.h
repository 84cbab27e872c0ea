#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "supervisor/core/health_event.h"
#include "supervisor/live_stats.h"

namespace wsvisor {

// One published event, shared read-only by every watcher it goes to: publishing to M watchers
// costs M pointer copies, not M copies of the labels and strings.
using SharedHealthEvent = std::shared_ptr<const core::HealthEvent>;

// An entry of a watcher's queue.
struct QueuedHealthEvent {
  SharedHealthEvent event;
  // Snapshot entries point at the endpoint's last change and are delivered as SNAPSHOT events
  // with the live figures (RTT, heartbeats) read when they are delivered, not when queued.
  bool snapshot = false;
  std::shared_ptr<const LiveStats> live;
  bool coalesced = false;
  // Replayed entries (a resumed watch catching up from the replay log) are delivered as they were
  // published, type and all.
  bool replayed = false;
};

// The events waiting for one watcher. Bounded: once `live_capacity` live events are queued, later
// events are coalesced — only the latest per endpoint is kept and it is delivered marked
// `coalesced` — so a slow watcher costs at most one event per endpoint and never slows the
// supervisor. Snapshot and replayed entries queued at subscription do not count against the
// capacity and are never coalesced: their number is bounded by the endpoints (snapshot) or the
// replay log (replay), and a resumed watcher must see every change it missed.
//
// Not thread-safe; the owner locks.
class WatchQueue {
 public:
  explicit WatchQueue(size_t live_capacity) : live_capacity_(live_capacity) {}

  // `event` is the endpoint's last change (or the snapshot-complete marker).
  void pushSnapshot(SharedHealthEvent event, std::shared_ptr<const LiveStats> live);
  // `event` is a change the watcher missed, replayed from the log when a watch is resumed.
  // Queued only before the first live push, so that changes stay in revision order.
  void pushReplay(SharedHealthEvent event);
  void push(SharedHealthEvent event);
  std::optional<QueuedHealthEvent> pop();

  bool empty() const { return fifo_.empty() && coalesced_.empty(); }
  size_t size() const { return fifo_.size() + coalesced_.size(); }
  // Events that were replaced by a newer one of the same endpoint.
  uint64_t droppedEvents() const { return dropped_; }

 private:
  size_t live_capacity_;
  size_t live_in_fifo_ = 0;
  std::deque<QueuedHealthEvent> fifo_;
  // Latest event per endpoint once the FIFO is full, delivered oldest revision first.
  std::map<std::string, SharedHealthEvent> coalesced_;
  std::map<uint64_t, std::string> coalesced_by_revision_;
  uint64_t dropped_ = 0;
};

}  // namespace wsvisor
