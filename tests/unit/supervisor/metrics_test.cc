#include "supervisor/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace wsvisor {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

size_t lowerBoundBucket(double seconds) {
  const std::vector<double>& bounds = rttBucketsSeconds();
  return static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), seconds) -
                             bounds.begin());
}

const prometheus::MetricFamily* findFamily(const std::vector<prometheus::MetricFamily>& families,
                                           const std::string& name) {
  for (const auto& family : families) {
    if (family.name == name) return &family;
  }
  return nullptr;
}

double heartbeatsSent(Metrics& metrics) {
  const auto families = metrics.shardCountersCollector()->Collect();
  const auto* family = findFamily(families, "wsvisor_heartbeats_sent_total");
  return family == nullptr || family->metric.empty() ? -1 : family->metric[0].counter.value;
}

TEST(RttHistogramTest, BucketOfAgreesWithLowerBoundOnTheBounds) {
  const std::vector<double>& bounds = rttBucketsSeconds();
  ASSERT_EQ(bounds.size() + 1, RttHistogram::kBuckets);
  std::vector<double> values = {0, -1, 1e-9, 11, 1e300, kInf, -kInf};
  for (double bound : bounds) {
    values.push_back(bound);
    values.push_back(std::nextafter(bound, 0.0));
    values.push_back(std::nextafter(bound, kInf));
  }
  for (double value : values) {
    EXPECT_EQ(RttHistogram::bucketOf(value), lowerBoundBucket(value)) << value;
  }
  // A bound is in its own bucket (le is "less than or equal").
  for (size_t i = 0; i < bounds.size(); ++i) EXPECT_EQ(RttHistogram::bucketOf(bounds[i]), i);
  EXPECT_EQ(RttHistogram::bucketOf(10.000001), RttHistogram::kBuckets - 1);  // +Inf
}

TEST(RttHistogramTest, BucketOfAgreesWithLowerBoundOnRandomValues) {
  std::mt19937_64 random(17);
  std::uniform_real_distribution<double> exponent(-6, 2);  // 1 µs .. 100 s
  for (int i = 0; i < 100000; ++i) {
    const double value = std::pow(10.0, exponent(random));
    ASSERT_EQ(RttHistogram::bucketOf(value), lowerBoundBucket(value)) << value;
  }
}

TEST(RttHistogramTest, ObservationsLandInTheirBucketsAndAgreeWithSumAndCount) {
  RttHistogram histogram;
  EXPECT_EQ(histogram.snapshot().count(), 0u);
  EXPECT_EQ(histogram.snapshot().sum, 0);

  histogram.observe(0);       // below the first bound
  histogram.observe(0.0001);  // the first bound itself
  histogram.observe(0.0003);  // (0.00025, 0.0005]
  histogram.observe(0.0003);
  histogram.observe(10);    // the last bound
  histogram.observe(10.5);  // +Inf
  histogram.observe(1e6);   // +Inf
  const RttHistogram::Snapshot snapshot = histogram.snapshot();

  std::array<uint64_t, RttHistogram::kBuckets> expected{};
  expected[0] = 2;
  expected[2] = 2;
  expected[15] = 1;
  expected[16] = 2;
  EXPECT_EQ(snapshot.counts, expected);
  EXPECT_EQ(snapshot.count(), 7u);
  EXPECT_DOUBLE_EQ(snapshot.sum, 0 + 0.0001 + 0.0003 + 0.0003 + 10 + 10.5 + 1e6);
}

TEST(MetricsTest, RttHistogramIsExposedCumulativeWithCountEqualToInfBucket) {
  Metrics metrics{MetricsOptions{}};
  auto series = metrics.endpointSeries("a", {});
  ASSERT_NE(series, nullptr);
  for (double seconds : {0.00005, 0.0001, 0.002, 0.002, 0.7, 12.0}) series->observeRtt(seconds);

  const auto families = metrics.endpointSeriesCollector()->Collect();
  const auto* rtt = findFamily(families, "wsvisor_heartbeat_rtt_seconds");
  ASSERT_NE(rtt, nullptr);
  EXPECT_EQ(rtt->type, prometheus::MetricType::Histogram);
  ASSERT_EQ(rtt->metric.size(), 1u);
  const prometheus::ClientMetric::Histogram& h = rtt->metric[0].histogram;
  ASSERT_EQ(h.bucket.size(), RttHistogram::kBuckets);
  const std::vector<double>& bounds = rttBucketsSeconds();
  // le:                   0.0001 .. 0.0025 (i = 4) .. 1 (i = 12) .. 10, +Inf
  const std::vector<uint64_t> cumulative = {2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 6};
  for (size_t i = 0; i < h.bucket.size(); ++i) {
    EXPECT_EQ(h.bucket[i].upper_bound, i < bounds.size() ? bounds[i] : kInf) << i;
    EXPECT_EQ(h.bucket[i].cumulative_count, cumulative[i]) << "le=" << h.bucket[i].upper_bound;
  }
  EXPECT_EQ(h.sample_count, 6u);
  EXPECT_DOUBLE_EQ(h.sample_sum, 0.00005 + 0.0001 + 0.002 + 0.002 + 0.7 + 12.0);
}

TEST(MetricsTest, HeartbeatsSentIsTheSumOfTheShardsCounters) {
  Metrics metrics{MetricsOptions{}};
  // Exposed (as 0) before any io thread exists, like a counter in the registry.
  EXPECT_EQ(heartbeatsSent(metrics), 0);
  ShardCounters& a = metrics.addShardCounters();
  ShardCounters& b = metrics.addShardCounters();
  for (int i = 0; i < 3; ++i) a.heartbeatSent();
  for (int i = 0; i < 4; ++i) b.heartbeatSent();
  EXPECT_EQ(heartbeatsSent(metrics), 7);

  const auto families = metrics.shardCountersCollector()->Collect();
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].type, prometheus::MetricType::Counter);
  EXPECT_EQ(families[0].help, "Heartbeats sent (pings in PING mode, payloads in TEXT mode).");
  ASSERT_EQ(families[0].metric.size(), 1u);
  EXPECT_TRUE(families[0].metric[0].label.empty());
  // Not in the registry too: the family must be exposed once.
  EXPECT_EQ(findFamily(metrics.registry()->Collect(), "wsvisor_heartbeats_sent_total"), nullptr);
}

// One thread records as an io thread does while another scrapes, as the exposer's threads do:
// every scrape must be a histogram Prometheus accepts (cumulative buckets, _count equal to the
// +Inf bucket), and no figure may go down from one scrape to the next. Also a ThreadSanitizer
// test (runtime_unit_tests is labelled `concurrency`).
TEST(MetricsConcurrencyTest, ScrapesWhileAnIoThreadRecordsSeeConsistentGrowingFigures) {
  Metrics metrics{MetricsOptions{}};
  auto series = metrics.endpointSeries("a", {});
  ShardCounters& counters = metrics.addShardCounters();
  // Powers of two: their sum is exact in a double, whatever the order of additions.
  const std::vector<double> rtts = {0.0000152587890625, 0.0009765625, 0.03125, 0.25, 2, 16};
  // The io thread goes on until the scrapes have overlapped it many times.
  constexpr int kMinScrapes = 200;
  std::atomic<int> scrapes{0};
  std::atomic<bool> done{false};
  size_t observations = 0;  // read after join()

  std::thread io_thread([&] {
    while (scrapes.load() < kMinScrapes) {
      counters.heartbeatSent();
      series->observeRtt(rtts[observations % rtts.size()]);
      ++observations;
    }
    done.store(true);
  });

  uint64_t last_count = 0;
  double last_sent = 0;
  bool last_scrape = false;
  while (!last_scrape) {
    last_scrape = done.load();
    const double sent = heartbeatsSent(metrics);
    ASSERT_GE(sent, last_sent);
    last_sent = sent;
    const auto families = metrics.endpointSeriesCollector()->Collect();
    const auto* rtt = findFamily(families, "wsvisor_heartbeat_rtt_seconds");
    ASSERT_NE(rtt, nullptr);
    const prometheus::ClientMetric::Histogram& h = rtt->metric.at(0).histogram;
    for (size_t i = 1; i < h.bucket.size(); ++i) {
      ASSERT_GE(h.bucket[i].cumulative_count, h.bucket[i - 1].cumulative_count);
    }
    ASSERT_EQ(h.sample_count, h.bucket.back().cumulative_count);
    ASSERT_GE(h.sample_count, last_count);
    last_count = h.sample_count;
    scrapes.fetch_add(1);
  }
  io_thread.join();

  // The last scrape began after the io thread had finished: it sees every observation.
  EXPECT_EQ(last_count, observations);
  EXPECT_EQ(last_sent, static_cast<double>(observations));
  double expected_sum = 0;
  for (size_t i = 0; i < observations; ++i) expected_sum += rtts[i % rtts.size()];
  const auto families = metrics.endpointSeriesCollector()->Collect();
  EXPECT_EQ(
      findFamily(families, "wsvisor_heartbeat_rtt_seconds")->metric.at(0).histogram.sample_sum,
      expected_sum);
}

}  // namespace
}  // namespace wsvisor
