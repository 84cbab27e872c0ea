#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "etcd/api/etcdserverpb/rpc.grpc.pb.h"
#include "service/cluster/etcd/etcd_channels.h"
#include "service/cluster/etcd/etcd_error.h"
#include "supervisor/mutex.h"

namespace wsvisor::service::etcd {

struct EtcdClientOptions {
  // host:port of each etcd member to use; at least one.
  std::vector<std::string> endpoints;
  // Bound on one client call, over every member it tries.
  std::chrono::milliseconds call_timeout{5000};
  // How long one attempt waits for a member's connection before moving on to the next member.
  std::chrono::milliseconds connect_timeout{1000};
  // Bound on one attempt on one member. Shorter than the call: a request that a member forwarded
  // to a leader that then died is dropped by raft, and etcd answers it only after its own request
  // timeout (5 s + 2 election timeouts), while another attempt succeeds as soon as a new leader
  // is elected (about one election timeout).
  std::chrono::milliseconds attempt_timeout{2000};
  // TLS to every member (--store-ca, ...); null: plaintext.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Name the members' certificates must carry instead of each endpoint's host; empty: the host.
  std::string tls_server_name;
};

// One key as etcd holds it.
struct EtcdKeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
};

// A page of a range read: the keys in order, whether more follow, and the store revision the
// page was read at.
struct EtcdRange {
  std::vector<EtcdKeyValue> kvs;
  bool more = false;
  int64_t revision = 0;
};

// The outcome of a compare-and-swap that etcd answered. `succeeded` false is a conflict, not an
// error: `current` then holds the key as it is (absent when it does not exist).
struct EtcdSwap {
  bool succeeded = false;
  int64_t revision = 0;  // the store revision after the transaction
  std::optional<EtcdKeyValue> current;
};

struct EtcdLease {
  int64_t id = 0;
  int64_t ttl_seconds = 0;  // as granted by etcd, which may raise a TTL below its minimum
};

// Lets another thread cut short a call in flight (LeaseKeeper::stop()): cancel() cancels the
// attempt running now and makes every later attempt fail at once.
class EtcdCallCanceller {
 public:
  void cancel();
  bool cancelled() const;

 private:
  friend class EtcdClient;
  // Registers the attempt's context; false if cancel() came first.
  bool enter(grpc::ClientContext* context);
  void leave();

  mutable Mutex mu_;
  grpc::ClientContext* context_ WSV_GUARDED_BY(mu_) = nullptr;
  bool cancelled_ WSV_GUARDED_BY(mu_) = false;
};

// A client of etcd's v3 gRPC API over EtcdChannels: unary calls with a deadline, failover
// between members, and error messages that name the member and etcd's status.
//
// Which failures are retried, on the next member, until the call's deadline: every call may move
// on when a member is not connected (nothing was sent). After a member was sent the request and
// answered UNAVAILABLE (connection lost, "etcdserver: no leader", "request timed out") or did
// not answer within the attempt timeout, reads and unconditional writes (put, delete, txn without
// compares, lease calls) are sent again; so a call rides out a leader election or a member
// restart. Compare-and-swap transactions are not,
// because the first attempt may have been applied and a second one would then report a conflict
// with our own write: their error says the outcome is unknown, and the caller reads the key to
// find out. Any other status (INVALID_ARGUMENT, OUT_OF_RANGE, ...) is etcd's final answer.
//
// Every read is linearizable (etcd's default): it reflects every write acknowledged before it,
// on any member. Every acknowledged write is committed by a quorum of members.
//
// Thread-safe.
class EtcdClient {
 public:
  explicit EtcdClient(EtcdClientOptions options);

  // "etcd://a:2379,b:2379": for logs.
  std::string describe() const;
  const EtcdClientOptions& options() const { return options_; }
  EtcdChannels& channels() { return channels_; }

  // ----- keys
  // One key; `out` is empty when it does not exist. `revision`, if given, gets the store
  // revision of the read.
  std::optional<EtcdError> get(const std::string& key, std::optional<EtcdKeyValue>& out,
                               int64_t* revision = nullptr);
  // Keys in [key, range_end) in key order, at most `limit` (0: no limit), at `revision` (0: the
  // newest). A compacted revision fails with OUT_OF_RANGE.
  std::optional<EtcdError> range(const std::string& key, const std::string& range_end,
                                 int64_t limit, int64_t revision, EtcdRange& out);
  // Every key starting with `prefix`, page by page, at one revision (a consistent snapshot).
  std::optional<EtcdError> getPrefix(const std::string& prefix, EtcdRange& out);
  std::optional<EtcdError> put(const std::string& key, const std::string& value, int64_t lease = 0,
                               int64_t* revision = nullptr);
  // Deletes one key; `deleted` gets 0 or 1.
  std::optional<EtcdError> remove(const std::string& key, int64_t* deleted = nullptr);
  std::optional<EtcdError> removePrefix(const std::string& prefix, int64_t* deleted = nullptr);

  // A linearizable read of at most one key starting with `prefix`, bounded by `deadline` rather
  // than the call timeout: it succeeds only when etcd has a leader and a quorum. For start-up.
  std::optional<EtcdError> probe(const std::string& prefix,
                                 std::chrono::steady_clock::time_point deadline);

  // ----- transactions
  // Sends `request` as is. `unconditional`: it has no compares, so sending it twice is the same
  // as once, and it may be retried on another member (see the class comment).
  std::optional<EtcdError> txn(const etcdserverpb::TxnRequest& request,
                               etcdserverpb::TxnResponse& response, bool unconditional);
  // Writes `key` only if it does not exist.
  std::optional<EtcdError> createIfAbsent(const std::string& key, const std::string& value,
                                          int64_t lease, EtcdSwap& out);
  // Writes `key` only if it was last modified at `mod_revision` (it exists and nobody changed it
  // since it was read).
  std::optional<EtcdError> updateIfModRevision(const std::string& key, const std::string& value,
                                               int64_t mod_revision, int64_t lease, EtcdSwap& out);
  // Deletes `key` only if it was last modified at `mod_revision`.
  std::optional<EtcdError> removeIfModRevision(const std::string& key, int64_t mod_revision,
                                               EtcdSwap& out);
  // Discards the history before `revision` (watches from before it then report compaction).
  std::optional<EtcdError> compact(int64_t revision);

  // ----- leases
  // A lease of `ttl_seconds`; keys put with it are deleted when it expires or is revoked.
  std::optional<EtcdError> grantLease(int64_t ttl_seconds, EtcdLease& out);
  std::optional<EtcdError> revokeLease(int64_t id);
  // Renews the lease once. `ttl_seconds` gets its new TTL, or 0 when etcd no longer knows the
  // lease (expired or revoked). One short LeaseKeepAlive stream per renewal, bounded by
  // `deadline` (see LeaseKeeper for why).
  std::optional<EtcdError> keepAliveOnce(int64_t id, std::chrono::steady_clock::time_point deadline,
                                         int64_t& ttl_seconds,
                                         EtcdCallCanceller* canceller = nullptr);
  // The remaining TTL, -1 when the lease does not exist.
  std::optional<EtcdError> leaseTimeToLive(int64_t id, int64_t& ttl_seconds);

  // ----- members
  // Maintenance.Status of one member (by index into options().endpoints), without failover.
  std::optional<EtcdError> memberStatus(size_t index, etcdserverpb::StatusResponse& out);
  // The first member, in the current preference order, that is connected within `deadline`;
  // for streams, which stay on one member.
  std::optional<EtcdError> connectedMember(std::chrono::steady_clock::time_point deadline,
                                           size_t& index);

 private:
  // One attempt of a call on one member, with a context whose deadline is set.
  using Attempt = std::function<grpc::Status(const EtcdChannels::Member&, grpc::ClientContext&)>;
  // Calls `visit` with each member in preference order once it is connected, until `visit`
  // returns true (then returns true), `deadline` passes or `canceller` is cancelled. Members
  // that do not connect in time are skipped, their state noted in `failures` (by member index).
  bool visitConnected(std::chrono::steady_clock::time_point deadline,
                      std::vector<std::string>& failures, const std::function<bool(size_t)>& visit,
                      EtcdCallCanceller* canceller = nullptr);
  // ": a:2379: not connected (TRANSIENT_FAILURE); b:2379: UNAVAILABLE: ...", or "".
  std::string describeFailures(const std::vector<std::string>& failures) const;
  // Runs `attempt` on the members in preference order until one answers, within `deadline`.
  std::optional<EtcdError> call(std::string_view method, bool may_resend,
                                std::chrono::steady_clock::time_point deadline,
                                const Attempt& attempt, EtcdCallCanceller* canceller = nullptr);
  std::optional<EtcdError> call(std::string_view method, bool may_resend, const Attempt& attempt);
  std::optional<EtcdError> swap(std::string_view method, etcdserverpb::TxnRequest request,
                                const std::string& key, EtcdSwap& out);

  EtcdClientOptions options_;
  EtcdChannels channels_;
};

// The end of the range of keys starting with `prefix` (etcd's clientv3.GetPrefixRangeEnd): the
// prefix with its last byte that is not 0xff incremented and what follows dropped; "\0" (every
// key) when there is none.
std::string prefixRangeEnd(const std::string& prefix);

EtcdKeyValue fromProto(const mvccpb::KeyValue& kv);

}  // namespace wsvisor::service::etcd
