#include "service/store/store_url.h"

#include <algorithm>
#include <charconv>

namespace wsvisor::service {

namespace {

constexpr char kEtcdScheme[] = "etcd://";
constexpr char kSyntax[] = "sqlite or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]";

bool isHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-';
}

bool isPrefixChar(char c) { return isHostChar(c) || c == '_'; }

bool isIpv6Char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
         c == '.';
}

// "host:port", "[v6]:port", or either without a port (2379). Returns "host:port" or nullopt.
std::optional<std::string> parseEndpoint(const std::string& text, std::string& error) {
  const std::string where = "etcd endpoint '" + text + "': ";
  std::string host;
  std::optional<std::string> port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos) {
      error = where + "an IPv6 address needs its closing ']'";
      return std::nullopt;
    }
    host = text.substr(0, close + 1);
    const std::string inside = text.substr(1, close - 1);
    if (inside.empty() || !std::all_of(inside.begin(), inside.end(), isIpv6Char)) {
      error = where + "'" + inside + "' is not an IPv6 address";
      return std::nullopt;
    }
    const std::string rest = text.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') {
      error = where + "expected ':PORT' after the IPv6 address";
      return std::nullopt;
    }
    if (!rest.empty()) port_text = rest.substr(1);
  } else {
    if (std::count(text.begin(), text.end(), ':') > 1) {
      error = where + "an IPv6 address must be in brackets, e.g. [::1]:2379";
      return std::nullopt;
    }
    const size_t colon = text.find(':');
    host = text.substr(0, colon);
    if (colon != std::string::npos) port_text = text.substr(colon + 1);
    if (host.empty()) {
      error = where + "the host is missing";
      return std::nullopt;
    }
    if (!std::all_of(host.begin(), host.end(), isHostChar)) {
      error = where + "the host must be a DNS name or an IP address";
      return std::nullopt;
    }
  }
  int port = kDefaultEtcdPort;
  if (port_text) {
    const char* begin = port_text->data();
    const char* end = begin + port_text->size();
    const auto [parsed_end, ec] = std::from_chars(begin, end, port);
    if (port_text->empty() || ec != std::errc() || parsed_end != end || port < 1 || port > 65535) {
      error = where + "the port must be a number from 1 to 65535";
      return std::nullopt;
    }
  }
  return host + ":" + std::to_string(port);
}

}  // namespace

std::string StoreLocation::describe() const {
  if (kind == Kind::kSqlite) return "sqlite";
  std::string text = kEtcdScheme;
  for (size_t i = 0; i < etcd_endpoints.size(); ++i) {
    if (i > 0) text += ",";
    text += etcd_endpoints[i];
  }
  return text + etcd_prefix;
}

std::optional<StoreLocation> parseStoreLocation(const std::string& text, std::string& error) {
  StoreLocation location;
  if (text == "sqlite") return location;
  if (text.rfind(kEtcdScheme, 0) != 0) {
    error = "unknown store '" + text + "': use " + kSyntax;
    return std::nullopt;
  }
  const std::string rest = text.substr(sizeof(kEtcdScheme) - 1);
  if (rest.find_first_of("@?#") != std::string::npos) {
    error = "'" + text + "': user names, queries and fragments are not supported; use " + kSyntax;
    return std::nullopt;
  }
  const size_t slash = rest.find('/');
  const std::string endpoints = rest.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : rest.substr(slash);
  if (endpoints.empty()) {
    error = "'" + text + "' names no etcd endpoint; use " + kSyntax;
    return std::nullopt;
  }
  location.kind = StoreLocation::Kind::kEtcd;
  size_t start = 0;
  // One turn per comma-separated endpoint; `start` moves past a comma every turn.
  while (start <= endpoints.size()) {
    const size_t comma = std::min(endpoints.find(',', start), endpoints.size());
    const std::string one = endpoints.substr(start, comma - start);
    if (one.empty()) {
      error = "'" + text + "' has an empty etcd endpoint (two commas, or one at an end)";
      return std::nullopt;
    }
    auto endpoint = parseEndpoint(one, error);
    if (!endpoint) return std::nullopt;
    if (std::find(location.etcd_endpoints.begin(), location.etcd_endpoints.end(), *endpoint) !=
        location.etcd_endpoints.end()) {
      error = "etcd endpoint '" + *endpoint + "' is listed twice";
      return std::nullopt;
    }
    location.etcd_endpoints.push_back(*endpoint);
    start = comma + 1;
  }
  if (prefix == "/") prefix.clear();
  if (prefix.empty()) {
    location.etcd_prefix = kDefaultEtcdPrefix;
    return location;
  }
  // "/a/b": segments of [A-Za-z0-9._-], no empty one, no trailing '/'.
  for (size_t at = 0; at < prefix.size();) {
    const size_t next = std::min(prefix.find('/', at + 1), prefix.size());
    const std::string segment = prefix.substr(at + 1, next - at - 1);
    if (segment.empty() || !std::all_of(segment.begin(), segment.end(), isPrefixChar)) {
      error = "etcd key prefix '" + prefix +
              "' must be /-separated names of letters, digits, '.', '_' and '-', with no empty "
              "name and no trailing '/'";
      return std::nullopt;
    }
    at = next;
  }
  location.etcd_prefix = prefix;
  return location;
}

}  // namespace wsvisor::service
