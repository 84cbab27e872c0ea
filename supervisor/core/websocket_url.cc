#include "supervisor/core/websocket_url.h"

#include <cctype>

namespace wsvisor::core {

namespace {

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool isHostChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

}  // namespace

std::optional<WebSocketUrl> parseWebSocketUrl(std::string_view url, std::string& error) {
  WebSocketUrl out;
  std::string_view rest;
  if (startsWith(url, "ws://")) {
    rest = url.substr(5);
  } else if (startsWith(url, "wss://")) {
    out.secure = true;
    rest = url.substr(6);
  } else {
    // A WebSocket URL is its HTTP URL with the scheme changed; say which one to use.
    std::string scheme(url.substr(0, url.find("://")));
    for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    error = "must start with ws:// or wss://";
    if (scheme == "http") error += " (use ws:// in place of http://)";
    if (scheme == "https") error += " (use wss:// in place of https://)";
    return std::nullopt;
  }
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      error = "must not contain spaces or control characters";
      return std::nullopt;
    }
  }
  if (url.find('#') != std::string_view::npos) {
    error = "must not contain a fragment (#), RFC 6455 section 3";
    return std::nullopt;
  }
  const size_t authority_end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, authority_end);
  out.resource =
      authority_end == std::string_view::npos ? "/" : std::string(rest.substr(authority_end));
  if (out.resource[0] == '?') out.resource.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) {
    error = "must not contain user information (user@host); send credentials as a header";
    return std::nullopt;
  }

  std::string_view port_text;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "has an unterminated IPv6 address";
      return std::nullopt;
    }
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        error = "has characters after the IPv6 address";
        return std::nullopt;
      }
      port_text = after.substr(1);
      if (port_text.empty()) {
        error = "has an empty port";
        return std::nullopt;
      }
    }
    for (char c : out.host) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
        error = "has an invalid IPv6 address";
        return std::nullopt;
      }
    }
  } else {
    const size_t colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) {
        error = "has an empty port";
        return std::nullopt;
      }
    }
    for (char c : out.host) {
      if (!isHostChar(c)) {
        error = "has an invalid character in the host name";
        return std::nullopt;
      }
    }
  }
  if (out.host.empty()) {
    error = "has no host";
    return std::nullopt;
  }
  if (out.host.size() > 253) {
    error = "has a host name longer than 253 characters";
    return std::nullopt;
  }

  if (port_text.empty()) {
    out.port = out.secure ? 443 : 80;
  } else {
    uint32_t port = 0;
    for (char c : port_text) {
      if (!std::isdigit(static_cast<unsigned char>(c)) || port > 65535) {
        error = "has an invalid port";
        return std::nullopt;
      }
      port = port * 10 + static_cast<uint32_t>(c - '0');
    }
    if (port == 0 || port > 65535) {
      error = "has a port outside 1-65535";
      return std::nullopt;
    }
    out.port = static_cast<uint16_t>(port);
  }
  return out;
}

}  // namespace wsvisor::core
