#include "supervisor/watch_queue.h"

#include <utility>

namespace wsvisor {

void WatchQueue::pushSnapshot(SharedHealthEvent event, std::shared_ptr<const LiveStats> live) {
  QueuedHealthEvent entry;
  entry.event = std::move(event);
  entry.snapshot = true;
  entry.live = std::move(live);
  fifo_.push_back(std::move(entry));
}

void WatchQueue::pushReplay(SharedHealthEvent event) {
  QueuedHealthEvent entry;
  entry.event = std::move(event);
  entry.replayed = true;
  fifo_.push_back(std::move(entry));
}

void WatchQueue::push(SharedHealthEvent event) {
  // Once coalescing has started, everything goes to the coalesced set until it drains, so that
  // no endpoint's events are delivered out of order.
  if (coalesced_.empty() && live_in_fifo_ < live_capacity_) {
    QueuedHealthEvent entry;
    entry.event = std::move(event);
    fifo_.push_back(std::move(entry));
    ++live_in_fifo_;
    return;
  }
  auto it = coalesced_.find(event->endpoint_id);
  if (it != coalesced_.end()) {
    coalesced_by_revision_.erase(it->second->revision);
    ++dropped_;
  } else {
    it = coalesced_.emplace(event->endpoint_id, nullptr).first;
  }
  coalesced_by_revision_.emplace(event->revision, event->endpoint_id);
  it->second = std::move(event);
}

std::optional<QueuedHealthEvent> WatchQueue::pop() {
  if (!fifo_.empty()) {
    QueuedHealthEvent entry = std::move(fifo_.front());
    fifo_.pop_front();
    if (!entry.snapshot && !entry.replayed) --live_in_fifo_;
    return entry;
  }
  if (coalesced_.empty()) return std::nullopt;
  auto oldest = coalesced_by_revision_.begin();
  auto it = coalesced_.find(oldest->second);
  QueuedHealthEvent entry;
  entry.event = std::move(it->second);
  entry.coalesced = true;
  coalesced_.erase(it);
  coalesced_by_revision_.erase(oldest);
  return entry;
}

}  // namespace wsvisor
