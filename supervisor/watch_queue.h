#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
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

// The approximate bytes `event` occupies in memory: the struct and its shared_ptr control block,
// one map node per label, and the heap buffers of its strings (id, label keys and values, failure
// detail, transition reason) where they exceed the small-string buffer. With no labels and short
// strings that is about 0.3 KiB; with the most label bytes a spec may have (64 labels of 256-byte
// values) about 22 KiB.
size_t approximateEventBytes(const core::HealthEvent& event);

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
  // What the entry counts against its queue's byte budget.
  size_t bytes = 0;
};

// The events waiting for one watcher. Bounded twice:
//
// - In events: once `live_capacity` live events are queued, later events are coalesced — only
//   the latest per endpoint is kept and it is delivered marked `coalesced` — so a slow watcher
//   costs at most one event per endpoint and never slows the supervisor. Snapshot and replayed
//   entries queued at subscription do not count against the capacity and are never coalesced:
//   their number is bounded by the endpoints (snapshot) or the replay log (replay), and a resumed
//   watcher must see every change it missed.
// - In bytes: every entry counts the approximate size of its event (approximateEventBytes, as if
//   the watcher alone kept it alive, although watchers share events) plus the queue's own
//   bookkeeping. A live event that would take the queue past `byte_budget` is coalesced even if
//   the event capacity is not reached; if the queue is still over budget, the live events already
//   queued in order are coalesced too (latest per endpoint). If even that leaves the queue over
//   budget — the latest state of the watched endpoints, or the snapshot or replay it must deliver
//   whole, is larger than the budget — the queue is exhausted: everything queued is dropped,
//   later pushes are ignored and pop() returns nothing. The owner ends the watch.
//
// Not thread-safe; the owner locks.
class WatchQueue {
 public:
  static constexpr size_t kNoByteBudget = std::numeric_limits<size_t>::max();

  // What was queued when the queue was exhausted, for the message that ends the watch.
  struct Exhaustion {
    size_t bytes = 0;   // over the budget
    size_t events = 0;  // queued, after coalescing
  };

  explicit WatchQueue(size_t live_capacity, size_t byte_budget = kNoByteBudget)
      : live_capacity_(live_capacity), byte_budget_(byte_budget) {}

  // `event` is the endpoint's last change (or the snapshot-complete marker).
  void pushSnapshot(SharedHealthEvent event, std::shared_ptr<const LiveStats> live);
  // `event` is a change the watcher missed, replayed from the log when a watch is resumed.
  // Queued only before the first live push, so that changes stay in revision order.
  void pushReplay(SharedHealthEvent event);
  void push(SharedHealthEvent event);
  std::optional<QueuedHealthEvent> pop();

  bool empty() const { return fifo_.empty() && coalesced_.empty(); }
  size_t size() const { return fifo_.size() + coalesced_.size(); }
  // What the queued entries count against the byte budget.
  size_t bytes() const { return bytes_; }
  size_t byteBudget() const { return byte_budget_; }
  // Set once the queue could not be kept within its byte budget; it stays empty from then on.
  const std::optional<Exhaustion>& exhaustion() const { return exhaustion_; }
  // Events that were replaced by a newer one of the same endpoint.
  uint64_t droppedEvents() const { return dropped_; }

 private:
  struct CoalescedEntry {
    SharedHealthEvent event;
    size_t bytes = 0;
  };

  void pushInOrder(QueuedHealthEvent entry);
  void coalesce(SharedHealthEvent event, size_t event_bytes);
  // Coalesces the live events queued in order; keeps snapshot and replayed entries.
  void coalesceLiveInOrder();
  // Coalesces, and then gives up, while the queue is over its byte budget.
  void enforceByteBudget();

  size_t live_capacity_;
  size_t byte_budget_;
  size_t live_in_fifo_ = 0;
  size_t bytes_ = 0;
  std::deque<QueuedHealthEvent> fifo_;
  // Latest event per endpoint once the FIFO is full, delivered oldest revision first.
  std::map<std::string, CoalescedEntry> coalesced_;
  std::map<uint64_t, std::string> coalesced_by_revision_;
  std::optional<Exhaustion> exhaustion_;
  uint64_t dropped_ = 0;
};

}  // namespace wsvisor
