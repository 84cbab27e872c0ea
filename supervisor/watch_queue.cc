#include "supervisor/watch_queue.h"

#include <utility>

namespace wsvisor {

void WatchQueue::pushSnapshot(core::HealthEvent event) { fifo_.push_back(std::move(event)); }

void WatchQueue::push(core::HealthEvent event) {
  // Once coalescing has started, everything goes to the coalesced set until it drains, so that
  // no endpoint's events are delivered out of order.
  if (coalesced_.empty() && live_in_fifo_ < live_capacity_) {
    fifo_.push_back(std::move(event));
    ++live_in_fifo_;
    return;
  }
  event.coalesced = true;
  auto it = coalesced_.find(event.endpoint_id);
  if (it != coalesced_.end()) {
    coalesced_by_revision_.erase(it->second.revision);
    ++dropped_;
  } else {
    it = coalesced_.emplace(event.endpoint_id, core::HealthEvent{}).first;
  }
  coalesced_by_revision_.emplace(event.revision, event.endpoint_id);
  it->second = std::move(event);
}

std::optional<core::HealthEvent> WatchQueue::pop() {
  if (!fifo_.empty()) {
    core::HealthEvent event = std::move(fifo_.front());
    fifo_.pop_front();
    const bool live = event.type != core::HealthEvent::Type::kSnapshot &&
                      event.type != core::HealthEvent::Type::kSnapshotComplete;
    if (live) --live_in_fifo_;
    return event;
  }
  if (coalesced_.empty()) return std::nullopt;
  auto oldest = coalesced_by_revision_.begin();
  auto it = coalesced_.find(oldest->second);
  core::HealthEvent event = std::move(it->second);
  coalesced_.erase(it);
  coalesced_by_revision_.erase(oldest);
  return event;
}

}  // namespace wsvisor
