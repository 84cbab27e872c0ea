#include "service/cluster/etcd/etcd_channels.h"

#include <grpc/grpc.h>
#include <grpc/support/time.h>

#include <algorithm>

namespace wsvisor::service::etcd {

namespace {

// Reconnect backoff of a member's channel: gRPC's default starts at 1 s and grows to 120 s, so a
// restarted etcd member would be ignored for up to two minutes. etcd members restart in about a
// second and a reconnect attempt is one TCP connect.
constexpr int kMinReconnectBackoffMs = 100;
constexpr int kMaxReconnectBackoffMs = 2000;
// HTTP/2 keepalive pings while a stream is open, so that a watch on a member that vanished
// without closing its connections (a network partition, a frozen VM) fails within ~15 s instead
// of waiting on TCP. etcd refuses pings more often than every 5 s (--grpc-keepalive-min-time) and
// pings without a call at all (its enforcement policy), so neither is done.
constexpr int kKeepaliveTimeMs = 10000;
constexpr int kKeepaliveTimeoutMs = 5000;
// A page of endpoints (see EtcdEndpointStore) is far below this; a watch response carries one
// whole transaction, which etcd limits to --max-request-bytes (1.5 MiB by default).
constexpr int kMaxReceiveBytes = 64 * 1024 * 1024;

const char* stateName(grpc_connectivity_state state) {
  switch (state) {
    case GRPC_CHANNEL_IDLE:
      return "IDLE";
    case GRPC_CHANNEL_CONNECTING:
      return "CONNECTING";
    case GRPC_CHANNEL_READY:
      return "READY";
    case GRPC_CHANNEL_TRANSIENT_FAILURE:
      return "TRANSIENT_FAILURE";
    case GRPC_CHANNEL_SHUTDOWN:
      return "SHUTDOWN";
  }
  return "UNKNOWN";
}

}  // namespace

gpr_timespec toGrpcDeadline(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::microseconds>(
      deadline - std::chrono::steady_clock::now());
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_micros(std::max<int64_t>(0, left.count()), GPR_TIMESPAN));
}

EtcdChannels::EtcdChannels(const std::vector<std::string>& addresses,
                           std::shared_ptr<grpc::ChannelCredentials> credentials,
                           const std::string& tls_server_name) {
  if (!credentials) credentials = grpc::InsecureChannelCredentials();
  members_.reserve(addresses.size());
  for (const std::string& address : addresses) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, kMinReconnectBackoffMs);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, kMinReconnectBackoffMs);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kMaxReconnectBackoffMs);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveTimeMs);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
    args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
    // Each member gets connections of its own, not ones shared with another EtcdChannels for
    // the same address (gRPC pools subchannels process-wide by default): closing one client must
    // not disturb another's streams.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    if (!tls_server_name.empty())
      args.SetString(GRPC_SSL_TARGET_NAME_OVERRIDE_ARG, tls_server_name);
    Member member;
    member.address = address;
    member.channel = grpc::CreateCustomChannel(address, credentials, args);
    member.kv = etcdserverpb::KV::NewStub(member.channel);
    member.lease = etcdserverpb::Lease::NewStub(member.channel);
    member.watch = etcdserverpb::Watch::NewStub(member.channel);
    member.maintenance = etcdserverpb::Maintenance::NewStub(member.channel);
    members_.push_back(std::move(member));
  }
}

std::vector<size_t> EtcdChannels::order() const {
  std::vector<size_t> order;
  order.reserve(members_.size());
  const size_t first = preferred_.load() % members_.size();
  for (size_t i = 0; i < members_.size(); ++i) order.push_back((first + i) % members_.size());
  return order;
}

void EtcdChannels::markAnswered(size_t index) { preferred_.store(index); }

void EtcdChannels::markFailed(size_t index) {
  size_t expected = index;
  // Only the call that saw the preferred member fail moves the preference; a slow call failing
  // on a member that others left long ago must not move it away from a good one.
  preferred_.compare_exchange_strong(expected, (index + 1) % members_.size());
}

bool EtcdChannels::waitConnected(size_t index, std::chrono::steady_clock::time_point deadline,
                                 std::string& state) const {
  const auto& channel = members_[index].channel;
  grpc_connectivity_state current = channel->GetState(/*try_to_connect=*/true);
  // A connection attempt that fails (refused, unreachable) ends the wait at once: the caller
  // has other members to try, and a member that is down would otherwise cost the whole wait.
  bool attempted = current == GRPC_CHANNEL_CONNECTING;
  // Bounded by `deadline`: WaitForStateChange returns false once it has passed.
  while (current != GRPC_CHANNEL_READY && std::chrono::steady_clock::now() < deadline) {
    if (!channel->WaitForStateChange(current, toGrpcDeadline(deadline))) break;
    current = channel->GetState(/*try_to_connect=*/true);
    if (current == GRPC_CHANNEL_CONNECTING) attempted = true;
    if (current == GRPC_CHANNEL_TRANSIENT_FAILURE && attempted) break;
  }
  state = stateName(current);
  return current == GRPC_CHANNEL_READY;
}

bool EtcdChannels::knownDown(size_t index) const {
  return members_[index].channel->GetState(/*try_to_connect=*/false) ==
         GRPC_CHANNEL_TRANSIENT_FAILURE;
}

std::string EtcdChannels::connectFailure(size_t index) const {
  const Member& member = members_[index];
  if (member.channel->GetState(/*try_to_connect=*/false) != GRPC_CHANNEL_TRANSIENT_FAILURE) {
    return "";
  }
  // Not wait-for-ready: on a channel in TRANSIENT_FAILURE the call fails at once with the reason
  // of the last connection attempt. Status is the cheapest read etcd has.
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  etcdserverpb::StatusRequest request;
  etcdserverpb::StatusResponse response;
  const grpc::Status status = member.maintenance->Status(&context, request, &response);
  if (status.ok() || status.error_message().empty()) return "";
  return ": " + status.error_message();
}

}  // namespace wsvisor::service::etcd
