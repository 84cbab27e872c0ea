// Bearer-token files and the decisions made on them.
#include "service/api/api_access.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wsvisor::service {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Verdict = AccessDecision::Verdict;

constexpr char kWriteToken[] = "w-0123456789abcdef";
constexpr char kReadToken[] = "r-0123456789abcdef";

std::vector<ApiToken> parseOk(const std::string& text) {
  auto parsed = parseTokenFile(text, "tokens");
  if (auto* error = std::get_if<std::string>(&parsed)) {
    ADD_FAILURE() << *error;
    return {};
  }
  return std::get<std::vector<ApiToken>>(parsed);
}

std::string parseError(const std::string& text) {
  auto parsed = parseTokenFile(text, "tokens");
  if (auto* error = std::get_if<std::string>(&parsed)) return *error;
  ADD_FAILURE() << "accepted:\n" << text;
  return "";
}

ApiAccess twoTokens() {
  return ApiAccess(parseOk(std::string("# name access token\n") + "deployer write " + kWriteToken +
                           "\n" + "dashboards read " + kReadToken + "  # grafana\n"));
}

TEST(ApiAccessTest, ReadsNamesAccessAndCommentsButKeepsNoToken) {
  const auto tokens = parseOk(std::string("\n  deployer   write ") + kWriteToken +
                              "\n# a comment line\n\ndashboards read " + kReadToken + " # x\n");
  ASSERT_EQ(tokens.size(), 2u);
  EXPECT_EQ(tokens[0].name, "deployer");
  EXPECT_EQ(tokens[0].access, Access::kWrite);
  EXPECT_EQ(tokens[1].name, "dashboards");
  EXPECT_EQ(tokens[1].access, Access::kRead);
  EXPECT_NE(tokens[0].digest, tokens[1].digest);
}

TEST(ApiAccessTest, BadLinesNameTheFileLineAndProblemWithoutEchoingTheToken) {
  EXPECT_EQ(parseError("a write\n"), "tokens:1: want 'NAME ACCESS TOKEN' (3 fields), got 2");
  EXPECT_EQ(parseError(std::string("\n\na admin ") + kWriteToken),
            "tokens:3: access must be read or write, got 'admin'");
  EXPECT_EQ(parseError("a read short-token\n"),
            "tokens:1: token of 'a' must be 16-1024 characters, got 11");
  EXPECT_EQ(parseError("a read 0123456789abcdef\"quoted\n"),
            "tokens:1: token of 'a' may only contain [A-Za-z0-9-._~+/] with trailing '=' "
            "(RFC 7235 token68)");
  EXPECT_EQ(parseError("a read 0123456789abcdef=x\n"),
            "tokens:1: token of 'a' may only contain [A-Za-z0-9-._~+/] with trailing '=' "
            "(RFC 7235 token68)");
  EXPECT_EQ(parseError(std::string("a/b read ") + kReadToken),
            "tokens:1: name must be 1-64 characters of [A-Za-z0-9._-]");
  EXPECT_EQ(parseError(std::string("a read ") + kReadToken + "\na write " + kWriteToken),
            "tokens:2: name 'a' given twice");
  EXPECT_EQ(parseError(std::string("a read ") + kReadToken + "\nb write " + kReadToken),
            "tokens:2: token of 'b' is the same as an earlier one");
  EXPECT_THAT(parseError("# only a comment\n"), HasSubstr("tokens: no tokens"));
  EXPECT_THAT(parseError("a read 0123456789abcdef\"quoted\n"), Not(HasSubstr("0123")));
}

TEST(ApiAccessTest, PaddedBase64TokensAreAccepted) {
  EXPECT_EQ(parseOk("a read QUJDREVGR0hJSktMTU5PUA==\n").size(), 1u);
}

TEST(ApiAccessTest, MissingOrMalformedCredentialsAreUnauthenticated) {
  const ApiAccess access = twoTokens();
  const auto missing = access.check(std::nullopt, Access::kRead, "GetEndpoint");
  EXPECT_EQ(missing.verdict, Verdict::kUnauthenticated);
  EXPECT_THAT(missing.message, HasSubstr("missing bearer token"));

  const auto basic = access.check("Basic dXNlcjpwYXNz", Access::kRead, "GetEndpoint");
  EXPECT_EQ(basic.verdict, Verdict::kUnauthenticated);
  EXPECT_EQ(basic.message, "metadata 'authorization' must be 'Bearer <token>'");

  const auto unknown = access.check("Bearer not-a-known-token-at-all", Access::kRead, "List");
  EXPECT_EQ(unknown.verdict, Verdict::kUnauthenticated);
  EXPECT_EQ(unknown.message, "the bearer token is not valid (unknown or revoked)");

  // A prefix or an extension of a valid token is a different token.
  const std::string prefix = std::string("Bearer ") + kWriteToken;
  EXPECT_EQ(access.check(prefix.substr(0, prefix.size() - 1), Access::kRead, "List").verdict,
            Verdict::kUnauthenticated);
  EXPECT_EQ(access.check(prefix + "x", Access::kRead, "List").verdict, Verdict::kUnauthenticated);
}

TEST(ApiAccessTest, ReadTokensReadAndWriteTokensDoEverything) {
  const ApiAccess access = twoTokens();
  const std::string read = std::string("Bearer ") + kReadToken;
  const std::string write = std::string("bearer  ") + kWriteToken;  // scheme is case-insensitive
  EXPECT_EQ(access.check(read, Access::kRead, "ListEndpoints").verdict, Verdict::kAllowed);
  EXPECT_EQ(access.check(write, Access::kRead, "ListEndpoints").verdict, Verdict::kAllowed);
  EXPECT_EQ(access.check(write, Access::kWrite, "RegisterEndpoint").verdict, Verdict::kAllowed);

  const auto denied = access.check(read, Access::kWrite, "RegisterEndpoint");
  EXPECT_EQ(denied.verdict, Verdict::kPermissionDenied);
  EXPECT_EQ(denied.message,
            "token 'dashboards' has read access; RegisterEndpoint needs write access");
}

TEST(ApiAccessTest, ReplacedTokensTakeEffectAtOnce) {
  ApiAccess access = twoTokens();
  const std::string old_token = std::string("Bearer ") + kWriteToken;
  const std::string new_token = "Bearer rotated-0123456789abcdef";
  access.replaceTokens(parseOk("deployer write rotated-0123456789abcdef\n"));
  EXPECT_EQ(access.tokenCount(), 1u);
  EXPECT_EQ(access.check(old_token, Access::kRead, "List").verdict, Verdict::kUnauthenticated);
  EXPECT_EQ(access.check(new_token, Access::kWrite, "Update").verdict, Verdict::kAllowed);
}

}  // namespace
}  // namespace wsvisor::service
