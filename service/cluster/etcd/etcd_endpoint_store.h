#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "service/cluster/etcd/etcd_client.h"
#include "supervisor/store/endpoint_store.h"

namespace wsvisor::service::etcd {

struct EtcdStoreOptions {
  EtcdClientOptions client;
  // Keys live under `<prefix>/endpoints/`. Starts with '/', does not end with one.
  std::string prefix = "/wsvisor";
  // open() keeps trying this long for etcd to answer before it gives up.
  std::chrono::milliseconds startup_timeout{30000};
};

// The registry's store in etcd: one key per endpoint, `<prefix>/endpoints/<id>`, whose value is
// a wsvisor.store.v1.StoredEndpoint message (proto/wsvisor/store/v1/stored_endpoint.proto).
//
// Durability: a write returns once etcd acknowledged it, which etcd does after a quorum of
// members has it in their write-ahead log (fsync'd): it survives the loss of any minority of
// members and a crash of wsvisor. Unlike with SQLite, a write that fails because etcd did not
// answer in time may still have been applied (the answer was lost, not the write): the error
// says so, and the next load shows what etcd holds.
//
// Writes are etcd transactions of unconditional puts and deletes: last writer wins, as with the
// SQLite store, while one wsvisor writes the prefix. In cluster mode (setShared) put() compares
// and swaps instead, so concurrent replicas cannot clobber each other (see setShared).
//
// Batches (applyBatch): etcd refuses a transaction of more than --max-txn-ops operations (128 by
// default) or a request over --max-request-bytes (1.5 MiB). A batch within both is one atomic
// transaction. A larger one (a config file of thousands of endpoints) is split into transactions
// of up to 128 operations and 1 MiB, applied in order; each is atomic, the batch as a whole is
// not: if transaction k fails, the ones before it stay applied and the error says how many
// endpoints were written. Every operation is an unconditional put or delete, so applying the
// same batch again completes it; the registry does exactly that on the next config reload, as
// its running set was left unchanged by the failure.
//
// Reads (loadAll) page through the prefix, 500 keys a page, all at the revision of the first
// page, so the result is one consistent snapshot however large the prefix is.
//
// Called with the registry's write lock held, like every EndpointStore. Each call is bounded by
// the client's call timeout.
class EtcdEndpointStore : public EndpointStore {
 public:
  // etcd's default limits, which the batches and pages keep below.
  static constexpr size_t kMaxOpsPerTxn = 128;
  static constexpr size_t kMaxTxnBytes = 1024 * 1024;
  static constexpr int64_t kPageSize = 500;

  // Connects and waits until etcd serves a linearizable read of the prefix (it has a leader and
  // a quorum), retrying for up to `startup_timeout` with a warning at most every 5 s. Returns
  // nullptr with `error` set, naming the endpoints and the last failure, if it never does, or at
  // once if etcd refuses for another reason than being unavailable (e.g. authentication).
  static std::unique_ptr<EtcdEndpointStore> open(const EtcdStoreOptions& options,
                                                 std::string& error);

  // EndpointStore
  std::optional<std::string> put(const StoredEndpoint& endpoint) override;
  std::optional<std::string> remove(const std::string& id) override;
  std::optional<std::string> applyBatch(const std::vector<StoredEndpoint>& puts,
                                        const std::vector<std::string>& removes) override;
  std::optional<std::string> loadAll(std::vector<StoredEndpoint>& out) override;
  void close() override;
  std::string describe() const override;
  bool lastWriteConflicted() const override { return last_write_conflicted_; }

  // Cluster mode: several replicas write the prefix. put() then compares and swaps: generation 1
  // is created only if the key is absent, generation g replaces only the stored generation g-1
  // (by mod revision); a lost race fails with lastWriteConflicted(). Set before use.
  void setShared(bool shared) { shared_ = shared; }
  // Writes `endpoint` as it is (spec, owner, generation) only if no endpoint has its id: an
  // import from another store. `created` says whether it was written; an existing key is left.
  std::optional<std::string> createIfAbsent(const StoredEndpoint& endpoint, bool& created);
  // A key under endpointsPrefix() as read or watched, decoded.
  std::optional<std::string> decodeKeyValue(const EtcdKeyValue& kv, StoredEndpoint& out) const;

  // loadAll(), also giving the revision of the snapshot: a watch from revision + 1 sees every
  // later change.
  std::optional<std::string> loadAllAt(std::vector<StoredEndpoint>& out, int64_t& revision);
  // `<prefix>/endpoints/<id>`.
  std::string endpointKey(const std::string& id) const;
  // `<prefix>/endpoints/`: every endpoint key starts with it.
  std::string endpointsPrefix() const;
  const std::string& prefix() const { return prefix_; }
  // The client, for what the store does not do itself (leases, watches).
  EtcdClient* client() { return client_.get(); }
  // Smaller batches and pages, so that tests reach splitting and paging with few endpoints.
  void setLimitsForTest(size_t max_ops_per_txn, size_t max_txn_bytes, int64_t page_size);

 private:
  EtcdEndpointStore(std::unique_ptr<EtcdClient> client, std::string prefix);
  // One paged read at one revision; `compacted` tells whether it failed because etcd compacted
  // that revision while it was paging.
  std::optional<std::string> loadOnce(std::vector<StoredEndpoint>& out, int64_t& revision,
                                      bool& compacted);

  std::unique_ptr<EtcdClient> client_;  // null once closed
  const std::string prefix_;
  const std::string description_;
  size_t max_ops_per_txn_ = kMaxOpsPerTxn;
  size_t max_txn_bytes_ = kMaxTxnBytes;
  int64_t page_size_ = kPageSize;
  bool shared_ = false;
  bool last_write_conflicted_ = false;  // of the last put(); calls are serialized by the registry
};

}  // namespace wsvisor::service::etcd
