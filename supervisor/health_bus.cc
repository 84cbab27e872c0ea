#include "supervisor/health_bus.h"

#include <algorithm>
#include <chrono>
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

uint64_t microsecondsSinceEpoch() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// A down state is one whose failure explains it: UNHEALTHY, or FLAPPING while the thresholds
// alone say the endpoint is not healthy (a flapping endpoint that is up has no current failure).
bool isDown(const core::EndpointStatus& status) {
  const core::Health effective =
      status.health == core::Health::kFlapping ? status.underlying_health : status.health;
  return effective != core::Health::kHealthy;
}

HealthTransition transitionOf(const core::HealthEvent& event, const LiveStats* live) {
  HealthTransition transition;
  transition.time = event.time;
  transition.previous_health = *event.previous_health;
  transition.health = event.status.health;
  transition.reason = event.status.transition_reason;
  if (isDown(event.status)) transition.failure = event.status.last_failure;
  const core::EndpointStatus figures = withLiveFigures(event.status, live);
  transition.last_rtt = figures.last_rtt;
  transition.smoothed_rtt = figures.smoothed_rtt;
  transition.revision = event.revision;
  return transition;
}

// Why a watch cannot resume after `since`, naming the revisions involved. `resumable` changes
// before `current` can be replayed.
std::string resumeRefusal(uint64_t since, uint64_t current, uint64_t resumable) {
  std::string message = "since_revision " + std::to_string(since);
  if (since > current) {
    message += " is ahead of the current revision " + std::to_string(current) +
               ": it was not issued by this run of wsvisor";
  } else {
    message +=
        " is too old: the changes after it are no longer kept (the replay log, "
        "--replay-log-size, ";
    message += resumable == 0 ? std::string("keeps none")
                              : "keeps revisions " + std::to_string(current + 1 - resumable) +
                                    " to " + std::to_string(current);
    message +=
        "; a revision from before a restart of wsvisor, or from another replica in cluster mode, "
        "is always too old)";
  }
  return message + "; resume with since_revision 0 to start again with a fresh snapshot";
}

}  // namespace

HealthBus::HealthBus(HealthBusOptions options)
    : replay_log_size_(options.replay_log_size),
      supervisor_name_(std::move(options.supervisor_name)),
      revision_(options.start_revision.value_or(microsecondsSinceEpoch())),
      history_(options.history_size),
      change_log_(std::max(options.replay_log_size, kMinLiveChanges), revision_),
      latest_(options.tombstone_bound) {}

std::optional<core::HealthEvent> WatchSubscription::next() {
  std::optional<WatchDelivery> delivery = bus_.nextFor(*this);
  if (!delivery) return std::nullopt;
  core::HealthEvent event = *delivery->event;
  event.coalesced = delivery->coalesced;
  if (delivery->snapshot && event.type != core::HealthEvent::Type::kSnapshotComplete) {
    event.type = core::HealthEvent::Type::kSnapshot;
    event.previous_health.reset();
    event.status = withLiveFigures(std::move(event.status), delivery->live.get());
  }
  return event;
}

std::optional<WatchExhaustion> WatchSubscription::exhaustion() { return bus_.exhaustionOf(*this); }

std::optional<WatchDelivery> HealthBus::nextFor(WatchSubscription& subscription) {
  MutexLock lock(mu_);
  std::optional<WatchDelivery> delivery =
      subscription.cursor_.next(change_log_, latest_, revision_);
  if (!delivery && !subscription.cursor_.exhaustion() && subscription.subscribed_ &&
      !subscription.parked_) {
    subscription.parked_ = true;
    parked_.push_back(subscription.shared_from_this());
  }
  return delivery;
}

std::optional<WatchExhaustion> HealthBus::exhaustionOf(WatchSubscription& subscription) {
  MutexLock lock(mu_);
  return subscription.cursor_.exhaustion();
}

core::EndpointStatus HealthBus::EndpointState::currentStatus() const {
  return withLiveFigures(latest->status, live.get());
}

void HealthBus::deliver(EndpointState& state, std::shared_ptr<core::HealthEvent> event,
                        std::vector<std::shared_ptr<WatchSubscription>>& woken,
                        SharedHealthEvent relabelled_from) {
  published_ = true;
  const uint64_t previous_revision = state.latest ? state.latest->revision : 0;
  state.latest = std::move(event);
  const core::HealthEvent& published = *state.latest;
  if (published.previous_health && *published.previous_health != published.status.health) {
    history_.record(published.endpoint_id, transitionOf(published, state.live.get()));
  }
  change_log_.append(state.latest, relabelled_from);
  latest_.update(previous_revision, state.latest, relabelled_from);
  // Only the parked subscriptions are looked at: the others read this change when they get to it.
  size_t still_parked = 0;
  for (auto& subscription : parked_) {
    if (subscription->cursor_.takesNextPublished(published, relabelled_from.get())) {
      subscription->parked_ = false;
      woken.push_back(std::move(subscription));
    } else {
      parked_[still_parked++].swap(subscription);
    }
  }
  parked_.resize(still_parked);
}

core::EndpointStatus HealthBus::stamped(const EndpointState& state,
                                        const core::EndpointStatus& status) const {
  // Another replica's status keeps the name that replica gave it; an unreported one has none.
  if (supervisor_name_.empty() || !state.supervised_here) return status;
  core::EndpointStatus out = status;
  out.supervised_by = supervisor_name_;
  return out;
}

void HealthBus::deliverChange(EndpointState& state, const std::string& id,
                              const core::EndpointStatus& status, core::WallTime at,
                              std::vector<std::shared_ptr<WatchSubscription>>& woken) {
  auto event = newEvent(core::HealthEvent::Type::kChanged, id, ++revision_, at);
  event->labels = state.labels();
  event->status = stamped(state, status);
  event->previous_health = state.latest->status.health;
  deliver(state, std::move(event), woken);
}

void HealthBus::publishRegistered(const std::string& id, uint64_t incarnation,
                                  std::map<std::string, std::string> labels,
                                  const core::EndpointStatus& status,
                                  std::shared_ptr<const LiveStats> live, core::WallTime at) {
  registerState(id, incarnation, std::move(labels), status, std::move(live), true, at);
}

void HealthBus::publishRegisteredElsewhere(const std::string& id, uint64_t incarnation,
                                           std::map<std::string, std::string> labels,
                                           const core::EndpointStatus& status, core::WallTime at) {
  registerState(id, incarnation, std::move(labels), status, nullptr, false, at);
}

void HealthBus::registerState(const std::string& id, uint64_t incarnation,
                              std::map<std::string, std::string> labels,
                              const core::EndpointStatus& status,
                              std::shared_ptr<const LiveStats> live, bool supervised_here,
                              core::WallTime at) {
  std::vector<std::shared_ptr<WatchSubscription>> woken;
  {
    MutexLock lock(mu_);
    EndpointState& state = endpoints_[id];
    state.incarnation = incarnation;
    state.live = std::move(live);
    state.supervised_here = supervised_here;
    auto event = newEvent(core::HealthEvent::Type::kRegistered, id, ++revision_, at);
    event->labels = std::move(labels);
    event->status = stamped(state, status);
    deliver(state, std::move(event), woken);
  }
  for (const auto& subscription : woken) subscription->wake_();
}

void HealthBus::publishHandover(const std::string& id, uint64_t incarnation,
                                const core::EndpointStatus& status,
                                std::shared_ptr<const LiveStats> live, core::WallTime at) {
  std::vector<std::shared_ptr<WatchSubscription>> woken;
  {
    MutexLock lock(mu_);
    auto it = endpoints_.find(id);
    if (it == endpoints_.end()) return;
    EndpointState& state = it->second;
    state.incarnation = incarnation;
    state.supervised_here = live != nullptr;
    state.live = std::move(live);
    deliverChange(state, id, status, at, woken);
  }
  for (const auto& subscription : woken) subscription->wake_();
}

bool HealthBus::publishChanged(const std::string& id, uint64_t incarnation,
                               const core::EndpointStatus& status, core::WallTime at) {
  std::vector<std::shared_ptr<WatchSubscription>> woken;
  {
    MutexLock lock(mu_);
    auto it = endpoints_.find(id);
    if (it == endpoints_.end() || it->second.incarnation != incarnation) return false;
    deliverChange(it->second, id, status, at, woken);
  }
  for (const auto& subscription : woken) subscription->wake_();
  return true;
}

void HealthBus::publishUnregistered(const std::string& id, uint64_t incarnation,
                                    core::WallTime at) {
  std::vector<std::shared_ptr<WatchSubscription>> woken;
  {
    MutexLock lock(mu_);
    auto it = endpoints_.find(id);
    if (it == endpoints_.end() || it->second.incarnation != incarnation) return;
    EndpointState& state = it->second;
    auto event = newEvent(core::HealthEvent::Type::kUnregistered, id, ++revision_, at);
    event->labels = state.labels();
    event->status = state.latest->status;
    event->status.phase = core::ConnectionPhase::kStopped;
    event->status.next_attempt.reset();
    deliver(state, std::move(event), woken);
    latest_.retire(state.latest->revision);
    endpoints_.erase(it);
    history_.forget(id);
    forgetTombstones();
  }
  for (const auto& subscription : woken) subscription->wake_();
}

void HealthBus::replaceRegistration(const std::string& id, uint64_t incarnation,
                                    std::map<std::string, std::string> labels,
                                    const std::optional<core::EndpointStatus>& status,
                                    std::shared_ptr<const LiveStats> live, core::WallTime at) {
  std::vector<std::shared_ptr<WatchSubscription>> woken;
  {
    MutexLock lock(mu_);
    auto it = endpoints_.find(id);
    if (it == endpoints_.end()) return;
    EndpointState& state = it->second;
    state.incarnation = incarnation;
    if (live) {
      state.live = std::move(live);
      state.supervised_here = true;  // a connection starts here (a stored spec replaced)
    }
    auto event = newEvent(core::HealthEvent::Type::kChanged, id, ++revision_, at);
    event->labels = std::move(labels);
    event->status = status ? stamped(state, *status) : state.latest->status;
    event->previous_health = state.latest->status.health;
    // A watcher filtering on labels sees the event if either the old or the new labels match,
    // so that an endpoint leaving its selection is not silently lost.
    SharedHealthEvent previous = state.latest;
    const bool labels_changed = previous->labels != event->labels;
    deliver(state, std::move(event), woken, labels_changed ? std::move(previous) : nullptr);
  }
  for (const auto& subscription : woken) subscription->wake_();
}

bool HealthBus::startRevisionsAfter(uint64_t last_revision) {
  MutexLock lock(mu_);
  if (published_) return false;
  revision_ = last_revision;
  change_log_ = ChangeLog(std::max(replay_log_size_, kMinLiveChanges), last_revision);
  for (const auto& subscription : subscriptions_) subscription->cursor_.startLiveAfter(revision_);
  return true;
}

std::optional<HealthBus::EndpointState> HealthBus::state(const std::string& id) const {
  MutexLock lock(mu_);
  auto it = endpoints_.find(id);
  if (it == endpoints_.end()) return std::nullopt;
  return it->second;
}

std::array<size_t, core::kHealthCount> HealthBus::countByHealth() const {
  std::array<size_t, core::kHealthCount> counts{};
  MutexLock lock(mu_);
  for (const auto& [id, state] : endpoints_) {
    if (!state.supervised_here) continue;
    ++counts[static_cast<size_t>(state.latest->status.health)];
  }
  return counts;
}

std::optional<EndpointHistory> HealthBus::history(const std::string& id) const {
  MutexLock lock(mu_);
  if (endpoints_.count(id) == 0) return std::nullopt;
  return history_.get(id);
}

uint64_t HealthBus::revision() const {
  MutexLock lock(mu_);
  return revision_;
}

std::shared_ptr<WatchSubscription> HealthBus::subscribe(WatchFilter filter, size_t live_capacity,
                                                        std::function<void()> wake,
                                                        size_t byte_budget) {
  auto subscription = std::make_shared<WatchSubscription>(
      *this, WatchCursor(std::move(filter), live_capacity, byte_budget), std::move(wake));
  {
    MutexLock lock(mu_);
    // Only pointers are copied under the bus lock; the events are built when they are sent
    // (WatchSubscription::next), so a large snapshot does not hold up publishers.
    WatchCursor& cursor = subscription->cursor_;
    for (const auto& [id, state] : endpoints_) {
      if (!cursor.filter().matches(id, state.labels())) continue;
      cursor.queueSnapshot(state.latest, state.live);
    }
    completeSubscription(subscription);
  }
  subscription->wake_();
  return subscription;
}

std::variant<std::shared_ptr<WatchSubscription>, ResumeRefused> HealthBus::resume(
    WatchFilter filter, uint64_t since_revision, size_t live_capacity, std::function<void()> wake,
    size_t byte_budget) {
  auto subscription = std::make_shared<WatchSubscription>(
      *this, WatchCursor(std::move(filter), live_capacity, byte_budget), std::move(wake));
  {
    MutexLock lock(mu_);
    // The log may hold more than the replay log's size (see kMinLiveChanges): at most that many
    // changes are replayed, as documented for --replay-log-size.
    const uint64_t resumable = std::min<uint64_t>(replay_log_size_, change_log_.size());
    if (since_revision > revision_ || revision_ - since_revision > resumable) {
      return ResumeRefused{resumeRefusal(since_revision, revision_, resumable)};
    }
    // Only pointers are copied under the bus lock, as for a snapshot; at most the log's bound.
    WatchCursor& cursor = subscription->cursor_;
    change_log_.forEachAfter(since_revision, [&](const LoggedEvent& logged) {
      if (!cursor.filter().matches(*logged.event, logged.relabelled_from.get())) return;
      cursor.queueReplay(logged.event);
    });
    completeSubscription(subscription);
  }
  subscription->wake_();
  return subscription;
}

void HealthBus::completeSubscription(const std::shared_ptr<WatchSubscription>& subscription) {
  auto complete = std::make_shared<core::HealthEvent>();
  complete->type = core::HealthEvent::Type::kSnapshotComplete;
  complete->revision = revision_;
  subscription->cursor_.queueSnapshot(std::move(complete), nullptr);
  subscription->cursor_.startLiveAfter(revision_);
  subscriptions_.push_back(subscription);
}

void HealthBus::forgetTombstones() {
  if (!latest_.overTombstoneBound()) return;
  // Tombstones at or below every watcher's position are needed by none. A watcher that reads
  // nothing pins the rest; past the bound the oldest go, and the bound is halved so that this
  // scan of the subscriptions runs once per bound/2 unregistrations at most.
  uint64_t lowest_position = revision_;
  for (const auto& subscription : subscriptions_) {
    lowest_position = std::min(lowest_position, subscription->cursor_.position());
  }
  latest_.forgetTombstonesThrough(lowest_position);
  if (latest_.overTombstoneBound()) latest_.forgetOldestTombstones(latest_.tombstoneBound() / 2);
}

void HealthBus::unsubscribe(const std::shared_ptr<WatchSubscription>& subscription) {
  if (!subscription) return;  // a refused resume subscribed nothing
  MutexLock lock(mu_);
  subscription->subscribed_ = false;
  subscriptions_.erase(std::remove(subscriptions_.begin(), subscriptions_.end(), subscription),
                       subscriptions_.end());
  parked_.erase(std::remove(parked_.begin(), parked_.end(), subscription), parked_.end());
}

size_t HealthBus::subscriptionCount() const {
  MutexLock lock(mu_);
  return subscriptions_.size();
}

}  // namespace wsvisor
