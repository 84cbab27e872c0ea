#include "supervisor/clustered_registry.h"

#include <map>
#include <memory>
#include <utility>

#include "supervisor/log.h"

namespace wsvisor {

namespace {

core::WallTime wallNow() { return std::chrono::system_clock::now(); }

// How long a stop waits for its io thread to confirm. The io thread answers within one loop
// turn; the bound only guards a shard that is stuck or shutting down (then its connections are
// being closed anyway).
constexpr std::chrono::seconds kStopConfirmation{2};

// The status of an endpoint this replica does not supervise while no replica reports it:
// unknown, as this replica has no connection to judge by.
core::EndpointStatus unreportedStatus(std::string reason) {
  core::EndpointStatus status;
  status.phase = core::ConnectionPhase::kStopped;
  status.last_transition = core::MonoClock::now();
  status.transition_reason = std::move(reason);
  return status;
}

}  // namespace

std::optional<RegistryError> ClusteredRegistry::admitRegistration(size_t) const {
  return std::nullopt;
}

void ClusteredRegistry::arrivedUnderMapLock(const std::string& id, Entry& entry, core::Duration) {
  // Every replica knows every endpoint; its health comes from the owner (applyRemoteStatus)
  // until this replica owns it.
  entry.incarnation = nextIncarnationUnderMapLock();
  bus_.publishRegisteredElsewhere(id, entry.incarnation, entry.spec->labels,
                                  unreportedStatus("awaiting the report of its owner"), wallNow());
}

void ClusteredRegistry::storedSpecReplacedUnderMapLock(const std::string& id, Entry& entry) {
  entry.incarnation = nextIncarnationUnderMapLock();
  bus_.replaceRegistration(id, entry.incarnation, entry.spec->labels,
                           unreportedStatus("awaiting the report of its owner"), nullptr,
                           wallNow());
}

void ClusteredRegistry::syncStored(const std::vector<StoredEndpoint>& all) {
  MutexLock change(changes_mu_);
  if (shutDown()) return;
  std::vector<std::string> gone;
  {
    MutexLock lock(map_mu_);
    std::map<std::string, bool> present;
    for (const StoredEndpoint& record : all) present[record.id] = true;
    for (const auto& [id, entry] : entries_) {
      if (present.count(id) == 0) gone.push_back(id);
    }
  }
  for (const std::string& id : gone) removeInChange(id);
  for (const StoredEndpoint& record : all) applyStoredPutInChange(record);
}

void ClusteredRegistry::applyStoredPut(const StoredEndpoint& record) {
  MutexLock change(changes_mu_);
  if (shutDown()) return;
  applyStoredPutInChange(record);
}

void ClusteredRegistry::applyStoredPutInChange(const StoredEndpoint& record) {
  {
    MutexLock lock(map_mu_);
    auto it = entries_.find(record.id);
    if (it != entries_.end() && it->second.generation >= record.generation) return;
  }
  std::string error;
  auto decoded = decodeStored(record, error);
  if (!decoded) {
    WSV_LOG(kError) << "stored endpoint '" << record.id << "' (generation " << record.generation
                    << ") cannot be read and is ignored here: " << error;
    return;
  }
  if (decoded->invalid) {
    // Held unsupervised, as a single wsvisor's restore holds it; a supervised older version stops.
    logStoredSpecInvalid(record.id, record.generation, *decoded->invalid);
    bool supervised = false;
    {
      MutexLock lock(map_mu_);
      auto it = entries_.find(record.id);
      supervised = it != entries_.end() && it->second.supervised;
    }
    if (supervised) removeInChange(record.id);
    addStoredSpecInvalidInChange(std::move(decoded->spec), record.owner, record.generation,
                                 *decoded->invalid);
    return;
  }
  auto spec = std::make_shared<const core::EndpointSpec>(std::move(decoded->spec));
  bool exists = false;
  {
    MutexLock lock(map_mu_);
    auto it = entries_.find(record.id);
    if (it != entries_.end()) {
      exists = true;
      it->second.owner = record.owner;
    }
  }
  if (exists) {
    bool reconnected = false;
    replaceInChange(record.id, spec, record.generation, reconnected);
  } else {
    addInChange(spec, record.owner, record.generation, core::Duration::zero());
  }
}

void ClusteredRegistry::applyStoredRemove(const std::string& id) {
  MutexLock change(changes_mu_);
  if (shutDown()) return;
  removeInChange(id);
}

bool ClusteredRegistry::setSupervised(const std::string& id, bool supervised,
                                      core::Duration first_attempt_after, const std::string& why) {
  std::future<void> stopped;
  {
    MutexLock lock(map_mu_);
    if (shutDown()) return false;
    auto it = entries_.find(id);
    if (it == entries_.end()) return false;
    Entry& entry = it->second;
    if (supervised) {
      if (entry.supervised) return true;
      if (!entry.stored_spec_error.empty()) return false;  // nothing valid to supervise
      if (!hasRoomToSupervise()) return false;
      core::EndpointStatus initial = prepareSupervisionUnderMapLock(entry, first_attempt_after);
      initial.transition_reason = "supervised by this replica";
      bus_.publishHandover(id, entry.incarnation, initial, entry.live, wallNow());
      runSessionUnderMapLock(entry, first_attempt_after);
      return true;
    }
    if (!entry.supervised) return false;
    stopped = unsuperviseUnderMapLock(id, entry, why);
  }
  if (stopped.wait_for(kStopConfirmation) != std::future_status::ready) {
    WSV_LOG(kWarning) << "endpoint " << id << ": its io thread did not confirm the stop in 2 s";
  }
  return true;
}

size_t ClusteredRegistry::stopSupervisingAll(const std::string& why) {
  std::vector<std::future<void>> stops;
  {
    MutexLock lock(map_mu_);
    if (shutDown()) return 0;
    for (auto& [id, entry] : entries_) {
      if (entry.supervised) stops.push_back(unsuperviseUnderMapLock(id, entry, why));
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

std::future<void> ClusteredRegistry::unsuperviseUnderMapLock(const std::string& id, Entry& entry,
                                                             const std::string& why) {
  auto stopped = std::make_shared<std::promise<void>>();
  std::future<void> done = stopped->get_future();
  entry.supervised = false;
  if (entry.live) entry.live->retired.store(true, std::memory_order_release);
  shards_[entry.shard].remove(entry.incarnation, [stopped] { stopped->set_value(); });
  shards_.unplace(entry.shard);
  // A new incarnation: what the stopped session still reports is dropped by the bus.
  entry.incarnation = nextIncarnationUnderMapLock();
  bus_.publishHandover(id, entry.incarnation, unreportedStatus("handed over: " + why), nullptr,
                       wallNow());
  return done;
}

void ClusteredRegistry::applyRemoteStatus(const std::string& id,
                                          const std::optional<core::EndpointStatus>& status) {
  MutexLock lock(map_mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.supervised || !it->second.stored_spec_error.empty()) {
    return;
  }
  bus_.publishChanged(id, it->second.incarnation,
                      status ? *status : unreportedStatus("no replica reports it"), wallNow());
}

std::vector<std::string> ClusteredRegistry::ids() const {
  MutexLock lock(map_mu_);
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [id, entry] : entries_) out.push_back(id);
  return out;
}

std::vector<std::string> ClusteredRegistry::supervisedIds() const {
  MutexLock lock(map_mu_);
  std::vector<std::string> out;
  for (const auto& [id, entry] : entries_) {
    if (entry.supervised) out.push_back(id);
  }
  return out;
}

}  // namespace wsvisor
