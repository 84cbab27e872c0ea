#include "supervisor/replay_log.h"

#include <gtest/gtest.h>

#include <vector>

namespace wsvisor {
namespace {

LoggedEvent logged(uint64_t revision) {
  auto event = std::make_shared<core::HealthEvent>();
  event->revision = revision;
  event->endpoint_id = "a";
  return {event, nullptr};
}

std::vector<uint64_t> after(const ReplayLog& log, uint64_t revision) {
  std::vector<uint64_t> out;
  log.forEachAfter(revision, [&](const LoggedEvent& e) { out.push_back(e.event->revision); });
  return out;
}

TEST(ReplayLogTest, ReplaysEveryEventAfterARevision) {
  ReplayLog log(10, 100);
  EXPECT_TRUE(log.holdsEverythingAfter(100));
  EXPECT_TRUE(after(log, 100).empty());
  for (uint64_t r = 101; r <= 105; ++r) log.append(logged(r));
  EXPECT_EQ(log.firstKept(), 101u);
  EXPECT_EQ(after(log, 100), (std::vector<uint64_t>{101, 102, 103, 104, 105}));
  EXPECT_EQ(after(log, 103), (std::vector<uint64_t>{104, 105}));
  EXPECT_TRUE(after(log, 105).empty());
  EXPECT_FALSE(log.holdsEverythingAfter(99));  // revision 100 was never logged
}

TEST(ReplayLogTest, ForgetsTheOldestPastItsBound) {
  ReplayLog log(3, 0);
  for (uint64_t r = 1; r <= 7; ++r) log.append(logged(r));
  EXPECT_EQ(log.size(), 3u);
  EXPECT_EQ(log.firstKept(), 5u);
  EXPECT_TRUE(log.holdsEverythingAfter(4));
  EXPECT_FALSE(log.holdsEverythingAfter(3));  // revision 4 is gone
  EXPECT_EQ(after(log, 4), (std::vector<uint64_t>{5, 6, 7}));
  EXPECT_EQ(after(log, 6), (std::vector<uint64_t>{7}));
}

TEST(ReplayLogTest, BoundZeroHoldsOnlyTheCurrentRevision) {
  ReplayLog log(0, 10);
  log.append(logged(11));
  log.append(logged(12));
  EXPECT_EQ(log.size(), 0u);
  EXPECT_TRUE(log.holdsEverythingAfter(12));
  EXPECT_FALSE(log.holdsEverythingAfter(11));
}

}  // namespace
}  // namespace wsvisor
