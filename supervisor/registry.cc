#include "supervisor/registry.h"

#include <algorithm>
#include <future>
#include <random>
#include <thread>
#include <utility>

#include "supervisor/core/spec_validation.h"
#include "supervisor/log.h"

namespace wsvisor {

namespace {

core::WallTime wallNow() { return std::chrono::system_clock::now(); }

// How long a stop waits for its io thread to confirm. The io thread answers within one loop
// turn; the bound only guards a shard that is stuck or shutting down (then its connections are
// being closed anyway).
constexpr std::chrono::seconds kStopConfirmation{2};

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

std::string ownedByConfig(const std::string& id) {
  return "endpoint '" + id +
         "' is owned by the config file (--config); change or remove it there and reload";
}

// Cluster mode: the status of an endpoint this replica does not supervise while no replica reports
// it: unknown, as this replica has no connection to judge by.
core::EndpointStatus unreportedStatus(std::string reason) {
  core::EndpointStatus status;
  status.phase = core::ConnectionPhase::kStopped;
  status.last_transition = core::MonoClock::now();
  status.transition_reason = std::move(reason);
  return status;
}

}  // namespace

Registry::Registry(RegistryOptions options, HealthBus& bus, Metrics& metrics, EndpointStore* store,
                   const SpecCodec* codec)
    : options_(options), bus_(bus), store_(store), codec_(codec) {
  const size_t threads = std::max<size_t>(1, options_.io_threads);
  for (size_t i = 0; i < threads; ++i) {
    shards_.push_back(std::make_unique<IoShard>(i, bus_, metrics));
  }
}

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

std::variant<Registry::RegisterResult, RegistryError> Registry::registerEndpoint(
    core::EndpointSpec spec, EndpointOwner owner) {
  if (auto error = core::validateSpec(spec)) return invalid(*error);
  core::applyDefaults(spec);

  std::lock_guard<std::mutex> write_lock(write_mu_);
  if (auto error = checkOpen()) return *error;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto existing = entries_.find(spec.id);
    if (existing != entries_.end()) {
      if (*existing->second.spec == spec) {
        return RegisterResult{viewOf(spec.id, existing->second), false};
      }
      if (existing->second.owner == EndpointOwner::kConfigFile && owner == EndpointOwner::kApi) {
        return RegistryError{RegistryError::Code::kFailedPrecondition, ownedByConfig(spec.id)};
      }
      return RegistryError{RegistryError::Code::kAlreadyExists,
                           "endpoint '" + spec.id +
                               "' is already registered with a different spec; use "
                               "UpdateEndpoint or unregister it first"};
    }
    if (entries_.size() >= options_.max_endpoints) {
      return RegistryError{RegistryError::Code::kResourceExhausted,
                           "endpoint limit reached: " + std::to_string(options_.max_endpoints) +
                               " endpoints are registered (see --max-endpoints and the "
                               "open-files limit in the start-up log)"};
    }
    // Running probes hold descriptors of the same budget. In cluster mode a registration opens
    // no connection here: the claims are bounded instead (setSupervised).
    const size_t probes = probes_running_.load();
    if (!options_.clustered && entries_.size() + probes >= options_.max_connections) {
      return RegistryError{
          RegistryError::Code::kResourceExhausted,
          "no file descriptor left: " + std::to_string(entries_.size()) + " endpoints and " +
              std::to_string(probes) + " running probes use the open-files budget of " +
              std::to_string(options_.max_connections) + " connections (see the start-up log)"};
    }
  }
  if (auto error = persist(spec, owner, 1)) return *error;
  auto shared = std::make_shared<const core::EndpointSpec>(std::move(spec));
  WSV_LOG(kInfo) << "endpoint " << shared->id << " registered url=" << shared->url;
  return RegisterResult{startLocked(shared, owner, 1, core::Duration::zero()), true};
}

std::variant<Registry::UpdateResult, RegistryError> Registry::updateEndpoint(
    core::EndpointSpec spec, uint64_t expected_generation, EndpointOwner requester) {
  if (auto error = core::validateSpec(spec)) return invalid(*error);
  core::applyDefaults(spec);

  std::lock_guard<std::mutex> write_lock(write_mu_);
  if (auto error = checkOpen()) return *error;
  keepRedactedSecrets(spec);
  uint64_t generation = 0;
  EndpointOwner owner = requester;
  {
    std::lock_guard<std::mutex> lock(mu_);
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
    if (*entry.spec == spec) return UpdateResult{viewOf(spec.id, entry), false};
    generation = entry.generation + 1;
    owner = entry.owner;
  }
  if (auto error = persist(spec, owner, generation)) return *error;
  const std::string id = spec.id;
  bool reconnected = false;
  EndpointView view = replaceLocked(id, std::make_shared<const core::EndpointSpec>(std::move(spec)),
                                    generation, reconnected);
  WSV_LOG(kInfo) << "endpoint " << id << " updated to generation " << generation
                 << (reconnected ? " (reconnecting)" : " (applied to the live connection)");
  return UpdateResult{std::move(view), reconnected};
}

void Registry::keepRedactedSecrets(core::EndpointSpec& spec) const {
  // A caller that read the spec back (values redacted) and sends it with changes must not
  // overwrite the stored credentials with the placeholder.
  std::lock_guard<std::mutex> lock(mu_);
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
  std::lock_guard<std::mutex> write_lock(write_mu_);
  if (auto error = checkOpen()) return error;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) {
      return RegistryError{RegistryError::Code::kNotFound, notRegistered(id)};
    }
    if (it->second.owner == EndpointOwner::kConfigFile && requester == EndpointOwner::kApi) {
      return RegistryError{RegistryError::Code::kFailedPrecondition, ownedByConfig(id)};
    }
  }
  if (auto error = unpersist(id)) return error;
  stopLocked(id);
  WSV_LOG(kInfo) << "endpoint " << id << " unregistered";
  return std::nullopt;
}

EndpointView Registry::startLocked(std::shared_ptr<const core::EndpointSpec> spec,
                                   EndpointOwner owner, uint64_t generation,
                                   core::Duration first_attempt_after) {
  Entry entry;
  entry.spec = std::move(spec);
  entry.owner = owner;
  entry.generation = generation;
  entry.live = std::make_shared<LiveStats>();
  entry.supervised = false;
  const std::string id = entry.spec->id;
  std::lock_guard<std::mutex> lock(mu_);
  auto inserted = entries_.insert_or_assign(id, std::move(entry)).first;
  if (options_.clustered) {
    // Every replica knows every endpoint; its health comes from the owner (applyRemoteStatus)
    // until this replica owns it.
    inserted->second.incarnation = ++next_incarnation_;
    bus_.publishRegisteredElsewhere(id, inserted->second.incarnation, inserted->second.spec->labels,
                                    unreportedStatus("awaiting the report of its owner"),
                                    wallNow());
  } else {
    superviseLocked(id, inserted->second, first_attempt_after);
  }
  return viewOf(id, inserted->second);
}

void Registry::superviseLocked(const std::string& id, Entry& entry,
                               core::Duration first_attempt_after) {
  entry.shard = leastLoadedShard();
  entry.live = std::make_shared<LiveStats>();
  entry.supervised = true;
  core::EndpointStatus initial;
  initial.last_transition = core::MonoClock::now();
  if (first_attempt_after > core::Duration::zero()) {
    initial.phase = core::ConnectionPhase::kBackingOff;
    initial.next_attempt = initial.last_transition + first_attempt_after;
  }
  entry.incarnation = ++next_incarnation_;
  if (options_.clustered) {
    initial.transition_reason = "supervised by this replica";
    bus_.publishHandover(id, entry.incarnation, initial, entry.live, wallNow());
  } else {
    bus_.publishRegistered(id, entry.incarnation, entry.spec->labels, initial, entry.live,
                           wallNow());
  }
  shards_[entry.shard]->assigned().fetch_add(1);
  shards_[entry.shard]->add(entry.incarnation, entry.incarnation, entry.spec, entry.live,
                            first_attempt_after);
}

void Registry::stopLocked(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  const Entry& entry = it->second;
  // Also an endpoint supervised elsewhere (cluster mode) is on the bus.
  bus_.publishUnregistered(id, entry.incarnation, wallNow());
  if (entry.supervised) {
    shards_[entry.shard]->remove(entry.incarnation);
    shards_[entry.shard]->assigned().fetch_sub(1);
  }
  entries_.erase(it);
}

EndpointView Registry::replaceLocked(const std::string& id,
                                     std::shared_ptr<const core::EndpointSpec> spec,
                                     uint64_t generation, bool& reconnected) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& entry = entries_.at(id);
  if (!entry.supervised) {
    reconnected = false;
    bus_.replaceRegistration(id, entry.incarnation, spec->labels, std::nullopt, nullptr, wallNow());
    entry.spec = std::move(spec);
    entry.generation = generation;
    return viewOf(id, entry);
  }
  reconnected = needsReconnect(*entry.spec, *spec);
  IoShard& shard = *shards_[entry.shard];
  if (reconnected) {
    // A new incarnation: whatever the old connection still reports is dropped by the bus.
    const uint64_t old_key = entry.incarnation;
    entry.incarnation = ++next_incarnation_;
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
  return viewOf(id, entry);
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
  for (const StoredEndpoint& record : stored) {
    std::string error;
    auto spec = codec_->decode(record.encoded_spec, error);
    if (!spec) return "stored endpoint '" + record.id + "' cannot be read: " + error;
    // A record must still pass today's validation; refusing to start beats silently dropping it.
    if (auto invalid_field = core::validateSpec(*spec)) {
      return "stored endpoint '" + record.id + "' is invalid: " + invalid_field->toString();
    }
    core::applyDefaults(*spec);
    restored.push_back({std::make_shared<const core::EndpointSpec>(std::move(*spec)), record.owner,
                        record.generation});
  }
  // Spread first attempts evenly over the window, in random order, so that a restart neither
  // dials everything at once nor always favours the same endpoints.
  std::shuffle(restored.begin(), restored.end(), std::mt19937_64(std::random_device{}()));
  const double window_seconds =
      static_cast<double>(restored.size()) / options_.restore_dials_per_second;
  std::lock_guard<std::mutex> write_lock(write_mu_);
  for (size_t i = 0; i < restored.size(); ++i) {
    const double offset = window_seconds * static_cast<double>(i) /
                          static_cast<double>(std::max<size_t>(1, restored.size()));
    // The first slot dials at once (a delay of zero means "now").
    const auto delay =
        std::chrono::duration_cast<core::Duration>(std::chrono::duration<double>(offset));
    startLocked(restored[i].spec, restored[i].owner, restored[i].generation, delay);
  }
  WSV_LOG(kInfo) << "restored " << restored.size() << " endpoints from " << store_->describe()
                 << "; first connection attempts spread over " << window_seconds << " s";
  return std::nullopt;
}

std::variant<Registry::ConfigDiff, std::string> Registry::applyConfig(
    std::vector<core::EndpointSpec> specs) {
  // Validate everything before changing anything: a bad file leaves the running set untouched.
  std::map<std::string, core::EndpointSpec> wanted;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (auto error = core::validateSpec(specs[i])) {
      return "endpoints[" + std::to_string(i) + "] (" + specs[i].id + "): " + error->toString();
    }
    core::applyDefaults(specs[i]);
    const std::string id = specs[i].id;
    if (!wanted.emplace(id, std::move(specs[i])).second) {
      return "endpoints[" + std::to_string(i) + "]: id '" + id + "' is listed twice";
    }
  }
  std::lock_guard<std::mutex> write_lock(write_mu_);
  if (auto error = checkOpen()) return error->message;

  // Work out the diff against the running set.
  ConfigDiff diff;
  std::vector<std::string> removes;
  struct Change {
    std::shared_ptr<const core::EndpointSpec> spec;
    uint64_t generation;
    bool exists;
  };
  std::vector<Change> changes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    size_t new_count = 0;
    for (auto& [id, spec] : wanted) {
      auto it = entries_.find(id);
      if (it == entries_.end()) {
        ++new_count;
        changes.push_back({std::make_shared<const core::EndpointSpec>(std::move(spec)), 1, false});
      } else if (it->second.owner == EndpointOwner::kApi) {
        return "endpoint '" + id +
               "' is registered over the API; unregister it there before the config file can "
               "own it";
      } else if (*it->second.spec == spec) {
        ++diff.unchanged;
      } else {
        changes.push_back({std::make_shared<const core::EndpointSpec>(std::move(spec)),
                           it->second.generation + 1, true});
      }
    }
    for (const auto& [id, entry] : entries_) {
      if (entry.owner == EndpointOwner::kConfigFile && wanted.count(id) == 0) {
        removes.push_back(id);
      }
    }
    if (entries_.size() - removes.size() + new_count > options_.max_endpoints) {
      return "the config file would exceed the endpoint limit of " +
             std::to_string(options_.max_endpoints);
    }
  }

  // One durable transaction for the whole diff; if it fails, nothing changes.
  if (store_) {
    std::vector<StoredEndpoint> puts;
    puts.reserve(changes.size());
    for (const Change& change : changes) {
      puts.push_back({change.spec->id, codec_->encode(*change.spec), EndpointOwner::kConfigFile,
                      change.generation});
    }
    if (auto error = store_->applyBatch(puts, removes)) {
      WSV_LOG(kError) << "store write failed: " << *error;
      return "the endpoint store refused the write; nothing changed: " + *error;
    }
  }
  for (const std::string& id : removes) stopLocked(id);
  diff.removed = removes.size();
  for (Change& change : changes) {
    if (change.exists) {
      bool reconnected = false;
      replaceLocked(change.spec->id, change.spec, change.generation, reconnected);
      ++diff.updated;
    } else {
      startLocked(change.spec, EndpointOwner::kConfigFile, change.generation,
                  core::Duration::zero());
      ++diff.added;
    }
  }
  return diff;
}

size_t Registry::adoptConfigOwned() {
  std::lock_guard<std::mutex> write_lock(write_mu_);
  std::vector<StoredEndpoint> puts;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, entry] : entries_) {
      if (entry.owner != EndpointOwner::kConfigFile) continue;
      puts.push_back(
          {id, store_ ? codec_->encode(*entry.spec) : "", EndpointOwner::kApi, entry.generation});
    }
  }
  if (puts.empty()) return 0;
  if (store_) {
    if (auto error = store_->applyBatch(puts, {})) {
      WSV_LOG(kError) << "store write failed; config-file endpoints keep their owner: " << *error;
      return 0;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const StoredEndpoint& adopted : puts) {
    if (auto it = entries_.find(adopted.id); it != entries_.end()) {
      it->second.owner = EndpointOwner::kApi;
    }
  }
  return puts.size();
}

std::variant<Registry::ProbeTicket, RegistryError> Registry::probe(core::EndpointSpec spec,
                                                                   uint32_t heartbeats,
                                                                   ProbeDone done) {
  if (auto error = core::prepareProbe(spec, heartbeats)) return invalid(*error);
  std::lock_guard<std::mutex> probe_lock(probe_mu_);
  if (auto error = checkOpen()) return *error;
  const size_t running = probes_running_.load();
  if (running >= options_.max_probes) {
    return RegistryError{RegistryError::Code::kResourceExhausted,
                         "probe limit reached: " + std::to_string(running) +
                             " probes are running; at most " + std::to_string(options_.max_probes) +
                             " run at once"};
  }
  const size_t endpoints = connectionsInUse();
  if (endpoints + running >= options_.max_connections) {
    return RegistryError{
        RegistryError::Code::kResourceExhausted,
        "no file descriptor left for a probe: " + std::to_string(endpoints) + " endpoints and " +
            std::to_string(running) + " probes use the open-files budget of " +
            std::to_string(options_.max_connections) + " connections (see the start-up log)"};
  }
  probes_running_.fetch_add(1);
  ProbeTicket ticket;
  ticket.shard = leastLoadedShard();
  auto shared = std::make_shared<const core::EndpointSpec>(std::move(spec));
  WSV_LOG(kDebug) << "probe of " << shared->url << " started: " << heartbeats << " heartbeats";
  ticket.key = shards_[ticket.shard]->startProbe(
      std::move(shared), heartbeats,
      [this, done = std::move(done)](const core::ProbeResult& result) {
        // The io thread calling this belongs to a shard of this registry, so `this` is alive.
        probes_running_.fetch_sub(1);
        done(result);
      });
  return ticket;
}

void Registry::cancelProbe(const ProbeTicket& ticket) {
  // After shutdown the shard's loop has stopped and its probes have reported: the posted cancel
  // never runs, and that is fine.
  if (ticket.shard < shards_.size()) shards_[ticket.shard]->cancelProbe(ticket.key);
}

std::shared_ptr<const core::EndpointSpec> Registry::decodeStored(const StoredEndpoint& record,
                                                                 std::string& error) const {
  auto spec = codec_->decode(record.encoded_spec, error);
  if (!spec) return nullptr;
  if (auto invalid_field = core::validateSpec(*spec)) {
    error = invalid_field->toString();
    return nullptr;
  }
  core::applyDefaults(*spec);
  return std::make_shared<const core::EndpointSpec>(std::move(*spec));
}

void Registry::syncStored(const std::vector<StoredEndpoint>& all) {
  std::lock_guard<std::mutex> write_lock(write_mu_);
  if (shut_down_.load()) return;
  std::vector<std::string> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, bool> present;
    for (const StoredEndpoint& record : all) present[record.id] = true;
    for (const auto& [id, entry] : entries_) {
      if (present.count(id) == 0) gone.push_back(id);
    }
  }
  for (const std::string& id : gone) stopLocked(id);
  for (const StoredEndpoint& record : all) applyStoredPutLocked(record);
}

void Registry::applyStoredPut(const StoredEndpoint& record) {
  std::lock_guard<std::mutex> write_lock(write_mu_);
  if (shut_down_.load()) return;
  applyStoredPutLocked(record);
}

void Registry::applyStoredPutLocked(const StoredEndpoint& record) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(record.id);
    if (it != entries_.end() && it->second.generation >= record.generation) return;
  }
  std::string error;
  auto spec = decodeStored(record, error);
  if (!spec) {
    WSV_LOG(kError) << "stored endpoint '" << record.id << "' (generation " << record.generation
                    << ") cannot be used and is ignored here: " << error;
    return;
  }
  bool exists = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(record.id);
    if (it != entries_.end()) {
      exists = true;
      it->second.owner = record.owner;
    }
  }
  if (exists) {
    bool reconnected = false;
    replaceLocked(record.id, spec, record.generation, reconnected);
  } else {
    startLocked(spec, record.owner, record.generation, core::Duration::zero());
  }
}

void Registry::applyStoredRemove(const std::string& id) {
  std::lock_guard<std::mutex> write_lock(write_mu_);
  if (shut_down_.load()) return;
  stopLocked(id);
}

bool Registry::setSupervised(const std::string& id, bool supervised,
                             core::Duration first_attempt_after, const std::string& why) {
  std::future<void> stopped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_.load()) return false;
    auto it = entries_.find(id);
    if (it == entries_.end()) return false;
    Entry& entry = it->second;
    if (supervised) {
      if (entry.supervised) return true;
      if (!hasRoomToSupervise()) return false;
      superviseLocked(id, entry, first_attempt_after);
      return true;
    }
    if (!entry.supervised) return false;
    stopped = unsuperviseLocked(id, entry, why);
  }
  if (stopped.wait_for(kStopConfirmation) != std::future_status::ready) {
    WSV_LOG(kWarning) << "endpoint " << id << ": its io thread did not confirm the stop in 2 s";
  }
  return true;
}

size_t Registry::stopSupervisingAll(const std::string& why) {
  std::vector<std::future<void>> stops;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_.load()) return 0;
    for (auto& [id, entry] : entries_) {
      if (entry.supervised) stops.push_back(unsuperviseLocked(id, entry, why));
    }
  }
  // Every stop is on its io thread's queue before the first wait: one pass of each thread stops
  // them all, instead of one round trip per endpoint.
  const auto deadline = std::chrono::steady_clock::now() + kStopConfirmation;
  size_t unconfirmed = 0;
  for (auto& stopped : stops) {
    if (stopped.wait_until(deadline) != std::future_status::ready) ++unconfirmed;
  }
  if (unconfirmed > 0) {
    WSV_LOG(kWarning) << unconfirmed << " of " << stops.size()
                      << " endpoints: their io threads did not confirm the stop in 2 s";
  }
  return stops.size();
}

std::future<void> Registry::unsuperviseLocked(const std::string& id, Entry& entry,
                                              const std::string& why) {
  auto stopped = std::make_shared<std::promise<void>>();
  std::future<void> done = stopped->get_future();
  entry.supervised = false;
  shards_[entry.shard]->remove(entry.incarnation, [stopped] { stopped->set_value(); });
  shards_[entry.shard]->assigned().fetch_sub(1);
  // A new incarnation: what the stopped session still reports is dropped by the bus.
  entry.incarnation = ++next_incarnation_;
  bus_.publishHandover(id, entry.incarnation, unreportedStatus("handed over: " + why), nullptr,
                       wallNow());
  return done;
}

void Registry::applyRemoteStatus(const std::string& id,
                                 const std::optional<core::EndpointStatus>& status) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.supervised) return;
  bus_.publishChanged(id, it->second.incarnation,
                      status ? *status : unreportedStatus("no replica reports it"), wallNow());
}

size_t Registry::connectionsInUse() const {
  // Lock-free (setSupervised asks under mu_): every supervised endpoint is assigned to a shard.
  size_t supervised = 0;
  for (const auto& shard : shards_) supervised += shard->assigned().load();
  return supervised;
}

bool Registry::hasRoomToSupervise() const {
  return connectionsInUse() + probes_running_.load() < options_.max_connections;
}

std::vector<std::string> Registry::ids() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [id, entry] : entries_) out.push_back(id);
  return out;
}

std::vector<std::string> Registry::supervisedIds() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [id, entry] : entries_) {
    if (entry.supervised) out.push_back(id);
  }
  return out;
}

size_t Registry::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

void Registry::shutdown(std::chrono::milliseconds grace) {
  std::lock_guard<std::mutex> write_lock(write_mu_);
  if (shut_down_.exchange(true)) return;
  // A probe() that saw the registry open has handed its probe to a shard before this returns; any
  // later one sees shut_down_. So every probe is on a shard before the shards sweep them.
  { std::lock_guard<std::mutex> probe_lock(probe_mu_); }
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
  if (store_) store_->close();
}

EndpointView Registry::viewOf(const std::string& id, const Entry& entry) const {
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

size_t Registry::leastLoadedShard() const {
  size_t best = 0;
  for (size_t i = 1; i < shards_.size(); ++i) {
    if (shards_[i]->assigned().load() < shards_[best]->assigned().load()) best = i;
  }
  return best;
}

}  // namespace wsvisor
