#include "supervisor/health_history.h"

#include <gtest/gtest.h>

namespace wsvisor {
namespace {

using core::Health;

HealthTransition transition(uint64_t revision, Health from, Health to) {
  HealthTransition t;
  t.revision = revision;
  t.previous_health = from;
  t.health = to;
  t.reason = "reason " + std::to_string(revision);
  return t;
}

std::vector<uint64_t> revisions(const EndpointHistory& history) {
  std::vector<uint64_t> out;
  for (const auto& t : history.transitions) out.push_back(t.revision);
  return out;
}

TEST(HealthHistoryTest, KeepsTheLastTransitionsOldestFirstAndCountsTheDropped) {
  HealthHistory history(3);
  for (uint64_t r = 1; r <= 5; ++r) {
    history.record("a", transition(r, r % 2 ? Health::kHealthy : Health::kUnhealthy,
                                   r % 2 ? Health::kUnhealthy : Health::kHealthy));
  }
  const EndpointHistory kept = history.get("a");
  EXPECT_EQ(revisions(kept), (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_EQ(kept.dropped, 2u);
  EXPECT_EQ(kept.transitions[0].reason, "reason 3");
  EXPECT_EQ(kept.transitions[0].previous_health, Health::kHealthy);
  EXPECT_EQ(kept.transitions[0].health, Health::kUnhealthy);
}

TEST(HealthHistoryTest, EndpointsWithoutTransitionsCostNothing) {
  HealthHistory history(64);
  EXPECT_EQ(history.trackedEndpointsForTest(), 0u);
  EXPECT_TRUE(history.get("quiet").transitions.empty());
  EXPECT_EQ(history.get("quiet").dropped, 0u);
  EXPECT_EQ(history.trackedEndpointsForTest(), 0u);  // reading allocates nothing either

  history.record("busy", transition(1, Health::kUnknown, Health::kHealthy));
  EXPECT_EQ(history.trackedEndpointsForTest(), 1u);
  EXPECT_EQ(history.allocatedForTest("busy"), 1u);  // grows with its transitions...
  for (uint64_t r = 2; r <= 1000; ++r) {
    history.record("busy", transition(r, Health::kHealthy, Health::kUnhealthy));
  }
  EXPECT_EQ(history.allocatedForTest("busy"), 64u);  // ...up to the bound
  EXPECT_EQ(history.get("busy").transitions.size(), 64u);
  EXPECT_EQ(history.get("busy").dropped, 1000u - 64u);
  EXPECT_EQ(history.allocatedForTest("quiet"), 0u);
}

TEST(HealthHistoryTest, ForgetStartsAfresh) {
  HealthHistory history(2);
  for (uint64_t r = 1; r <= 3; ++r)
    history.record("a", transition(r, Health::kHealthy, Health::kUnhealthy));
  history.record("b", transition(4, Health::kUnknown, Health::kHealthy));
  history.forget("a");
  EXPECT_TRUE(history.get("a").transitions.empty());
  EXPECT_EQ(history.get("a").dropped, 0u);
  EXPECT_EQ(revisions(history.get("b")), (std::vector<uint64_t>{4}));
  EXPECT_EQ(history.trackedEndpointsForTest(), 1u);
}

TEST(HealthHistoryTest, SizeZeroKeepsNothing) {
  HealthHistory history(0);
  history.record("a", transition(1, Health::kUnknown, Health::kHealthy));
  EXPECT_TRUE(history.get("a").transitions.empty());
  EXPECT_EQ(history.trackedEndpointsForTest(), 0u);
}

}  // namespace
}  // namespace wsvisor
