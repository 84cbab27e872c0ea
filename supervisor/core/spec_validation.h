#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "supervisor/core/endpoint_spec.h"

namespace wsvisor::core {

// A rejected input: which field (as the API names it, e.g. "spec.heartbeat.interval") and why.
struct FieldError {
  std::string field;
  std::string message;

  std::string toString() const { return field + ": " + message; }
};

// Limits on what a caller may register, in one place; the API documents the same numbers.
namespace limits {
inline constexpr size_t kMaxIdLength = 128;
inline constexpr size_t kMaxUrlLength = 2048;
inline constexpr size_t kMaxLabels = 64;
inline constexpr size_t kMaxLabelKeyLength = 63;
inline constexpr size_t kMaxLabelValueLength = 256;
inline constexpr size_t kMaxHeaders = 64;
inline constexpr size_t kMaxHeaderNameLength = 256;
inline constexpr size_t kMaxHeaderValueLength = 8192;
inline constexpr size_t kMaxSubprotocols = 16;
inline constexpr size_t kMaxSubprotocolLength = 256;
inline constexpr size_t kMaxPayloadLength = 4096;
inline constexpr size_t kMaxExpectLength = 1024;
inline constexpr size_t kMaxPathLength = 4096;
inline constexpr Duration kMinHeartbeatDuration = std::chrono::milliseconds(10);
inline constexpr Duration kMaxHeartbeatDuration = std::chrono::hours(1);
inline constexpr uint32_t kMaxThreshold = 100;
inline constexpr Duration kMinBackoff = std::chrono::milliseconds(10);
inline constexpr Duration kMaxBackoff = std::chrono::hours(1);
inline constexpr double kMaxMultiplier = 10.0;
inline constexpr Duration kMinConnectTimeout = std::chrono::milliseconds(100);
inline constexpr Duration kMaxConnectTimeout = std::chrono::minutes(5);
inline constexpr uint64_t kMinMessageBytes = 125;
inline constexpr uint64_t kMaxMessageBytes = 64ull * 1024 * 1024;
inline constexpr uint32_t kMaxFlapThreshold = 1000;
inline constexpr Duration kMinFlapDuration = std::chrono::milliseconds(10);
inline constexpr Duration kMaxFlapDuration = std::chrono::hours(24);
}  // namespace limits

// Checks an endpoint id: 1-128 characters of [a-z0-9._-]. `field` names it in the error.
std::optional<FieldError> validateEndpointId(std::string_view id, std::string_view field);

// Checks a spec as received, before applyDefaults(): zero numbers and durations mean "unset".
// Returns the first problem found, naming the field under the prefix "spec.".
std::optional<FieldError> validateSpec(const EndpointSpec& spec);

// `text` with every byte that does not start a well-formed UTF-8 sequence replaced by U+FFFD.
std::string validUtf8(std::string_view text);
// `spec` with every text field passed through validUtf8(): a stored spec that fails validation
// can still be shown through the API (whose strings must be UTF-8) and in logs.
EndpointSpec withValidUtf8(EndpointSpec spec);

}  // namespace wsvisor::core
