#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "service/cluster/etcd/etcd_client.h"
#include "supervisor/mutex.h"

namespace wsvisor::service::etcd {

// Keeps one etcd lease alive from a thread of its own, and says when it is lost.
//
// Schedule: a renewal every TTL/3 after the last acknowledged one (etcd's Go client does the
// same), so two renewals can fail before the lease is in danger. One renewal waits at most
// TTL/4 (at least 500 ms) for its answer. A failed renewal is retried
// after 200 ms, doubling up to TTL/6, on the next member when the failure was the member's.
//
// Loss: `on_lost` is called once, from the keeper's thread, and the keeper stops, when
//   - etcd answers that the lease does not exist (it expired or was revoked), or
//   - no renewal has been acknowledged for a whole TTL, counted from when the last acknowledged
//     renewal was sent. etcd may still hold the lease a little longer, but nobody can be sure
//     it does, so whoever relies on it (an owner key) must assume it is gone.
// Stopping (stop() or the destructor) does not revoke the lease and does not call `on_lost`.
//
// Why one short LeaseKeepAlive stream per renewal rather than one stream for the lease's life:
// each renewal is then an ordinary call with its own deadline and failover, and no thread sits
// in a blocking Read() on a stream that a half-dead member may never answer. A renewal every few
// seconds makes the cost of a stream (an HTTP/2 stream on an open connection) negligible.
class LeaseKeeper {
 public:
  using LostCallback = std::function<void(const std::string& reason)>;

  // Starts at once; the first renewal is due TTL/3 after `lease` was granted (now).
  LeaseKeeper(EtcdClient& client, EtcdLease lease, LostCallback on_lost);
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // Stops renewing and joins the thread; cuts short a renewal in flight. Idempotent. Must not be
  // called from `on_lost`.
  void stop();

  int64_t leaseId() const { return lease_.id; }
  bool lost() const;
  // Renewals etcd acknowledged so far.
  int64_t renewals() const;
  // When the last acknowledged renewal was sent (the lease lives at least its TTL after that);
  // the epoch before the first one. Cluster ownership stops on a deadline counted from it.
  std::chrono::steady_clock::time_point lastAcknowledgedSend() const;

 private:
  void run();
  // Waits until `until` or stop(); returns false on stop().
  bool waitUntil(std::chrono::steady_clock::time_point until);

  EtcdClient& client_;
  const EtcdLease lease_;
  const LostCallback on_lost_;
  EtcdCallCanceller canceller_;
  mutable Mutex mu_;
  CondVar wake_;
  bool stopping_ WSV_GUARDED_BY(mu_) = false;
  bool lost_ WSV_GUARDED_BY(mu_) = false;
  int64_t renewals_ WSV_GUARDED_BY(mu_) = 0;
  std::chrono::steady_clock::time_point last_ack_sent_ WSV_GUARDED_BY(mu_);
  std::thread thread_;  // last: started once everything above is ready
};

}  // namespace wsvisor::service::etcd
