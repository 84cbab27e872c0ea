#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "service/cluster/etcd/etcd_client.h"
#include "supervisor/mutex.h"

namespace wsvisor::service::etcd {

struct EtcdEvent {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  // For a delete: the key, and mod_revision the revision of the delete; no value.
  EtcdKeyValue kv;
};

// Watches every key under a prefix from a given revision, from a thread of its own, and delivers
// each change exactly once and in revision order, across member failures.
//
// Resuming: the watch remembers the revision after the last one it delivered. When the stream
// fails (the member died, lost its leader, or the connection broke), it opens a new one on the
// next member from that revision, after a backoff of 100 ms doubling to 2 s; etcd replays the
// history from there, so nothing is missed and nothing repeats. Watch streams ask etcd to end
// them when their member has no leader (metadata `hasleader`, as etcd's Go client does), so a
// member cut off from the cluster cannot keep a watch silently stale.
//
// Compaction: if etcd has discarded the history the watch needs (the start revision, or where it
// was when it resumed), `on_compacted` is called with etcd's compact revision and the watch
// stops: it cannot deliver every change any more. The owner reads the prefix again and starts a
// new watch from the revision of that read + 1.
class PrefixWatch {
 public:
  struct Callbacks {
    // Events of one or more revisions, in order; `revision` is the last revision delivered.
    std::function<void(const std::vector<EtcdEvent>& events, int64_t revision)> on_events;
    // The watch has stopped for good: history before `compact_revision` is gone.
    std::function<void(int64_t compact_revision)> on_compacted;
    // The stream failed and the watch is resuming elsewhere (for logs); may be empty.
    std::function<void(const std::string& problem)> on_interrupted;
  };

  // Starts at once; events from `start_revision` on (> 0) are delivered.
  PrefixWatch(EtcdClient& client, std::string prefix, int64_t start_revision, Callbacks callbacks);
  ~PrefixWatch();
  PrefixWatch(const PrefixWatch&) = delete;
  PrefixWatch& operator=(const PrefixWatch&) = delete;

  // Ends the stream and joins the thread. Idempotent. Must not be called from a callback.
  void stop();
  // Waits until etcd has confirmed the watch on some member (or `timeout`); for tests and start-up
  // logs.
  bool waitUntilCreated(std::chrono::milliseconds timeout);
  // The revision the next event will have at least.
  int64_t nextRevision() const;
  // Members the watch has moved away from after a failure.
  int64_t resumptions() const;

 private:
  void run();
  // One stream on one member, until it fails, stop() or compaction. Returns false when the watch
  // is over (stopped or compacted).
  bool watchOn(size_t index);
  bool waitFor(std::chrono::milliseconds delay);

  EtcdClient& client_;
  const std::string prefix_;
  const Callbacks callbacks_;
  mutable Mutex mu_;
  CondVar changed_;
  bool stopping_ WSV_GUARDED_BY(mu_) = false;
  bool created_ WSV_GUARDED_BY(mu_) = false;
  int64_t next_revision_ WSV_GUARDED_BY(mu_);
  int64_t resumptions_ WSV_GUARDED_BY(mu_) = 0;
  grpc::ClientContext* stream_ WSV_GUARDED_BY(mu_) = nullptr;  // the context of the open stream
  std::thread thread_;  // last: started once everything above is ready
};

}  // namespace wsvisor::service::etcd
