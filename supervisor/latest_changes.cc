#include "supervisor/latest_changes.h"

#include <utility>

namespace wsvisor {

void LatestChanges::update(uint64_t previous_revision, SharedHealthEvent event,
                           SharedHealthEvent relabelled_from) {
  const uint64_t revision = event->revision;
  if (previous_revision == 0) {
    // Registered again: its new registration is all a watcher behind needs to know.
    auto tombstone = tombstone_of_.find(event->endpoint_id);
    if (tombstone != tombstone_of_.end()) {
      previous_revision = tombstone->second;
      tombstone_revisions_.erase(previous_revision);
      tombstone_of_.erase(tombstone);
    }
  }
  auto node = changes_.extract(previous_revision);
  if (node.empty()) {
    changes_.emplace(revision, LatestChange{std::move(event), nullptr, 0});
  } else {
    // The node is reused: a change costs no allocation.
    node.key() = revision;
    node.mapped().event = std::move(event);
    changes_.insert(std::move(node));
  }
  if (relabelled_from) {
    LatestChange& change = changes_.at(revision);
    change.relabelled_from = std::move(relabelled_from);
    change.relabelled_at = revision;
  }
}

void LatestChanges::retire(uint64_t revision) {
  auto it = changes_.find(revision);
  if (it == changes_.end()) return;
  tombstone_revisions_.insert(revision);
  tombstone_of_[it->second.event->endpoint_id] = revision;
}

void LatestChanges::eraseTombstone(std::set<uint64_t>::iterator revision) {
  auto it = changes_.find(*revision);
  tombstone_of_.erase(it->second.event->endpoint_id);
  changes_.erase(it);
  tombstone_revisions_.erase(revision);
}

void LatestChanges::forgetTombstonesThrough(uint64_t revision) {
  while (!tombstone_revisions_.empty() && *tombstone_revisions_.begin() <= revision) {
    eraseTombstone(tombstone_revisions_.begin());
  }
}

void LatestChanges::forgetOldestTombstones(size_t keep) {
  while (tombstone_revisions_.size() > keep) {
    forgotten_through_ = *tombstone_revisions_.begin();
    eraseTombstone(tombstone_revisions_.begin());
  }
}

}  // namespace wsvisor
