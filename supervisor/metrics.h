#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "supervisor/core/endpoint_status.h"
#include "supervisor/core/probe.h"

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

// The per-endpoint series of one endpoint. Shared by every registration of the same id and
// labels, and removed from /metrics when the last one lets go: a quick unregister/register of
// the same id on two io threads must not remove the series the new registration writes to.
class EndpointSeries {
 public:
  ~EndpointSeries();
  void observeRtt(double seconds) { rtt_->Observe(seconds); }
  void setUp(bool up) { up_->Set(up ? 1 : 0); }
  void setFlapping(bool flapping) { flapping_->Set(flapping ? 1 : 0); }
  void setLastTransition(double unix_seconds) { last_transition_->Set(unix_seconds); }

 private:
  friend class Metrics;
  class Metrics* metrics_ = nullptr;
  std::string key_;
  bool removed_ = false;  // guarded by Metrics::mu_
  prometheus::Gauge* up_ = nullptr;
  prometheus::Gauge* flapping_ = nullptr;
  prometheus::Histogram* rtt_ = nullptr;
  prometheus::Gauge* last_transition_ = nullptr;
};

// Every wsvisor metric family is declared in Metrics' constructor (names, help, labels, buckets),
// except the few computed at scrape time, which scrape_collectors.h declares:
//   wsvisor_build_info, wsvisor_heartbeats_sent_total, wsvisor_heartbeat_failures_total{reason},
//   wsvisor_connection_attempts_total{result}, wsvisor_health_transitions_total{to},
//   wsvisor_config_reloads_total{result}, wsvisor_max_endpoints, wsvisor_probes_total{result},
//   wsvisor_endpoint_up{endpoint}, wsvisor_endpoint_flapping{endpoint},
//   wsvisor_heartbeat_rtt_seconds{endpoint},
//   wsvisor_endpoint_last_transition_timestamp_seconds{endpoint},
//   grpc_server_started_total, grpc_server_handled_total, grpc_server_handling_seconds;
//   scrape time: wsvisor_endpoints{health}, wsvisor_watch_streams, process_*.
// Counters and gauges are atomics; the RTT histogram of an endpoint is
// written only by that endpoint's io thread (its internal mutex is uncontended but for scrapes).
// Aggregates that are a function of current state (endpoints per health, open watch streams)
// are computed at scrape time by StateCollector instead of being kept in step by hand.
class Metrics {
 public:
  explicit Metrics(MetricsOptions options);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  const MetricsOptions& options() const { return options_; }

  void heartbeatSent() { heartbeats_sent_->Increment(); }
  void failureRecorded(core::FailureReason reason);
  // `result` is "success" or the failure reason of the attempt.
  void connectionAttempt(core::FailureReason failure_or_none);
  void healthTransition(core::Health to);
  // The registration limit in force (the smaller of --max-endpoints and the open-files budget).
  void setMaxEndpoints(size_t limit) { max_endpoints_->Set(static_cast<double>(limit)); }
  void configReload(bool applied) { (applied ? config_applied_ : config_rejected_)->Increment(); }
  // A ProbeEndpoint call's probe ended (shut down counts as cancelled).
  void probeFinished(core::ProbeResult::Outcome outcome);
  // Shutdown: endpoints are going away together with the process, and prometheus-cpp's
  // Family::Remove() scans the whole family, so removing 19,000 series one by one would take
  // seconds. From now on released series stay until the process exits.
  void keepSeriesOnRelease() { keep_series_on_release_.store(true); }
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
  void release(EndpointSeries& series);
  void removeSeriesLocked(EndpointSeries& series);

  const MetricsOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;

  prometheus::Counter* heartbeats_sent_;
  std::array<prometheus::Counter*, core::kFailureReasonCount> failures_{};
  std::array<prometheus::Counter*, core::kFailureReasonCount> attempts_{};  // [kNone] = success
  std::array<prometheus::Counter*, core::kHealthCount> transitions_{};
  prometheus::Gauge* max_endpoints_;
  prometheus::Counter* config_applied_;
  prometheus::Counter* config_rejected_;
  prometheus::Counter* probes_succeeded_;
  prometheus::Counter* probes_failed_;
  prometheus::Counter* probes_cancelled_;
  prometheus::Family<prometheus::Gauge>* endpoint_up_;
  prometheus::Family<prometheus::Gauge>* endpoint_flapping_;
  prometheus::Family<prometheus::Histogram>* endpoint_rtt_;
  prometheus::Family<prometheus::Gauge>* endpoint_last_transition_;
  prometheus::Family<prometheus::Counter>* grpc_started_;
  prometheus::Family<prometheus::Counter>* grpc_handled_;
  prometheus::Family<prometheus::Histogram>* grpc_handling_seconds_;

  std::atomic<bool> keep_series_on_release_{false};
  std::mutex mu_;  // guards series_ and grpc_methods_ (control path only)
  struct SeriesSlot {
    std::weak_ptr<EndpointSeries> live;
    EndpointSeries* raw = nullptr;  // valid until its destructor has run release()
  };
  std::map<std::string, SeriesSlot> series_;
  std::map<std::string, GrpcMethodSeries> grpc_methods_;
};

// RTT buckets: 100 µs to 10 s, roughly ×2.5 per step.
const std::vector<double>& rttBucketsSeconds();

}  // namespace wsvisor
