#include "supervisor/change_log.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wsvisor {
namespace {

SharedHealthEvent eventAt(uint64_t revision, std::string id = "a") {
  auto event = std::make_shared<core::HealthEvent>();
  event->revision = revision;
  event->endpoint_id = std::move(id);
  return event;
}

std::vector<uint64_t> after(const ChangeLog& log, uint64_t revision) {
  std::vector<uint64_t> out;
  log.forEachAfter(revision, [&](const LoggedEvent& e) { out.push_back(e.event->revision); });
  return out;
}

TEST(ChangeLogTest, KeepsEveryEventAfterARevision) {
  ChangeLog log(10, 100);
  EXPECT_TRUE(log.holdsEverythingAfter(100));
  EXPECT_TRUE(after(log, 100).empty());
  for (uint64_t r = 101; r <= 105; ++r) log.append(eventAt(r), nullptr);
  EXPECT_EQ(log.firstKept(), 101u);
  EXPECT_EQ(after(log, 100), (std::vector<uint64_t>{101, 102, 103, 104, 105}));
  EXPECT_EQ(after(log, 103), (std::vector<uint64_t>{104, 105}));
  EXPECT_TRUE(after(log, 105).empty());
  EXPECT_EQ(log.at(103).event->revision, 103u);
  EXPECT_FALSE(log.holdsEverythingAfter(99));  // revision 100 was never logged
}

TEST(ChangeLogTest, ForgetsTheOldestPastItsBound) {
  ChangeLog log(3, 0);
  for (uint64_t r = 1; r <= 7; ++r) log.append(eventAt(r), nullptr);
  EXPECT_EQ(log.size(), 3u);
  EXPECT_EQ(log.firstKept(), 5u);
  EXPECT_TRUE(log.holdsEverythingAfter(4));
  EXPECT_FALSE(log.holdsEverythingAfter(3));  // revision 4 is gone
  EXPECT_EQ(after(log, 4), (std::vector<uint64_t>{5, 6, 7}));
  EXPECT_EQ(after(log, 6), (std::vector<uint64_t>{7}));
  EXPECT_EQ(log.at(5).event->revision, 5u);
  EXPECT_EQ(log.at(7).event->revision, 7u);
}

TEST(ChangeLogTest, BoundZeroHoldsOnlyTheCurrentRevision) {
  ChangeLog log(0, 10);
  log.append(eventAt(11), nullptr);
  log.append(eventAt(12), nullptr);
  EXPECT_EQ(log.size(), 0u);
  EXPECT_TRUE(log.holdsEverythingAfter(12));
  EXPECT_FALSE(log.holdsEverythingAfter(11));
}

TEST(ChangeLogTest, CountsTheBytesAfterARevisionAcrossWrapping) {
  ChangeLog log(4, 0);
  const size_t small = sizeof(LoggedEvent) + approximateEventBytes(*eventAt(1));
  const size_t large =
      sizeof(LoggedEvent) + approximateEventBytes(*eventAt(1, std::string(1000, 'x')));
  ASSERT_GT(large, small + 1000);
  for (uint64_t r = 1; r <= 6; ++r) {
    log.append(r % 2 == 0 ? eventAt(r, std::string(1000, 'x')) : eventAt(r), nullptr);
  }
  // Kept: 3 (small), 4 (large), 5 (small), 6 (large).
  EXPECT_EQ(log.at(4).bytes, large);
  EXPECT_EQ(log.bytesAfter(6), 0u);
  EXPECT_EQ(log.bytesAfter(5), large);
  EXPECT_EQ(log.bytesAfter(3), 2 * large + small);
  EXPECT_EQ(log.bytesAfter(2), 2 * large + 2 * small);  // the position just before the oldest kept
}

}  // namespace
}  // namespace wsvisor
