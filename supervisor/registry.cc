#include "supervisor/registry.h"

#include <algorithm>
#include <random>
#include <utility>

#include "supervisor/core/spec_difference.h"
#include "supervisor/core/spec_validation.h"
#include "supervisor/log.h"

namespace wsvisor {

namespace {

core::WallTime wallNow() { return std::chrono::system_clock::now(); }

// An ALREADY_EXISTS message names at most this many differing fields, then how many more.
constexpr size_t kMaxDifferencesShown = 5;

// Changes that need a new connection; everything else applies to the live one.
bool needsReconnect(const core::EndpointSpec& a, const core::EndpointSpec& b) {
  return a.url != b.url || !(a.headers == b.headers) || a.subprotocols != b.subprotocols ||
         !(a.tls == b.tls) || a.max_message_bytes != b.max_message_bytes;
}

RegistryError invalid(const core::FieldError& e) {
  return RegistryError{RegistryError::Code::kInvalidArgument, e.toString()};
}

std::string notRegistered(const std::string& id) {
  return "endpoint '" + id + "' is not registered";
}

// The status of an endpoint whose stored spec fails validation: not supervised, saying why.
core::EndpointStatus storedSpecInvalidStatus(const core::FieldError& error) {
  core::EndpointStatus status;
  status.phase = core::ConnectionPhase::kStoredSpecInvalid;
  status.last_transition = core::MonoClock::now();
  status.transition_reason = core::validUtf8("stored spec is invalid: " + error.toString());
  return status;
}

std::string ownedByConfig(const std::string& id) {
  return "endpoint '" + id +
         "' is owned by the config file (--config); change or remove it there and reload";
}

}  // namespace

Registry::Registry(RegistryOptions options, HealthBus& bus, Metrics& metrics, EndpointStore* store,
                   const SpecCodec* codec)
    : options_(options),
      bus_(bus),
      shards_(options.io_threads, options.max_connections, bus, metrics),
      metrics_(metrics),
      store_(store),
      codec_(codec) {}

Registry::~Registry() { shutdown(std::chrono::milliseconds(0)); }

std::optional<RegistryError> Registry::checkOpen() const {
  if (shut_down_.load()) {
    return RegistryError{RegistryError::Code::kUnavailable, "wsvisor is shutting down"};
  }
  return std::nullopt;
}

std::optional<RegistryError> Registry::persist(const core::EndpointSpec& spec, EndpointOwner owner,
                                               uint64_t generation) {
  if (!store_) return std::nullopt;
  if (auto error = store_->put({spec.id, codec_->encode(spec), owner, generation})) {
    if (store_->lastWriteConflicted()) {
      // Another replica won the race; its change reaches this registry through the store's watch.
      return RegistryError{
          generation <= 1 ? RegistryError::Code::kAlreadyExists : RegistryError::Code::kAborted,
          *error + "; nothing changed: re-read and retry"};
    }
    WSV_LOG(kError) << "store write failed: " << *error;
    return RegistryError{RegistryError::Code::kUnavailable,
                         "the endpoint store refused the write; nothing changed: " + *error};
  }
  return std::nullopt;
}

std::optional<RegistryError> Registry::unpersist(const std::string& id) {
  if (!store_) return std::nullopt;
  if (auto error = store_->remove(id)) {
    WSV_LOG(kError) << "store delete failed: " << *error;
    return RegistryError{RegistryError::Code::kUnavailable,
                         "the endpoint store refused the write; nothing changed: " + *error};
  }
  return std::nullopt;
}

std::optional<RegistryError> Registry::admitRegistration(size_t registered) const {
  const size_t probes = shards_.probesRunning();
  if (registered + probes >= options_.max_connections) {
    return RegistryError{
        RegistryError::Code::kResourceExhausted,
        "no file descriptor left: " + std::to_string(registered) + " endpoints and " +
            std::to_string(probes) + " running probes use the open-files budget of " +
            std::to_string(options_.max_connections) + " connections (see the start-up log)"};
  }
  return std::nullopt;
}

std::variant<Registry::RegisterResult, RegistryError> Registry::registerEndpoint(
    core::EndpointSpec spec, EndpointOwner owner) {
  if (auto error = core::validateSpec(spec)) return invalid(*error);
  core::applyDefaults(spec);

  MutexLock change(changes_mu_);
  if (auto error = checkOpen()) return *error;
  {
    MutexLock lock(map_mu_);
    auto existing = entries_.find(spec.id);
    if (existing != entries_.end()) {
      if (!existing->second.stored_spec_error.empty()) {
        return RegistryError{RegistryError::Code::kAlreadyExists,
                             "endpoint '" + spec.id + "' is registered, but its stored spec is " +
                                 "invalid (" + existing->second.stored_spec_error +
                                 "); use UpdateEndpoint to replace it or unregister it first"};
      }
      if (*existing->second.spec == spec) {
        return RegisterResult{viewOfUnderMapLock(spec.id, existing->second), false};
      }
      if (existing->second.owner == EndpointOwner::kConfigFile && owner == EndpointOwner::kApi) {
        return RegistryError{RegistryError::Code::kFailedPrecondition, ownedByConfig(spec.id)};
      }
      // Name what differs: the usual cause is a register call repeated without some of the
      // fields the first one set, which then ask for their defaults.
      return RegistryError{
          RegistryError::Code::kAlreadyExists,
          "endpoint '" + spec.id +
              "' is already registered with a different spec; use UpdateEndpoint or unregister "
              "it first. Differences: " +
              core::describeDifferences(core::specDifferences(*existing->second.spec, spec),
                                        kMaxDifferencesShown)};
    }
    if (entries_.size() >= options_.max_endpoints) {
      return RegistryError{RegistryError::Code::kResourceExhausted,
                           "endpoint limit reached: " + std::to_string(options_.max_endpoints) +
                               " endpoints are registered (see --max-endpoints and the "
                               "open-files limit in the start-up log)"};
    }
    if (auto refused = admitRegistration(entries_.size())) return *refused;
  }
  if (auto error = persist(spec, owner, 1)) return *error;
  auto shared = std::make_shared<const core::EndpointSpec>(std::move(spec));
  WSV_LOG(kInfo) << "endpoint " << shared->id << " registered url=" << shared->url;
  return RegisterResult{addInChange(shared, owner, 1, core::Duration::zero()), true};
}

std::variant<Registry::UpdateResult, RegistryError> Registry::updateEndpoint(
    core::EndpointSpec spec, uint64_t expected_generation, EndpointOwner requester) {
  if (auto error = core::validateSpec(spec)) return invalid(*error);
  core::applyDefaults(spec);

  MutexLock change(changes_mu_);
  if (auto error = checkOpen()) return *error;
  keepRedactedSecrets(spec);
  uint64_t generation = 0;
  EndpointOwner owner = requester;
  {
    MutexLock lock(map_mu_);
    auto it = entries_.find(spec.id);
    if (it == entries_.end()) {
      return RegistryError{RegistryError::Code::kNotFound, notRegistered(spec.id)};
    }
    const Entry& entry = it->second;
    if (entry.owner == EndpointOwner::kConfigFile && requester == EndpointOwner::kApi) {
      return RegistryError{RegistryError::Code::kFailedPrecondition, ownedByConfig(spec.id)};
    }
    if (expected_generation != 0 && expected_generation != entry.generation) {
      return RegistryError{RegistryError::Code::kAborted,
                           "generation mismatch for '" + spec.id + "': expected " +
                               std::to_string(expected_generation) + ", current " +
                               std::to_string(entry.generation) + "; re-read and retry"};
    }
    if (*entry.spec == spec && entry.stored_spec_error.empty()) {
      return UpdateResult{viewOfUnderMapLock(spec.id, entry), false};
    }
    generation = entry.generation + 1;
    owner = entry.owner;
  }
  if (auto error = persist(spec, owner, generation)) return *error;
  const std::string id = spec.id;
  bool reconnected = false;
  EndpointView view = replaceInChange(
      id, std::make_shared<const core::EndpointSpec>(std::move(spec)), generation, reconnected);
  WSV_LOG(kInfo) << "endpoint " << id << " updated to generation " << generation
                 << (reconnected ? " (reconnecting)" : " (applied to the live connection)");
  return UpdateResult{std::move(view), reconnected};
}

void Registry::keepRedactedSecrets(core::EndpointSpec& spec) const {
  // A caller that read the spec back (values redacted) and sends it with changes must not
  // overwrite the stored credentials with the placeholder.
  MutexLock lock(map_mu_);
  auto it = entries_.find(spec.id);
  if (it == entries_.end()) return;
  for (core::Header& header : spec.headers) {
    if (header.value != core::kRedactedValue) continue;
    for (const core::Header& stored : it->second.spec->headers) {
      if (stored.name == header.name && core::isSecretHeader(stored)) {
        header.value = stored.value;
        break;
      }
    }
  }
}

std::optional<RegistryError> Registry::unregisterEndpoint(const std::string& id,
                                                          EndpointOwner requester) {
  MutexLock change(changes_mu_);
  if (auto error = checkOpen()) return error;
  {
    MutexLock lock(map_mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) {
      return RegistryError{RegistryError::Code::kNotFound, notRegistered(id)};
    }
    if (it->second.owner == EndpointOwner::kConfigFile && requester == EndpointOwner::kApi) {
      return RegistryError{RegistryError::Code::kFailedPrecondition, ownedByConfig(id)};
    }
  }
  if (auto error = unpersist(id)) return error;
  removeInChange(id);
  WSV_LOG(kInfo) << "endpoint " << id << " unregistered";
  return std::nullopt;
}

EndpointView Registry::addInChange(std::shared_ptr<const core::EndpointSpec> spec,
                                   EndpointOwner owner, uint64_t generation,
                                   core::Duration first_attempt_after) {
  Entry entry;
  entry.spec = std::move(spec);
  entry.owner = owner;
  entry.generation = generation;
  entry.live = std::make_shared<LiveStats>();
  const std::string id = entry.spec->id;
  MutexLock lock(map_mu_);
  if (auto it = entries_.find(id); it != entries_.end() && !it->second.stored_spec_error.empty()) {
    storedSpecsInvalidChangedUnderMapLock(-1);
  }
  auto inserted = entries_.insert_or_assign(id, std::move(entry)).first;
  arrivedUnderMapLock(id, inserted->second, first_attempt_after);
  return viewOfUnderMapLock(id, inserted->second);
}

void Registry::addStoredSpecInvalidInChange(core::EndpointSpec spec, EndpointOwner owner,
                                            uint64_t generation, const core::FieldError& error) {
  Entry entry;
  entry.spec = std::make_shared<const core::EndpointSpec>(core::withValidUtf8(std::move(spec)));
  entry.owner = owner;
  entry.generation = generation;
  entry.stored_spec_error = core::validUtf8(error.toString());
  const std::string id = entry.spec->id;
  MutexLock lock(map_mu_);
  if (auto it = entries_.find(id); it != entries_.end() && !it->second.stored_spec_error.empty()) {
    storedSpecsInvalidChangedUnderMapLock(-1);
  }
  entry.incarnation = nextIncarnationUnderMapLock();
  auto inserted = entries_.insert_or_assign(id, std::move(entry)).first;
  storedSpecsInvalidChangedUnderMapLock(+1);
  // Announced like an endpoint supervised elsewhere: on the bus for Get, List and watchers, left
  // out of the per-health counts.
  bus_.publishRegisteredElsewhere(id, inserted->second.incarnation, inserted->second.spec->labels,
                                  storedSpecInvalidStatus(error), wallNow());
}

void Registry::storedSpecsInvalidChangedUnderMapLock(long delta) {
  stored_specs_invalid_ = static_cast<size_t>(static_cast<long>(stored_specs_invalid_) + delta);
  metrics_.setStoredSpecsInvalid(stored_specs_invalid_);
}

void Registry::logStoredSpecInvalid(const std::string& id, uint64_t generation,
                                    const core::FieldError& error) {
  WSV_LOG(kError) << "endpoint " << core::validUtf8(id) << " (generation " << generation
                  << ") is not supervised: its stored spec is invalid: "
                  << core::validUtf8(error.toString())
                  << "; the stored record is kept unchanged until UpdateEndpoint replaces the "
                     "spec or UnregisterEndpoint removes the endpoint";
}

void Registry::arrivedUnderMapLock(const std::string& id, Entry& entry,
                                   core::Duration first_attempt_after) {
  const core::EndpointStatus initial = prepareSupervisionUnderMapLock(entry, first_attempt_after);
  bus_.publishRegistered(id, entry.incarnation, entry.spec->labels, initial, entry.live, wallNow());
  runSessionUnderMapLock(entry, first_attempt_after);
}

core::EndpointStatus Registry::prepareSupervisionUnderMapLock(Entry& entry,
                                                              core::Duration first_attempt_after) {
  entry.shard = shards_.place();
  entry.live = std::make_shared<LiveStats>();
  entry.supervised = true;
  entry.incarnation = nextIncarnationUnderMapLock();
  core::EndpointStatus initial;
  initial.last_transition = core::MonoClock::now();
  if (first_attempt_after > core::Duration::zero()) {
    initial.phase = core::ConnectionPhase::kBackingOff;
    initial.next_attempt = initial.last_transition + first_attempt_after;
  }
  return initial;
}

void Registry::storedSpecReplacedUnderMapLock(const std::string& id, Entry& entry) {
  core::EndpointStatus initial = prepareSupervisionUnderMapLock(entry, core::Duration::zero());
  initial.transition_reason = "stored spec replaced by an update: supervising";
  bus_.replaceRegistration(id, entry.incarnation, entry.spec->labels, initial, entry.live,
                           wallNow());
  runSessionUnderMapLock(entry, core::Duration::zero());
}

void Registry::runSessionUnderMapLock(const Entry& entry, core::Duration first_attempt_after) {
  shards_[entry.shard].add(entry.incarnation, entry.incarnation, entry.spec, entry.live,
                           first_attempt_after);
}

void Registry::removeInChange(const std::string& id) {
  MutexLock lock(map_mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  const Entry& entry = it->second;
  // Before the announcement: from here on its io thread reports nothing more about it, although
  // the session runs until the posted remove arrives.
  if (entry.live) entry.live->retired.store(true, std::memory_order_release);
  // Also an endpoint supervised elsewhere (cluster mode) is on the bus.
  bus_.publishUnregistered(id, entry.incarnation, wallNow());
  if (entry.supervised) {
    shards_[entry.shard].remove(entry.incarnation);
    shards_.unplace(entry.shard);
  }
  if (!entry.stored_spec_error.empty()) storedSpecsInvalidChangedUnderMapLock(-1);
  entries_.erase(it);
}

EndpointView Registry::replaceInChange(const std::string& id,
                                       std::shared_ptr<const core::EndpointSpec> spec,
                                       uint64_t generation, bool& reconnected) {
  MutexLock lock(map_mu_);
  Entry& entry = entries_.at(id);
  if (!entry.stored_spec_error.empty()) {
    // The stored spec was never supervised; the valid one replacing it starts from scratch.
    entry.stored_spec_error.clear();
    storedSpecsInvalidChangedUnderMapLock(-1);
    entry.spec = std::move(spec);
    entry.generation = generation;
    reconnected = true;
    storedSpecReplacedUnderMapLock(id, entry);
    return viewOfUnderMapLock(id, entry);
  }
  if (!entry.supervised) {
    reconnected = false;
    bus_.replaceRegistration(id, entry.incarnation, spec->labels, std::nullopt, nullptr, wallNow());
    entry.spec = std::move(spec);
    entry.generation = generation;
    return viewOfUnderMapLock(id, entry);
  }
  reconnected = needsReconnect(*entry.spec, *spec);
  IoShard& shard = shards_[entry.shard];
  if (reconnected) {
    // A new incarnation: whatever the old connection still reports is dropped by the bus.
    const uint64_t old_key = entry.incarnation;
    entry.live->retired.store(true, std::memory_order_release);
    entry.incarnation = nextIncarnationUnderMapLock();
    entry.live = std::make_shared<LiveStats>();
    core::EndpointStatus initial;
    initial.last_transition = core::MonoClock::now();
    initial.transition_reason = "spec updated: reconnecting";
    bus_.replaceRegistration(id, entry.incarnation, spec->labels, initial, entry.live, wallNow());
    shard.remove(old_key);
    shard.add(entry.incarnation, entry.incarnation, spec, entry.live, core::Duration::zero());
  } else {
    bus_.replaceRegistration(id, entry.incarnation, spec->labels, std::nullopt, nullptr, wallNow());
    shard.update(entry.incarnation, spec);
  }
  entry.spec = std::move(spec);
  entry.generation = generation;
  return viewOfUnderMapLock(id, entry);
}

std::optional<EndpointView> Registry::get(const std::string& id) const {
  MutexLock lock(map_mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return viewOfUnderMapLock(id, it->second);
}

Registry::Page Registry::list(const core::LabelSelector& selector, size_t page_size,
                              const std::string& page_token) const {
  Page page;
  MutexLock lock(map_mu_);
  auto it = page_token.empty() ? entries_.begin() : entries_.upper_bound(page_token);
  for (; it != entries_.end(); ++it) {
    if (!selector.matches(it->second.spec->labels)) continue;
    if (page.endpoints.size() == page_size) {
      page.next_page_token = page.endpoints.back().spec->id;
      break;
    }
    page.endpoints.push_back(viewOfUnderMapLock(it->first, it->second));
  }
  return page;
}

std::optional<std::string> Registry::restore() {
  if (!store_) return std::nullopt;
  std::vector<StoredEndpoint> stored;
  if (auto error = store_->loadAll(stored)) return error;
  struct Restored {
    std::shared_ptr<const core::EndpointSpec> spec;
    EndpointOwner owner;
    uint64_t generation;
  };
  std::vector<Restored> restored;
  restored.reserve(stored.size());
  struct Invalid {
    DecodedRecord decoded;
    const StoredEndpoint* record;
  };
  std::vector<Invalid> invalid;
  for (const StoredEndpoint& record : stored) {
    std::string error;
    auto decoded = decodeStored(record, error);
    // Bytes that are no spec at all mean a damaged store: starting without them would lose them.
    if (!decoded) return "stored endpoint '" + record.id + "' cannot be read: " + error;
    // A spec that validation has come to refuse stops only its own endpoint (see restore()).
    if (decoded->invalid) {
      invalid.push_back({std::move(*decoded), &record});
      continue;
    }
    restored.push_back({std::make_shared<const core::EndpointSpec>(std::move(decoded->spec)),
                        record.owner, record.generation});
  }
  // Spread first attempts evenly over the window, in random order, so that a restart neither
  // dials everything at once nor always favours the same endpoints.
  std::shuffle(restored.begin(), restored.end(), std::mt19937_64(std::random_device{}()));
  const double window_seconds =
      static_cast<double>(restored.size()) / options_.restore_dials_per_second;
  MutexLock change(changes_mu_);
  for (Invalid& bad : invalid) {
    logStoredSpecInvalid(bad.record->id, bad.record->generation, *bad.decoded.invalid);
    addStoredSpecInvalidInChange(std::move(bad.decoded.spec), bad.record->owner,
                                 bad.record->generation, *bad.decoded.invalid);
  }
  for (size_t i = 0; i < restored.size(); ++i) {
    const double offset = window_seconds * static_cast<double>(i) /
                          static_cast<double>(std::max<size_t>(1, restored.size()));
    // The first slot dials at once (a delay of zero means "now").
    const auto delay =
        std::chrono::duration_cast<core::Duration>(std::chrono::duration<double>(offset));
    addInChange(restored[i].spec, restored[i].owner, restored[i].generation, delay);
  }
  WSV_LOG(kInfo) << "restored " << restored.size() << " endpoints from " << store_->describe()
                 << "; first connection attempts spread over " << window_seconds << " s";
  if (!invalid.empty()) {
    WSV_LOG(kError) << invalid.size()
                    << " stored endpoints are not supervised because their stored spec is "
                       "invalid (see above; wsvisor_endpoints_stored_spec_invalid)";
  }
  return std::nullopt;
}

std::variant<Registry::Batch, RegistryError> Registry::applyBatch(const Plan& plan) {
  MutexLock change(changes_mu_);
  if (auto error = checkOpen()) return *error;
  // No other change runs until this one is made: the plan's view stays true.
  RegisteredSet current;
  {
    MutexLock lock(map_mu_);
    for (const auto& [id, entry] : entries_) {
      current.emplace(id, Registered{entry.spec, entry.owner, entry.generation,
                                     !entry.stored_spec_error.empty()});
    }
  }
  auto planned = plan(current);
  if (auto* error = std::get_if<RegistryError>(&planned)) return *error;
  Batch batch = std::get<Batch>(std::move(planned));

  if (batch.puts.empty() && batch.removes.empty()) return batch;
  // One durable transaction for the whole batch; if it fails, nothing changes.
  if (store_) {
    std::vector<StoredEndpoint> records;
    records.reserve(batch.puts.size());
    for (const Batch::Put& put : batch.puts) {
      records.push_back({put.spec->id, codec_->encode(*put.spec), put.owner, put.generation});
    }
    if (auto error = store_->applyBatch(records, batch.removes)) {
      return RegistryError{RegistryError::Code::kUnavailable,
                           "the endpoint store refused the write; nothing changed: " + *error};
    }
  }
  for (const std::string& id : batch.removes) removeInChange(id);
  for (const Batch::Put& put : batch.puts) {
    auto found = current.find(put.spec->id);
    if (found == current.end()) {
      addInChange(put.spec, put.owner, put.generation, core::Duration::zero());
      continue;
    }
    if (!(*found->second.spec == *put.spec) || found->second.generation != put.generation) {
      bool reconnected = false;
      replaceInChange(put.spec->id, put.spec, put.generation, reconnected);
    }
    MutexLock lock(map_mu_);
    entries_.at(put.spec->id).owner = put.owner;
  }
  return batch;
}

std::optional<Registry::DecodedRecord> Registry::decodeStored(const StoredEndpoint& record,
                                                              std::string& error) const {
  auto spec = codec_->decode(record.encoded_spec, error);
  if (!spec) return std::nullopt;
  DecodedRecord decoded;
  decoded.invalid = core::validateSpec(*spec);
  if (decoded.invalid) {
    spec->id = record.id;  // the key it is stored under: what UpdateEndpoint and Unregister name
  } else {
    core::applyDefaults(*spec);
  }
  decoded.spec = std::move(*spec);
  return decoded;
}

bool Registry::failConnectAttemptForTest(const std::string& id, core::Failure failure) {
  MutexLock lock(map_mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.supervised) return false;
  shards_[it->second.shard].failConnectAttemptForTest(it->second.incarnation, std::move(failure));
  return true;
}

void Registry::runOnIoThreadForTest(const std::string& id, std::function<void()> work) {
  MutexLock lock(map_mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.supervised) return;
  shards_[it->second.shard].runForTest(std::move(work));
}

size_t Registry::size() const {
  MutexLock lock(map_mu_);
  return entries_.size();
}

void Registry::shutdown(std::chrono::milliseconds grace) {
  MutexLock change(changes_mu_);
  if (shut_down_.exchange(true)) return;
  shards_.shutdown(grace);
  if (store_) store_->close();
}

EndpointView Registry::viewOfUnderMapLock(const std::string& id, const Entry& entry) const {
  EndpointView view;
  view.spec = entry.spec;
  view.owner = entry.owner;
  view.generation = entry.generation;
  view.supervised_here = entry.supervised;
  if (auto state = bus_.state(id); state && state->incarnation == entry.incarnation) {
    view.status = state->currentStatus();
  }
  return view;
}

}  // namespace wsvisor
