#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <optional>
#include <string>

#include "supervisor/core/health_event.h"

namespace wsvisor {

// The events waiting for one watcher. Bounded: once `live_capacity` live events are queued, later
// events are coalesced — only the latest per endpoint is kept and it is delivered marked
// `coalesced` — so a slow watcher costs at most one event per endpoint and never slows the
// supervisor. Snapshot events queued at subscription do not count against the capacity.
//
// Not thread-safe; the owner locks.
class WatchQueue {
 public:
  explicit WatchQueue(size_t live_capacity) : live_capacity_(live_capacity) {}

  void pushSnapshot(core::HealthEvent event);
  void push(core::HealthEvent event);
  std::optional<core::HealthEvent> pop();

  bool empty() const { return fifo_.empty() && coalesced_.empty(); }
  size_t size() const { return fifo_.size() + coalesced_.size(); }
  // Events that were replaced by a newer one of the same endpoint.
  uint64_t droppedEvents() const { return dropped_; }

 private:
  size_t live_capacity_;
  size_t live_in_fifo_ = 0;
  std::deque<core::HealthEvent> fifo_;
  // Latest event per endpoint once the FIFO is full, delivered oldest revision first.
  std::map<std::string, core::HealthEvent> coalesced_;
  std::map<uint64_t, std::string> coalesced_by_revision_;
  uint64_t dropped_ = 0;
};

}  // namespace wsvisor
