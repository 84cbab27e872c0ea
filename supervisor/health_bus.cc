#include "supervisor/health_bus.h"

#include <algorithm>
#include <utility>

namespace wsvisor {

std::optional<core::HealthEvent> WatchSubscription::next() {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.pop();
}

uint64_t WatchSubscription::droppedEvents() {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.droppedEvents();
}

void HealthBus::deliver(const core::HealthEvent& event,
                        const std::map<std::string, std::string>& labels,
                        std::vector<std::shared_ptr<WatchSubscription>>& woken) {
  for (const auto& subscription : subscriptions_) {
    if (!subscription->filter_.matches(event.endpoint_id, labels)) continue;
    {
      std::lock_guard<std::mutex> lock(subscription->mu_);
      subscription->queue_.push(event);
    }
    woken.push_back(subscription);
  }
}

core::EndpointStatus HealthBus::EndpointState::currentStatus() const {
  core::EndpointStatus current = status;
  if (!live) return current;
  const int64_t last = live->last_rtt_ns.load(std::memory_order_relaxed);
  const int64_t smoothed = live->smoothed_rtt_ns.load(std::memory_order_relaxed);
  if (last != LiveStats::kNone) current.last_rtt = core::Duration(last);
  if (smoothed != LiveStats::kNone) current.smoothed_rtt = core::Duration(smoothed);
  current.heartbeats_sent =
      std::max(current.heartbeats_sent, live->heartbeats_sent.load(std::memory_order_relaxed));
  return current;
}

namespace {

// The event that announces `state`, the state of endpoint `id` as of its last change.
core::HealthEvent eventOf(core::HealthEvent::Type type, const std::string& id,
                          const HealthBus::EndpointState& state) {
  core::HealthEvent event;
  event.type = type;
  event.revision = state.revision;
  event.endpoint_id = id;
  event.labels = state.labels;
  event.status = state.status;
  event.time = state.changed_at;
  return event;
}

}  // namespace

void HealthBus::publishRegistered(const std::string& id, uint64_t incarnation,
                                  std::map<std::string, std::string> labels,
                                  const core::EndpointStatus& status,
                                  std::shared_ptr<const LiveStats> live, core::WallTime at) {
  std::vector<std::shared_ptr<WatchSubscription>> woken;
  {
    std::lock_guard<std::mutex> lock(mu_);
    EndpointState& state = endpoints_[id];
    state.incarnation = incarnation;
    state.labels = std::move(labels);
    state.status = status;
    state.live = std::move(live);
    state.revision = ++revision_;
    state.changed_at = at;
    deliver(eventOf(core::HealthEvent::Type::kRegistered, id, state), state.labels, woken);
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
    const core::Health previous = state.status.health;
    state.status = status;
    state.revision = ++revision_;
    state.changed_at = at;
    core::HealthEvent event = eventOf(core::HealthEvent::Type::kChanged, id, state);
    event.previous_health = previous;
    deliver(event, state.labels, woken);
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
    state.revision = ++revision_;
    state.changed_at = at;
    core::HealthEvent event = eventOf(core::HealthEvent::Type::kUnregistered, id, state);
    event.status.phase = core::ConnectionPhase::kStopped;
    event.status.next_attempt.reset();
    deliver(event, state.labels, woken);
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
    const core::Health previous = state.status.health;
    state.incarnation = incarnation;
    // A watcher filtering on labels sees the event if either the old or the new labels match,
    // so that an endpoint leaving its selection is not silently lost.
    std::map<std::string, std::string> old_labels = std::move(state.labels);
    state.labels = std::move(labels);
    if (status) state.status = *status;
    if (live) state.live = std::move(live);
    state.revision = ++revision_;
    state.changed_at = at;
    core::HealthEvent event = eventOf(core::HealthEvent::Type::kChanged, id, state);
    event.previous_health = previous;
    deliver(event, state.labels, woken);
    if (old_labels != state.labels) {
      std::vector<std::shared_ptr<WatchSubscription>> old_match;
      for (const auto& subscription : subscriptions_) {
        if (std::find(woken.begin(), woken.end(), subscription) != woken.end()) continue;
        if (!subscription->filter_.matches(id, old_labels)) continue;
        {
          std::lock_guard<std::mutex> queue_lock(subscription->mu_);
          subscription->queue_.push(event);
        }
        old_match.push_back(subscription);
      }
      woken.insert(woken.end(), old_match.begin(), old_match.end());
    }
  }
  for (const auto& subscription : woken) subscription->wake_();
}

std::optional<HealthBus::EndpointState> HealthBus::state(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = endpoints_.find(id);
  if (it == endpoints_.end()) return std::nullopt;
  return it->second;
}

std::array<size_t, 3> HealthBus::countByHealth() const {
  std::array<size_t, 3> counts{};
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, state] : endpoints_) ++counts[static_cast<size_t>(state.status.health)];
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
    std::lock_guard<std::mutex> queue_lock(subscription->mu_);
    for (const auto& [id, state] : endpoints_) {
      if (!subscription->filter_.matches(id, state.labels)) continue;
      core::HealthEvent event = eventOf(core::HealthEvent::Type::kSnapshot, id, state);
      event.status = state.currentStatus();
      subscription->queue_.pushSnapshot(std::move(event));
    }
    core::HealthEvent complete;
    complete.type = core::HealthEvent::Type::kSnapshotComplete;
    complete.revision = revision_;
    subscription->queue_.pushSnapshot(std::move(complete));
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
