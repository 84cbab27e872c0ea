// core::parseWebSocketUrl(): every ws:// or wss:// URL a caller can send. Nothing may crash; an
// accepted URL has usable parts, and writing those parts back as a URL parses to the same parts.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "supervisor/core/websocket_url.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

bool hasSpaceOrControl(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wsvisor;
  const std::string_view url(reinterpret_cast<const char*>(data), size);
  std::string error;
  const auto parsed = core::parseWebSocketUrl(url, error);
  if (!parsed) {
    WSVISOR_FUZZ_CHECK(!error.empty());
    return 0;
  }
  WSVISOR_FUZZ_CHECK(url.rfind(parsed->secure ? "wss://" : "ws://", 0) == 0);
  WSVISOR_FUZZ_CHECK(!parsed->host.empty() && parsed->host.size() <= 253);
  WSVISOR_FUZZ_CHECK(parsed->host.find_first_of("[]/?#@") == std::string::npos);
  WSVISOR_FUZZ_CHECK(!hasSpaceOrControl(parsed->host));
  WSVISOR_FUZZ_CHECK(parsed->port != 0);
  WSVISOR_FUZZ_CHECK(!parsed->resource.empty() && parsed->resource[0] == '/');
  WSVISOR_FUZZ_CHECK(parsed->resource.find('#') == std::string::npos);
  WSVISOR_FUZZ_CHECK(!hasSpaceOrControl(parsed->resource));

  // The parts, written back in canonical form (explicit port, brackets around IPv6 literals),
  // name the same endpoint.
  const bool ipv6 = parsed->host.find(':') != std::string::npos;
  const std::string canonical = std::string(parsed->secure ? "wss://" : "ws://") +
                                (ipv6 ? "[" + parsed->host + "]" : parsed->host) + ":" +
                                std::to_string(parsed->port) + parsed->resource;
  std::string again_error;
  const auto again = core::parseWebSocketUrl(canonical, again_error);
  WSVISOR_FUZZ_CHECK(again.has_value());
  WSVISOR_FUZZ_CHECK(again->secure == parsed->secure && again->host == parsed->host &&
                     again->port == parsed->port && again->resource == parsed->resource);
  return 0;
}
