#include "supervisor/metrics.h"

#include <cctype>
#include <set>

namespace wsvisor {

namespace {

const char* kEndpointLabel = "endpoint";

std::vector<double> grpcBuckets() {
  return {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

}  // namespace

const std::vector<double>& rttBucketsSeconds() {
  static const std::vector<double> buckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                              0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                              1,      2.5,     5,      10};
  return buckets;
}

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
    : options_(std::move(options)), registry_(std::make_shared<prometheus::Registry>()) {
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

  heartbeats_sent_ = &BuildCounter()
                          .Name("wsvisor_heartbeats_sent_total")
                          .Help("Heartbeats sent (pings in PING mode, payloads in TEXT mode).")
                          .Register(registry)
                          .Add({});

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

  endpoint_up_ = &BuildGauge()
                      .Name("wsvisor_endpoint_up")
                      .Help("1 while the endpoint is HEALTHY, else 0.")
                      .Register(registry);
  endpoint_flapping_ =
      &BuildGauge()
           .Name("wsvisor_endpoint_flapping")
           .Help("1 while the endpoint is FLAPPING (its health keeps changing), else 0.")
           .Register(registry);
  endpoint_rtt_ = &BuildHistogram()
                       .Name("wsvisor_heartbeat_rtt_seconds")
                       .Help("Round-trip time of answered heartbeats (PING and TEXT modes).")
                       .Register(registry);
  endpoint_last_transition_ =
      &BuildGauge()
           .Name("wsvisor_endpoint_last_transition_timestamp_seconds")
           .Help("Unix time of the endpoint's last health transition (or registration).")
           .Register(registry);

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

std::shared_ptr<EndpointSeries> Metrics::endpointSeries(
    const std::string& id, const std::map<std::string, std::string>& labels) {
  if (!options_.per_endpoint) return nullptr;
  prometheus::Labels series_labels{{kEndpointLabel, id}};
  std::string key = id;
  for (const std::string& label_key : options_.copied_label_keys) {
    auto it = labels.find(label_key);
    const std::string value = it == labels.end() ? "" : it->second;
    series_labels[prometheusLabelName(label_key)] = value;
    key += '\n' + value;
  }
  std::lock_guard<std::mutex> lock(mu_);
  SeriesSlot& slot = series_[key];
  if (auto existing = slot.live.lock()) return existing;
  // The previous holder of this key is being destroyed and waits for mu_ in release(). Its
  // metrics must leave the families now: Family::Add() would otherwise hand the very same objects
  // to the new series, and release() would then delete them under it.
  if (slot.raw != nullptr) removeSeriesLocked(*slot.raw);
  auto series = std::make_shared<EndpointSeries>();
  series->key_ = key;
  series->up_ = &endpoint_up_->Add(series_labels);
  series->flapping_ = &endpoint_flapping_->Add(series_labels);
  series->rtt_ = &endpoint_rtt_->Add(series_labels, rttBucketsSeconds());
  series->last_transition_ = &endpoint_last_transition_->Add(series_labels);
  // Owned by this registry only now that every Add() succeeded: a throwing Add() must not run
  // release() (and re-lock mu_) while the series is destroyed during unwinding.
  series->metrics_ = this;
  slot = SeriesSlot{series, series.get()};
  return series;
}

void Metrics::removeSeriesLocked(EndpointSeries& series) {
  if (series.removed_) return;
  series.removed_ = true;
  endpoint_up_->Remove(series.up_);
  endpoint_flapping_->Remove(series.flapping_);
  endpoint_rtt_->Remove(series.rtt_);
  endpoint_last_transition_->Remove(series.last_transition_);
}

void Metrics::release(EndpointSeries& series) {
  if (keep_series_on_release_.load()) return;
  std::lock_guard<std::mutex> lock(mu_);
  removeSeriesLocked(series);
  auto it = series_.find(series.key_);
  if (it != series_.end() && it->second.raw == &series) series_.erase(it);
}

EndpointSeries::~EndpointSeries() {
  if (metrics_ != nullptr) metrics_->release(*this);
}

Metrics::GrpcMethodSeries& Metrics::grpcMethod(const std::string& full_method,
                                               const std::string& type) {
  std::lock_guard<std::mutex> lock(mu_);
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
