// Parsing of ws:// and wss:// URLs into host, port and resource (RFC 6455 section 3).
#include "supervisor/core/websocket_url.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace wsvisor::core {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// Parses a URL the test expects to be valid.
WebSocketUrl parseValid(const std::string& url) {
  std::string error;
  const std::optional<WebSocketUrl> parsed = parseWebSocketUrl(url, error);
  EXPECT_TRUE(parsed.has_value()) << "'" << url << "': " << error;
  return parsed.value_or(WebSocketUrl{});
}

// Parses a URL the test expects to be rejected and returns the error.
std::string parseError(const std::string& url) {
  std::string error;
  EXPECT_FALSE(parseWebSocketUrl(url, error).has_value()) << "'" << url << "' was accepted";
  EXPECT_THAT(error, Not(IsEmpty()));
  return error;
}

// Schemes and default ports.

TEST(WebSocketUrlTest, WsIsNotSecure) { EXPECT_FALSE(parseValid("ws://example.com/").secure); }

TEST(WebSocketUrlTest, WssIsSecure) { EXPECT_TRUE(parseValid("wss://example.com/").secure); }

TEST(WebSocketUrlTest, WsDefaultsToPort80) { EXPECT_EQ(parseValid("ws://example.com/").port, 80); }

TEST(WebSocketUrlTest, WssDefaultsToPort443) {
  EXPECT_EQ(parseValid("wss://example.com/").port, 443);
}

TEST(WebSocketUrlTest, HostIsExtracted) {
  EXPECT_EQ(parseValid("ws://echo.example.com/").host, "echo.example.com");
}

TEST(WebSocketUrlTest, ExplicitPortIsUsed) {
  const WebSocketUrl url = parseValid("ws://example.com:8080/ws");
  EXPECT_EQ(url.host, "example.com");
  EXPECT_EQ(url.port, 8080);
}

TEST(WebSocketUrlTest, ExplicitPortOverridesTheWssDefault) {
  EXPECT_EQ(parseValid("wss://example.com:8443/").port, 8443);
}

TEST(WebSocketUrlTest, LowestAndHighestPortsAreAccepted) {
  EXPECT_EQ(parseValid("ws://h:1/").port, 1);
  EXPECT_EQ(parseValid("ws://h:65535/").port, 65535);
}

TEST(WebSocketUrlTest, Ipv4AddressIsAHost) {
  const WebSocketUrl url = parseValid("ws://127.0.0.1:9000/");
  EXPECT_EQ(url.host, "127.0.0.1");
  EXPECT_EQ(url.port, 9000);
}

TEST(WebSocketUrlTest, Ipv6LiteralLosesItsBrackets) {
  const WebSocketUrl url = parseValid("ws://[::1]:9000/");
  EXPECT_EQ(url.host, "::1");
  EXPECT_EQ(url.port, 9000);
}

TEST(WebSocketUrlTest, Ipv6LiteralWithoutPortTakesTheDefault) {
  const WebSocketUrl url = parseValid("wss://[2001:db8::1]/feed");
  EXPECT_EQ(url.host, "2001:db8::1");
  EXPECT_EQ(url.port, 443);
  EXPECT_EQ(url.resource, "/feed");
}

TEST(WebSocketUrlTest, Ipv4MappedIpv6LiteralIsAccepted) {
  EXPECT_EQ(parseValid("ws://[::ffff:192.0.2.1]/").host, "::ffff:192.0.2.1");
}

// Resource.

TEST(WebSocketUrlTest, MissingPathBecomesSlash) {
  EXPECT_EQ(parseValid("ws://example.com").resource, "/");
}

TEST(WebSocketUrlTest, MissingPathAfterPortBecomesSlash) {
  const WebSocketUrl url = parseValid("ws://example.com:81");
  EXPECT_EQ(url.port, 81);
  EXPECT_EQ(url.resource, "/");
}

TEST(WebSocketUrlTest, PathIsTheResource) {
  EXPECT_EQ(parseValid("ws://example.com/api/v1/stream").resource, "/api/v1/stream");
}

TEST(WebSocketUrlTest, QueryIsPartOfTheResource) {
  EXPECT_EQ(parseValid("ws://example.com/stream?token=abc&x=1").resource, "/stream?token=abc&x=1");
}

TEST(WebSocketUrlTest, QueryWithoutPathGetsASlash) {
  const WebSocketUrl url = parseValid("ws://h?x=1");
  EXPECT_EQ(url.host, "h");
  EXPECT_EQ(url.resource, "/?x=1");
}

TEST(WebSocketUrlTest, QueryWithoutPathAfterPortGetsASlash) {
  const WebSocketUrl url = parseValid("ws://h:9000?x=1");
  EXPECT_EQ(url.port, 9000);
  EXPECT_EQ(url.resource, "/?x=1");
}

// An @ after the authority is part of the path, not user information.
TEST(WebSocketUrlTest, AtSignInThePathIsAccepted) {
  EXPECT_EQ(parseValid("ws://example.com/users/@me").resource, "/users/@me");
}

TEST(WebSocketUrlTest, ColonInTheQueryIsNotAPort) {
  const WebSocketUrl url = parseValid("ws://example.com?at=12:30");
  EXPECT_EQ(url.port, 80);
  EXPECT_EQ(url.resource, "/?at=12:30");
}

TEST(WebSocketUrlTest, ErrorIsUntouchedOnSuccess) {
  std::string error = "unchanged";
  EXPECT_TRUE(parseWebSocketUrl("ws://example.com/", error).has_value());
  EXPECT_EQ(error, "unchanged");
}

// Rejections.

TEST(WebSocketUrlTest, HttpSchemeIsRejectedWithTheWsSchemeToUse) {
  EXPECT_EQ(parseError("http://example.com/"),
            "must start with ws:// or wss:// (use ws:// in place of http://)");
  EXPECT_EQ(parseError("HTTP://example.com/"),
            "must start with ws:// or wss:// (use ws:// in place of http://)");
}

TEST(WebSocketUrlTest, HttpsSchemeIsRejectedWithTheWssSchemeToUse) {
  EXPECT_EQ(parseError("https://example.com/?token=secret"),
            "must start with ws:// or wss:// (use wss:// in place of https://)");
  EXPECT_EQ(parseError("Https://example.com/"),
            "must start with ws:// or wss:// (use wss:// in place of https://)");
}

TEST(WebSocketUrlTest, OtherSchemesGetNoSuggestion) {
  EXPECT_EQ(parseError("ftp://example.com/"), "must start with ws:// or wss://");
  EXPECT_EQ(parseError("httpx://example.com/"), "must start with ws:// or wss://");
  EXPECT_EQ(parseError("http:example.com"), "must start with ws:// or wss://");
}

TEST(WebSocketUrlTest, MissingSchemeIsRejected) { parseError("example.com/ws"); }

TEST(WebSocketUrlTest, EmptyUrlIsRejected) { parseError(""); }

TEST(WebSocketUrlTest, EmptyHostIsRejected) {
  EXPECT_THAT(parseError("ws://"), HasSubstr("no host"));
  EXPECT_THAT(parseError("ws:///path"), HasSubstr("no host"));
  EXPECT_THAT(parseError("ws://?x=1"), HasSubstr("no host"));
}

TEST(WebSocketUrlTest, PortWithoutHostIsRejected) {
  EXPECT_THAT(parseError("ws://:9000/"), HasSubstr("no host"));
}

TEST(WebSocketUrlTest, EmptyIpv6LiteralIsRejected) {
  EXPECT_THAT(parseError("ws://[]:9000/"), HasSubstr("no host"));
}

TEST(WebSocketUrlTest, PortZeroIsRejected) {
  EXPECT_THAT(parseError("ws://example.com:0/"), HasSubstr("1-65535"));
}

TEST(WebSocketUrlTest, Port65536IsRejected) {
  EXPECT_THAT(parseError("ws://example.com:65536/"), HasSubstr("1-65535"));
}

TEST(WebSocketUrlTest, VeryLongPortIsRejected) {
  EXPECT_THAT(parseError("ws://example.com:99999999999999999999999/"), HasSubstr("port"));
}

TEST(WebSocketUrlTest, NonDigitPortIsRejected) {
  EXPECT_THAT(parseError("ws://example.com:http/"), HasSubstr("invalid port"));
  EXPECT_THAT(parseError("ws://example.com:80a/"), HasSubstr("invalid port"));
  EXPECT_THAT(parseError("ws://example.com:-1/"), HasSubstr("invalid port"));
  EXPECT_THAT(parseError("ws://example.com:+80/"), HasSubstr("invalid port"));
}

TEST(WebSocketUrlTest, SecondColonInTheAuthorityIsRejected) {
  EXPECT_THAT(parseError("ws://example.com:80:81/"), HasSubstr("invalid port"));
}

TEST(WebSocketUrlTest, EmptyPortIsRejected) {
  EXPECT_THAT(parseError("ws://example.com:/"), HasSubstr("empty port"));
  EXPECT_THAT(parseError("ws://[::1]:/"), HasSubstr("empty port"));
}

TEST(WebSocketUrlTest, Ipv6PortZeroIsRejected) {
  EXPECT_THAT(parseError("ws://[::1]:0/"), HasSubstr("1-65535"));
}

TEST(WebSocketUrlTest, SpaceIsRejected) {
  EXPECT_THAT(parseError("ws://example.com/a b"), HasSubstr("spaces"));
  EXPECT_THAT(parseError("ws://exa mple.com/"), HasSubstr("spaces"));
  EXPECT_THAT(parseError(" ws://example.com/"), HasSubstr("ws://"));
}

TEST(WebSocketUrlTest, ControlCharactersAreRejected) {
  EXPECT_THAT(parseError("ws://example.com/\r\nX: y"), HasSubstr("control"));
  EXPECT_THAT(parseError("ws://example.com/\t"), HasSubstr("control"));
  EXPECT_THAT(parseError(std::string("ws://example.com/\0", 18)), HasSubstr("control"));
  EXPECT_THAT(parseError("ws://example.com/\x7f"), HasSubstr("control"));
}

TEST(WebSocketUrlTest, FragmentIsRejected) {
  EXPECT_THAT(parseError("ws://example.com/path#frag"), HasSubstr("fragment"));
  EXPECT_THAT(parseError("ws://example.com#frag"), HasSubstr("fragment"));
}

TEST(WebSocketUrlTest, UserInfoIsRejected) {
  EXPECT_THAT(parseError("ws://user@example.com/"), HasSubstr("user"));
  EXPECT_THAT(parseError("wss://user:secret@example.com:443/"), HasSubstr("user"));
}

TEST(WebSocketUrlTest, InvalidHostCharacterIsRejected) {
  EXPECT_THAT(parseError("ws://exa%6dple.com/"), HasSubstr("host"));
  EXPECT_THAT(parseError("ws://example.com\\evil/"), HasSubstr("host"));
}

TEST(WebSocketUrlTest, UnterminatedIpv6LiteralIsRejected) {
  EXPECT_THAT(parseError("ws://[::1/"), HasSubstr("unterminated"));
}

TEST(WebSocketUrlTest, CharactersAfterIpv6LiteralAreRejected) {
  EXPECT_THAT(parseError("ws://[::1]x/"), HasSubstr("after the IPv6"));
}

TEST(WebSocketUrlTest, NonHexIpv6LiteralIsRejected) {
  EXPECT_THAT(parseError("ws://[::g]/"), HasSubstr("IPv6"));
  EXPECT_THAT(parseError("ws://[fe80::1%25eth0]/"), HasSubstr("IPv6"));
}

TEST(WebSocketUrlTest, HostOf253CharactersIsAccepted) {
  const std::string host(253, 'a');
  EXPECT_EQ(parseValid("ws://" + host + "/").host, host);
}

TEST(WebSocketUrlTest, HostLongerThan253CharactersIsRejected) {
  EXPECT_THAT(parseError("ws://" + std::string(254, 'a') + "/"), HasSubstr("253"));
}

}  // namespace
}  // namespace wsvisor::core
