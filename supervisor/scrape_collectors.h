#pragma once

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include "supervisor/health_bus.h"

namespace wsvisor {

// Families whose value is a function of current state, computed when Prometheus scrapes rather
// than kept in step by every code path that changes the state:
//   wsvisor_endpoints{health}, wsvisor_watch_streams.
class HealthStateCollector : public prometheus::Collectable {
 public:
  explicit HealthStateCollector(const HealthBus& bus) : bus_(bus) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const HealthBus& bus_;
};

// The standard process metrics of Prometheus client libraries, read from /proc/self:
//   process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
//   process_open_fds, process_max_fds, process_start_time_seconds.
class ProcessCollector : public prometheus::Collectable {
 public:
  ProcessCollector();
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  double start_time_seconds_ = 0;
};

}  // namespace wsvisor
