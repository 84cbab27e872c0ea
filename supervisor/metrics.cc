#include "supervisor/metrics.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <set>

namespace wsvisor {

namespace {

const char* kEndpointLabel = "endpoint";

constexpr std::array<double, RttHistogram::kBuckets - 1> kRttBoundsSeconds = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};

// The families built at scrape time: the per-endpoint series and the sums of ShardCounters.
struct ScrapeTimeFamily {
  const char* name;
  const char* help;
  prometheus::MetricType type;
};
const ScrapeTimeFamily kEndpointUp = {"wsvisor_endpoint_up",
                                      "1 while the endpoint is HEALTHY, else 0.",
                                      prometheus::MetricType::Gauge};
const ScrapeTimeFamily kEndpointFlapping = {
    "wsvisor_endpoint_flapping",
    "1 while the endpoint is FLAPPING (its health keeps changing), else 0.",
    prometheus::MetricType::Gauge};
const ScrapeTimeFamily kEndpointRtt = {
    "wsvisor_heartbeat_rtt_seconds",
    "Round-trip time of answered heartbeats (PING and TEXT modes).",
    prometheus::MetricType::Histogram};
const ScrapeTimeFamily kEndpointLastTransition = {
    "wsvisor_endpoint_last_transition_timestamp_seconds",
    "Unix time of the endpoint's last health transition (or registration).",
    prometheus::MetricType::Gauge};
const ScrapeTimeFamily kHeartbeatsSent = {
    "wsvisor_heartbeats_sent_total", "Heartbeats sent (pings in PING mode, payloads in TEXT mode).",
    prometheus::MetricType::Counter};

prometheus::MetricFamily emptyFamily(const ScrapeTimeFamily& f, size_t series) {
  prometheus::MetricFamily family;
  family.name = f.name;
  family.help = f.help;
  family.type = f.type;
  family.metric.reserve(series);
  return family;
}

// The key of an endpoint's series: its id and copied label values.
std::string seriesKey(const std::string& id, const std::vector<std::string>& copied_values) {
  std::string key = id;
  for (const std::string& value : copied_values) key += '\n' + value;
  return key;
}

std::vector<double> grpcBuckets() {
  return {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

}  // namespace

const std::vector<double>& rttBucketsSeconds() {
  static const std::vector<double> buckets(kRttBoundsSeconds.begin(), kRttBoundsSeconds.end());
  return buckets;
}

void RttHistogram::observe(double seconds) {
  std::atomic<uint64_t>& bucket = counts_[bucketOf(seconds)];
  bucket.store(bucket.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  sum_.store(sum_.load(std::memory_order_relaxed) + seconds, std::memory_order_relaxed);
}

size_t RttHistogram::bucketOf(double seconds) {
  // A lower bound over the 16 fixed bounds without branches on the value: four halvings, each a
  // compare and a conditional move, then one last compare. A mispredicted branch costs about as
  // much as the whole search, and RTTs of different endpoints land in different buckets.
  static_assert(kRttBoundsSeconds.size() == 16, "four halvings cover 16 bounds");
  const double* base = kRttBoundsSeconds.data();
  size_t n = kRttBoundsSeconds.size();
  while (n > 1) {
    const size_t half = n / 2;
    base = base[half] < seconds ? base + half : base;
    n -= half;
  }
  return static_cast<size_t>(base - kRttBoundsSeconds.data()) + (*base < seconds ? 1 : 0);
}

RttHistogram::Snapshot RttHistogram::snapshot() const {
  Snapshot snapshot;
  for (size_t i = 0; i < kBuckets; ++i) {
    snapshot.counts[i] = counts_[i].load(std::memory_order_relaxed);
  }
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

uint64_t RttHistogram::Snapshot::count() const {
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  return total;
}

// Hands what one of Metrics' scrape-time builders returns (the per-endpoint families, the sums
// of the io threads' counters) to the exposer; holds no state of its own.
class Metrics::ScrapeTimeCollector : public prometheus::Collectable {
 public:
  using Build = std::vector<prometheus::MetricFamily> (Metrics::*)();
  ScrapeTimeCollector(Metrics& metrics, Build build) : metrics_(metrics), build_(build) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return (metrics_.*build_)(); }

 private:
  Metrics& metrics_;
  const Build build_;
};

std::optional<std::string> checkCopiedLabelKeys(const std::vector<std::string>& keys) {
  std::set<std::string> names;
  for (const std::string& key : keys) {
    const std::string name = prometheusLabelName(key);
    if (name.rfind("__", 0) == 0) {
      return "'" + key + "' becomes '" + name + "': names starting with __ are Prometheus' own";
    }
    if (name == "endpoint" || name == "le" || name == "job" || name == "instance") {
      return "'" + key + "' becomes '" + name +
             "', which wsvisor or Prometheus already uses on these series";
    }
    if (!names.insert(name).second) {
      return "'" + key + "' becomes '" + name + "', like another key in the list";
    }
  }
  return std::nullopt;
}

std::string prometheusLabelName(const std::string& key) {
  std::string name;
  for (char c : key) {
    name.push_back(std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  }
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) name.insert(0, "_");
  return name;
}

Metrics::Metrics(MetricsOptions options)
    : options_(std::move(options)),
      registry_(std::make_shared<prometheus::Registry>()),
      endpoint_collector_(
          std::make_shared<ScrapeTimeCollector>(*this, &Metrics::collectEndpointSeries)),
      shard_counters_collector_(
          std::make_shared<ScrapeTimeCollector>(*this, &Metrics::collectShardCounters)) {
  endpoint_label_order_.emplace_back(kEndpointLabel, 0);
  for (size_t i = 0; i < options_.copied_label_keys.size(); ++i) {
    endpoint_label_order_.emplace_back(prometheusLabelName(options_.copied_label_keys[i]), i + 1);
  }
  std::sort(endpoint_label_order_.begin(), endpoint_label_order_.end());

  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  auto& registry = *registry_;

  BuildGauge()
      .Name("wsvisor_build_info")
      .Help("Build of the running wsvisor; the value is always 1.")
      .Register(registry)
      .Add({{"version", options_.version}, {"revision", options_.revision}})
      .Set(1);

  auto& failures =
      BuildCounter()
          .Name("wsvisor_heartbeat_failures_total")
          .Help(
              "Failed heartbeats and lost or failed connections, by the reason reported in "
              "the API.")
          .Register(registry);
  auto& attempts = BuildCounter()
                       .Name("wsvisor_connection_attempts_total")
                       .Help("Connection attempts by result: success or the failure reason.")
                       .Register(registry);
  for (int i = 0; i < core::kFailureReasonCount; ++i) {
    const auto reason = static_cast<core::FailureReason>(i);
    if (reason != core::FailureReason::kNone) {
      failures_[i] = &failures.Add({{"reason", core::toString(reason)}});
    }
  }
  // Only the results an attempt can have (it ends before any heartbeat is sent).
  using core::FailureReason;
  for (FailureReason result :
       {FailureReason::kNone, FailureReason::kDns, FailureReason::kConnectionRefused,
        FailureReason::kConnectTimeout, FailureReason::kTls, FailureReason::kHandshakeRejected,
        FailureReason::kNetworkError}) {
    attempts_[static_cast<size_t>(result)] = &attempts.Add(
        {{"result", result == FailureReason::kNone ? "success" : core::toString(result)}});
  }

  auto& transitions = BuildCounter()
                          .Name("wsvisor_health_transitions_total")
                          .Help("Health transitions of endpoints, by the health entered.")
                          .Register(registry);
  for (auto health : {core::Health::kUnknown, core::Health::kHealthy, core::Health::kUnhealthy,
                      core::Health::kFlapping}) {
    transitions_[static_cast<size_t>(health)] = &transitions.Add({{"to", core::toString(health)}});
  }

  max_endpoints_ = &BuildGauge()
                        .Name("wsvisor_max_endpoints")
                        .Help(
                            "Registrations beyond this many endpoints are refused: the smaller "
                            "of --max-endpoints and what the open-files limit allows.")
                        .Register(registry)
                        .Add({});

  stored_specs_invalid_ =
      &BuildGauge()
           .Name("wsvisor_endpoints_stored_spec_invalid")
           .Help(
               "Registered endpoints that are not supervised because the spec read from the store "
               "no longer passes validation; each is fixed by UpdateEndpoint or removed by "
               "UnregisterEndpoint (see the start-up log for the id and field).")
           .Register(registry)
           .Add({});

  auto& reloads = BuildCounter()
                      .Name("wsvisor_config_reloads_total")
                      .Help(
                          "Applications of the --config file (start-up and SIGHUP), by result: "
                          "applied, or rejected (bad file; running endpoints unchanged).")
                      .Register(registry);
  config_applied_ = &reloads.Add({{"result", "applied"}});
  config_rejected_ = &reloads.Add({{"result", "rejected"}});

  auto& probes = BuildCounter()
                     .Name("wsvisor_probes_total")
                     .Help(
                         "ProbeEndpoint probes, by result: success, failure (the upstream failed "
                         "the probe), or cancelled (by the caller, its deadline or a shutdown).")
                     .Register(registry);
  probes_succeeded_ = &probes.Add({{"result", "success"}});
  probes_failed_ = &probes.Add({{"result", "failure"}});
  probes_cancelled_ = &probes.Add({{"result", "cancelled"}});

  max_watch_streams_ = &BuildGauge()
                            .Name("wsvisor_max_watch_streams")
                            .Help(
                                "WatchHealth streams beyond this many open at once are refused "
                                "(--max-watch-streams).")
                            .Register(registry)
                            .Add({});
  auto& watch_exhausted =
      BuildCounter()
          .Name("wsvisor_watch_streams_exhausted_total")
          .Help(
              "WatchHealth streams answered RESOURCE_EXHAUSTED, by reason: max_streams (refused "
              "at open: --max-watch-streams were open), byte_budget (ended: what it had yet to "
              "be sent exceeded --watch-stream-bytes even with only the latest state per "
              "endpoint) or too_far_behind (ended: it fell so far behind that unregistrations it "
              "missed were no longer kept).")
          .Register(registry);
  watch_refused_max_streams_ = &watch_exhausted.Add({{"reason", "max_streams"}});
  watch_ended_byte_budget_ = &watch_exhausted.Add({{"reason", "byte_budget"}});
  watch_ended_too_far_behind_ = &watch_exhausted.Add({{"reason", "too_far_behind"}});

  grpc_started_ = &BuildCounter()
                       .Name("grpc_server_started_total")
                       .Help("Total number of RPCs started on the server.")
                       .Register(registry);
  grpc_handled_ = &BuildCounter()
                       .Name("grpc_server_handled_total")
                       .Help(
                           "Total number of RPCs completed on the server, regardless of "
                           "success or failure.")
                       .Register(registry);
  grpc_handling_seconds_ =
      &BuildHistogram()
           .Name("grpc_server_handling_seconds")
           .Help(
               "Histogram of response latency (seconds) of gRPC that had been application-level "
               "handled by the server.")
           .Register(registry);
}

void Metrics::failureRecorded(core::FailureReason reason) {
  if (auto* counter = failures_[static_cast<size_t>(reason)]) counter->Increment();
}

void Metrics::connectionAttempt(core::FailureReason failure_or_none) {
  prometheus::Counter* counter = attempts_[static_cast<size_t>(failure_or_none)];
  if (counter == nullptr)
    counter = attempts_[static_cast<size_t>(core::FailureReason::kNetworkError)];
  counter->Increment();
}

void Metrics::probeFinished(core::ProbeResult::Outcome outcome) {
  switch (outcome) {
    case core::ProbeResult::Outcome::kSucceeded:
      probes_succeeded_->Increment();
      return;
    case core::ProbeResult::Outcome::kFailed:
      probes_failed_->Increment();
      return;
    case core::ProbeResult::Outcome::kCancelled:
    case core::ProbeResult::Outcome::kShutDown:
      probes_cancelled_->Increment();
      return;
  }
}

void Metrics::healthTransition(core::Health to) {
  transitions_[static_cast<size_t>(to)]->Increment();
}

ShardCounters& Metrics::addShardCounters() {
  MutexLock lock(mu_);
  shard_counters_.push_back(std::make_unique<ShardCounters>());
  return *shard_counters_.back();
}

std::vector<prometheus::MetricFamily> Metrics::collectShardCounters() {
  uint64_t heartbeats_sent = 0;
  {
    MutexLock lock(mu_);
    for (const auto& counters : shard_counters_) {
      heartbeats_sent += counters->heartbeats_sent_.load(std::memory_order_relaxed);
    }
  }
  prometheus::MetricFamily family = emptyFamily(kHeartbeatsSent, 1);
  prometheus::ClientMetric metric;
  metric.counter.value = static_cast<double>(heartbeats_sent);
  family.metric.push_back(std::move(metric));
  std::vector<prometheus::MetricFamily> families;
  families.push_back(std::move(family));
  return families;
}

std::shared_ptr<EndpointSeries> Metrics::endpointSeries(
    const std::string& id, const std::map<std::string, std::string>& labels) {
  if (!options_.per_endpoint) return nullptr;
  std::vector<std::string> copied_values;
  copied_values.reserve(options_.copied_label_keys.size());
  for (const std::string& label_key : options_.copied_label_keys) {
    auto it = labels.find(label_key);
    copied_values.push_back(it == labels.end() ? "" : it->second);
  }
  const std::string key = seriesKey(id, copied_values);
  MutexLock lock(mu_);
  std::weak_ptr<EndpointSeries>& slot = series_[key];
  if (auto existing = slot.lock()) return existing;
  // An expired slot belongs to a previous holder of this key that is being destroyed and waits
  // for mu_ in release(): the new series takes the slot over, and that release() leaves it.
  auto series = std::make_shared<EndpointSeries>();
  series->id_ = id;
  series->copied_values_ = std::move(copied_values);
  series->metrics_ = this;
  slot = series;
  return series;
}

void Metrics::keepSeriesOnRelease() {
  MutexLock lock(mu_);
  if (keep_series_on_release_.exchange(true)) return;
  kept_series_.reserve(series_.size());
  for (const auto& [key, slot] : series_) {
    if (auto series = slot.lock()) kept_series_.push_back(std::move(series));
  }
}

void Metrics::release(EndpointSeries& series) {
  if (keep_series_on_release_.load()) return;
  MutexLock lock(mu_);
  auto it = series_.find(seriesKey(series.id_, series.copied_values_));
  // Not expired: a new registration of the same key has taken the slot over.
  if (it != series_.end() && it->second.expired()) series_.erase(it);
}

EndpointSeries::~EndpointSeries() {
  if (metrics_ != nullptr) metrics_->release(*this);
}

std::vector<prometheus::MetricFamily> Metrics::collectEndpointSeries() {
  // Declared before the lock: a series whose last holder let go meanwhile is destroyed when
  // `live` goes, and its release() takes mu_.
  std::vector<std::shared_ptr<EndpointSeries>> live;
  {
    MutexLock lock(mu_);
    live.reserve(series_.size());
    for (const auto& [key, slot] : series_) {
      if (auto series = slot.lock()) live.push_back(std::move(series));
    }
  }
  if (live.empty()) return {};
  prometheus::MetricFamily up = emptyFamily(kEndpointUp, live.size());
  prometheus::MetricFamily flapping = emptyFamily(kEndpointFlapping, live.size());
  prometheus::MetricFamily rtt = emptyFamily(kEndpointRtt, live.size());
  prometheus::MetricFamily last_transition = emptyFamily(kEndpointLastTransition, live.size());
  for (const auto& series : live) {
    prometheus::ClientMetric metric;
    metric.label.reserve(endpoint_label_order_.size());
    for (const auto& [name, index] : endpoint_label_order_) {
      metric.label.push_back({name, index == 0 ? series->id_ : series->copied_values_[index - 1]});
    }
    metric.gauge.value = series->up_.load(std::memory_order_relaxed) ? 1 : 0;
    up.metric.push_back(metric);
    metric.gauge.value = series->flapping_.load(std::memory_order_relaxed) ? 1 : 0;
    flapping.metric.push_back(metric);
    metric.gauge.value = series->last_transition_.load(std::memory_order_relaxed);
    last_transition.metric.push_back(metric);

    metric.gauge.value = 0;
    const RttHistogram::Snapshot rtt_now = series->rtt_.snapshot();
    // _count is the +Inf bucket, never a separately read figure (see RttHistogram).
    uint64_t cumulative = 0;
    metric.histogram.bucket.reserve(rtt_now.counts.size());
    for (size_t i = 0; i < rtt_now.counts.size(); ++i) {
      cumulative += rtt_now.counts[i];
      prometheus::ClientMetric::Bucket bucket;
      bucket.cumulative_count = cumulative;
      bucket.upper_bound = i < kRttBoundsSeconds.size() ? kRttBoundsSeconds[i]
                                                        : std::numeric_limits<double>::infinity();
      metric.histogram.bucket.push_back(bucket);
    }
    metric.histogram.sample_count = cumulative;
    metric.histogram.sample_sum = rtt_now.sum;
    rtt.metric.push_back(std::move(metric));
  }
  std::vector<prometheus::MetricFamily> families;
  families.reserve(4);
  families.push_back(std::move(up));
  families.push_back(std::move(flapping));
  families.push_back(std::move(rtt));
  families.push_back(std::move(last_transition));
  return families;
}

Metrics::GrpcMethodSeries& Metrics::grpcMethod(const std::string& full_method,
                                               const std::string& type) {
  MutexLock lock(mu_);
  auto it = grpc_methods_.find(full_method);
  if (it != grpc_methods_.end()) return it->second;
  // The server only routes the methods it registers, but the names come off the wire: past a
  // generous bound everything else shares one series, so no client can grow /metrics.
  constexpr size_t kMaxMethods = 64;
  const std::string key = grpc_methods_.size() < kMaxMethods ? full_method : "/unknown/unknown";
  if (it = grpc_methods_.find(key); it != grpc_methods_.end()) return it->second;
  // "/wsvisor.v1.Supervisor/GetEndpoint" → service "wsvisor.v1.Supervisor", method "GetEndpoint".
  std::string service = key.substr(1);
  std::string method;
  if (const size_t slash = service.find('/'); slash != std::string::npos) {
    method = service.substr(slash + 1);
    service.resize(slash);
  }
  GrpcMethodSeries series;
  series.labels = {{"grpc_service", service}, {"grpc_method", method}, {"grpc_type", type}};
  series.started = &grpc_started_->Add(series.labels);
  series.handling_seconds = &grpc_handling_seconds_->Add(series.labels, grpcBuckets());
  series.handled = grpc_handled_;
  return grpc_methods_.emplace(key, std::move(series)).first->second;
}

void Metrics::grpcHandled(GrpcMethodSeries& method, const std::string& code, double seconds) {
  auto labels = method.labels;
  labels["grpc_code"] = code;
  // Family::Add returns the existing series for known labels; codes are a fixed set of 17.
  method.handled->Add(labels).Increment();
  method.handling_seconds->Observe(seconds);
}

}  // namespace wsvisor
