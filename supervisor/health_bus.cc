#include "supervisor/health_bus.h"

#include <algorithm>
#include <utility>

namespace wsvisor {

namespace {

core::EndpointStatus withLiveFigures(core::EndpointStatus status, const LiveStats* live) {
  if (live == nullptr) return status;
  const int64_t last = live->last_rtt_ns.load(std::memory_order_relaxed);
  const int64_t smoothed = live->smoothed_rtt_ns.load(std::memory_order_relaxed);
  if (last != LiveStats::kNone) status.last_rtt = core::Duration(last);
  if (smoothed != LiveStats::kNone) status.smoothed_rtt = core::Duration(smoothed);
  status.heartbeats_sent =
      std::max(status.heartbeats_sent, live->heartbeats_sent.load(std::memory_order_relaxed));
  return status;
}

// A new event of `type` for endpoint `id`, stamped with the next revision.
std::shared_ptr<core::HealthEvent> newEvent(core::HealthEvent::Type type, const std::string& id,
                                            uint64_t revision, core::WallTime at) {
  auto event = std::make_shared<core::HealthEvent>();
  event->type = type;
  event->revision = revision;
  event->endpoint_id = id;
  event->time = at;
  return event;
}

}  // namespace

std::optional<core::HealthEvent> WatchSubscription::next() {
  std::optional<QueuedHealthEvent> entry;
  {
    std::lock_guard<std::mutex> lock(mu_);
    entry = queue_.pop();
  }
  if (!entry) return std::nullopt;
  core::HealthEvent event = *entry->event;
  event.coalesced = entry->coalesced;
  if (entry->snapshot && event.type != core::HealthEvent::Type::kSnapshotComplete) {
    event.type = core::HealthEvent::Type::kSnapshot;
    event.previous_health.reset();
    event.status = withLiveFigures(std::move(event.status), entry->live.get());
  }
  return event;
}

uint64_t WatchSubscription::droppedEvents() {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.droppedEvents();
}

core::EndpointStatus HealthBus::EndpointState::currentStatus() const {
  return withLiveFigures(latest->status, live.get());
}

void HealthBus::deliver(EndpointState& state, std::shared_ptr<core::HealthEvent> event,
                        std::vector<std::shared_ptr<WatchSubscription>>& woken,
                        const std::map<std::string, std::string>* old_labels) {
  state.latest = std::move(event);
  const core::HealthEvent& published = *state.latest;
  for (const auto& subscription : subscriptions_) {
    const WatchFilter& filter = subscription->filter_;
    if (!filter.matches(published.endpoint_id, published.labels) &&
        (old_labels == nullptr || !filter.matches(published.endpoint_id, *old_labels))) {
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(subscription->mu_);
      subscription->queue_.push(state.latest);
    }
    woken.push_back(subscription);
  }
}

void HealthBus::publishRegistered(const std::string& id, uint64_t incarnation,
                                  std::map<std::string, std::string> labels,
                                  const core::EndpointStatus& status,
                                  std::shared_ptr<const LiveStats> live, core::WallTime at) {
  std::vector<std::shared_ptr<WatchSubscription>> woken;
  {
    std::lock_guard<std::mutex> lock(mu_);
    EndpointState& state = endpoints_[id];
    state.incarnation = incarnation;
    state.live = std::move(live);
    auto event = newEvent(core::HealthEvent::Type::kRegistered, id, ++revision_, at);
    event->labels = std::move(labels);
    event->status = status;
    deliver(state, std::move(event), woken);
  }
  for (const auto& subscription : woken) subscription->wake_();
}

void HealthBus::publishChanged(const std::string& id, uint64_t incarnation,
                               const core::EndpointStatus& status, core::WallTime at) {
  std::vector<std::shared_ptr<WatchSubscription>> woken;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = endpoints_.find(id);
    if (it == endpoints_.end() || it->second.incarnation != incarnation) return;
    EndpointState& state = it->second;
    auto event = newEvent(core::HealthEvent::Type::kChanged, id, ++revision_, at);
    event->labels = state.labels();
    event->status = status;
    event->previous_health = state.latest->status.health;
    deliver(state, std::move(event), woken);
  }
  for (const auto& subscription : woken) subscription->wake_();
}

void HealthBus::publishUnregistered(const std::string& id, uint64_t incarnation,
                                    core::WallTime at) {
  std::vector<std::shared_ptr<WatchSubscription>> woken;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = endpoints_.find(id);
    if (it == endpoints_.end() || it->second.incarnation != incarnation) return;
    EndpointState& state = it->second;
    auto event = newEvent(core::HealthEvent::Type::kUnregistered, id, ++revision_, at);
    event->labels = state.labels();
    event->status = state.latest->status;
    event->status.phase = core::ConnectionPhase::kStopped;
    event->status.next_attempt.reset();
    deliver(state, std::move(event), woken);
    endpoints_.erase(it);
  }
  for (const auto& subscription : woken) subscription->wake_();
}

void HealthBus::replaceRegistration(const std::string& id, uint64_t incarnation,
                                    std::map<std::string, std::string> labels,
                                    const std::optional<core::EndpointStatus>& status,
                                    std::shared_ptr<const LiveStats> live, core::WallTime at) {
  std::vector<std::shared_ptr<WatchSubscription>> woken;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = endpoints_.find(id);
    if (it == endpoints_.end()) return;
    EndpointState& state = it->second;
    state.incarnation = incarnation;
    if (live) state.live = std::move(live);
    auto event = newEvent(core::HealthEvent::Type::kChanged, id, ++revision_, at);
    event->labels = std::move(labels);
    event->status = status ? *status : state.latest->status;
    event->previous_health = state.latest->status.health;
    // A watcher filtering on labels sees the event if either the old or the new labels match,
    // so that an endpoint leaving its selection is not silently lost. `previous` keeps the old
    // labels alive while deliver() replaces the latest event.
    const SharedHealthEvent previous = state.latest;
    const bool labels_changed = previous->labels != event->labels;
    deliver(state, std::move(event), woken, labels_changed ? &previous->labels : nullptr);
  }
  for (const auto& subscription : woken) subscription->wake_();
}

std::optional<HealthBus::EndpointState> HealthBus::state(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = endpoints_.find(id);
  if (it == endpoints_.end()) return std::nullopt;
  return it->second;
}

std::array<size_t, core::kHealthCount> HealthBus::countByHealth() const {
  std::array<size_t, core::kHealthCount> counts{};
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, state] : endpoints_) {
    ++counts[static_cast<size_t>(state.latest->status.health)];
  }
  return counts;
}

uint64_t HealthBus::revision() const {
  std::lock_guard<std::mutex> lock(mu_);
  return revision_;
}

std::shared_ptr<WatchSubscription> HealthBus::subscribe(WatchFilter filter, size_t live_capacity,
                                                        std::function<void()> wake) {
  auto subscription =
      std::make_shared<WatchSubscription>(std::move(filter), live_capacity, std::move(wake));
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Only pointers are copied under the bus lock; the events are built when they are sent
    // (WatchSubscription::next), so a large snapshot does not hold up publishers.
    std::lock_guard<std::mutex> queue_lock(subscription->mu_);
    for (const auto& [id, state] : endpoints_) {
      if (!subscription->filter_.matches(id, state.labels())) continue;
      subscription->queue_.pushSnapshot(state.latest, state.live);
    }
    auto complete = std::make_shared<core::HealthEvent>();
    complete->type = core::HealthEvent::Type::kSnapshotComplete;
    complete->revision = revision_;
    subscription->queue_.pushSnapshot(std::move(complete), nullptr);
    subscriptions_.push_back(subscription);
  }
  subscription->wake_();
  return subscription;
}

void HealthBus::unsubscribe(const std::shared_ptr<WatchSubscription>& subscription) {
  std::lock_guard<std::mutex> lock(mu_);
  subscriptions_.erase(std::remove(subscriptions_.begin(), subscriptions_.end(), subscription),
                       subscriptions_.end());
}

size_t HealthBus::subscriptionCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return subscriptions_.size();
}

}  // namespace wsvisor
