// wsfleet [--impl epoll|websocketpp] [--listen 127.0.0.1:0,127.0.0.2:0,...] [--seed N]
//         [--tls CERT_PEM KEY_PEM]
// --tls serves wss:// (epoll fleet only): TLS 1.2 or 1.3 with that certificate chain and key.
// See fleet.h for the control protocol on stdin/stdout.
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>

#include "fleet.h"

namespace {

uint64_t nowMicros(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

class StdinControl : public fleet::Control {
 public:
  void onReadable(fleet::Fleet& fleet) override {
    char buf[4096];
    const ssize_t got = ::read(STDIN_FILENO, buf, sizeof buf);
    if (got <= 0) {
      stop_ = true;  // end of input: the runner is gone
      return;
    }
    pending_.append(buf, static_cast<size_t>(got));
    size_t nl;
    while ((nl = pending_.find('\n')) != std::string::npos) {
      const std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      execute(fleet, line);
    }
  }
  bool stopRequested() const override { return stop_; }

 private:
  void execute(fleet::Fleet& fleet, const std::string& line) {
    std::istringstream in(line);
    std::string command;
    in >> command;
    if (command == "stall") {
      std::string prefix;
      size_t count = 0;
      in >> prefix >> count;
      const uint64_t real = nowMicros(CLOCK_REALTIME);
      const uint64_t mono = nowMicros(CLOCK_MONOTONIC);
      const auto ids = fleet.stall(prefix, count);
      std::string out = "stalled n=" + std::to_string(ids.size()) +
                        " realtime_us=" + std::to_string(real) +
                        " mono_us=" + std::to_string(mono) + " ids=";
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i) out += ',';
        out += ids[i];
      }
      std::printf("%s\n", out.c_str());
    } else if (command == "stats") {
      const fleet::Stats s = fleet.stats();
      std::printf(
          "stats open=%zu stalled=%zu accepted=%llu handshakes=%llu closed=%llu pings=%llu "
          "pongs=%llu messages=%llu accept_errors=%llu tls_handshakes=%llu tls_errors=%llu "
          "realtime_us=%llu mono_us=%llu\n",
          s.open, s.stalled, static_cast<unsigned long long>(s.accepted),
          static_cast<unsigned long long>(s.handshakes), static_cast<unsigned long long>(s.closed),
          static_cast<unsigned long long>(s.pings), static_cast<unsigned long long>(s.pongs),
          static_cast<unsigned long long>(s.messages),
          static_cast<unsigned long long>(s.accept_errors),
          static_cast<unsigned long long>(s.tls_handshakes),
          static_cast<unsigned long long>(s.tls_errors),
          static_cast<unsigned long long>(nowMicros(CLOCK_REALTIME)),
          static_cast<unsigned long long>(nowMicros(CLOCK_MONOTONIC)));
    } else if (command == "quit") {
      stop_ = true;
      std::printf("bye\n");
    } else if (!command.empty()) {
      std::printf("error unknown command '%s'\n", command.c_str());
    }
    std::fflush(stdout);
  }

  std::string pending_;
  bool stop_ = false;
};

bool parseAddresses(const std::string& text, std::vector<fleet::Address>& out) {
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t colon = item.rfind(':');
    if (colon == std::string::npos) return false;
    out.push_back(
        {item.substr(0, colon), static_cast<uint16_t>(std::stoi(item.substr(colon + 1)))});
  }
  return !out.empty();
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  fleet::Options options;
  std::string impl = "epoll";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--impl" && has_value) {
      impl = argv[++i];
    } else if (arg == "--listen" && has_value) {
      if (!parseAddresses(argv[++i], options.listen)) {
        std::fprintf(stderr, "wsfleet: bad --listen '%s'\n", argv[i]);
        return 2;
      }
    } else if (arg == "--seed" && has_value) {
      options.seed = std::stoull(argv[++i]);
    } else if (arg == "--tls" && i + 2 < argc) {
      options.tls_cert_file = argv[++i];
      options.tls_key_file = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: wsfleet [--impl epoll|websocketpp] [--listen host:port,...] "
                   "[--seed N] [--tls CERT_PEM KEY_PEM]\n");
      return 2;
    }
  }
  if (options.listen.empty()) options.listen.push_back({"127.0.0.1", 0});

  // One descriptor per connection: take the whole hard limit.
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);

  std::unique_ptr<fleet::Fleet> f;
  if (!options.tls_cert_file.empty() && impl != "epoll") {
    std::fprintf(stderr, "wsfleet: --tls is served by --impl epoll only\n");
    return 2;
  }
  if (impl == "epoll") {
    f = fleet::makeEpollFleet(options);
  } else if (impl == "websocketpp") {
    f = fleet::makeWebsocketppFleet(options);
  } else {
    std::fprintf(stderr, "wsfleet: unknown --impl '%s'\n", impl.c_str());
    return 2;
  }
  std::string error;
  if (!f->start(error)) {
    std::fprintf(stderr, "wsfleet: %s\n", error.c_str());
    return 1;
  }
  std::string line = "listening";
  for (const auto& a : f->boundAddresses()) line += " " + a;
  std::printf("%s impl=%s tls=%s max_fds=%llu\n", line.c_str(), impl.c_str(),
              options.tls_cert_file.empty() ? "off" : "on",
              static_cast<unsigned long long>(limit.rlim_cur));
  std::fflush(stdout);
  StdinControl control;
  f->run(STDIN_FILENO, control);
  return 0;
}
