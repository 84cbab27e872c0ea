#include "supervisor/core/spec_validation.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <set>

#include "supervisor/core/reply_matcher.h"
#include "supervisor/core/websocket_url.h"

namespace wsvisor::core {

namespace {

std::string formatDuration(Duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  if (us % 1000 != 0) return std::to_string(us) + "us";
  const auto ms = us / 1000;
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

// RFC 7230 token characters: header names and subprotocols.
bool isTokenChar(char c) {
  static constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
  return std::isalnum(static_cast<unsigned char>(c)) || kSpecials.find(c) != std::string_view::npos;
}

bool isToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), isTokenChar);
}

// The length of the well-formed UTF-8 sequence that starts at s[i], or 0 if none does.
size_t utf8SequenceAt(std::string_view s, size_t i) {
  const auto lead = static_cast<unsigned char>(s[i]);
  if (lead < 0x80) return 1;
  size_t length = 0;
  uint32_t code_point = 0;
  uint32_t smallest = 0;  // below it the same code point has a shorter (overlong) form
  if ((lead & 0xE0) == 0xC0) {
    length = 2;
    code_point = lead & 0x1Fu;
    smallest = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    code_point = lead & 0x0Fu;
    smallest = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    code_point = lead & 0x07u;
    smallest = 0x10000;
  } else {
    return 0;  // a continuation byte without a lead, or 0xF8-0xFF
  }
  if (s.size() - i < length) return 0;
  for (size_t k = 1; k < length; ++k) {
    const auto next = static_cast<unsigned char>(s[i + k]);
    if ((next & 0xC0) != 0x80) return 0;
    code_point = (code_point << 6) | (next & 0x3Fu);
  }
  if (code_point < smallest || code_point > 0x10FFFF ||
      (code_point >= 0xD800 && code_point <= 0xDFFF)) {
    return 0;
  }
  return length;
}

// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), which
// is what a proto3 string must hold. The API's messages cannot carry anything else, but the config
// file passes raw bytes through, and the store keeps every spec as a serialized EndpointSpec,
// which a proto3 parser refuses to read back with other bytes (older versions stored such specs:
// ProtoSpecCodec reads them leniently, and Registry::restore() holds them unsupervised).
bool isUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t length = utf8SequenceAt(s, i);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

bool hasControlChar(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

std::optional<FieldError> checkDurationRange(const std::string& field, Duration value, Duration min,
                                             Duration max) {
  if (value == Duration::zero()) return std::nullopt;  // unset: the default applies
  if (value < min || value > max) {
    return FieldError{field, "must be between " + formatDuration(min) + " and " +
                                 formatDuration(max) + ", got " + formatDuration(value)};
  }
  return std::nullopt;
}

std::optional<FieldError> checkThreshold(const std::string& field, uint32_t value) {
  if (value > limits::kMaxThreshold) {
    return FieldError{field, "must be between 1 and " + std::to_string(limits::kMaxThreshold) +
                                 ", got " + std::to_string(value)};
  }
  return std::nullopt;
}

std::optional<FieldError> validateLabels(const std::map<std::string, std::string>& labels) {
  if (labels.size() > limits::kMaxLabels) {
    return FieldError{"spec.labels", "at most " + std::to_string(limits::kMaxLabels) +
                                         " labels, got " + std::to_string(labels.size())};
  }
  for (const auto& [key, value] : labels) {
    const bool key_ok = !key.empty() && key.size() <= limits::kMaxLabelKeyLength &&
                        std::all_of(key.begin(), key.end(), [](char c) {
                          return std::isalnum(static_cast<unsigned char>(c)) || c == '.' ||
                                 c == '_' || c == '-' || c == '/';
                        });
    if (!key_ok) {
      return FieldError{"spec.labels", "key must be 1-63 characters of [a-zA-Z0-9._/-]"};
    }
    if (value.size() > limits::kMaxLabelValueLength || hasControlChar(value)) {
      return FieldError{"spec.labels[" + key + "]",
                        "value must be at most 256 bytes without control characters"};
    }
    if (!isUtf8(value)) return FieldError{"spec.labels[" + key + "]", "value must be UTF-8"};
  }
  return std::nullopt;
}

std::optional<FieldError> validateHeaders(const std::vector<Header>& headers) {
  // Set by the WebSocket handshake itself; a caller's copy would corrupt it.
  static const std::set<std::string> kReserved = {"host",
                                                  "upgrade",
                                                  "connection",
                                                  "sec-websocket-key",
                                                  "sec-websocket-version",
                                                  "sec-websocket-protocol",
                                                  "sec-websocket-extensions",
                                                  "content-length",
                                                  "transfer-encoding"};
  if (headers.size() > limits::kMaxHeaders) {
    return FieldError{"spec.headers", "at most " + std::to_string(limits::kMaxHeaders) +
                                          " headers, got " + std::to_string(headers.size())};
  }
  for (size_t i = 0; i < headers.size(); ++i) {
    const std::string field = "spec.headers[" + std::to_string(i) + "]";
    const Header& h = headers[i];
    if (!isToken(h.name) || h.name.size() > limits::kMaxHeaderNameLength) {
      return FieldError{field + ".name", "must be 1-256 HTTP token characters"};
    }
    std::string lower = h.name;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (kReserved.count(lower) != 0) {
      return FieldError{field + ".name", "'" + h.name + "' is set by the WebSocket handshake"};
    }
    if (h.value.size() > limits::kMaxHeaderValueLength) {
      return FieldError{field + ".value", "must be at most 8192 bytes"};
    }
    // RFC 7230 allows no control character but tab in a field value; CR and LF would let a
    // caller inject headers of its own.
    const bool has_control = std::any_of(h.value.begin(), h.value.end(), [](char c) {
      const auto u = static_cast<unsigned char>(c);
      return (u < 0x20 && c != '\t') || u == 0x7f;
    });
    if (has_control) {
      return FieldError{field + ".value", "must not contain CR, LF or other control characters"};
    }
    if (!isUtf8(h.value)) return FieldError{field + ".value", "must be UTF-8"};
  }
  return std::nullopt;
}

std::optional<FieldError> validateSubprotocols(const std::vector<std::string>& subprotocols) {
  if (subprotocols.size() > limits::kMaxSubprotocols) {
    return FieldError{"spec.subprotocols", "at most 16 subprotocols"};
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < subprotocols.size(); ++i) {
    const std::string field = "spec.subprotocols[" + std::to_string(i) + "]";
    if (!isToken(subprotocols[i]) || subprotocols[i].size() > limits::kMaxSubprotocolLength) {
      return FieldError{field, "must be 1-256 HTTP token characters"};
    }
    if (!seen.insert(subprotocols[i]).second) return FieldError{field, "is listed twice"};
  }
  return std::nullopt;
}

std::optional<FieldError> validateHeartbeat(const HeartbeatPolicy& hb) {
  if (hb.mode == HeartbeatMode::kNone) {
    // Connect only: nothing is sent or timed, so no setting of the heartbeat has a meaning.
    // Thresholds may be 1, the value a stored spec carries, so that it can be sent back.
    const std::pair<const char*, Duration> unused[] = {
        {"spec.heartbeat.interval", hb.interval},
        {"spec.heartbeat.timeout", hb.timeout},
        {"spec.heartbeat.unhealthy_interval", hb.unhealthy_interval}};
    for (const auto& [field, value] : unused) {
      if (value != Duration::zero()) return FieldError{field, "must be unset in NONE mode"};
    }
    if (hb.unhealthy_threshold > 1) {
      return FieldError{"spec.heartbeat.unhealthy_threshold", "must be unset or 1 in NONE mode"};
    }
    if (hb.healthy_threshold > 1) {
      return FieldError{"spec.heartbeat.healthy_threshold", "must be unset or 1 in NONE mode"};
    }
  }
  if (hb.mode == HeartbeatMode::kPassive && hb.unhealthy_interval != Duration::zero()) {
    return FieldError{"spec.heartbeat.unhealthy_interval",
                      "is only used in PING and TEXT modes (PASSIVE sends no heartbeats)"};
  }
  if (auto e = checkDurationRange("spec.heartbeat.unhealthy_interval", hb.unhealthy_interval,
                                  limits::kMinHeartbeatDuration, limits::kMaxHeartbeatDuration)) {
    return e;
  }
  if (auto e = checkDurationRange("spec.heartbeat.interval", hb.interval,
                                  limits::kMinHeartbeatDuration, limits::kMaxHeartbeatDuration)) {
    return e;
  }
  if (auto e = checkDurationRange("spec.heartbeat.timeout", hb.timeout,
                                  limits::kMinHeartbeatDuration, limits::kMaxHeartbeatDuration)) {
    return e;
  }
  if (auto e = checkThreshold("spec.heartbeat.unhealthy_threshold", hb.unhealthy_threshold)) {
    return e;
  }
  if (auto e = checkThreshold("spec.heartbeat.healthy_threshold", hb.healthy_threshold)) return e;
  if (hb.mode != HeartbeatMode::kText) {
    if (!hb.payload.empty()) {
      return FieldError{"spec.heartbeat.payload", "is only used in TEXT mode"};
    }
    if (!hb.expect.empty()) return FieldError{"spec.heartbeat.expect", "is only used in TEXT mode"};
    return std::nullopt;
  }
  if (hb.payload.size() > limits::kMaxPayloadLength) {
    return FieldError{"spec.heartbeat.payload", "must be at most 4096 bytes"};
  }
  if (!isUtf8(hb.payload)) return FieldError{"spec.heartbeat.payload", "must be UTF-8"};
  if (hb.expect.size() > limits::kMaxExpectLength) {
    return FieldError{"spec.heartbeat.expect", "must be at most 1024 bytes"};
  }
  if (!isUtf8(hb.expect)) return FieldError{"spec.heartbeat.expect", "must be UTF-8"};
  if (!hb.expect.empty()) {
    if (auto error = ReplyMatcher::checkExpression(hb.expect)) {
      return FieldError{"spec.heartbeat.expect", "is not a valid regular expression: " + *error};
    }
  }
  return std::nullopt;
}

std::optional<FieldError> validateBackoff(const BackoffPolicy& bo) {
  if (auto e = checkDurationRange("spec.backoff.initial", bo.initial, limits::kMinBackoff,
                                  limits::kMaxBackoff)) {
    return e;
  }
  if (auto e = checkDurationRange("spec.backoff.max", bo.max, limits::kMinBackoff,
                                  limits::kMaxBackoff)) {
    return e;
  }
  const Duration initial = bo.initial == Duration::zero() ? defaults::kBackoffInitial : bo.initial;
  if (bo.max != Duration::zero() && bo.max < initial) {
    return FieldError{"spec.backoff.max", "must not be less than spec.backoff.initial (" +
                                              formatDuration(initial) + ")"};
  }
  if (bo.multiplier != 0 && !(bo.multiplier >= 1.0 && bo.multiplier <= limits::kMaxMultiplier)) {
    return FieldError{"spec.backoff.multiplier", "must be between 1.0 and 10.0"};
  }
  if (!(bo.jitter >= 0.0 && bo.jitter <= 1.0)) {
    return FieldError{"spec.backoff.jitter", "must be between 0 and 1"};
  }
  if (!bo.jitter_enabled && bo.jitter != 0) {
    return FieldError{"spec.backoff.jitter", "must be unset when no_jitter is set"};
  }
  return checkDurationRange("spec.backoff.reset_after", bo.reset_after, limits::kMinBackoff,
                            limits::kMaxBackoff);
}

std::optional<FieldError> validateFlapping(const FlapPolicy& flap) {
  if (!flap.enabled) {
    if (flap.threshold != 0 || flap.window != Duration::zero() ||
        flap.quiet_period != Duration::zero()) {
      return FieldError{"spec.flapping",
                        "threshold, window and quiet_period must be unset when "
                        "disabled is set"};
    }
    return std::nullopt;
  }
  if (flap.threshold > limits::kMaxFlapThreshold) {
    return FieldError{"spec.flapping.threshold", "must be between 1 and " +
                                                     std::to_string(limits::kMaxFlapThreshold) +
                                                     ", got " + std::to_string(flap.threshold)};
  }
  if (auto e = checkDurationRange("spec.flapping.window", flap.window, limits::kMinFlapDuration,
                                  limits::kMaxFlapDuration)) {
    return e;
  }
  return checkDurationRange("spec.flapping.quiet_period", flap.quiet_period,
                            limits::kMinFlapDuration, limits::kMaxFlapDuration);
}

std::optional<FieldError> validateTls(const EndpointSpec& spec, bool secure) {
  const TlsOptions& tls = spec.tls;
  if (!secure && !(tls == TlsOptions{})) {
    return FieldError{"spec.tls", "is only valid for wss:// URLs"};
  }
  const std::pair<const char*, const std::string*> paths[] = {
      {"spec.tls.ca_file", &tls.ca_file},
      {"spec.tls.client_cert_file", &tls.client_cert_file},
      {"spec.tls.client_key_file", &tls.client_key_file}};
  for (const auto& [field, path] : paths) {
    if (path->size() > limits::kMaxPathLength || hasControlChar(*path)) {
      return FieldError{field, "must be a path of at most 4096 bytes without control characters"};
    }
    if (!isUtf8(*path)) return FieldError{field, "must be UTF-8"};
  }
  if (tls.client_cert_file.empty() != tls.client_key_file.empty()) {
    return FieldError{
        tls.client_cert_file.empty() ? "spec.tls.client_cert_file" : "spec.tls.client_key_file",
        "client_cert_file and client_key_file go together"};
  }
  if (tls.server_name.size() > 253 ||
      !std::all_of(tls.server_name.begin(), tls.server_name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
      })) {
    return FieldError{"spec.tls.server_name", "must be a DNS name"};
  }
  return std::nullopt;
}

}  // namespace

std::optional<FieldError> validateEndpointId(std::string_view id, std::string_view field) {
  const bool ok =
      !id.empty() && id.size() <= limits::kMaxIdLength &&
      std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
      });
  if (ok) return std::nullopt;
  if (id.empty()) return FieldError{std::string(field), "is required"};
  if (id.size() > limits::kMaxIdLength) {
    return FieldError{std::string(field),
                      "must be at most 128 characters, got " + std::to_string(id.size())};
  }
  return FieldError{std::string(field), "must contain only [a-z0-9._-]"};
}

std::string validUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t length = utf8SequenceAt(text, i);
    if (length == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
      ++i;
      continue;
    }
    out.append(text.substr(i, length));
    i += length;
  }
  return out;
}

EndpointSpec withValidUtf8(EndpointSpec spec) {
  for (std::string* text :
       {&spec.id, &spec.url, &spec.heartbeat.payload, &spec.heartbeat.expect, &spec.tls.ca_file,
        &spec.tls.server_name, &spec.tls.client_cert_file, &spec.tls.client_key_file}) {
    *text = validUtf8(*text);
  }
  std::map<std::string, std::string> labels;
  for (const auto& [key, value] : spec.labels) labels[validUtf8(key)] = validUtf8(value);
  spec.labels = std::move(labels);
  for (Header& header : spec.headers) {
    header.name = validUtf8(header.name);
    header.value = validUtf8(header.value);
  }
  for (std::string& subprotocol : spec.subprotocols) subprotocol = validUtf8(subprotocol);
  return spec;
}

std::optional<FieldError> validateSpec(const EndpointSpec& spec) {
  if (auto e = validateEndpointId(spec.id, "spec.id")) return e;
  if (spec.url.empty()) return FieldError{"spec.url", "is required"};
  if (spec.url.size() > limits::kMaxUrlLength) {
    return FieldError{"spec.url", "must be at most 2048 bytes"};
  }
  if (!isUtf8(spec.url)) return FieldError{"spec.url", "must be UTF-8"};
  std::string url_error;
  const auto url = parseWebSocketUrl(spec.url, url_error);
  if (!url) return FieldError{"spec.url", url_error};
  if (auto e = validateLabels(spec.labels)) return e;
  if (auto e = validateHeaders(spec.headers)) return e;
  if (auto e = validateSubprotocols(spec.subprotocols)) return e;
  if (auto e = validateHeartbeat(spec.heartbeat)) return e;
  if (auto e = validateBackoff(spec.backoff)) return e;
  if (auto e = checkDurationRange("spec.connect_timeout", spec.connect_timeout,
                                  limits::kMinConnectTimeout, limits::kMaxConnectTimeout)) {
    return e;
  }
  if (spec.max_message_bytes != 0 && (spec.max_message_bytes < limits::kMinMessageBytes ||
                                      spec.max_message_bytes > limits::kMaxMessageBytes)) {
    return FieldError{"spec.max_message_bytes", "must be between 125 and 67108864"};
  }
  if (auto e = validateFlapping(spec.flapping)) return e;
  return validateTls(spec, url->secure);
}

}  // namespace wsvisor::core
