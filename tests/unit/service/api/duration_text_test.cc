// Parsing typed durations ("250ms", "1m30s") and printing protobuf Durations for people.
#include "service/api/duration_text.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>

namespace wsvisor::service {
namespace {

using std::chrono::nanoseconds;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

nanoseconds parseValid(const std::string& text) {
  std::string error;
  const std::optional<nanoseconds> duration = parseDuration(text, error);
  EXPECT_TRUE(duration.has_value()) << "\"" << text << "\": " << error;
  return duration.value_or(nanoseconds(-1));
}

std::string parseError(const std::string& text) {
  std::string error;
  EXPECT_FALSE(parseDuration(text, error).has_value()) << "\"" << text << "\" was accepted";
  return error;
}

google::protobuf::Duration proto(int64_t seconds, int32_t nanos) {
  google::protobuf::Duration duration;
  duration.set_seconds(seconds);
  duration.set_nanos(nanos);
  return duration;
}

TEST(ParseDurationTest, AcceptsEveryUnit) {
  EXPECT_EQ(parseValid("7ns"), 7ns);
  EXPECT_EQ(parseValid("100us"), 100us);
  EXPECT_EQ(parseValid("100\xC2\xB5s"), 100us);  // µs
  EXPECT_EQ(parseValid("250ms"), 250ms);
  EXPECT_EQ(parseValid("10s"), 10s);
  EXPECT_EQ(parseValid("1m"), 1min);
  EXPECT_EQ(parseValid("2h"), 2h);
}

TEST(ParseDurationTest, AcceptsFractionsExactly) {
  EXPECT_EQ(parseValid("1.5s"), 1500ms);
  EXPECT_EQ(parseValid(".5s"), 500ms);
  EXPECT_EQ(parseValid("1.s"), 1s);
  EXPECT_EQ(parseValid("0.1s"), 100ms);
  EXPECT_EQ(parseValid("1.5h"), 90min);
  EXPECT_EQ(parseValid("0.000000001s"), 1ns);
  EXPECT_EQ(parseValid("2.50000000000000000000ms"), 2500us);  // trailing zeros are harmless
}

TEST(ParseDurationTest, AddsCompoundTerms) {
  EXPECT_EQ(parseValid("1m30s"), 90s);
  EXPECT_EQ(parseValid("1h2m3s4ms"), 1h + 2min + 3s + 4ms);
}

TEST(ParseDurationTest, ZeroIsValidSoTheServerCanJudgeIt) {
  EXPECT_EQ(parseValid("0"), 0ns);
  EXPECT_EQ(parseValid("0s"), 0ns);
  EXPECT_EQ(parseValid("0ms"), 0ns);
}

TEST(ParseDurationTest, MissingUnitIsRejectedNotGuessed) {
  EXPECT_EQ(parseError("10"),
            "invalid duration \"10\": missing unit after \"10\" (use ns, us, ms, s, m or h)");
  EXPECT_THAT(parseError("1m30"), HasSubstr("missing unit after \"30\""));
}

TEST(ParseDurationTest, UnknownUnitIsNamed) {
  EXPECT_EQ(parseError("10x"),
            "invalid duration \"10x\": unknown unit \"x\" (use ns, us, ms, s, m or h)");
  EXPECT_THAT(parseError("3sec"), HasSubstr("unknown unit \"sec\""));
  EXPECT_THAT(parseError("3 s"), HasSubstr("unknown unit \" s\""));
  EXPECT_THAT(parseError("5d"), HasSubstr("unknown unit \"d\""));
}

TEST(ParseDurationTest, RejectsTextThatIsNotANumber) {
  EXPECT_EQ(parseError(""), "empty duration (want e.g. 250ms, 10s or 1m)");
  EXPECT_EQ(parseError("ms"), "invalid duration \"ms\": expected a number at \"ms\"");
  EXPECT_THAT(parseError("."), HasSubstr("expected a number"));
  EXPECT_THAT(parseError("+1s"), HasSubstr("expected a number at \"+1s\""));
  EXPECT_THAT(parseError("1s "), HasSubstr("unknown unit \"s \""));
}

TEST(ParseDurationTest, RejectsNegative) {
  EXPECT_EQ(parseError("-1s"), "invalid duration \"-1s\": must not be negative");
}

TEST(ParseDurationTest, RejectsPrecisionFinerThanANanosecond) {
  EXPECT_EQ(parseError("1.5ns"), "invalid duration \"1.5ns\": finer than 1ns");
  EXPECT_THAT(parseError("0.0000000001s"), HasSubstr("finer than 1ns"));
}

TEST(ParseDurationTest, RejectsOverflow) {
  EXPECT_EQ(parseValid("9223372036854775807ns"), nanoseconds(INT64_MAX));
  EXPECT_THAT(parseError("9223372036854775808ns"), HasSubstr("too large"));
  EXPECT_THAT(parseError("2562048h"), HasSubstr("too large"));
  EXPECT_THAT(parseError("99999999999999999999999999h"), HasSubstr("too large"));
  EXPECT_THAT(parseError("2562047h2562047h"), HasSubstr("too large"));
}

TEST(ToProtoDurationTest, SplitsSecondsAndNanos) {
  const google::protobuf::Duration d = toProtoDuration(1500ms);
  EXPECT_EQ(d.seconds(), 1);
  EXPECT_EQ(d.nanos(), 500'000'000);
  const google::protobuf::Duration zero = toProtoDuration(0ns);
  EXPECT_EQ(zero.seconds(), 0);
  EXPECT_EQ(zero.nanos(), 0);
}

TEST(FormatDurationTest, RoundValuesReadBackAsTyped) {
  EXPECT_EQ(formatDuration(proto(0, 0)), "0s");
  EXPECT_EQ(formatDuration(proto(0, 7)), "7ns");
  EXPECT_EQ(formatDuration(proto(0, 100'000)), "100us");
  EXPECT_EQ(formatDuration(proto(0, 250'000'000)), "250ms");
  EXPECT_EQ(formatDuration(proto(10, 0)), "10s");
  EXPECT_EQ(formatDuration(proto(1, 500'000'000)), "1.5s");
  EXPECT_EQ(formatDuration(proto(60, 0)), "1m");
  EXPECT_EQ(formatDuration(proto(90, 0)), "1m30s");
  EXPECT_EQ(formatDuration(proto(90, 500'000'000)), "1m30.5s");
  EXPECT_EQ(formatDuration(proto(3600, 0)), "1h");
  EXPECT_EQ(formatDuration(proto(3900, 0)), "1h5m");
  EXPECT_EQ(formatDuration(proto(7205, 0)), "2h5s");
}

TEST(FormatDurationTest, MeasuredValuesKeepThreeDecimals) {
  EXPECT_EQ(formatDuration(proto(0, 1'234'567)), "1.235ms");
  EXPECT_EQ(formatDuration(proto(0, 12'345'678)), "12.346ms");
  EXPECT_EQ(formatDuration(proto(0, 345'600)), "345.6us");
  EXPECT_EQ(formatDuration(proto(1, 234'000'000)), "1.234s");
  EXPECT_EQ(formatDuration(proto(0, 1'000'400)), "1ms");
  EXPECT_EQ(formatDuration(proto(0, 1'050'000)), "1.05ms");
}

TEST(FormatDurationTest, RoundingCarriesIntoTheNextUnit) {
  EXPECT_EQ(formatDuration(proto(0, 999'999'600)), "1s");
  EXPECT_EQ(formatDuration(proto(0, 999'999)), "999.999us");
  EXPECT_EQ(formatDuration(proto(0, 9'999'499)), "9.999ms");
  EXPECT_EQ(formatDuration(proto(59, 999'999'999)), "1m");
}

TEST(FormatDurationTest, NegativeAndHuge) {
  EXPECT_EQ(formatDuration(proto(-1, -500'000'000)), "-1.5s");
  // Durations may span 10,000 years: more nanoseconds than int64 holds.
  EXPECT_EQ(formatDuration(proto(315'576'000'000, 0)), "87660000h");
}

TEST(FormatDurationTest, OutputParsesBackToTheSameValue) {
  for (const char* text : {"250ms", "10s", "1m30s", "1.5s", "2h", "100us", "1h5m", "2h5s"}) {
    EXPECT_EQ(formatDuration(toProtoDuration(parseValid(text))), text);
  }
}

}  // namespace
}  // namespace wsvisor::service
