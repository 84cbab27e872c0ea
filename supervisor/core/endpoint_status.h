#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "supervisor/core/time.h"

namespace wsvisor::core {

enum class Health { kUnknown, kHealthy, kUnhealthy, kFlapping };

inline constexpr int kHealthCount = static_cast<int>(Health::kFlapping) + 1;

// kStoredSpecInvalid: not supervised, because the spec read from the store at start-up no longer
// passes validation (a Session never enters it).
enum class ConnectionPhase { kConnecting, kOpen, kBackingOff, kStopped, kStoredSpecInvalid };

// Bounded: every value maps to one API enum value and one metrics label value.
enum class FailureReason {
  kNone,
  kDns,
  kConnectionRefused,
  kConnectTimeout,
  kTls,
  kHandshakeRejected,
  kPongTimeout,
  kReplyMismatch,
  kSilence,
  kClosedByPeer,
  kMessageTooBig,
  kNetworkError,
};

inline constexpr int kFailureReasonCount = static_cast<int>(FailureReason::kNetworkError) + 1;

// Stable lower-case names, used in logs and metric labels.
const char* toString(Health health);
const char* toString(ConnectionPhase phase);
const char* toString(FailureReason reason);

// Longest failure detail kept; longer details are cut (peer-controlled text must stay bounded).
// `Failure::make` also escapes every byte that is not printable ASCII.
inline constexpr size_t kMaxFailureDetailBytes = 512;

struct Failure {
  FailureReason reason = FailureReason::kNone;
  std::string detail;
  int http_status = 0;  // kHandshakeRejected
  int close_code = 0;   // kClosedByPeer, kMessageTooBig
  MonoTime at{};

  static Failure make(FailureReason reason, std::string_view detail, int http_status = 0,
                      int close_code = 0);
  bool operator==(const Failure& o) const;
};

// What the supervisor knows about one endpoint at one moment.
struct EndpointStatus {
  Health health = Health::kUnknown;
  ConnectionPhase phase = ConnectionPhase::kConnecting;
  std::optional<Duration> last_rtt;
  std::optional<Duration> smoothed_rtt;
  uint32_t consecutive_failures = 0;
  std::optional<Failure> last_failure;
  MonoTime last_transition{};
  uint32_t reconnect_attempts = 0;
  std::optional<MonoTime> next_attempt;
  uint64_t heartbeats_sent = 0;
  // The health by the heartbeat thresholds alone; differs from `health` only while kFlapping.
  Health underlying_health = Health::kUnknown;
  // Why `health` last changed ("heartbeat failed: pong_timeout", "6 changes within 2m", ...).
  std::string transition_reason;
  // Cluster mode: the member id of the replica that supervises the endpoint; empty in single-node
  // mode and while no replica does. Stamped by the HealthBus of the supervising replica.
  std::string supervised_by;
};

}  // namespace wsvisor::core
