#include "supervisor/scrape_collectors.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "supervisor/core/endpoint_status.h"

namespace wsvisor {

namespace {

prometheus::MetricFamily family(const std::string& name, const std::string& help,
                                prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

void addGauge(prometheus::MetricFamily& f, double value,
              std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

void addCounter(prometheus::MetricFamily& f, double value) {
  prometheus::ClientMetric m;
  m.counter.value = value;
  f.metric.push_back(std::move(m));
}

// Fields of /proc/self/stat after the command name (which may contain spaces).
std::vector<std::string> procStatFields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  const size_t end_of_comm = line.rfind(')');
  std::vector<std::string> fields;
  if (end_of_comm == std::string::npos) return fields;
  std::istringstream rest(line.substr(end_of_comm + 2));
  std::string field;
  while (rest >> field) fields.push_back(field);
  return fields;  // fields[0] is field 3 (state) of proc(5)
}

double bootTimeSeconds() {
  std::ifstream in("/proc/stat");
  std::string key;
  while (in >> key) {
    if (key == "btime") {
      double value = 0;
      in >> value;
      return value;
    }
    in.ignore(1 << 16, '\n');
  }
  return 0;
}

size_t openFds() {
  size_t count = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (dirent* entry = readdir(dir)) {
      if (entry->d_name[0] != '.') ++count;
    }
    closedir(dir);
    if (count > 0) --count;  // the descriptor opendir() itself holds
  }
  return count;
}

}  // namespace

std::vector<prometheus::MetricFamily> HealthStateCollector::Collect() const {
  auto endpoints =
      family("wsvisor_endpoints",
             "Endpoints supervised by this process in each health state (in cluster mode, this "
             "replica's share).",
             prometheus::MetricType::Gauge);
  const auto counts = bus_.countByHealth();
  for (auto health : {core::Health::kUnknown, core::Health::kHealthy, core::Health::kUnhealthy,
                      core::Health::kFlapping}) {
    addGauge(endpoints, static_cast<double>(counts[static_cast<size_t>(health)]),
             {{"health", core::toString(health)}});
  }
  auto streams =
      family("wsvisor_watch_streams", "Open WatchHealth streams.", prometheus::MetricType::Gauge);
  addGauge(streams, static_cast<double>(bus_.subscriptionCount()));
  return {std::move(endpoints), std::move(streams)};
}

ProcessCollector::ProcessCollector() {
  const auto fields = procStatFields();
  // Field 22 (starttime, clock ticks since boot) is fields[19].
  if (fields.size() > 19) {
    start_time_seconds_ =
        bootTimeSeconds() + std::stod(fields[19]) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::MetricFamily> out;
  const auto fields = procStatFields();
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  if (fields.size() > 21) {
    auto cpu =
        family("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
               prometheus::MetricType::Counter);
    // Fields 14 (utime) and 15 (stime) are fields[11] and fields[12].
    addCounter(cpu, (std::stod(fields[11]) + std::stod(fields[12])) / ticks);
    out.push_back(std::move(cpu));
    auto vsize = family("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                        prometheus::MetricType::Gauge);
    addGauge(vsize, std::stod(fields[20]));  // field 23
    out.push_back(std::move(vsize));
    auto rss = family("process_resident_memory_bytes", "Resident memory size in bytes.",
                      prometheus::MetricType::Gauge);
    addGauge(rss, std::stod(fields[21]) * page);  // field 24, in pages
    out.push_back(std::move(rss));
  }
  auto fds =
      family("process_open_fds", "Number of open file descriptors.", prometheus::MetricType::Gauge);
  addGauge(fds, static_cast<double>(openFds()));
  out.push_back(std::move(fds));
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    auto max_fds = family("process_max_fds", "Maximum number of open file descriptors.",
                          prometheus::MetricType::Gauge);
    addGauge(max_fds, static_cast<double>(limit.rlim_cur));
    out.push_back(std::move(max_fds));
  }
  auto start =
      family("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
             prometheus::MetricType::Gauge);
  addGauge(start, start_time_seconds_);
  out.push_back(std::move(start));
  return out;
}

std::vector<prometheus::MetricFamily> HeapCollector::Collect() const {
  if (!allocated_bytes_) return {};
  const std::optional<uint64_t> bytes = allocated_bytes_();
  if (!bytes) return {};
  auto heap = family("wsvisor_heap_allocated_bytes",
                     "Bytes of heap memory the program has allocated and not yet freed, as its "
                     "allocator counts them (tcmalloc: generic.current_allocated_bytes; glibc: "
                     "mallinfo2 uordblks + hblkhd; sanitizer builds: the sanitizer's allocator). "
                     "Memory the allocator keeps free or cached for reuse is not counted.",
                     prometheus::MetricType::Gauge);
  addGauge(heap, static_cast<double>(*bytes));
  return {std::move(heap)};
}

}  // namespace wsvisor
