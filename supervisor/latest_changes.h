#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "supervisor/shared_health_event.h"

namespace wsvisor {

// An endpoint's latest change, as a watcher that fell behind is sent it.
struct LatestChange {
  SharedHealthEvent event;
  // The endpoint's event before its last change of labels and the revision of that change (null
  // and 0 when its labels never changed): a watcher whose selector matched the labels before the
  // change, and that fell behind before it, is sent the latest change too, so that it learns the
  // endpoint left its selection.
  SharedHealthEvent relabelled_from;
  uint64_t relabelled_at = 0;
};

// Every endpoint's latest change, ordered by revision, and the unregistration of endpoints that
// left (tombstones; one per id: registering the id again replaces it), so that a watcher that fell
// behind the change log catches up with one event per endpoint — the latest, marked coalesced —
// however many changes it missed. Each change moves its endpoint's entry to the new revision, so
// the entries after a watcher's position are exactly the endpoints that changed since, in the order
// of their last change.
//
// Memory: one map node (~100 bytes) per registered endpoint and per tombstone, and the events they
// keep alive. Tombstones are what a watcher that fell behind needs to learn that an endpoint
// left; the bus drops those every watcher has passed (forgetTombstonesThrough) and, past
// `tombstone_bound`, the oldest (forgetOldestTombstones): a watcher that fell behind further
// than that can no longer be caught up exactly (forgottenThrough()).
//
// Not thread-safe: HealthBus calls it under its lock.
class LatestChanges {
 public:
  explicit LatestChanges(size_t tombstone_bound) : tombstone_bound_(tombstone_bound) {}

  // `event` is the endpoint's new latest change; `previous_revision` that of the one it replaces
  // (0 for an endpoint not registered, whose tombstone, if any, it replaces). `relabelled_from` is
  // the endpoint's previous event when `event` changed its labels, else null.
  void update(uint64_t previous_revision, SharedHealthEvent event,
              SharedHealthEvent relabelled_from);
  // The endpoint whose latest change is at `revision` (its unregistration) left: the entry stays,
  // as a tombstone, until forgotten.
  void retire(uint64_t revision);

  // The entry with the lowest revision above `revision`, or null.
  const LatestChange* firstAfter(uint64_t revision) const {
    auto it = changes_.upper_bound(revision);
    return it == changes_.end() ? nullptr : &it->second;
  }
  // Calls `visit(const LatestChange&)` for each entry after `revision`, in revision order.
  template <typename Visit>
  void forEachAfter(uint64_t revision, Visit&& visit) const {
    for (auto it = changes_.upper_bound(revision); it != changes_.end(); ++it) visit(it->second);
  }

  size_t tombstones() const { return tombstone_revisions_.size(); }
  size_t tombstoneBound() const { return tombstone_bound_; }
  bool overTombstoneBound() const { return tombstone_revisions_.size() > tombstone_bound_; }
  // Drops the tombstones at or below `revision`.
  void forgetTombstonesThrough(uint64_t revision);
  // Drops the oldest tombstones until `keep` are left.
  void forgetOldestTombstones(size_t keep);
  // The highest revision of a tombstone dropped by forgetOldestTombstones(): a watcher whose
  // position is below it may have missed an unregistration.
  uint64_t forgottenThrough() const { return forgotten_through_; }

 private:
  const size_t tombstone_bound_;
  // Forgets the tombstone at `revision` (an entry of tombstone_revisions_).
  void eraseTombstone(std::set<uint64_t>::iterator revision);

  std::map<uint64_t, LatestChange> changes_;
  std::set<uint64_t> tombstone_revisions_;
  std::map<std::string, uint64_t> tombstone_of_;  // endpoint id → revision of its tombstone
  uint64_t forgotten_through_ = 0;
};

}  // namespace wsvisor
