#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wsvisor::core {

// The parts of a ws:// or wss:// URL that the supervisor needs (RFC 6455 section 3).
struct WebSocketUrl {
  bool secure = false;   // wss://
  std::string host;      // without brackets for IPv6 literals
  uint16_t port = 0;     // explicit or the scheme's default (80, 443)
  std::string resource;  // path and query, at least "/"
};

// Parses `url`, or returns nullopt and sets `error` to why it is not a WebSocket URL.
std::optional<WebSocketUrl> parseWebSocketUrl(std::string_view url, std::string& error);

}  // namespace wsvisor::core
