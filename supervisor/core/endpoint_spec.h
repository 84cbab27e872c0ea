#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "supervisor/core/time.h"

namespace wsvisor::core {

enum class HeartbeatMode { kPing, kText, kPassive, kNone };

// How liveness of an open connection is checked. See proto/wsvisor/v1/supervisor.proto for the
// meaning, default and range of every field; `applyDefaults()` fills unset (zero) fields.
struct HeartbeatPolicy {
  HeartbeatMode mode = HeartbeatMode::kPing;
  Duration interval{0};
  Duration timeout{0};
  uint32_t unhealthy_threshold = 0;
  uint32_t healthy_threshold = 0;
  std::string payload;             // TEXT only
  std::string expect;              // TEXT only: regex; empty = reply must equal payload
  Duration unhealthy_interval{0};  // PING/TEXT: the interval while not HEALTHY

  bool operator==(const HeartbeatPolicy& o) const;
  bool operator!=(const HeartbeatPolicy& o) const { return !(*this == o); }
};

// Reconnect backoff after gRPC's connection-backoff spec.
struct BackoffPolicy {
  Duration initial{0};
  double multiplier = 0;
  double jitter = 0;  // fraction, 0..1; meaningful only with `jitter_enabled`
  Duration max{0};
  Duration reset_after{0};
  bool jitter_enabled = true;

  bool operator==(const BackoffPolicy& o) const;
  bool operator!=(const BackoffPolicy& o) const { return !(*this == o); }
};

// When an endpoint whose health keeps changing is reported FLAPPING, and for how long.
struct FlapPolicy {
  uint32_t threshold = 0;  // more changes than this within `window` → FLAPPING
  Duration window{0};
  Duration quiet_period{0};  // FLAPPING ends after this long without a change
  bool enabled = true;

  static FlapPolicy off() {
    FlapPolicy policy;
    policy.enabled = false;
    return policy;
  }
  bool operator==(const FlapPolicy& o) const {
    return threshold == o.threshold && window == o.window && quiet_period == o.quiet_period &&
           enabled == o.enabled;
  }
  bool operator!=(const FlapPolicy& o) const { return !(*this == o); }
};

struct TlsOptions {
  std::string ca_file;
  std::string server_name;
  bool insecure_skip_verify = false;
  std::string client_cert_file;
  std::string client_key_file;

  bool operator==(const TlsOptions& o) const;
};

struct Header {
  std::string name;
  std::string value;
  bool secret = false;  // the caller marked the value as a credential
  bool operator==(const Header& o) const {
    return name == o.name && value == o.value && secret == o.secret;
  }
};

// What the API, logs and metrics show instead of a secret header value.
inline constexpr const char* kRedactedValue = "<redacted>";

// A credential: marked secret by the caller, or a header that carries credentials by its nature
// (Authorization, Proxy-Authorization, Cookie, X-Api-Key, X-Auth-Token; any case). Its value is
// stored and sent upstream but never shown.
bool isSecretHeader(const Header& header);

// Everything a caller says about one upstream endpoint.
struct EndpointSpec {
  std::string id;
  std::string url;
  std::map<std::string, std::string> labels;
  std::vector<Header> headers;
  std::vector<std::string> subprotocols;
  HeartbeatPolicy heartbeat;
  BackoffPolicy backoff;
  Duration connect_timeout{0};
  TlsOptions tls;
  uint64_t max_message_bytes = 0;
  FlapPolicy flapping;

  bool operator==(const EndpointSpec& o) const;
  bool operator!=(const EndpointSpec& o) const { return !(*this == o); }
};

// Defaults, in one place. The API documents the same values.
namespace defaults {
inline constexpr Duration kInterval = std::chrono::seconds(10);
inline constexpr uint32_t kUnhealthyThreshold = 1;
inline constexpr uint32_t kHealthyThreshold = 1;
inline constexpr const char* kTextPayload = "heartbeat";
inline constexpr Duration kBackoffInitial = std::chrono::seconds(1);
inline constexpr double kBackoffMultiplier = 1.6;
inline constexpr double kBackoffJitter = 0.2;
inline constexpr Duration kBackoffMax = std::chrono::seconds(120);
inline constexpr Duration kBackoffResetAfter = std::chrono::seconds(10);
inline constexpr Duration kConnectTimeout = std::chrono::seconds(20);
inline constexpr uint64_t kMaxMessageBytes = 1024 * 1024;
inline constexpr uint32_t kFlapThreshold = 5;
inline constexpr Duration kFlapWindow = std::chrono::minutes(2);
inline constexpr Duration kFlapQuietPeriod = std::chrono::minutes(1);
}  // namespace defaults

// Fills every unset (zero) field with its default. Idempotent. Call after validation: the timeout
// default depends on the mode and interval.
void applyDefaults(EndpointSpec& spec);

}  // namespace wsvisor::core
