// What wsvisor's heartbeat path would cost with a leaner transport set-up, measured against the
// same fleet, without touching wsvisor. Each variant runs N websocketpp client connections on
// one io thread and pings each every interval, the way wsvisor does; it prints the process CPU
// per ping over a window. Used for the "history" section of bench/README.md.
//
//   transport_variants --endpoints FILE --variant V [--interval-ms 1000] [--timeout-ms 1000]
//                      [--window-s 30] [--slot-ms 10]
//
// Variants:
//   wsvisor   wsvisor's ClientConfig (websocket_transport.cc: config::asio_client, strands,
//             mutex-guarded loggers) and its timer pattern (supervised_endpoint.cc: one
//             asio::steady_timer per endpoint, re-armed after the ping for the reply deadline and
//             after the pong for the next send, so each pong cancels a pending wait);
//   lean      the same timer pattern, with stub loggers, concurrency::none and
//             enable_multithreading = false (no strands): safe because each io_context has exactly
//             one thread;
//   smallbuf  wsvisor's, with connection_read_buffer_size 1 KiB instead of 16 KiB (memory);
//   wheel     lean, and no per-endpoint timers: one shard timer ticks every --slot-ms and sends
//             the pings due in that slot (a timing wheel), so pings and pongs come in batches.
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>
#include <websocketpp/client.hpp>
#include <websocketpp/concurrency/none.hpp>
#include <websocketpp/config/asio_no_tls_client.hpp>
#include <websocketpp/logger/stub.hpp>

namespace {

using Clock = std::chrono::steady_clock;
constexpr long kTransportTimeoutMs = 5 * 60 * 1000 + 30 * 1000;

// wsvisor's first ClientConfig (today's is in supervisor/websocket_client_config.h), the baseline
// the variants below change.
template <typename Base>
struct WsvisorConfig : public Base {
  typedef WsvisorConfig type;
  typedef Base base;
  struct transport_config : public base::transport_config {
    static const long timeout_socket_pre_init = kTransportTimeoutMs;
    static const long timeout_proxy = kTransportTimeoutMs;
    static const long timeout_socket_post_init = kTransportTimeoutMs;
    static const long timeout_dns_resolve = kTransportTimeoutMs;
    static const long timeout_connect = kTransportTimeoutMs;
  };
  typedef websocketpp::transport::asio::endpoint<transport_config> transport_type;
  static const long timeout_open_handshake = kTransportTimeoutMs;
};

// wsvisor's config with a 1 KiB read buffer instead of websocketpp's 16 KiB (heartbeats are a
// few bytes; larger messages just take more reads).
template <typename Base>
struct SmallBufferConfig : public WsvisorConfig<Base> {
  typedef SmallBufferConfig type;
  static const size_t connection_read_buffer_size = 1024;
};

// The same, for one thread per io_context: no locks, no strands, no logger work.
template <typename Base>
struct LeanConfig : public Base {
  typedef LeanConfig type;
  typedef Base base;
  typedef websocketpp::concurrency::none concurrency_type;
  typedef websocketpp::log::stub alog_type;
  typedef websocketpp::log::stub elog_type;
  typedef typename base::request_type request_type;
  typedef typename base::response_type response_type;
  typedef typename base::message_type message_type;
  typedef typename base::con_msg_manager_type con_msg_manager_type;
  typedef typename base::endpoint_msg_manager_type endpoint_msg_manager_type;
  typedef typename base::rng_type rng_type;
  struct transport_config : public base::transport_config {
    typedef websocketpp::concurrency::none concurrency_type;
    typedef websocketpp::log::stub alog_type;
    typedef websocketpp::log::stub elog_type;
    static const bool enable_multithreading = false;
    static const long timeout_socket_pre_init = kTransportTimeoutMs;
    static const long timeout_proxy = kTransportTimeoutMs;
    static const long timeout_socket_post_init = kTransportTimeoutMs;
    static const long timeout_dns_resolve = kTransportTimeoutMs;
    static const long timeout_connect = kTransportTimeoutMs;
  };
  typedef websocketpp::transport::asio::endpoint<transport_config> transport_type;
  static const long timeout_open_handshake = kTransportTimeoutMs;
};

long rssKib() {
  std::ifstream status("/proc/self/status");
  std::string key;
  long value = 0;
  while (status >> key) {
    if (key == "VmRSS:") {
      status >> value;
      return value;
    }
  }
  return 0;
}

double processCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

struct Options {
  std::vector<std::string> urls;
  std::string variant;
  std::chrono::milliseconds interval{1000};
  std::chrono::milliseconds timeout{1000};
  std::chrono::milliseconds slot{10};
  double window_s = 30;
};

template <typename Config>
class Runner {
 public:
  using Client = websocketpp::client<Config>;

  struct Endpoint {
    websocketpp::connection_hdl hdl;
    std::unique_ptr<asio::steady_timer> timer;  // per-endpoint timer variants only
    Clock::time_point next_send{};
    Clock::time_point sent_at{};
    bool outstanding = false;
    uint64_t sequence = 0;
    std::string payload;
    bool open = false;
    Clock::time_point due{};  // wheel: when its bucket must look at it
  };

  Runner(const Options& options, bool wheel) : options_(options), wheel_(wheel), tick_(io_) {
    client_.clear_access_channels(websocketpp::log::alevel::all);
    client_.clear_error_channels(websocketpp::log::elevel::all);
    client_.init_asio(&io_);
  }

  int run() {
    rss_before_ = rssKib();
    endpoints_.resize(options_.urls.size());
    for (size_t i = 0; i < options_.urls.size(); ++i) connect(i);
    if (wheel_) {
      wheel_buckets_.resize((options_.interval + options_.timeout) / options_.slot + 4);
      // Slots aligned to multiples of slot, so that bucket k holds [k·slot, (k+1)·slot).
      next_slot_ =
          Clock::time_point(Clock::now().time_since_epoch() / options_.slot * options_.slot);
      scheduleTick();
    }
    // Wait until all are open, then measure a window.
    asio::steady_timer phase(io_);
    std::function<void()> check = [&] {
      phase.expires_after(std::chrono::milliseconds(200));
      phase.async_wait([&](const std::error_code&) {
        if (open_ < endpoints_.size()) return check();
        std::printf("all %zu open\n", open_);
        std::fflush(stdout);
        phase.expires_after(std::chrono::seconds(3));  // settle
        phase.async_wait([&](const std::error_code&) {
          cpu0_ = processCpuSeconds();
          rss_steady_ = rssKib();
          timeouts0_ = timeouts_;
          pings0_ = pings_;
          t0_ = Clock::now();
          phase.expires_after(std::chrono::duration_cast<Clock::duration>(
              std::chrono::duration<double>(options_.window_s)));
          phase.async_wait([&](const std::error_code&) {
            const double cpu = processCpuSeconds() - cpu0_;
            const double secs = std::chrono::duration<double>(Clock::now() - t0_).count();
            const uint64_t pings = pings_ - pings0_;
            std::printf(
                "variant=%s endpoints=%zu window_s=%.1f pings=%llu cpu_s=%.3f "
                "cpu_us_per_ping=%.2f timeouts=%llu rss_kib_per_connection=%.2f\n",
                options_.variant.c_str(), endpoints_.size(), secs,
                static_cast<unsigned long long>(pings), cpu, cpu * 1e6 / static_cast<double>(pings),
                static_cast<unsigned long long>(timeouts_ - timeouts0_),
                static_cast<double>(rss_steady_ - rss_before_) /
                    static_cast<double>(endpoints_.size()));
            std::fflush(stdout);
            io_.stop();
          });
        });
      });
    };
    check();
    io_.run();
    return 0;
  }

 private:
  void connect(size_t i) {
    std::error_code ec;
    auto con = client_.get_connection(options_.urls[i], ec);
    if (ec) {
      std::fprintf(stderr, "bad url %s\n", options_.urls[i].c_str());
      std::exit(2);
    }
    con->set_open_handler([this, i](websocketpp::connection_hdl) {
      Endpoint& e = endpoints_[i];
      e.open = true;
      ++open_;
      sendPing(i);  // the first heartbeat goes out when the connection opens
    });
    con->set_pong_handler(
        [this, i](websocketpp::connection_hdl, std::string payload) { onPong(i, payload); });
    con->set_close_handler([this, i](websocketpp::connection_hdl) { endpoints_[i].open = false; });
    con->set_fail_handler([this, i](websocketpp::connection_hdl) { endpoints_[i].open = false; });
    endpoints_[i].hdl = con->get_handle();
    if (!wheel_) endpoints_[i].timer = std::make_unique<asio::steady_timer>(io_);
    client_.connect(con);
  }

  void sendPing(size_t i) {
    Endpoint& e = endpoints_[i];
    const auto now = Clock::now();
    e.outstanding = true;
    e.sent_at = now;
    e.next_send = now + options_.interval;
    e.payload = std::to_string(++e.sequence);
    std::error_code ec;
    client_.ping(e.hdl, e.payload, ec);
    ++pings_;
    if (!wheel_)
      arm(i, now + options_.timeout);  // wsvisor re-arms for the reply deadline
    else
      schedule(i, now + options_.timeout);
  }

  void onPong(size_t i, const std::string& payload) {
    Endpoint& e = endpoints_[i];
    if (!e.outstanding || payload != e.payload) return;
    e.outstanding = false;
    if (!wheel_)
      arm(i, e.next_send);  // … and again for the next send, cancelling the wait
    else
      schedule(i, e.next_send);
  }

  // wsvisor's SupervisedEndpoint::armTimer(): expires_at() cancels the pending wait.
  void arm(size_t i, Clock::time_point deadline) {
    Endpoint& e = endpoints_[i];
    e.timer->expires_at(deadline);
    e.timer->async_wait([this, i, deadline](const std::error_code& ec) {
      if (ec == asio::error::operation_aborted) return;
      onDeadline(i, deadline);
    });
  }

  void onDeadline(size_t i, Clock::time_point) {
    Endpoint& e = endpoints_[i];
    const auto now = Clock::now();
    if (e.outstanding && now >= e.sent_at + options_.timeout) {
      ++timeouts_;
      e.outstanding = false;
    }
    if (!e.outstanding && now >= e.next_send && e.open) sendPing(i);
  }

  // The wheel: one timer per shard ticking every slot; each endpoint sits in the bucket of its
  // next due time (reply deadline while a ping is outstanding, else the next send). Entries made
  // stale by a pong are skipped when their bucket comes up (lazy deletion).
  size_t bucketOf(Clock::time_point t) const {
    return static_cast<size_t>((t.time_since_epoch() / options_.slot)) % wheel_buckets_.size();
  }
  void schedule(size_t i, Clock::time_point due) {
    endpoints_[i].due = due;
    wheel_buckets_[bucketOf(due)].push_back(static_cast<uint32_t>(i));
  }
  void scheduleTick() {
    next_slot_ += options_.slot;
    tick_.expires_at(next_slot_);
    tick_.async_wait([this](const std::error_code& ec) {
      if (ec) return;
      const auto now = Clock::now();
      // The slot that just ended: [next_slot_ - slot, next_slot_).
      const size_t this_bucket = bucketOf(next_slot_ - options_.slot);
      std::vector<uint32_t> bucket;
      bucket.swap(wheel_buckets_[this_bucket]);
      for (uint32_t i : bucket) {
        Endpoint& e = endpoints_[i];
        if (!e.open || bucketOf(e.due) != this_bucket) continue;  // closed, or stale entry
        if (e.due > now) {  // not due yet (cannot happen with aligned slots; be safe)
          wheel_buckets_[this_bucket].push_back(i);
          continue;
        }
        if (e.outstanding && now >= e.sent_at + options_.timeout) {
          ++timeouts_;
          e.outstanding = false;
        }
        if (!e.outstanding && now >= e.next_send) {
          sendPing(i);
        } else {
          schedule(i, e.outstanding ? e.sent_at + options_.timeout : e.next_send);
        }
      }
      scheduleTick();
    });
  }

  const Options& options_;
  const bool wheel_;
  asio::io_context io_;
  Client client_;
  asio::steady_timer tick_;
  std::vector<Endpoint> endpoints_;
  std::vector<std::vector<uint32_t>> wheel_buckets_;
  Clock::time_point next_slot_{};
  size_t open_ = 0;
  uint64_t pings_ = 0, pings0_ = 0, timeouts_ = 0;
  double cpu0_ = 0;
  uint64_t timeouts0_ = 0;
  long rss_before_ = 0, rss_steady_ = 0;
  Clock::time_point t0_{};
};

}  // namespace

int main(int argc, char** argv) {
  Options options;
  std::string file;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const std::string value = argv[i + 1];
    if (key == "--endpoints") file = value;
    if (key == "--variant") options.variant = value;
    if (key == "--interval-ms") options.interval = std::chrono::milliseconds(std::stol(value));
    if (key == "--timeout-ms") options.timeout = std::chrono::milliseconds(std::stol(value));
    if (key == "--slot-ms") options.slot = std::chrono::milliseconds(std::stol(value));
    if (key == "--window-s") options.window_s = std::stod(value);
  }
  std::ifstream in(file);
  std::string id, url;
  while (in >> id >> url) options.urls.push_back(url);
  if (options.urls.empty()) {
    std::fprintf(stderr,
                 "usage: transport_variants --endpoints FILE --variant wsvisor|lean|wheel ...\n");
    return 2;
  }
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  using websocketpp::config::asio_client;
  if (options.variant == "wsvisor") return Runner<WsvisorConfig<asio_client>>(options, false).run();
  if (options.variant == "smallbuf") {
    return Runner<SmallBufferConfig<asio_client>>(options, false).run();
  }
  if (options.variant == "lean") return Runner<LeanConfig<asio_client>>(options, false).run();
  if (options.variant == "wheel") return Runner<LeanConfig<asio_client>>(options, true).run();
  std::fprintf(stderr, "unknown --variant %s\n", options.variant.c_str());
  return 2;
}
