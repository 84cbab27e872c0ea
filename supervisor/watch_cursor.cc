#include "supervisor/watch_cursor.h"

#include <utility>

namespace wsvisor {

namespace {

// What a queued snapshot or replayed entry counts against the byte budget.
size_t queuedBytes(const core::HealthEvent& event) {
  return sizeof(WatchDelivery) + approximateEventBytes(event);
}

// What an endpoint's latest change counts against the byte budget of a watcher that fell behind.
size_t latestBytes(const core::HealthEvent& event) {
  return sizeof(LatestChange) + approximateEventBytes(event);
}

// The labels an entry of LatestChanges is matched by for a watcher at `position`: its latest
// ones, and those before its last relabelling if that happened after `position`.
const core::HealthEvent* relabelledSince(const LatestChange& change, uint64_t position) {
  return change.relabelled_at > position ? change.relabelled_from.get() : nullptr;
}

}  // namespace

void WatchCursor::queueSnapshot(SharedHealthEvent event, std::shared_ptr<const LiveStats> live) {
  queued_bytes_ += queuedBytes(*event);
  queued_.push_back(Queued{std::move(event), std::move(live), true});
}

void WatchCursor::queueReplay(SharedHealthEvent event) {
  queued_bytes_ += queuedBytes(*event);
  queued_.push_back(Queued{std::move(event), nullptr, false});
}

void WatchCursor::startLiveAfter(uint64_t revision) {
  position_ = revision;
  coalescing_ = false;
  if (queued_bytes_ > byte_budget_) {
    // A snapshot or replay is sent whole or not at all.
    exhaust({WatchExhaustion::Why::kByteBudget, queued_bytes_, queued_.size()});
  }
}

void WatchCursor::exhaust(WatchExhaustion exhaustion) {
  exhaustion_ = exhaustion;
  queued_.clear();
  queued_bytes_ = 0;
}

bool WatchCursor::fellBehind(const ChangeLog& log, uint64_t head) const {
  return !log.holdsEverythingAfter(position_) || head - position_ > live_capacity_ ||
         log.bytesAfter(position_) > byte_budget_;
}

bool WatchCursor::startCoalescing(const LatestChanges& latest) {
  if (position_ < latest.forgottenThrough()) {
    exhaust({WatchExhaustion::Why::kTooFarBehind, 0, 0});
    return false;
  }
  size_t bytes = 0;
  size_t events = 0;
  latest.forEachAfter(position_, [&](const LatestChange& change) {
    if (!filter_.matches(*change.event, relabelledSince(change, position_))) return;
    bytes += latestBytes(*change.event);
    ++events;
  });
  if (bytes > byte_budget_) {
    exhaust({WatchExhaustion::Why::kByteBudget, bytes, events});
    return false;
  }
  coalescing_ = true;
  return true;
}

std::optional<WatchDelivery> WatchCursor::next(const ChangeLog& log, const LatestChanges& latest,
                                               uint64_t head) {
  if (exhaustion_) return std::nullopt;
  if (!queued_.empty()) {
    Queued entry = std::move(queued_.front());
    queued_.pop_front();
    queued_bytes_ -= queuedBytes(*entry.event);
    WatchDelivery delivery;
    delivery.event = std::move(entry.event);
    delivery.live = std::move(entry.live);
    delivery.snapshot = entry.snapshot;
    return delivery;
  }
  // Changes the filter does not match are read past; the loop ends at `head` at the latest.
  while (position_ < head) {
    if (!coalescing_) {
      if (fellBehind(log, head)) {
        if (!startCoalescing(latest)) return std::nullopt;
        continue;
      }
      const LoggedEvent& logged = log.at(++position_);
      if (!filter_.matches(*logged.event, logged.relabelled_from.get())) continue;
      WatchDelivery delivery;
      delivery.event = logged.event;
      return delivery;
    }
    if (position_ < latest.forgottenThrough()) {
      exhaust({WatchExhaustion::Why::kTooFarBehind, 0, 0});
      return std::nullopt;
    }
    const LatestChange* change = latest.firstAfter(position_);
    if (change == nullptr) {
      // Only a forgotten tombstone could have been above: caught up either way.
      position_ = head;
      break;
    }
    const uint64_t since = position_;
    position_ = change->event->revision;
    if (!filter_.matches(*change->event, relabelledSince(*change, since))) continue;
    WatchDelivery delivery;
    delivery.event = change->event;
    delivery.coalesced = true;
    return delivery;
  }
  coalescing_ = false;  // caught up: the next change is read from the log again
  return std::nullopt;
}

bool WatchCursor::takesNextPublished(const core::HealthEvent& event,
                                     const core::HealthEvent* relabelled_from) {
  if (filter_.matches(event, relabelled_from)) return true;
  position_ = event.revision;
  return false;
}

}  // namespace wsvisor
