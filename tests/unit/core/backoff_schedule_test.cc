// The reconnect schedule of BackoffSchedule: growth, cap, jitter bounds, reset. Jitter draws come
// from a FixedJitter, so every delay is asserted exactly, to the nanosecond.
#include "supervisor/core/backoff_schedule.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "tests/support/fake_jitter.h"

namespace wsvisor::core {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using wsvisor::testing::FixedJitter;

// The defaults as applyDefaults() fills them: 1 s, x1.6, +/-20 %, cap 120 s.
BackoffPolicy defaultPolicy() {
  BackoffPolicy policy;
  policy.initial = seconds(1);
  policy.multiplier = 1.6;
  policy.jitter = 0.2;
  policy.max = seconds(120);
  policy.reset_after = seconds(10);
  policy.jitter_enabled = true;
  return policy;
}

BackoffPolicy noJitterPolicy() {
  BackoffPolicy policy = defaultPolicy();
  policy.jitter_enabled = false;
  policy.jitter = 0;
  return policy;
}

std::vector<Duration> firstDelays(BackoffSchedule& schedule, JitterSource& jitter, int count) {
  std::vector<Duration> delays;
  for (int i = 0; i < count; ++i) delays.push_back(schedule.nextDelay(jitter));
  return delays;
}

TEST(BackoffScheduleTest, FirstDelayIsInitial) {
  FixedJitter jitter(0.0);
  BackoffSchedule schedule(defaultPolicy());
  EXPECT_EQ(schedule.nextDelay(jitter), seconds(1));
}

TEST(BackoffScheduleTest, DelaysGrowByTheMultiplier) {
  FixedJitter jitter(0.0);
  BackoffSchedule schedule(defaultPolicy());
  const std::vector<Duration> expected = {milliseconds(1000), milliseconds(1600),
                                          milliseconds(2560), milliseconds(4096),
                                          nanoseconds(6'553'600'000)};
  EXPECT_EQ(firstDelays(schedule, jitter, 5), expected);
}

// The sequence written down in backoff_schedule.h: 1, 1.6, 2.56, 4.1, 6.55, 10.5, 16.8, 26.8,
// 42.9, 68.7, 110, 120, 120... seconds.
TEST(BackoffScheduleTest, DefaultScheduleMatchesTheDocumentedSequence) {
  FixedJitter jitter(0.0);
  BackoffSchedule schedule(defaultPolicy());
  const std::vector<Duration> expected = {
      nanoseconds(1'000'000'000),   nanoseconds(1'600'000'000),   nanoseconds(2'560'000'000),
      nanoseconds(4'096'000'000),   nanoseconds(6'553'600'000),   nanoseconds(10'485'760'000),
      nanoseconds(16'777'216'000),  nanoseconds(26'843'545'600),  nanoseconds(42'949'672'960),
      nanoseconds(68'719'476'736),  nanoseconds(109'951'162'777), nanoseconds(120'000'000'000),
      nanoseconds(120'000'000'000),
  };
  EXPECT_EQ(firstDelays(schedule, jitter, 13), expected);
}

TEST(BackoffScheduleTest, DelayStaysAtMaxOnceReached) {
  FixedJitter jitter(0.0);
  BackoffPolicy policy = defaultPolicy();
  policy.max = seconds(3);
  BackoffSchedule schedule(policy);
  const std::vector<Duration> expected = {milliseconds(1000), milliseconds(1600),
                                          milliseconds(2560), seconds(3),
                                          seconds(3),         seconds(3)};
  EXPECT_EQ(firstDelays(schedule, jitter, 6), expected);
}

TEST(BackoffScheduleTest, MaxEqualToInitialGivesConstantDelay) {
  FixedJitter jitter(0.0);
  BackoffPolicy policy = defaultPolicy();
  policy.max = policy.initial;
  BackoffSchedule schedule(policy);
  const std::vector<Duration> expected(4, seconds(1));
  EXPECT_EQ(firstDelays(schedule, jitter, 4), expected);
}

TEST(BackoffScheduleTest, MultiplierOneGivesConstantDelay) {
  FixedJitter jitter(0.0);
  BackoffPolicy policy = defaultPolicy();
  policy.initial = milliseconds(250);
  policy.multiplier = 1.0;
  BackoffSchedule schedule(policy);
  const std::vector<Duration> expected(4, milliseconds(250));
  EXPECT_EQ(firstDelays(schedule, jitter, 4), expected);
}

TEST(BackoffScheduleTest, JitterOfMinusOneShortensTheDelayByTheJitterFraction) {
  FixedJitter jitter(-1.0);
  BackoffSchedule schedule(defaultPolicy());
  EXPECT_EQ(schedule.nextDelay(jitter), milliseconds(800));
}

TEST(BackoffScheduleTest, JitterOfZeroLeavesTheDelayUnchanged) {
  FixedJitter jitter(0.0);
  BackoffSchedule schedule(defaultPolicy());
  EXPECT_EQ(schedule.nextDelay(jitter), milliseconds(1000));
}

TEST(BackoffScheduleTest, JitterOfPlusOneLengthensTheDelayByTheJitterFraction) {
  FixedJitter jitter(1.0);
  BackoffSchedule schedule(defaultPolicy());
  EXPECT_EQ(schedule.nextDelay(jitter), milliseconds(1200));
}

TEST(BackoffScheduleTest, JitterIsAFractionOfTheGrownDelay) {
  FixedJitter jitter(1.0);
  BackoffSchedule schedule(defaultPolicy());
  const std::vector<Duration> plus = {milliseconds(1200), milliseconds(1920), milliseconds(3072)};
  EXPECT_EQ(firstDelays(schedule, jitter, 3), plus);

  jitter.set(-1.0);
  schedule.reset();
  const std::vector<Duration> minus = {milliseconds(800), milliseconds(1280), milliseconds(2048)};
  EXPECT_EQ(firstDelays(schedule, jitter, 3), minus);
}

TEST(BackoffScheduleTest, HalfADrawAppliesHalfTheJitterFraction) {
  FixedJitter jitter(0.5);
  BackoffSchedule schedule(defaultPolicy());
  EXPECT_EQ(schedule.nextDelay(jitter), milliseconds(1100));
}

// "Largest delay before jitter": at the cap, jitter still spreads the delay around `max`.
TEST(BackoffScheduleTest, JitterAppliesAfterTheCap) {
  BackoffPolicy policy = defaultPolicy();
  policy.max = seconds(2);
  BackoffSchedule schedule(policy);
  FixedJitter no_jitter(0.0);
  firstDelays(schedule, no_jitter, 5);  // well past the cap

  FixedJitter plus(1.0);
  EXPECT_EQ(schedule.nextDelay(plus), milliseconds(2400));
  FixedJitter minus(-1.0);
  EXPECT_EQ(schedule.nextDelay(minus), milliseconds(1600));
}

TEST(BackoffScheduleTest, DrawsOutsideMinusOneToOneAreClamped) {
  BackoffSchedule schedule(defaultPolicy());
  FixedJitter too_high(7.5);
  EXPECT_EQ(schedule.nextDelay(too_high), milliseconds(1200));
  schedule.reset();
  FixedJitter too_low(-7.5);
  EXPECT_EQ(schedule.nextDelay(too_low), milliseconds(800));
}

TEST(BackoffScheduleTest, FullJitterCanShortenTheDelayToZeroButNotBelow) {
  BackoffPolicy policy = defaultPolicy();
  policy.jitter = 1.0;
  BackoffSchedule schedule(policy);
  FixedJitter jitter(-1.0);
  EXPECT_EQ(schedule.nextDelay(jitter), Duration::zero());
}

TEST(BackoffScheduleTest, FullJitterCanDoubleTheDelay) {
  BackoffPolicy policy = defaultPolicy();
  policy.jitter = 1.0;
  BackoffSchedule schedule(policy);
  FixedJitter jitter(1.0);
  EXPECT_EQ(schedule.nextDelay(jitter), seconds(2));
}

TEST(BackoffScheduleTest, NoJitterPolicyGivesExactDelaysWhateverTheSourceSays) {
  FixedJitter jitter(1.0);
  BackoffSchedule schedule(noJitterPolicy());
  const std::vector<Duration> expected = {milliseconds(1000), milliseconds(1600),
                                          milliseconds(2560)};
  EXPECT_EQ(firstDelays(schedule, jitter, 3), expected);
}

TEST(BackoffScheduleTest, NoJitterPolicyDoesNotDrawFromTheSource) {
  FixedJitter jitter(1.0);
  BackoffSchedule schedule(noJitterPolicy());
  firstDelays(schedule, jitter, 3);
  EXPECT_EQ(jitter.draws(), 0);
}

// A disabled jitter wins over a non-zero fraction, should one ever reach the schedule.
TEST(BackoffScheduleTest, DisabledJitterIgnoresANonZeroFraction) {
  BackoffPolicy policy = defaultPolicy();
  policy.jitter_enabled = false;
  policy.jitter = 0.5;
  BackoffSchedule schedule(policy);
  FixedJitter jitter(1.0);
  EXPECT_EQ(schedule.nextDelay(jitter), seconds(1));
}

TEST(BackoffScheduleTest, ZeroJitterFractionGivesExactDelays) {
  BackoffPolicy policy = defaultPolicy();
  policy.jitter = 0;
  BackoffSchedule schedule(policy);
  FixedJitter jitter(1.0);
  EXPECT_EQ(schedule.nextDelay(jitter), seconds(1));
}

TEST(BackoffScheduleTest, EnabledJitterDrawsOncePerDelay) {
  FixedJitter jitter(0.0);
  BackoffSchedule schedule(defaultPolicy());
  firstDelays(schedule, jitter, 4);
  EXPECT_EQ(jitter.draws(), 4);
}

TEST(BackoffScheduleTest, RetriesStartAtZero) {
  BackoffSchedule schedule(defaultPolicy());
  EXPECT_EQ(schedule.retries(), 0u);
}

TEST(BackoffScheduleTest, EachDelayCountsOneRetry) {
  FixedJitter jitter(0.0);
  BackoffSchedule schedule(defaultPolicy());
  firstDelays(schedule, jitter, 3);
  EXPECT_EQ(schedule.retries(), 3u);
}

TEST(BackoffScheduleTest, ResetStartsAgainFromInitial) {
  FixedJitter jitter(0.0);
  BackoffSchedule schedule(defaultPolicy());
  firstDelays(schedule, jitter, 6);
  schedule.reset();
  EXPECT_EQ(schedule.retries(), 0u);
  EXPECT_EQ(schedule.nextDelay(jitter), seconds(1));
  EXPECT_EQ(schedule.nextDelay(jitter), milliseconds(1600));
}

TEST(BackoffScheduleTest, ResetBeforeAnyDelayIsHarmless) {
  FixedJitter jitter(0.0);
  BackoffSchedule schedule(defaultPolicy());
  schedule.reset();
  EXPECT_EQ(schedule.nextDelay(jitter), seconds(1));
}

// setPolicy() swaps the numbers but keeps the position in the schedule.
TEST(BackoffScheduleTest, SetPolicyKeepsTheRetryCount) {
  FixedJitter jitter(0.0);
  BackoffSchedule schedule(defaultPolicy());
  firstDelays(schedule, jitter, 2);

  BackoffPolicy policy = noJitterPolicy();
  policy.initial = seconds(2);
  policy.multiplier = 2.0;
  schedule.setPolicy(policy);

  EXPECT_EQ(schedule.retries(), 2u);
  EXPECT_EQ(schedule.nextDelay(jitter), seconds(8));  // 2 s x 2^2
}

TEST(BackoffScheduleTest, SetPolicyAppliesTheNewCap) {
  FixedJitter jitter(0.0);
  BackoffSchedule schedule(defaultPolicy());
  firstDelays(schedule, jitter, 8);  // the next un-capped delay would be 42.9 s

  BackoffPolicy policy = defaultPolicy();
  policy.max = seconds(5);
  schedule.setPolicy(policy);
  EXPECT_EQ(schedule.nextDelay(jitter), seconds(5));
}

TEST(BackoffScheduleTest, ThousandsOfRetriesStayAtMaxWithoutOverflow) {
  FixedJitter jitter(0.0);
  BackoffSchedule schedule(defaultPolicy());
  for (int i = 0; i < 10'000; ++i) {
    const Duration delay = schedule.nextDelay(jitter);
    ASSERT_GT(delay, Duration::zero()) << "retry " << i;
    ASSERT_LE(delay, seconds(120)) << "retry " << i;
  }
  EXPECT_EQ(schedule.nextDelay(jitter), seconds(120));
  EXPECT_EQ(schedule.retries(), 10'001u);
}

// The largest valid policy: x10 per step, 1 h cap, full jitter. 2 h still fits a Duration.
TEST(BackoffScheduleTest, LargestPolicyWithFullJitterDoesNotOverflow) {
  BackoffPolicy policy = defaultPolicy();
  policy.initial = hours(1);
  policy.max = hours(1);
  policy.multiplier = 10.0;
  policy.jitter = 1.0;
  BackoffSchedule schedule(policy);
  FixedJitter jitter(1.0);
  for (int i = 0; i < 5'000; ++i) {
    ASSERT_EQ(schedule.nextDelay(jitter), hours(2)) << "retry " << i;
  }
}

TEST(BackoffScheduleTest, JitteredDelaysStayWithinBoundsAfterThousandsOfRetries) {
  BackoffSchedule schedule(defaultPolicy());
  FixedJitter jitter;
  for (int i = 0; i < 3'000; ++i) {
    jitter.set(i % 3 - 1.0);  // -1, 0, +1, -1, ...
    const Duration delay = schedule.nextDelay(jitter);
    ASSERT_GE(delay, milliseconds(800)) << "retry " << i;
    ASSERT_LE(delay, seconds(144)) << "retry " << i;
  }
}

}  // namespace
}  // namespace wsvisor::core
