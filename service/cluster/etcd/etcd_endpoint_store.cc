#include "service/cluster/etcd/etcd_endpoint_store.h"

#include <algorithm>
#include <map>
#include <set>
#include <thread>

#include "supervisor/log.h"
#include "wsvisor/store/v1/stored_endpoint.pb.h"

namespace wsvisor::service::etcd {

namespace {

using Clock = std::chrono::steady_clock;

// open(): the pause after an attempt that failed early, and how often a failure is logged.
constexpr std::chrono::milliseconds kRetryPause{500};
constexpr std::chrono::seconds kLogEvery{5};
// loadAll() starts over when etcd compacts the revision it is paging at; this often at most.
constexpr int kLoadAttempts = 3;
// A put or delete costs its key and value plus this much protobuf framing in a transaction.
constexpr size_t kOpOverheadBytes = 32;
// put() in shared mode: compare-and-swap attempts when etcd's answers are lost.
constexpr int kSwapRounds = 3;

std::string encodeRecord(const StoredEndpoint& endpoint) {
  store::v1::StoredEndpoint record;
  record.set_id(endpoint.id);
  record.set_spec(endpoint.encoded_spec);
  record.set_owner(endpoint.owner == EndpointOwner::kConfigFile ? v1::OWNER_CONFIG_FILE
                                                                : v1::OWNER_API);
  record.set_generation(endpoint.generation);
  return record.SerializeAsString();
}

std::optional<std::string> decodeRecord(const EtcdKeyValue& kv, const std::string& id,
                                        StoredEndpoint& out) {
  store::v1::StoredEndpoint record;
  if (!record.ParseFromString(kv.value)) {
    return "etcd key " + kv.key + " does not hold a wsvisor.store.v1.StoredEndpoint";
  }
  if (record.id() != id) {
    return "etcd key " + kv.key + " holds endpoint '" + record.id() + "', not '" + id + "'";
  }
  if (record.owner() != v1::OWNER_API && record.owner() != v1::OWNER_CONFIG_FILE) {
    return "etcd key " + kv.key + " has no valid owner (" + std::to_string(record.owner()) + ")";
  }
  out.id = id;
  out.encoded_spec = record.spec();
  out.owner =
      record.owner() == v1::OWNER_CONFIG_FILE ? EndpointOwner::kConfigFile : EndpointOwner::kApi;
  out.generation = record.generation();
  return std::nullopt;
}

int64_t secondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::seconds>(to - from).count();
}

}  // namespace

EtcdEndpointStore::EtcdEndpointStore(std::unique_ptr<EtcdClient> client, std::string prefix)
    : client_(std::move(client)),
      prefix_(std::move(prefix)),
      description_(client_->describe() + prefix_) {}

std::unique_ptr<EtcdEndpointStore> EtcdEndpointStore::open(const EtcdStoreOptions& options,
                                                           std::string& error) {
  std::unique_ptr<EtcdEndpointStore> store(
      new EtcdEndpointStore(std::make_unique<EtcdClient>(options.client), options.prefix));
  const auto started = Clock::now();
  const auto give_up = started + options.startup_timeout;
  auto next_log = started;
  std::string last_error;
  // Each attempt retries by itself until its deadline (a few seconds) and the loop stops at
  // `give_up`; a turn that ends early pauses first.
  for (int attempt = 1;; ++attempt) {
    const auto attempt_started = Clock::now();
    const auto deadline = std::min(give_up, attempt_started + options.client.call_timeout);
    // Answered only with a leader and a quorum behind it.
    const auto failure = store->client_->probe(store->endpointsPrefix(), deadline);
    if (!failure) {
      if (attempt > 1) {
        WSV_LOG(kInfo) << "etcd " << store->describe() << " answered after " << attempt
                       << " attempts";
      }
      return store;
    }
    last_error = failure->message;
    // etcd answered, and no: authentication, permissions, a bad request. Waiting changes nothing.
    if (failure->code != grpc::StatusCode::UNAVAILABLE &&
        failure->code != grpc::StatusCode::DEADLINE_EXCEEDED) {
      error = "cannot use the etcd store " + store->describe() + ": " + last_error;
      return nullptr;
    }
    const auto now = Clock::now();
    if (now >= give_up) break;
    if (now >= next_log) {
      WSV_LOG(kWarning) << "etcd " << store->describe() << " not usable yet (attempt " << attempt
                        << ", " << secondsBetween(started, now) << " s of "
                        << secondsBetween(started, give_up) << " s): " << last_error;
      next_log = now + kLogEvery;
    }
    if (now < deadline) {
      std::this_thread::sleep_for(std::min<Clock::duration>(kRetryPause, give_up - now));
    }
  }
  error = "cannot use the etcd store " + store->describe() + ": no answer within " +
          std::to_string(options.startup_timeout.count()) + " ms; last error: " + last_error;
  return nullptr;
}

std::string EtcdEndpointStore::describe() const { return description_; }

std::string EtcdEndpointStore::endpointsPrefix() const { return prefix_ + "/endpoints/"; }

std::string EtcdEndpointStore::endpointKey(const std::string& id) const {
  return endpointsPrefix() + id;
}

void EtcdEndpointStore::setLimitsForTest(size_t max_ops_per_txn, size_t max_txn_bytes,
                                         int64_t page_size) {
  max_ops_per_txn_ = max_ops_per_txn;
  max_txn_bytes_ = max_txn_bytes;
  page_size_ = page_size;
}

std::optional<std::string> EtcdEndpointStore::createIfAbsent(const StoredEndpoint& endpoint,
                                                             bool& created) {
  created = false;
  if (!client_) return "the etcd store is closed";
  EtcdSwap swap;
  if (auto failure =
          client_->createIfAbsent(endpointKey(endpoint.id), encodeRecord(endpoint), 0, swap)) {
    return failure->message;
  }
  created = swap.succeeded;
  return std::nullopt;
}

std::optional<std::string> EtcdEndpointStore::put(const StoredEndpoint& endpoint) {
  last_write_conflicted_ = false;
  if (!shared_) return applyBatch({endpoint}, {});
  if (!client_) return "the etcd store is closed";
  const std::string key = endpointKey(endpoint.id);
  const std::string value = encodeRecord(endpoint);
  // A compare-and-swap whose answer was lost (a leader election) may or may not have been
  // applied, and is not resent blindly: the key is read, and holding exactly our record means it
  // was. A few rounds, each bounded by the client's call timeout.
  std::string last_error;
  for (int round = 0; round < kSwapRounds; ++round) {
    std::optional<EtcdKeyValue> current;
    if (round > 0) {
      if (auto error = client_->get(key, current)) return error->message;
      if (current && current->value == value) return std::nullopt;
    }
    EtcdSwap swap;
    std::optional<EtcdError> failure;
    if (endpoint.generation <= 1) {
      if (round > 0 && current) {
        last_write_conflicted_ = true;
        return "endpoint '" + endpoint.id + "' was registered by another replica first";
      }
      failure = client_->createIfAbsent(key, value, 0, swap);
      if (!failure && !swap.succeeded) {
        last_write_conflicted_ = true;
        return "endpoint '" + endpoint.id + "' was registered by another replica first";
      }
    } else {
      // Generation g replaces exactly generation g-1: read it with its mod revision, and write
      // only if nobody changed the key since.
      if (round == 0) {
        if (auto error = client_->get(key, current)) return error->message;
      }
      StoredEndpoint stored;
      if (!current || decodeRecord(*current, endpoint.id, stored) ||
          stored.generation + 1 != endpoint.generation) {
        last_write_conflicted_ = true;
        return "endpoint '" + endpoint.id + "' was changed or removed by another replica (stored " +
               (current ? "generation " + std::to_string(stored.generation)
                        : std::string("nothing")) +
               ", this change is generation " + std::to_string(endpoint.generation) + ")";
      }
      failure = client_->updateIfModRevision(key, value, current->mod_revision, 0, swap);
      if (!failure && !swap.succeeded) {
        last_write_conflicted_ = true;
        return "endpoint '" + endpoint.id + "' was changed by another replica meanwhile";
      }
    }
    if (!failure) return std::nullopt;
    last_error = failure->message;
    // Only an unanswered request leaves the outcome unknown; any other answer is final.
    if (failure->code != grpc::StatusCode::UNAVAILABLE &&
        failure->code != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return last_error;
    }
  }
  return last_error;
}

std::optional<std::string> EtcdEndpointStore::decodeKeyValue(const EtcdKeyValue& kv,
                                                             StoredEndpoint& out) const {
  const std::string prefix = endpointsPrefix();
  if (kv.key.compare(0, prefix.size(), prefix) != 0) {
    return "etcd key " + kv.key + " is not under " + prefix;
  }
  return decodeRecord(kv, kv.key.substr(prefix.size()), out);
}

std::optional<std::string> EtcdEndpointStore::remove(const std::string& id) {
  return applyBatch({}, {id});
}

std::optional<std::string> EtcdEndpointStore::applyBatch(const std::vector<StoredEndpoint>& puts,
                                                         const std::vector<std::string>& removes) {
  if (!client_) return "store is closed";
  // etcd refuses a transaction that touches a key twice. As in the SQLite store, the last put of
  // an id wins, and a remove of the same id wins over any put.
  const std::set<std::string> removed(removes.begin(), removes.end());
  std::map<std::string, const StoredEndpoint*> last_put;
  for (const StoredEndpoint& endpoint : puts) last_put[endpoint.id] = &endpoint;
  std::vector<etcdserverpb::RequestOp> ops;
  std::vector<size_t> op_bytes;
  ops.reserve(last_put.size() + removed.size());
  for (const auto& [id, endpoint] : last_put) {
    if (removed.count(id) != 0) continue;
    etcdserverpb::RequestOp op;
    auto* put = op.mutable_request_put();
    put->set_key(endpointKey(id));
    put->set_value(encodeRecord(*endpoint));
    op_bytes.push_back(put->key().size() + put->value().size() + kOpOverheadBytes);
    ops.push_back(std::move(op));
  }
  for (const std::string& id : removed) {
    etcdserverpb::RequestOp op;
    op.mutable_request_delete_range()->set_key(endpointKey(id));
    op_bytes.push_back(op.request_delete_range().key().size() + kOpOverheadBytes);
    ops.push_back(std::move(op));
  }
  // Transactions of consecutive operations, each within both limits (an operation larger than
  // the byte limit goes alone, and etcd says whether it fits its own).
  size_t written = 0;
  size_t transactions = 0;
  for (size_t begin = 0; begin < ops.size();) {
    size_t end = begin;
    size_t bytes = 0;
    while (end < ops.size() && end - begin < max_ops_per_txn_ &&
           (end == begin || bytes + op_bytes[end] <= max_txn_bytes_)) {
      bytes += op_bytes[end];
      ++end;
    }
    etcdserverpb::TxnRequest request;
    for (size_t i = begin; i < end; ++i) *request.add_success() = ops[i];
    etcdserverpb::TxnResponse response;
    if (auto error = client_->txn(request, response, /*unconditional=*/true)) {
      std::string message = error->message;
      if (written > 0) {
        message += " (" + std::to_string(written) + " of " + std::to_string(ops.size()) +
                   " changes were written in " + std::to_string(transactions) +
                   " earlier transactions and stay; applying the batch again completes it)";
      }
      return message;
    }
    written += end - begin;
    ++transactions;
    begin = end;
  }
  return std::nullopt;
}

std::optional<std::string> EtcdEndpointStore::loadAll(std::vector<StoredEndpoint>& out) {
  int64_t revision = 0;
  return loadAllAt(out, revision);
}

std::optional<std::string> EtcdEndpointStore::loadAllAt(std::vector<StoredEndpoint>& out,
                                                        int64_t& revision) {
  if (!client_) return "store is closed";
  std::optional<std::string> error;
  for (int attempt = 0; attempt < kLoadAttempts; ++attempt) {
    std::vector<StoredEndpoint> loaded;
    bool compacted = false;
    error = loadOnce(loaded, revision, compacted);
    if (!error) {
      for (auto& endpoint : loaded) out.push_back(std::move(endpoint));
      return std::nullopt;
    }
    // Only a compaction during paging is worth another go; anything else is final.
    if (!compacted) return error;
  }
  return error;
}

std::optional<std::string> EtcdEndpointStore::loadOnce(std::vector<StoredEndpoint>& out,
                                                       int64_t& revision, bool& compacted) {
  const std::string prefix = endpointsPrefix();
  const std::string end = prefixRangeEnd(prefix);
  std::string from = prefix;
  revision = 0;
  // Pages until etcd says there are no more; each page moves `from` past its last key, so the
  // loop ends after (keys / page size) + 1 turns.
  for (;;) {
    EtcdRange page;
    if (auto error = client_->range(from, end, page_size_, revision, page)) {
      // etcd: "mvcc: required revision has been compacted" (OUT_OF_RANGE).
      compacted = revision != 0 && error->code == grpc::StatusCode::OUT_OF_RANGE;
      return "cannot read " + describe() + ": " + error->message;
    }
    if (revision == 0) revision = page.revision;
    for (const EtcdKeyValue& kv : page.kvs) {
      StoredEndpoint endpoint;
      if (auto error = decodeRecord(kv, kv.key.substr(prefix.size()), endpoint)) return error;
      out.push_back(std::move(endpoint));
    }
    if (!page.more || page.kvs.empty()) return std::nullopt;
    from = page.kvs.back().key + std::string(1, '\0');
  }
}

void EtcdEndpointStore::close() { client_.reset(); }

}  // namespace wsvisor::service::etcd
