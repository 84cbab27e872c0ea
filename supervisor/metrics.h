#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "supervisor/core/endpoint_status.h"
#include "supervisor/core/probe.h"
#include "supervisor/mutex.h"

namespace wsvisor {

struct MetricsOptions {
  // Series with an `endpoint` label (up, RTT histogram, last transition). Off: aggregates only.
  bool per_endpoint = true;
  // Endpoint label keys copied onto per-endpoint series, as Prometheus label names (see
  // prometheusLabelName()).
  std::vector<std::string> copied_label_keys;
  std::string version;
  std::string revision;
};

// "app.kubernetes.io/name" → "app_kubernetes_io_name": endpoint label keys allow characters that
// Prometheus label names do not.
std::string prometheusLabelName(const std::string& key);

// Checks --metrics-endpoint-labels: every key must give a distinct label name that neither
// Prometheus (__*, job, instance, le) nor wsvisor (endpoint) already uses on per-endpoint series.
// Returns why not, or nullopt.
std::optional<std::string> checkCopiedLabelKeys(const std::vector<std::string>& keys);

// RTT buckets: 100 µs to 10 s, roughly ×2.5 per step.
const std::vector<double>& rttBucketsSeconds();

// The RTT histogram of one endpoint: a count per bucket (rttBucketsSeconds(), then +Inf) and the
// sum of the observations. One writer, the endpoint's io thread; any number of readers (scrapes).
//
// observe() is a relaxed load and store of one bucket and of the sum: no lock and no
// read-modify-write, whose locked instruction would cost more than the rest of the observation.
// With a single writer that is exact, since nobody else stores to these fields. (The series is
// shared by registrations of the same id on different io threads, but only one of them records
// at a time: SupervisedEndpoint records nothing once its registration is retired, which happens
// before its successor is created. Were two writers ever to overlap, an observation could be
// lost, never torn.)
//
// What a reader sees: every field whole, but not all at one instant, so an observation made
// during a snapshot may be in its bucket and not yet in the sum, or the other way round. The
// count is therefore not stored but derived from the buckets (Snapshot::count()): _count always
// equals the +Inf bucket and the cumulative buckets never decrease, as Prometheus requires; only
// _sum may be one observation ahead of or behind _count, which Prometheus does not check. Each
// bucket only grows, so no scrape sees a bucket or _count lower than an earlier scrape did.
class RttHistogram {
 public:
  // rttBucketsSeconds() and +Inf.
  static constexpr size_t kBuckets = 17;

  struct Snapshot {
    std::array<uint64_t, kBuckets> counts{};  // per bucket, not cumulative
    double sum = 0;
    // The number of observations: the sum of the buckets.
    uint64_t count() const;
  };

  // The writer's call.
  void observe(double seconds);
  Snapshot snapshot() const;

  // The first bucket whose upper bound is >= seconds (as prometheus-cpp's Histogram and
  // std::lower_bound count), kBuckets - 1 (+Inf) past the last bound.
  static size_t bucketOf(double seconds);

 private:
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<double> sum_{0};
};

// The counters that io threads bump on every heartbeat, one set per io thread (see
// Metrics::addShardCounters()); a scrape reports their sum. Written only by the io thread that
// owns them, so a bump is a relaxed load and store, and each set has a cache line of its own, so
// io threads never write to a shared line. (One prometheus::Counter for all io threads made every
// heartbeat a compare-and-swap loop on a line the io threads passed back and forth.)
class alignas(64) ShardCounters {
 public:
  // wsvisor_heartbeats_sent_total
  void heartbeatSent() {
    heartbeats_sent_.store(heartbeats_sent_.load(std::memory_order_relaxed) + 1,
                           std::memory_order_relaxed);
  }

 private:
  friend class Metrics;
  std::atomic<uint64_t> heartbeats_sent_{0};
};

// The per-endpoint series of one endpoint. Shared by every registration of the same id and
// labels, and removed from /metrics when the last one lets go: a quick unregister/register of
// the same id on two io threads must not remove the series the new registration writes to.
//
// Holds only the values; the families, label names and bucket bounds are Metrics', and the
// samples are built when Prometheus scrapes. (An entry in each of four prometheus-cpp Families
// instead, each with its own copy of the label map, a hash node and a separately allocated
// metric, took ~1.5 KiB of heap in 16 allocations per endpoint; this takes ~0.4 KiB in 2.)
class EndpointSeries {
 public:
  ~EndpointSeries();
  // The endpoint's io thread's call (see RttHistogram).
  void observeRtt(double seconds) { rtt_.observe(seconds); }
  void setUp(bool up) { up_.store(up, std::memory_order_relaxed); }
  void setFlapping(bool flapping) { flapping_.store(flapping, std::memory_order_relaxed); }
  void setLastTransition(double unix_seconds) {
    last_transition_.store(unix_seconds, std::memory_order_relaxed);
  }

 private:
  friend class Metrics;
  class Metrics* metrics_ = nullptr;
  std::string id_;
  std::vector<std::string> copied_values_;  // of MetricsOptions::copied_label_keys, in order
  std::atomic<bool> up_{false};
  std::atomic<bool> flapping_{false};
  std::atomic<double> last_transition_{0};
  RttHistogram rtt_;
};

// Every wsvisor metric family is declared in Metrics' constructor (names, help, labels, buckets),
// except the per-endpoint families, whose samples endpointSeriesCollector() builds from the
// EndpointSeries at scrape time, and wsvisor_heartbeats_sent_total, which
// shardCountersCollector() sums from the ShardCounters at scrape time (both declared in
// metrics.cc), and the few computed at scrape time from other state, which scrape_collectors.h
// declares:
//   wsvisor_build_info, wsvisor_heartbeats_sent_total, wsvisor_heartbeat_failures_total{reason},
//   wsvisor_connection_attempts_total{result}, wsvisor_health_transitions_total{to},
//   wsvisor_config_reloads_total{result}, wsvisor_max_endpoints,
//   wsvisor_endpoints_stored_spec_invalid, wsvisor_probes_total{result},
//   wsvisor_max_watch_streams, wsvisor_watch_streams_exhausted_total{reason},
//   wsvisor_endpoint_up{endpoint}, wsvisor_endpoint_flapping{endpoint},
//   wsvisor_heartbeat_rtt_seconds{endpoint},
//   wsvisor_endpoint_last_transition_timestamp_seconds{endpoint},
//   grpc_server_started_total, grpc_server_handled_total, grpc_server_handling_seconds;
//   scrape time: wsvisor_endpoints{health}, wsvisor_watch_streams, process_*.
// Counters and gauges are atomics; what changes with every heartbeat is written without a lock or
// an atomic read-modify-write: the RTT histogram of an endpoint only by that endpoint's io thread
// (RttHistogram), wsvisor_heartbeats_sent_total by each io thread in its own ShardCounters,
// summed at scrape time.
// Aggregates that are a function of current state (endpoints per health, open watch streams)
// are computed at scrape time by HealthStateCollector (scrape_collectors.h) instead of being
// kept in step by hand.
class Metrics {
 public:
  explicit Metrics(MetricsOptions options);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  // The per-endpoint families (wsvisor_endpoint_up, wsvisor_endpoint_flapping,
  // wsvisor_heartbeat_rtt_seconds, wsvisor_endpoint_last_transition_timestamp_seconds); they are
  // absent while no endpoint has series. Register it with the exposer next to registry().
  std::shared_ptr<prometheus::Collectable> endpointSeriesCollector() const {
    return endpoint_collector_;
  }
  const MetricsOptions& options() const { return options_; }

  // wsvisor_heartbeats_sent_total, the sum of every ShardCounters, built when Prometheus scrapes.
  // Register it with the exposer next to registry().
  std::shared_ptr<prometheus::Collectable> shardCountersCollector() const {
    return shard_counters_collector_;
  }
  // The counters of one io thread, to be written by that thread only. They live as long as this
  // Metrics, so that what a shard counted stays in the sum after the shard has gone.
  ShardCounters& addShardCounters();

  void failureRecorded(core::FailureReason reason);
  // `result` is "success" or the failure reason of the attempt.
  void connectionAttempt(core::FailureReason failure_or_none);
  void healthTransition(core::Health to);
  // The registration limit in force (the smaller of --max-endpoints and the open-files budget).
  void setMaxEndpoints(size_t limit) { max_endpoints_->Set(static_cast<double>(limit)); }
  // The WatchHealth stream limit in force (--max-watch-streams).
  void setMaxWatchStreams(size_t limit) { max_watch_streams_->Set(static_cast<double>(limit)); }
  // A WatchHealth stream was refused because --max-watch-streams were open.
  void watchStreamRefused() { watch_refused_max_streams_->Increment(); }
  // A WatchHealth stream was ended because what it had yet to be sent exceeded
  // --watch-stream-bytes even coalesced.
  void watchStreamOverBudget() { watch_ended_byte_budget_->Increment(); }
  // A WatchHealth stream was ended because it fell so far behind that unregistrations it missed
  // were no longer kept.
  void watchStreamTooFarBehind() { watch_ended_too_far_behind_->Increment(); }
  // Registered endpoints whose stored spec failed validation (Registry::restore()).
  void setStoredSpecsInvalid(size_t count) {
    stored_specs_invalid_->Set(static_cast<double>(count));
  }
  void configReload(bool applied) { (applied ? config_applied_ : config_rejected_)->Increment(); }
  // A ProbeEndpoint call's probe ended (shut down counts as cancelled).
  void probeFinished(core::ProbeResult::Outcome outcome);
  // Shutdown: endpoints are going away together with the process. From now on released series
  // stay (with their last values) until the process exits.
  void keepSeriesOnRelease();
  // Null when per-endpoint series are off.
  std::shared_ptr<EndpointSeries> endpointSeries(const std::string& id,
                                                 const std::map<std::string, std::string>& labels);

  // gRPC server metrics, in go-grpc-prometheus' names and labels.
  struct GrpcMethodSeries {
    prometheus::Counter* started = nullptr;
    prometheus::Histogram* handling_seconds = nullptr;
    prometheus::Family<prometheus::Counter>* handled = nullptr;
    std::map<std::string, std::string> labels;
  };
  // Series for one method, created once and cached.
  GrpcMethodSeries& grpcMethod(const std::string& full_method, const std::string& type);
  void grpcHandled(GrpcMethodSeries& method, const std::string& code, double seconds);

 private:
  friend class EndpointSeries;
  class ScrapeTimeCollector;
  void release(EndpointSeries& series);
  std::vector<prometheus::MetricFamily> collectEndpointSeries();
  std::vector<prometheus::MetricFamily> collectShardCounters();

  const MetricsOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;

  std::array<prometheus::Counter*, core::kFailureReasonCount> failures_{};
  std::array<prometheus::Counter*, core::kFailureReasonCount> attempts_{};  // [kNone] = success
  std::array<prometheus::Counter*, core::kHealthCount> transitions_{};
  prometheus::Gauge* max_endpoints_;
  prometheus::Gauge* max_watch_streams_;
  prometheus::Counter* watch_refused_max_streams_;
  prometheus::Counter* watch_ended_byte_budget_;
  prometheus::Counter* watch_ended_too_far_behind_;
  prometheus::Gauge* stored_specs_invalid_;
  prometheus::Counter* config_applied_;
  prometheus::Counter* config_rejected_;
  prometheus::Counter* probes_succeeded_;
  prometheus::Counter* probes_failed_;
  prometheus::Counter* probes_cancelled_;
  prometheus::Family<prometheus::Counter>* grpc_started_;
  prometheus::Family<prometheus::Counter>* grpc_handled_;
  prometheus::Family<prometheus::Histogram>* grpc_handling_seconds_;

  // Per-endpoint label names as the exposition orders them (by name): each with the index of
  // its value, 0 for the endpoint id and i for copied_label_keys[i - 1].
  std::vector<std::pair<std::string, size_t>> endpoint_label_order_;
  std::shared_ptr<prometheus::Collectable> endpoint_collector_;
  std::shared_ptr<prometheus::Collectable> shard_counters_collector_;

  std::atomic<bool> keep_series_on_release_{false};
  Mutex mu_;  // the control path and scrapes
  // By the endpoint id and copied label values. Expired: the series is being destroyed, and
  // its release() (waiting for mu_) erases the entry unless a new series has taken it over.
  std::map<std::string, std::weak_ptr<EndpointSeries>> series_ WSV_GUARDED_BY(mu_);
  std::map<std::string, GrpcMethodSeries> grpc_methods_ WSV_GUARDED_BY(mu_);
  // Never removed (see addShardCounters()); unique_ptr, so that each keeps its address.
  std::vector<std::unique_ptr<ShardCounters>> shard_counters_ WSV_GUARDED_BY(mu_);
  // Every live series once keepSeriesOnRelease() was called. Declared last: destroyed first, while
  // release() can still read keep_series_on_release_.
  std::vector<std::shared_ptr<EndpointSeries>> kept_series_ WSV_GUARDED_BY(mu_);
};

}  // namespace wsvisor
