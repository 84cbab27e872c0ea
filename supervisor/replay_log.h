#pragma once

#include <cstddef>
#include <cstdint>

#include "supervisor/bounded_ring.h"
#include "supervisor/watch_queue.h"

namespace wsvisor {

// One published event as the replay log keeps it.
struct LoggedEvent {
  SharedHealthEvent event;
  // The endpoint's previous event when this one changed its labels, else null. A watcher whose
  // selector matched only the old labels was sent this event live, so a replay must match it the
  // same way.
  SharedHealthEvent relabelled_from;
};

// The last `bound` events published on the HealthBus, for resuming a watch (WatchHealth with
// since_revision). Events arrive with consecutive revisions, so the event after a revision is
// found by arithmetic, not by searching.
//
// Memory: the log holds pointers to the events the bus already created and shares with every
// watcher, and keeps each event alive while it is logged. Per event that is about 360 bytes on
// 64-bit Linux (the 32-byte slot, the HealthEvent and its shared_ptr control block) plus the
// endpoint's labels (about 100 bytes per label) and the id, failure detail and transition reason
// where they exceed 15 characters. The default 16384 events take about 6 MiB, plus labels.
//
// Not thread-safe: HealthBus calls it under its lock.
class ReplayLog {
 public:
  // `last_revision` is the revision before the first event that will be appended.
  ReplayLog(size_t bound, uint64_t last_revision)
      : events_(bound), first_kept_(last_revision + 1) {}

  // `logged.event->revision` must be one more than that of the previous event (or than
  // `last_revision` for the first).
  void append(LoggedEvent logged);

  // True when every event after `revision` that was appended is still kept.
  bool holdsEverythingAfter(uint64_t revision) const { return revision + 1 >= first_kept_; }
  // The revision of the oldest event kept; one more than the last appended when none is kept.
  uint64_t firstKept() const { return first_kept_; }
  size_t size() const { return events_.size(); }

  // Calls `visit(const LoggedEvent&)` for each event after `revision`, oldest first. Requires
  // holdsEverythingAfter(revision).
  template <typename Visit>
  void forEachAfter(uint64_t revision, Visit&& visit) const {
    for (size_t i = static_cast<size_t>(revision + 1 - first_kept_); i < events_.size(); ++i) {
      visit(events_[i]);
    }
  }

 private:
  BoundedRing<LoggedEvent> events_;
  uint64_t first_kept_;
};

}  // namespace wsvisor
