#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "etcd/api/etcdserverpb/rpc.grpc.pb.h"

namespace wsvisor::service::etcd {

// A steady-clock deadline as gRPC takes it (gRPC's monotonic clock is the same CLOCK_MONOTONIC):
// deadlines here never move with the wall clock.
gpr_timespec toGrpcDeadline(std::chrono::steady_clock::time_point deadline);

// One gRPC channel per etcd endpoint we were given, and the choice of which one a call uses.
//
// Why a channel per endpoint with failover of our own, and not one channel balancing over all
// endpoints (gRPC's round_robin over an `ipv4:a,b,c` target):
//   - endpoints may be DNS names (etcd-0.etcd:2379 under Kubernetes); an ipv4:/ipv6: target
//     takes addresses only, and a dns: target one name;
//   - an error must name the member that gave it; a balanced channel hides which one it was;
//   - whether a failed call may be sent again to another member is a decision per call: a read
//     or an unconditional write may be, a compare-and-swap whose answer was lost may not (it may
//     have been applied), which a channel-wide retry policy cannot tell apart;
//   - streams (watch, lease keepalive) stay on one member and move only when it fails.
// Like etcd's own Go client, calls stick to one member (the preferred one) while it answers, and
// move on to the next in the list when it does not.
//
// Thread-safe: channels and stubs are, and the preferred index is atomic.
class EtcdChannels {
 public:
  struct Member {
    std::string address;  // host:port, as given
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;
    std::unique_ptr<etcdserverpb::Watch::Stub> watch;
    std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance;
  };

  // `addresses`: host:port (host a DNS name, an IPv4 address or a bracketed IPv6 address); at
  // least one. `credentials`: TLS for every member, null for plaintext; `tls_server_name`, if
  // set, is the name checked in every member's certificate. Channels connect lazily.
  explicit EtcdChannels(const std::vector<std::string>& addresses,
                        std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr,
                        const std::string& tls_server_name = "");

  size_t size() const { return members_.size(); }
  const Member& member(size_t index) const { return members_[index]; }

  // Member indices in the order the next call should try them: the preferred member first, then
  // the others in list order after it.
  std::vector<size_t> order() const;
  // `index` answered: keep using it.
  void markAnswered(size_t index);
  // `index` failed: unless another call has moved on already, the next call starts after it.
  void markFailed(size_t index);

  // Starts connecting `index` if it is idle and waits until it is connected or `deadline`
  // passes. Returns false, with `state` naming the channel state ("TRANSIENT_FAILURE", ...),
  // when it is not connected by then.
  bool waitConnected(size_t index, std::chrono::steady_clock::time_point deadline,
                     std::string& state) const;
  // True when the member's channel has failed to connect and is waiting to retry: trying another
  // member first is cheaper than waiting for this one.
  bool knownDown(size_t index) const;
  // Why the member's channel failed to connect, as ": <gRPC's message>" (a refused connection, a
  // TLS handshake that failed and why), or "" when it does not say. The channel state alone
  // cannot tell a wrong CA from a member that is down; a call that fails at once can.
  std::string connectFailure(size_t index) const;

 private:
  std::vector<Member> members_;
  std::atomic<size_t> preferred_{0};
};

}  // namespace wsvisor::service::etcd
