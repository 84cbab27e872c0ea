// What recording one heartbeat's metrics costs the io thread (supervisor/metrics.cc), without
// sockets: SupervisedEndpoint::recordMetrics counts the heartbeat sent and, when the reply comes,
// puts its round-trip time into the endpoint's RTT histogram.
//
// "Time" per iteration is the cost of one call.
// BM_ObserveRtt                   one endpoint's histogram, hot in cache; the RTTs cycle through
//                                 values in different buckets, so the bucket search cannot be
//                                 learnt by the branch predictor.
// BM_ObserveRttManySeries/N       N endpoints visited in turn, as an io thread with N endpoints
//                                 visits them once per interval: the cache-cold figure.
// BM_HeartbeatSent                wsvisor_heartbeats_sent_total, counted by each io thread in its
//                                 own ShardCounters; with 2 threads, two io threads counting at
//                                 once.
// BM_HeartbeatMetrics             both, as one answered heartbeat records them.
#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "supervisor/metrics.h"

namespace {

using wsvisor::EndpointSeries;
using wsvisor::Metrics;
using wsvisor::MetricsOptions;

// Round-trip times in seconds across the buckets (100 µs .. 10 s), including a bound and +Inf.
constexpr std::array<double, 8> kRtts = {0.00008, 0.0001, 0.00042, 0.0031, 0.012, 0.3, 2.6, 11};

void BM_ObserveRtt(benchmark::State& state) {
  Metrics metrics{MetricsOptions{}};
  auto series = metrics.endpointSeries("bench", {});
  size_t next = 0;
  for (auto _ : state) {
    series->observeRtt(kRtts[next]);
    next = (next + 1) % kRtts.size();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ObserveRtt);

void BM_ObserveRttManySeries(benchmark::State& state) {
  Metrics metrics{MetricsOptions{}};
  const auto n = static_cast<size_t>(state.range(0));
  std::vector<std::shared_ptr<EndpointSeries>> series;
  series.reserve(n);
  for (size_t i = 0; i < n; ++i) series.push_back(metrics.endpointSeries(std::to_string(i), {}));
  size_t next = 0;
  for (auto _ : state) {
    series[next]->observeRtt(kRtts[next % kRtts.size()]);
    if (++next == n) next = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ObserveRttManySeries)->Arg(10000)->Arg(19000);

// Shared by the benchmark's threads, as one process' io threads share it.
Metrics& sharedMetrics() {
  static Metrics metrics{MetricsOptions{}};
  return metrics;
}

void BM_HeartbeatSent(benchmark::State& state) {
  wsvisor::ShardCounters& counters = sharedMetrics().addShardCounters();  // this "io thread's"
  for (auto _ : state) counters.heartbeatSent();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HeartbeatSent)->Threads(1)->Threads(2);

void BM_HeartbeatMetrics(benchmark::State& state) {
  Metrics& metrics = sharedMetrics();
  wsvisor::ShardCounters& counters = metrics.addShardCounters();
  auto series = metrics.endpointSeries("bench-" + std::to_string(state.thread_index()), {});
  size_t next = 0;
  for (auto _ : state) {
    counters.heartbeatSent();
    series->observeRtt(kRtts[next]);
    next = (next + 1) % kRtts.size();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HeartbeatMetrics)->Threads(1)->Threads(2);

}  // namespace

BENCHMARK_MAIN();
