#include "supervisor/watch_queue.h"

#include <utility>

namespace wsvisor {

namespace {

// libstdc++ keeps up to 15 characters inside the string object; longer ones on the heap.
size_t heapBytes(const std::string& text) { return text.capacity() > 15 ? text.capacity() + 1 : 0; }

// A std::map node: three pointers and a colour before the value.
constexpr size_t kMapNodeHeader = 32;
// make_shared's control block, in the same allocation as the event.
constexpr size_t kSharedControlBlock = 16;

// A coalesced entry: a node in each of the two maps, each with a copy of the endpoint id.
size_t coalescedEntryBytes(const core::HealthEvent& event, size_t event_bytes) {
  return event_bytes + 2 * kMapNodeHeader + sizeof(std::string) + sizeof(SharedHealthEvent) +
         sizeof(size_t) + sizeof(uint64_t) + sizeof(std::string) + 2 * heapBytes(event.endpoint_id);
}

}  // namespace

size_t approximateEventBytes(const core::HealthEvent& event) {
  size_t bytes = sizeof(core::HealthEvent) + kSharedControlBlock + heapBytes(event.endpoint_id) +
                 heapBytes(event.status.transition_reason);
  if (event.status.last_failure) bytes += heapBytes(event.status.last_failure->detail);
  for (const auto& [key, value] : event.labels) {
    bytes += kMapNodeHeader + 2 * sizeof(std::string) + heapBytes(key) + heapBytes(value);
  }
  return bytes;
}

void WatchQueue::pushInOrder(QueuedHealthEvent entry) {
  entry.bytes = sizeof(QueuedHealthEvent) + approximateEventBytes(*entry.event);
  bytes_ += entry.bytes;
  fifo_.push_back(std::move(entry));
}

void WatchQueue::pushSnapshot(SharedHealthEvent event, std::shared_ptr<const LiveStats> live) {
  if (exhaustion_) return;
  QueuedHealthEvent entry;
  entry.event = std::move(event);
  entry.snapshot = true;
  entry.live = std::move(live);
  pushInOrder(std::move(entry));
  enforceByteBudget();
}

void WatchQueue::pushReplay(SharedHealthEvent event) {
  if (exhaustion_) return;
  QueuedHealthEvent entry;
  entry.event = std::move(event);
  entry.replayed = true;
  pushInOrder(std::move(entry));
  enforceByteBudget();
}

void WatchQueue::push(SharedHealthEvent event) {
  if (exhaustion_) return;
  const size_t event_bytes = approximateEventBytes(*event);
  // Once coalescing has started, everything goes to the coalesced set until it drains, so that
  // no endpoint's events are delivered out of order.
  if (coalesced_.empty() && live_in_fifo_ < live_capacity_ &&
      bytes_ + sizeof(QueuedHealthEvent) + event_bytes <= byte_budget_) {
    QueuedHealthEvent entry;
    entry.event = std::move(event);
    pushInOrder(std::move(entry));
    ++live_in_fifo_;
    return;
  }
  coalesce(std::move(event), event_bytes);
  enforceByteBudget();
}

void WatchQueue::coalesce(SharedHealthEvent event, size_t event_bytes) {
  const size_t entry_bytes = coalescedEntryBytes(*event, event_bytes);
  auto it = coalesced_.find(event->endpoint_id);
  if (it != coalesced_.end()) {
    // Only a newer event replaces the one kept (coalesceLiveInOrder() offers older ones).
    if (it->second.event->revision > event->revision) {
      ++dropped_;
      return;
    }
    coalesced_by_revision_.erase(it->second.event->revision);
    bytes_ -= it->second.bytes;
    ++dropped_;
  } else {
    it = coalesced_.emplace(event->endpoint_id, CoalescedEntry{}).first;
  }
  coalesced_by_revision_.emplace(event->revision, event->endpoint_id);
  it->second.event = std::move(event);
  it->second.bytes = entry_bytes;
  bytes_ += entry_bytes;
}

void WatchQueue::coalesceLiveInOrder() {
  // Live entries are the FIFO's tail: snapshot and replayed entries are queued only before the
  // first live push.
  while (live_in_fifo_ > 0) {
    QueuedHealthEvent entry = std::move(fifo_.back());
    fifo_.pop_back();
    --live_in_fifo_;
    bytes_ -= entry.bytes;
    const size_t event_bytes = entry.bytes - sizeof(QueuedHealthEvent);
    coalesce(std::move(entry.event), event_bytes);
  }
}

void WatchQueue::enforceByteBudget() {
  if (bytes_ <= byte_budget_) return;
  coalesceLiveInOrder();
  if (bytes_ <= byte_budget_) return;
  exhaustion_ = Exhaustion{bytes_, size()};
  fifo_.clear();
  coalesced_.clear();
  coalesced_by_revision_.clear();
  live_in_fifo_ = 0;
  bytes_ = 0;
}

std::optional<QueuedHealthEvent> WatchQueue::pop() {
  if (!fifo_.empty()) {
    QueuedHealthEvent entry = std::move(fifo_.front());
    fifo_.pop_front();
    if (!entry.snapshot && !entry.replayed) --live_in_fifo_;
    bytes_ -= entry.bytes;
    return entry;
  }
  if (coalesced_.empty()) return std::nullopt;
  auto oldest = coalesced_by_revision_.begin();
  auto it = coalesced_.find(oldest->second);
  QueuedHealthEvent entry;
  entry.event = std::move(it->second.event);
  entry.coalesced = true;
  bytes_ -= it->second.bytes;
  coalesced_.erase(it);
  coalesced_by_revision_.erase(oldest);
  return entry;
}

}  // namespace wsvisor
