// bench_client: the gRPC side of the benchmark, in C++ so that the client, not wsvisor, is never
// the bottleneck and arrival times are taken next to the socket.
//
//   bench_client register --server ADDR --endpoints FILE [--concurrency C]
//                         [--interval-ms I] [--timeout-ms T] [--ca-file PEM]
//       FILE has one "id url" per line. Registers them all (PING mode, interval I, timeout T),
//       at most C calls in flight; wss:// endpoints get `tls.ca_file` PEM (verification on)
//       when --ca-file is given. Prints progress lines and one final line:
//       registered ok=<n> created=<n> errors=<n> elapsed_s=<s> per_s=<r>
//                  start_realtime_us=<t> end_realtime_us=<t> [first_error=<text>]
//
//   bench_client watch --server ADDR [--watchers M] [--expect N] [--log FILE]
//       Opens M WatchHealth streams (no filter), each on its own HTTP/2 connection. Writes every
//       non-snapshot event of every stream to FILE, one line each:
//         <watcher> <type> <id> <health> <previous_health> <phase> <event_us> <arrival_us>
//         <coalesced> <revision>
//       (times: CLOCK_REALTIME µs; event_us is HealthEvent.time, set by wsvisor when it
//       published the change). On stdout: "snapshot_complete w=<i> snapshots=<n> realtime_us=<t>"
//       per stream; watcher 0 tracks every endpoint's health and prints
//       "health healthy=<h> unhealthy=<u> unknown=<k> total=<n> realtime_us=<t>" when it changes
//       (at most every 100 ms) and "all_healthy realtime_us=<t>" the first time all N expected
//       endpoints are HEALTHY. Ends on "quit" or end of stdin, printing
//       "watch_summary w=<i> events=<n> snapshots=<n> coalesced=<n> status=<code>" per stream.
#include <grpcpp/grpcpp.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "wsvisor/v1/supervisor.grpc.pb.h"

namespace {

using wsvisor::v1::HealthEvent;
using wsvisor::v1::Supervisor;

uint64_t realtimeMicros() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

struct Args {
  std::map<std::string, std::string> values;
  std::string get(const std::string& key, const std::string& fallback = "") const {
    auto it = values.find(key);
    return it == values.end() ? fallback : it->second;
  }
  long num(const std::string& key, long fallback) const {
    auto it = values.find(key);
    return it == values.end() ? fallback : std::stol(it->second);
  }
};

Args parseArgs(int argc, char** argv, int first) {
  Args args;
  for (int i = first; i + 1 < argc; i += 2) args.values[argv[i]] = argv[i + 1];
  return args;
}

void setDuration(google::protobuf::Duration* d, long ms) {
  d->set_seconds(ms / 1000);
  d->set_nanos(static_cast<int32_t>((ms % 1000) * 1000000));
}

// ---------------------------------------------------------------------------------------------
// register

int runRegister(const Args& args) {
  std::ifstream file(args.get("--endpoints"));
  if (!file) {
    std::fprintf(stderr, "bench_client: cannot read --endpoints file\n");
    return 2;
  }
  std::vector<std::pair<std::string, std::string>> endpoints;
  std::string id, url;
  while (file >> id >> url) endpoints.emplace_back(id, url);
  const long concurrency = args.num("--concurrency", 64);
  const long interval_ms = args.num("--interval-ms", 1000);
  const long timeout_ms = args.num("--timeout-ms", 1000);
  const std::string ca_file = args.get("--ca-file");

  auto channel = grpc::CreateChannel(args.get("--server"), grpc::InsecureChannelCredentials());
  auto stub = Supervisor::NewStub(channel);

  struct Call {
    grpc::ClientContext context;
    wsvisor::v1::RegisterEndpointRequest request;
    wsvisor::v1::RegisterEndpointResponse response;
  };
  std::mutex mu;
  std::condition_variable cv;
  long in_flight = 0;
  size_t ok = 0, created = 0, errors = 0, done = 0;
  std::string first_error;

  const uint64_t start_us = realtimeMicros();
  const auto start = std::chrono::steady_clock::now();
  auto last_progress = start;
  for (const auto& [endpoint_id, endpoint_url] : endpoints) {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return in_flight < concurrency; });
      ++in_flight;
      const auto now = std::chrono::steady_clock::now();
      if (now - last_progress > std::chrono::seconds(1)) {
        last_progress = now;
        std::printf("progress done=%zu errors=%zu\n", done, errors);
        std::fflush(stdout);
      }
    }
    auto* call = new Call;
    auto* spec = call->request.mutable_spec();
    spec->set_id(endpoint_id);
    spec->set_url(endpoint_url);
    auto* heartbeat = spec->mutable_heartbeat();
    heartbeat->set_mode(wsvisor::v1::HEARTBEAT_MODE_PING);
    setDuration(heartbeat->mutable_interval(), interval_ms);
    setDuration(heartbeat->mutable_timeout(), timeout_ms);
    // The proto allows `tls` on wss:// only.
    if (!ca_file.empty() && endpoint_url.rfind("wss://", 0) == 0) {
      spec->mutable_tls()->set_ca_file(ca_file);
    }
    call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    stub->async()->RegisterEndpoint(
        &call->context, &call->request, &call->response, [&, call](grpc::Status status) {
          std::lock_guard<std::mutex> lock(mu);
          ++done;
          if (status.ok()) {
            ++ok;
            if (call->response.created()) ++created;
          } else {
            ++errors;
            if (first_error.empty()) {
              first_error = std::to_string(status.error_code()) + " " + status.error_message();
            }
          }
          delete call;
          --in_flight;
          cv.notify_all();
        });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return in_flight == 0; });
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const uint64_t end_us = realtimeMicros();
  std::printf(
      "registered ok=%zu created=%zu errors=%zu elapsed_s=%.3f per_s=%.1f start_realtime_us=%llu "
      "end_realtime_us=%llu%s%s\n",
      ok, created, errors, elapsed, elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0,
      static_cast<unsigned long long>(start_us), static_cast<unsigned long long>(end_us),
      first_error.empty() ? "" : " first_error=", first_error.c_str());
  std::fflush(stdout);
  return errors == 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// watch

class EventLog {
 public:
  explicit EventLog(const std::string& path)
      : file_(path.empty() ? nullptr : std::fopen(path.c_str(), "w")) {}
  ~EventLog() {
    if (file_) std::fclose(file_);
  }
  void write(int watcher, const HealthEvent& e, uint64_t arrival_us) {
    if (!file_) return;
    const uint64_t event_us = static_cast<uint64_t>(e.time().seconds()) * 1000000 +
                              static_cast<uint64_t>(e.time().nanos()) / 1000;
    std::lock_guard<std::mutex> lock(mu_);
    std::fprintf(file_, "%d %d %s %d %d %d %llu %llu %d %llu\n", watcher, e.type(),
                 e.endpoint_id().c_str(), e.status().health(), e.previous_health(),
                 e.status().phase(), static_cast<unsigned long long>(event_us),
                 static_cast<unsigned long long>(arrival_us), e.coalesced() ? 1 : 0,
                 static_cast<unsigned long long>(e.revision()));
  }
  void flush() {
    std::lock_guard<std::mutex> lock(mu_);
    if (file_) std::fflush(file_);
  }

 private:
  std::mutex mu_;
  FILE* file_;
};

// Health of every endpoint as seen by watcher 0.
class HealthTally {
 public:
  void apply(const HealthEvent& e) {
    std::lock_guard<std::mutex> lock(mu_);
    if (e.type() == HealthEvent::TYPE_UNREGISTERED) {
      auto it = health_.find(e.endpoint_id());
      if (it != health_.end()) {
        --counts_[it->second];
        health_.erase(it);
      }
    } else if (e.type() != HealthEvent::TYPE_SNAPSHOT_COMPLETE) {
      const int h = e.status().health();
      auto [it, inserted] = health_.emplace(e.endpoint_id(), h);
      if (!inserted) --counts_[it->second];
      it->second = h;
      ++counts_[h];
    }
    ++version_;
  }
  // {unknown, healthy, unhealthy, total, version}
  std::array<uint64_t, 5> read() {
    std::lock_guard<std::mutex> lock(mu_);
    return {static_cast<uint64_t>(counts_[0]), static_cast<uint64_t>(counts_[1]),
            static_cast<uint64_t>(counts_[2]), health_.size(), version_};
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, int> health_;
  long counts_[3] = {0, 0, 0};
  uint64_t version_ = 0;
};

class Watcher : public grpc::ClientReadReactor<HealthEvent> {
 public:
  Watcher(int index, Supervisor::Stub* stub, EventLog& log, HealthTally* tally)
      : index_(index), log_(log), tally_(tally) {
    stub->async()->WatchHealth(&context_, &request_, this);
    StartRead(&event_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    const uint64_t arrival = realtimeMicros();
    if (!ok) return;  // OnDone follows
    if (tally_) tally_->apply(event_);
    switch (event_.type()) {
      case HealthEvent::TYPE_SNAPSHOT:
        ++snapshots_;
        break;
      case HealthEvent::TYPE_SNAPSHOT_COMPLETE:
        std::printf("snapshot_complete w=%d snapshots=%llu realtime_us=%llu\n", index_,
                    static_cast<unsigned long long>(snapshots_.load()),
                    static_cast<unsigned long long>(arrival));
        std::fflush(stdout);
        break;
      default:
        ++events_;
        if (event_.coalesced()) ++coalesced_;
        log_.write(index_, event_, arrival);
    }
    StartRead(&event_);
  }

  void OnDone(const grpc::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = status;
    done_ = true;
    cv_.notify_all();
  }

  void cancel() { context_.TryCancel(); }

  void awaitDone() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [this] { return done_; });
  }

  std::string summary() {
    std::lock_guard<std::mutex> lock(mu_);
    return "watch_summary w=" + std::to_string(index_) + " events=" + std::to_string(events_) +
           " snapshots=" + std::to_string(snapshots_) + " coalesced=" + std::to_string(coalesced_) +
           " status=" + std::to_string(done_ ? status_.error_code() : -1);
  }

 private:
  const int index_;
  EventLog& log_;
  HealthTally* const tally_;
  grpc::ClientContext context_;
  wsvisor::v1::WatchHealthRequest request_;
  HealthEvent event_;
  std::atomic<uint64_t> snapshots_{0};
  std::atomic<uint64_t> events_{0};
  std::atomic<uint64_t> coalesced_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  grpc::Status status_;
};

int runWatch(const Args& args) {
  const int watchers = static_cast<int>(args.num("--watchers", 1));
  const uint64_t expect = static_cast<uint64_t>(args.num("--expect", 0));
  EventLog log(args.get("--log"));
  HealthTally tally;
  std::vector<std::unique_ptr<Supervisor::Stub>> stubs;
  std::vector<std::unique_ptr<Watcher>> streams;
  for (int i = 0; i < watchers; ++i) {
    grpc::ChannelArguments channel_args;
    // A connection per watcher, as separate clients would have.
    channel_args.SetInt("wsvisor.bench.watcher", i);
    channel_args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto channel = grpc::CreateCustomChannel(args.get("--server"),
                                             grpc::InsecureChannelCredentials(), channel_args);
    stubs.push_back(Supervisor::NewStub(channel));
    streams.push_back(
        std::make_unique<Watcher>(i, stubs.back().get(), log, i == 0 ? &tally : nullptr));
  }

  std::atomic<bool> quit{false};
  std::thread input([&] {
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line == "quit") break;
      if (line == "flush") log.flush();
    }
    quit = true;
  });

  uint64_t printed_version = 0;
  bool all_healthy_reported = false;
  while (!quit) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const auto c = tally.read();
    if (expect != 0 && !all_healthy_reported && c[1] >= expect) {
      all_healthy_reported = true;
      std::printf("all_healthy realtime_us=%llu\n",
                  static_cast<unsigned long long>(realtimeMicros()));
    }
    static auto last_print = std::chrono::steady_clock::now();
    const auto now = std::chrono::steady_clock::now();
    if (c[4] != printed_version && now - last_print >= std::chrono::milliseconds(100)) {
      printed_version = c[4];
      last_print = now;
      std::printf("health healthy=%llu unhealthy=%llu unknown=%llu total=%llu realtime_us=%llu\n",
                  static_cast<unsigned long long>(c[1]), static_cast<unsigned long long>(c[2]),
                  static_cast<unsigned long long>(c[0]), static_cast<unsigned long long>(c[3]),
                  static_cast<unsigned long long>(realtimeMicros()));
    }
    std::fflush(stdout);
  }
  for (auto& s : streams) s->cancel();
  for (auto& s : streams) s->awaitDone();
  log.flush();
  for (auto& s : streams) std::printf("%s\n", s->summary().c_str());
  std::fflush(stdout);
  input.join();
  // Streams are finished; skip channel teardown, which can take a while with many channels.
  std::_Exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_client register|watch --server ADDR ...\n");
    return 2;
  }
  const std::string command = argv[1];
  const Args args = parseArgs(argc, argv, 2);
  if (command == "register") return runRegister(args);
  if (command == "watch") return runWatch(args);
  std::fprintf(stderr, "bench_client: unknown command '%s'\n", command.c_str());
  return 2;
}
