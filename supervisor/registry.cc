#include "supervisor/registry.h"

#include <algorithm>
#include <utility>

#include "supervisor/core/spec_validation.h"
#include "supervisor/log.h"

namespace wsvisor {

Registry::Registry(RegistryOptions options, HealthBus& bus, Metrics& metrics)
    : options_(options), bus_(bus) {
  const size_t threads = std::max<size_t>(1, options_.io_threads);
  for (size_t i = 0; i < threads; ++i) {
    shards_.push_back(std::make_unique<IoShard>(i, bus_, metrics));
  }
}

Registry::~Registry() { shutdown(std::chrono::milliseconds(0)); }

std::variant<Registry::RegisterResult, RegistryError> Registry::registerEndpoint(
    core::EndpointSpec spec) {
  if (auto error = core::validateSpec(spec)) {
    return RegistryError{RegistryError::Code::kInvalidArgument, error->toString()};
  }
  core::applyDefaults(spec);

  std::lock_guard<std::mutex> lock(mu_);
  if (shut_down_)
    return RegistryError{RegistryError::Code::kUnavailable, "wsvisor is shutting down"};
  auto existing = entries_.find(spec.id);
  if (existing != entries_.end()) {
    if (*existing->second.spec == spec) {
      return RegisterResult{viewOf(spec.id, existing->second), false};
    }
    return RegistryError{RegistryError::Code::kAlreadyExists,
                         "endpoint '" + spec.id +
                             "' is already registered with a different spec; unregister it first"};
  }
  if (entries_.size() >= options_.max_endpoints) {
    return RegistryError{RegistryError::Code::kResourceExhausted,
                         "endpoint limit reached: " + std::to_string(options_.max_endpoints) +
                             " endpoints are registered (see --max-endpoints and the open-files "
                             "limit in the start-up log)"};
  }

  Entry entry;
  entry.spec = std::make_shared<const core::EndpointSpec>(std::move(spec));
  entry.incarnation = ++next_incarnation_;
  entry.shard = leastLoadedShard();
  entry.live = std::make_shared<LiveStats>();
  const std::string& id = entry.spec->id;

  core::EndpointStatus initial;
  initial.last_transition = core::MonoClock::now();
  bus_.publishRegistered(id, entry.incarnation, entry.spec->labels, initial,
                         std::chrono::system_clock::now());
  shards_[entry.shard]->assigned().fetch_add(1);
  shards_[entry.shard]->add(entry.incarnation, entry.incarnation, entry.spec, entry.live);
  auto inserted = entries_.emplace(id, std::move(entry)).first;
  WSV_LOG(kInfo) << "endpoint " << id << " registered url=" << inserted->second.spec->url;
  return RegisterResult{viewOf(id, inserted->second), true};
}

std::optional<RegistryError> Registry::unregisterEndpoint(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shut_down_)
    return RegistryError{RegistryError::Code::kUnavailable, "wsvisor is shutting down"};
  auto it = entries_.find(id);
  if (it == entries_.end()) {
    return RegistryError{RegistryError::Code::kNotFound, "endpoint '" + id + "' is not registered"};
  }
  const Entry& entry = it->second;
  bus_.publishUnregistered(id, entry.incarnation, std::chrono::system_clock::now());
  shards_[entry.shard]->remove(entry.incarnation);
  shards_[entry.shard]->assigned().fetch_sub(1);
  entries_.erase(it);
  WSV_LOG(kInfo) << "endpoint " << id << " unregistered";
  return std::nullopt;
}

std::optional<EndpointView> Registry::get(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return viewOf(id, it->second);
}

Registry::Page Registry::list(const core::LabelSelector& selector, size_t page_size,
                              const std::string& page_token) const {
  Page page;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = page_token.empty() ? entries_.begin() : entries_.upper_bound(page_token);
  for (; it != entries_.end(); ++it) {
    if (!selector.matches(it->second.spec->labels)) continue;
    if (page.endpoints.size() == page_size) {
      page.next_page_token = page.endpoints.back().spec->id;
      break;
    }
    page.endpoints.push_back(viewOf(it->first, it->second));
  }
  return page;
}

size_t Registry::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

void Registry::shutdown(std::chrono::milliseconds grace) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  // Shards close in parallel: each gets the whole grace period.
  std::vector<std::thread> closers;
  for (auto& shard : shards_) {
    closers.emplace_back([&shard, grace] {
      const size_t still_open = shard->shutdown(grace);
      if (still_open != 0) {
        WSV_LOG(kWarning) << still_open << " upstream connections did not finish closing in time";
      }
    });
  }
  for (auto& closer : closers) closer.join();
}

EndpointView Registry::viewOf(const std::string& id, const Entry& entry) const {
  EndpointView view;
  view.spec = entry.spec;
  if (auto state = bus_.state(id); state && state->incarnation == entry.incarnation) {
    view.status = state->status;
  }
  // Figures that change with every heartbeat are read from the live atomics.
  const int64_t last = entry.live->last_rtt_ns.load(std::memory_order_relaxed);
  const int64_t smoothed = entry.live->smoothed_rtt_ns.load(std::memory_order_relaxed);
  if (last != LiveStats::kNone) view.status.last_rtt = core::Duration(last);
  if (smoothed != LiveStats::kNone) view.status.smoothed_rtt = core::Duration(smoothed);
  view.status.heartbeats_sent = entry.live->heartbeats_sent.load(std::memory_order_relaxed);
  return view;
}

size_t Registry::leastLoadedShard() const {
  size_t best = 0;
  for (size_t i = 1; i < shards_.size(); ++i) {
    if (shards_[i]->assigned().load() < shards_[best]->assigned().load()) best = i;
  }
  return best;
}

}  // namespace wsvisor
