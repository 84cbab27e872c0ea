#include "supervisor/scrape_collectors.h"

#include <gtest/gtest.h>

namespace wsvisor {
namespace {

TEST(HeapCollectorTest, ExportsWhatTheReaderGivesAsAGauge) {
  HeapCollector collector([] { return std::optional<uint64_t>(123456789); });
  const auto families = collector.Collect();
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].name, "wsvisor_heap_allocated_bytes");
  EXPECT_EQ(families[0].type, prometheus::MetricType::Gauge);
  EXPECT_FALSE(families[0].help.empty());
  ASSERT_EQ(families[0].metric.size(), 1u);
  EXPECT_TRUE(families[0].metric[0].label.empty());
  EXPECT_EQ(families[0].metric[0].gauge.value, 123456789.0);
}

TEST(HeapCollectorTest, ReadsAtEachCollect) {
  uint64_t bytes = 1000;
  HeapCollector collector([&] { return std::optional<uint64_t>(bytes); });
  EXPECT_EQ(collector.Collect()[0].metric[0].gauge.value, 1000.0);
  bytes = 2000;
  EXPECT_EQ(collector.Collect()[0].metric[0].gauge.value, 2000.0);
}

TEST(HeapCollectorTest, ExportsNothingWithoutAFigure) {
  EXPECT_TRUE(HeapCollector(nullptr).Collect().empty());
  EXPECT_TRUE(HeapCollector([] { return std::optional<uint64_t>(); }).Collect().empty());
}

}  // namespace
}  // namespace wsvisor
