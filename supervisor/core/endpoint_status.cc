#include "supervisor/core/endpoint_status.h"

#include <algorithm>
#include <string_view>

namespace wsvisor::core {

const char* toString(Health health) {
  switch (health) {
    case Health::kUnknown:
      return "unknown";
    case Health::kHealthy:
      return "healthy";
    case Health::kUnhealthy:
      return "unhealthy";
    case Health::kFlapping:
      return "flapping";
  }
  return "unknown";
}

const char* toString(ConnectionPhase phase) {
  switch (phase) {
    case ConnectionPhase::kConnecting:
      return "connecting";
    case ConnectionPhase::kOpen:
      return "open";
    case ConnectionPhase::kBackingOff:
      return "backing_off";
    case ConnectionPhase::kStopped:
      return "stopped";
    case ConnectionPhase::kStoredSpecInvalid:
      return "stored_spec_invalid";
  }
  return "stopped";
}

const char* toString(FailureReason reason) {
  switch (reason) {
    case FailureReason::kNone:
      return "none";
    case FailureReason::kDns:
      return "dns";
    case FailureReason::kConnectionRefused:
      return "connection_refused";
    case FailureReason::kConnectTimeout:
      return "connect_timeout";
    case FailureReason::kTls:
      return "tls";
    case FailureReason::kHandshakeRejected:
      return "handshake_rejected";
    case FailureReason::kPongTimeout:
      return "pong_timeout";
    case FailureReason::kReplyMismatch:
      return "reply_mismatch";
    case FailureReason::kSilence:
      return "silence";
    case FailureReason::kClosedByPeer:
      return "closed_by_peer";
    case FailureReason::kMessageTooBig:
      return "message_too_big";
    case FailureReason::kNetworkError:
      return "network_error";
  }
  return "none";
}

namespace {

// Details often quote peer-controlled text (close reasons, reply payloads). Keep them printable
// ASCII so that logs stay one line and protobuf string fields stay valid UTF-8; other bytes are
// written as \xNN.
std::string sanitizeDetail(std::string_view raw) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::min(raw.size(), kMaxFailureDetailBytes));
  for (unsigned char c : raw) {
    const bool printable = c >= 0x20 && c < 0x7f;
    const size_t needed = printable ? 1 : 4;
    if (out.size() + needed > kMaxFailureDetailBytes) break;
    if (printable) {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

}  // namespace

Failure Failure::make(FailureReason reason, std::string_view detail, int http_status,
                      int close_code) {
  Failure failure;
  failure.reason = reason;
  failure.detail = sanitizeDetail(detail);
  failure.http_status = http_status;
  failure.close_code = close_code;
  return failure;
}

bool Failure::operator==(const Failure& o) const {
  return reason == o.reason && detail == o.detail && http_status == o.http_status &&
         close_code == o.close_code && at == o.at;
}

}  // namespace wsvisor::core
