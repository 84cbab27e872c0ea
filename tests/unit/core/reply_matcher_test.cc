// When a TEXT-mode reply answers a heartbeat: equality with the payload, or a full match of the
// `expect` expression for replies of at most 4096 bytes.
#include "supervisor/core/reply_matcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace wsvisor::core {
namespace {

using ::testing::Not;
using ::testing::Optional;

constexpr size_t kLimit = ReplyMatcher::kMaxRegexReplyBytes;

TEST(ReplyMatcherTest, RegexReplyLimitIs4096Bytes) { EXPECT_EQ(kLimit, 4096u); }

// Without an expression.

TEST(ReplyMatcherTest, WithoutExpectationAReplyEqualToThePayloadMatches) {
  const ReplyMatcher matcher("heartbeat", "");
  EXPECT_TRUE(matcher.matches("heartbeat"));
}

TEST(ReplyMatcherTest, WithoutExpectationAnyOtherReplyDoesNotMatch) {
  const ReplyMatcher matcher("heartbeat", "");
  EXPECT_FALSE(matcher.matches("Heartbeat"));
  EXPECT_FALSE(matcher.matches("heartbeat "));
  EXPECT_FALSE(matcher.matches("heart"));
  EXPECT_FALSE(matcher.matches("heartbeats"));
  EXPECT_FALSE(matcher.matches(""));
}

TEST(ReplyMatcherTest, WithoutExpectationThePayloadIsNotARegex) {
  const ReplyMatcher matcher("a.c", "");
  EXPECT_TRUE(matcher.matches("a.c"));
  EXPECT_FALSE(matcher.matches("abc"));
}

TEST(ReplyMatcherTest, WithoutExpectationEmbeddedNulBytesAreCompared) {
  const std::string payload("a\0b", 3);
  const ReplyMatcher matcher(payload, "");
  EXPECT_TRUE(matcher.matches(std::string_view("a\0b", 3)));
  EXPECT_FALSE(matcher.matches(std::string_view("a\0c", 3)));
  EXPECT_FALSE(matcher.matches("a"));
}

// The 4096-byte rule is about expressions only: an equal reply matches at any length.
TEST(ReplyMatcherTest, WithoutExpectationALongReplyEqualToThePayloadMatches) {
  const std::string payload(kLimit + 1, 'x');
  const ReplyMatcher matcher(payload, "");
  EXPECT_TRUE(matcher.matches(payload));
}

// With an expression.

TEST(ReplyMatcherTest, ExpressionMustMatchTheWholeReply) {
  const ReplyMatcher matcher("ping", "pong");
  EXPECT_TRUE(matcher.matches("pong"));
  EXPECT_FALSE(matcher.matches("pong!"));
  EXPECT_FALSE(matcher.matches("a pong"));
}

TEST(ReplyMatcherTest, ExpressionReplacesComparisonWithThePayload) {
  const ReplyMatcher matcher("ping", "pong");
  EXPECT_FALSE(matcher.matches("ping"));
}

TEST(ReplyMatcherTest, ExpressionUsesEcmaScriptSyntax) {
  const ReplyMatcher matcher("ping", R"(\{"type":"pong","seq":\d+\})");
  EXPECT_TRUE(matcher.matches(R"({"type":"pong","seq":42})"));
  EXPECT_FALSE(matcher.matches(R"({"type":"pong","seq":"x"})"));
}

TEST(ReplyMatcherTest, ExpressionAlternativesMustAlsoMatchInFull) {
  const ReplyMatcher matcher("ping", "pong|ok");
  EXPECT_TRUE(matcher.matches("pong"));
  EXPECT_TRUE(matcher.matches("ok"));
  EXPECT_FALSE(matcher.matches("okay"));
}

TEST(ReplyMatcherTest, ExpressionIsCaseSensitive) {
  const ReplyMatcher matcher("ping", "pong");
  EXPECT_FALSE(matcher.matches("PONG"));
}

TEST(ReplyMatcherTest, ExpressionCanMatchAnEmptyReply) {
  const ReplyMatcher matcher("ping", ".*");
  EXPECT_TRUE(matcher.matches(""));
}

TEST(ReplyMatcherTest, ReplyOfExactly4096BytesIsMatchedAgainstTheExpression) {
  const ReplyMatcher matcher("ping", "x+");
  EXPECT_TRUE(matcher.matches(std::string(kLimit, 'x')));
}

TEST(ReplyMatcherTest, ReplyLongerThan4096BytesNeverMatchesAnExpression) {
  const ReplyMatcher matcher("ping", "x+");
  EXPECT_FALSE(matcher.matches(std::string(kLimit + 1, 'x')));
}

TEST(ReplyMatcherTest, ReplyLongerThan4096BytesDoesNotMatchEvenAnAnythingExpression) {
  const ReplyMatcher matcher("ping", "[\\s\\S]*");
  EXPECT_FALSE(matcher.matches(std::string(100 * kLimit, 'x')));
}

// A short, valid expression must not let an upstream's reply of up to 4096 bytes exhaust the io
// thread's stack. With a per-character recursive matcher this reply needs more than 8 MiB.
TEST(ReplyMatcherTest, NestedGroupsOverA4096ByteReplyDoNotExhaustTheStack) {
  const std::string twenty_nested_groups = std::string(20, '(') + "x" + std::string(20, ')') + "*";
  const ReplyMatcher matcher("ping", twenty_nested_groups);
  EXPECT_TRUE(matcher.matches(std::string(kLimit, 'x')));
}

// A backtracking matcher needs about 2^n steps for this expression on n x's (over a second at
// n = 26): a 64-byte reply would block the io thread for ever. On failure this test hangs until
// the ctest timeout.
TEST(ReplyMatcherTest, BacktrackingExpressionIsMatchedInPolynomialTime) {
  const ReplyMatcher matcher("ping", "(x+x+)+y");
  EXPECT_FALSE(matcher.matches(std::string(64, 'x')));
  EXPECT_FALSE(matcher.matches(std::string(kLimit, 'x')));
  EXPECT_TRUE(matcher.matches(std::string(64, 'x') + "y"));
}

TEST(ReplyMatcherTest, LookaheadIsSupported) {
  const ReplyMatcher matcher("ping", "(?=pong)\\w+");
  EXPECT_TRUE(matcher.matches("pong42"));
  EXPECT_FALSE(matcher.matches("ping42"));
}

TEST(ReplyMatcherTest, CopiesMatchLikeTheOriginal) {
  const ReplyMatcher original("ping", "po+ng");
  const ReplyMatcher copy = original;  // NOLINT(performance-unnecessary-copy-initialization)
  EXPECT_TRUE(copy.matches("poooong"));
  EXPECT_FALSE(copy.matches("png"));
}

// checkExpression()

TEST(ReplyMatcherTest, CheckExpressionAcceptsAValidExpression) {
  EXPECT_EQ(ReplyMatcher::checkExpression(R"(^pong( \d+)?$)"), std::nullopt);
}

TEST(ReplyMatcherTest, CheckExpressionAcceptsTheEmptyExpression) {
  EXPECT_EQ(ReplyMatcher::checkExpression(""), std::nullopt);
}

TEST(ReplyMatcherTest, CheckExpressionRejectsAnUnclosedGroup) {
  EXPECT_THAT(ReplyMatcher::checkExpression("(pong"), Optional(Not(std::string())));
}

TEST(ReplyMatcherTest, CheckExpressionRejectsAnUnclosedBracket) {
  EXPECT_THAT(ReplyMatcher::checkExpression("[a-"), Optional(Not(std::string())));
}

TEST(ReplyMatcherTest, CheckExpressionRejectsANothingToRepeat) {
  EXPECT_THAT(ReplyMatcher::checkExpression("*pong"), Optional(Not(std::string())));
}

// Back-references would need the backtracking matcher (see above), so they are refused up front.
TEST(ReplyMatcherTest, CheckExpressionRejectsABackReference) {
  EXPECT_THAT(ReplyMatcher::checkExpression("(po)\\1ng"), Optional(Not(std::string())));
}

// GCC 12 reads a back-reference's number into a long without an overflow check before refusing
// it: undefined behaviour (reported by the sanitizer pass) unless refused before compiling.
TEST(ReplyMatcherTest, CheckExpressionRejectsABackReferenceWithAHugeNumber) {
  EXPECT_THAT(ReplyMatcher::checkExpression("(po)\\99999999999999999999ng"),
              Optional(Not(std::string())));
}

// Counts are read the same way: 20 digits were undefined behaviour, and 4294967297 was taken as 1
// (so that `a{4294967297}` matched "a").
TEST(ReplyMatcherTest, CheckExpressionRejectsAHugeRepetitionCount) {
  EXPECT_THAT(ReplyMatcher::checkExpression("a{99999999999999999999}"),
              Optional(Not(std::string())));
  EXPECT_THAT(ReplyMatcher::checkExpression("a{1,99999999999999999999}"),
              Optional(Not(std::string())));
  EXPECT_THAT(ReplyMatcher::checkExpression("a{4294967297}"), Optional(Not(std::string())));
}

// Written out, `(?:a*){24000}` is 48000 elements: seconds per 4096-byte reply, for 14 bytes.
TEST(ReplyMatcherTest, CheckExpressionRejectsCountsBeyondTheExpandedLimit) {
  EXPECT_EQ(ReplyMatcher::kMaxExpandedElements, 1024u);
  EXPECT_THAT(ReplyMatcher::checkExpression("(?:a*){24000}"), Optional(Not(std::string())));
  EXPECT_THAT(ReplyMatcher::checkExpression("a{1025}"), Optional(Not(std::string())));
  EXPECT_THAT(ReplyMatcher::checkExpression("a{0,1025}"), Optional(Not(std::string())));
  EXPECT_THAT(ReplyMatcher::checkExpression("a{1025,}"), Optional(Not(std::string())));
}

TEST(ReplyMatcherTest, CheckExpressionMultipliesNestedCounts) {
  // (1 + 2 x 20) x 20 = 820 elements; (1 + 2 x 40) x 40 = 3240.
  EXPECT_EQ(ReplyMatcher::checkExpression("(?:(?:a){20}){20}"), std::nullopt);
  EXPECT_THAT(ReplyMatcher::checkExpression("(?:(?:a){40}){40}"), Optional(Not(std::string())));
}

TEST(ReplyMatcherTest, CheckExpressionAcceptsCountsWithinTheExpandedLimit) {
  EXPECT_EQ(ReplyMatcher::checkExpression("a{1024}"), std::nullopt);
  EXPECT_EQ(ReplyMatcher::checkExpression("[0-9a-f]{32}"), std::nullopt);
  EXPECT_EQ(ReplyMatcher::checkExpression("(?:\\d{1,3}\\.){3}\\d{1,3}"), std::nullopt);
  EXPECT_EQ(ReplyMatcher::checkExpression(".{0,1000}"), std::nullopt);
  EXPECT_EQ(ReplyMatcher::checkExpression("[[:alpha:]]{3}[{]{2}"), std::nullopt);
}

TEST(ReplyMatcherTest, CheckExpressionAcceptsLookaheadsAtTheStart) {
  EXPECT_EQ(ReplyMatcher::checkExpression("(?=.*ok).*"), std::nullopt);
  EXPECT_EQ(ReplyMatcher::checkExpression("^(?=.*ok)(?!.*error).*$"), std::nullopt);
  EXPECT_EQ(ReplyMatcher::checkExpression("pong|(?=ok)\\w+"), std::nullopt);
}

// Anywhere else a lookahead runs over the rest of the reply at every byte: `(?:(?=.*a)a)*` took
// reply^2 steps, and nested once more, minutes per 4096-byte reply.
TEST(ReplyMatcherTest, CheckExpressionRejectsLookaheadsAfterTheStart) {
  EXPECT_THAT(ReplyMatcher::checkExpression("(?:(?=.*a)a)*"), Optional(Not(std::string())));
  EXPECT_THAT(ReplyMatcher::checkExpression("(?:(?=(?:(?=.*a)a)*)a)*"),
              Optional(Not(std::string())));
  EXPECT_THAT(ReplyMatcher::checkExpression(".*(?!err).*"), Optional(Not(std::string())));
  EXPECT_THAT(ReplyMatcher::checkExpression("(?=(?=a)a).*"), Optional(Not(std::string())));
}

TEST(ReplyMatcherTest, CheckExpressionTellsALookaheadFromEscapedAndBracketedParentheses) {
  EXPECT_EQ(ReplyMatcher::checkExpression("a\\(?=b"), std::nullopt);
  EXPECT_EQ(ReplyMatcher::checkExpression("a[(?=]b"), std::nullopt);
}

}  // namespace
}  // namespace wsvisor::core
