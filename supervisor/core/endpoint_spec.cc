#include "supervisor/core/endpoint_spec.h"

#include <algorithm>
#include <cctype>

#include "supervisor/core/spec_validation.h"

namespace wsvisor::core {

bool isSecretHeader(const Header& header) {
  if (header.secret) return true;
  std::string lower = header.name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower == "authorization" || lower == "proxy-authorization" || lower == "cookie" ||
         lower == "x-api-key" || lower == "x-auth-token";
}

bool HeartbeatPolicy::operator==(const HeartbeatPolicy& o) const {
  return mode == o.mode && interval == o.interval && timeout == o.timeout &&
         unhealthy_threshold == o.unhealthy_threshold && healthy_threshold == o.healthy_threshold &&
         payload == o.payload && expect == o.expect && unhealthy_interval == o.unhealthy_interval;
}

bool BackoffPolicy::operator==(const BackoffPolicy& o) const {
  return initial == o.initial && multiplier == o.multiplier && jitter == o.jitter && max == o.max &&
         reset_after == o.reset_after && jitter_enabled == o.jitter_enabled;
}

bool TlsOptions::operator==(const TlsOptions& o) const {
  return ca_file == o.ca_file && server_name == o.server_name &&
         insecure_skip_verify == o.insecure_skip_verify && client_cert_file == o.client_cert_file &&
         client_key_file == o.client_key_file;
}

bool EndpointSpec::operator==(const EndpointSpec& o) const {
  return id == o.id && url == o.url && labels == o.labels && headers == o.headers &&
         subprotocols == o.subprotocols && heartbeat == o.heartbeat && backoff == o.backoff &&
         connect_timeout == o.connect_timeout && tls == o.tls &&
         max_message_bytes == o.max_message_bytes && flapping == o.flapping;
}

void applyDefaults(EndpointSpec& spec) {
  HeartbeatPolicy& hb = spec.heartbeat;
  // NONE sends and times nothing: its durations stay unset.
  if (hb.mode != HeartbeatMode::kNone) {
    if (hb.interval == Duration::zero()) hb.interval = defaults::kInterval;
    if (hb.timeout == Duration::zero()) {
      // PASSIVE: the classic rule, dead after two intervals of silence. PING/TEXT: one interval
      // to answer, so a dead peer is declared within 2 x interval of its last answer.
      // The filled spec is stored and validated again on restart, so a default must stay within
      // the limits: a PASSIVE interval above 30 min gets the longest timeout, 1 h.
      hb.timeout = hb.mode == HeartbeatMode::kPassive
                       ? std::min(2 * hb.interval, limits::kMaxHeartbeatDuration)
                       : hb.interval;
    }
  }
  const bool sends_heartbeats = hb.mode == HeartbeatMode::kPing || hb.mode == HeartbeatMode::kText;
  if (sends_heartbeats && hb.unhealthy_interval == Duration::zero()) {
    hb.unhealthy_interval = hb.interval;
  }
  if (hb.unhealthy_threshold == 0) hb.unhealthy_threshold = defaults::kUnhealthyThreshold;
  if (hb.healthy_threshold == 0) hb.healthy_threshold = defaults::kHealthyThreshold;
  if (hb.mode == HeartbeatMode::kText && hb.payload.empty()) hb.payload = defaults::kTextPayload;

  BackoffPolicy& bo = spec.backoff;
  if (bo.initial == Duration::zero()) bo.initial = defaults::kBackoffInitial;
  if (bo.multiplier == 0) bo.multiplier = defaults::kBackoffMultiplier;
  if (!bo.jitter_enabled) {
    bo.jitter = 0;
  } else if (bo.jitter == 0) {
    bo.jitter = defaults::kBackoffJitter;
  }
  if (bo.max == Duration::zero()) bo.max = std::max(defaults::kBackoffMax, bo.initial);
  if (bo.reset_after == Duration::zero()) bo.reset_after = defaults::kBackoffResetAfter;

  if (spec.connect_timeout == Duration::zero()) spec.connect_timeout = defaults::kConnectTimeout;
  if (spec.max_message_bytes == 0) spec.max_message_bytes = defaults::kMaxMessageBytes;

  FlapPolicy& flap = spec.flapping;
  if (flap.enabled) {
    if (flap.threshold == 0) flap.threshold = defaults::kFlapThreshold;
    if (flap.window == Duration::zero()) flap.window = defaults::kFlapWindow;
    if (flap.quiet_period == Duration::zero()) flap.quiet_period = defaults::kFlapQuietPeriod;
  }
}

}  // namespace wsvisor::core
