#pragma once

#include <cstddef>
#include <cstdint>

#include "supervisor/bounded_ring.h"
#include "supervisor/shared_health_event.h"

namespace wsvisor {

// One published event as the change log keeps it.
struct LoggedEvent {
  SharedHealthEvent event;
  // The endpoint's previous event when this one changed its labels, else null. A watcher whose
  // selector matched only the old labels is sent this event too (see WatchFilter), live or
  // replayed alike.
  SharedHealthEvent relabelled_from;
  // What the entry counts against a watcher's byte budget: approximateEventBytes(*event) and the
  // entry itself.
  size_t bytes = 0;
  // The `bytes` of every event appended before this one, since the log was created: the bytes
  // between two revisions are a subtraction.
  uint64_t bytes_before = 0;
};

// The last `bound` events published on the HealthBus, in revision order. Every watcher reads the
// live changes from here at its own position (WatchCursor), so publishing an event appends it
// once whatever the number of watchers; resumed watches replay from here too. Events arrive with
// consecutive revisions, so the event at a revision is found by arithmetic, not by searching.
//
// Memory: the log holds pointers to the events the bus already created and keeps each event alive
// while it is logged. Per event that is about 380 bytes on 64-bit Linux (the 48-byte slot, the
// HealthEvent and its shared_ptr control block) plus the endpoint's labels (about 100 bytes per
// label) and the id, failure detail and transition reason where they exceed 15 characters.
// 16384 events take about 6 MiB, plus labels.
//
// Not thread-safe: HealthBus calls it under its lock.
class ChangeLog {
 public:
  // `last_revision` is the revision before the first event that will be appended.
  ChangeLog(size_t bound, uint64_t last_revision)
      : events_(bound), first_kept_(last_revision + 1) {}

  // `event->revision` must be one more than that of the previous event (or than `last_revision`
  // for the first).
  void append(SharedHealthEvent event, SharedHealthEvent relabelled_from);

  // True when every event after `revision` that was appended is still kept.
  bool holdsEverythingAfter(uint64_t revision) const { return revision + 1 >= first_kept_; }
  // The revision of the oldest event kept; one more than the last appended when none is kept.
  uint64_t firstKept() const { return first_kept_; }
  size_t size() const { return events_.size(); }

  // The event at `revision`; requires firstKept() <= revision <= the last appended.
  const LoggedEvent& at(uint64_t revision) const {
    return events_[static_cast<size_t>(revision - first_kept_)];
  }
  // The bytes (LoggedEvent::bytes) of the events after `revision`; requires
  // holdsEverythingAfter(revision).
  uint64_t bytesAfter(uint64_t revision) const {
    const uint64_t next = revision + 1;
    if (next >= first_kept_ + events_.size()) return 0;
    return bytes_appended_ - at(next).bytes_before;
  }

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
  uint64_t bytes_appended_ = 0;
};

}  // namespace wsvisor
