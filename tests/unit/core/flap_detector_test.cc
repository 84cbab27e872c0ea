// FlapDetector on simulated time: the example of its header, and the edges of the window.
#include "supervisor/core/flap_detector.h"

#include <gtest/gtest.h>

#include <chrono>

namespace wsvisor::core {
namespace {

using std::chrono::seconds;

FlapPolicy policy(uint32_t threshold, Duration window, Duration quiet) {
  FlapPolicy p;
  p.threshold = threshold;
  p.window = window;
  p.quiet_period = quiet;
  return p;
}

const MonoTime t0 = MonoTime{} + std::chrono::hours(1);

TEST(FlapDetectorTest, TheExampleOfTheHeader) {
  FlapDetector flap(policy(5, std::chrono::minutes(2), std::chrono::minutes(1)));
  for (int s : {0, 10, 20, 30, 40}) EXPECT_FALSE(flap.recordChange(t0 + seconds(s))) << s;
  EXPECT_TRUE(flap.recordChange(t0 + seconds(50)));
  EXPECT_TRUE(flap.flapping());
  EXPECT_FALSE(flap.recordChange(t0 + seconds(70)));  // already flapping
  EXPECT_FALSE(flap.recordChange(t0 + seconds(100)));
  EXPECT_EQ(flap.quietDeadline(), t0 + seconds(160));
  EXPECT_FALSE(flap.settle(t0 + seconds(159)));
  EXPECT_TRUE(flap.settle(t0 + seconds(160)));
  EXPECT_FALSE(flap.flapping());
  // Afresh: the changes before do not count any more.
  for (int s : {161, 162, 163, 164, 165}) EXPECT_FALSE(flap.recordChange(t0 + seconds(s))) << s;
  EXPECT_TRUE(flap.recordChange(t0 + seconds(166)));
}

TEST(FlapDetectorTest, TheWindowIsInclusiveAndSlides) {
  FlapDetector flap(policy(2, seconds(10), seconds(5)));
  EXPECT_FALSE(flap.recordChange(t0));
  EXPECT_FALSE(flap.recordChange(t0 + seconds(5)));
  EXPECT_FALSE(flap.recordChange(t0 + seconds(11)));  // 0 s has left the window
  EXPECT_TRUE(flap.recordChange(t0 + seconds(15)));   // 5, 11, 15: three within 10 s
}

TEST(FlapDetectorTest, ThresholdOneFlapsOnTheSecondChangeInTheWindow) {
  FlapDetector flap(policy(1, seconds(10), seconds(5)));
  EXPECT_FALSE(flap.recordChange(t0));
  EXPECT_TRUE(flap.recordChange(t0 + seconds(10)));
}

TEST(FlapDetectorTest, OffNeverFlapsAndTurningItOffEndsFlapping) {
  FlapDetector off(FlapPolicy::off());
  for (int s = 0; s < 100; ++s) EXPECT_FALSE(off.recordChange(t0 + seconds(s)));
  FlapDetector flap(policy(1, seconds(10), seconds(5)));
  flap.recordChange(t0);
  ASSERT_TRUE(flap.recordChange(t0 + seconds(1)));
  EXPECT_TRUE(flap.setPolicy(FlapPolicy::off()));
  EXPECT_FALSE(flap.flapping());
  EXPECT_EQ(flap.quietDeadline(), std::nullopt);
}

TEST(FlapDetectorTest, ANewThresholdStartsCountingAfresh) {
  FlapDetector flap(policy(3, seconds(10), seconds(5)));
  for (int s : {0, 1, 2}) flap.recordChange(t0 + seconds(s));
  EXPECT_FALSE(flap.setPolicy(policy(2, seconds(10), seconds(5))));
  EXPECT_FALSE(flap.recordChange(t0 + seconds(3)));
  EXPECT_FALSE(flap.recordChange(t0 + seconds(4)));
  EXPECT_TRUE(flap.recordChange(t0 + seconds(5)));
}

}  // namespace
}  // namespace wsvisor::core
