#pragma once

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

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

// Reads the bytes the program has allocated and not yet freed, as the allocator it was linked
// with counts them; nullopt when the allocator gives no such figure.
using AllocatedBytesReader = std::function<std::optional<uint64_t>()>;

// wsvisor_heap_allocated_bytes, read from the allocator at each scrape (never on a hot path).
// What is linked decides what can be read, so the reader comes from the one place that knows:
// the wsvisor executable (service/allocator_settings.cc, which alone is compiled with tcmalloc's
// headers and linked with it). Tests and other binaries that run a Server in-process give none,
// and then the family is absent rather than a figure from an allocator that is not theirs.
//
// Register it before the collectors of per-endpoint series: prometheus-cpp collects in
// registration order, and the families built for the same scrape (megabytes at thousands of
// endpoints) would otherwise be counted in the reading.
//
// Thread-safe if the reader is: Collect() runs on the exposer's worker threads.
class HeapCollector : public prometheus::Collectable {
 public:
  explicit HeapCollector(AllocatedBytesReader allocated_bytes)
      : allocated_bytes_(std::move(allocated_bytes)) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  AllocatedBytesReader allocated_bytes_;
};

}  // namespace wsvisor
