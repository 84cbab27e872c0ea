#include "supervisor/bounded_ring.h"

#include <gtest/gtest.h>

#include <vector>

namespace wsvisor {
namespace {

std::vector<int> contents(const BoundedRing<int>& ring) {
  std::vector<int> values;
  for (size_t i = 0; i < ring.size(); ++i) values.push_back(ring[i]);
  return values;
}

TEST(BoundedRingTest, KeepsTheLastValuesOldestFirst) {
  BoundedRing<int> ring(3);
  EXPECT_FALSE(ring.push(1));
  EXPECT_FALSE(ring.push(2));
  EXPECT_FALSE(ring.push(3));
  EXPECT_EQ(contents(ring), (std::vector<int>{1, 2, 3}));
  EXPECT_TRUE(ring.push(4));  // pushes 1 out
  EXPECT_TRUE(ring.push(5));
  EXPECT_EQ(contents(ring), (std::vector<int>{3, 4, 5}));
  for (int i = 6; i <= 100; ++i) EXPECT_TRUE(ring.push(i));
  EXPECT_EQ(contents(ring), (std::vector<int>{98, 99, 100}));
}

TEST(BoundedRingTest, AllocatesOnDemandAndNeverPastTheBound) {
  BoundedRing<int> ring(100);
  EXPECT_EQ(ring.allocated(), 0u);
  ring.push(1);
  EXPECT_EQ(ring.allocated(), 1u);
  for (int i = 0; i < 5; ++i) ring.push(i);
  EXPECT_EQ(ring.allocated(), 8u);  // doubling: 1, 2, 4, 8
  for (int i = 0; i < 1000; ++i) ring.push(i);
  EXPECT_EQ(ring.size(), 100u);
  EXPECT_EQ(ring.allocated(), 100u);  // 64 -> 100, not 128
}

TEST(BoundedRingTest, BoundZeroKeepsNothing) {
  BoundedRing<int> ring(0);
  EXPECT_TRUE(ring.push(1));
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(ring.allocated(), 0u);
}

}  // namespace
}  // namespace wsvisor
