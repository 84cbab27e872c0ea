// wsfleet: one process holding many WebSocket server connections for the benchmark.
//
// Control protocol (stdin, one command per line; answers on stdout, one line each):
//   stats                    → stats open=<n> stalled=<n> accepted=<n> handshakes=<n> closed=<n>
//                              pings=<n> pongs=<n> messages=<n> accept_errors=<n>
//                              tls_handshakes=<n> tls_errors=<n> realtime_us=<t> mono_us=<t>
//   stall <prefix> <count>   → stalled n=<k> realtime_us=<t> mono_us=<t> ids=<id>,<id>,...
//                              Picks up to <count> open connections whose id (the request path
//                              without its leading '/') starts with <prefix>, at random, and stops
//                              answering them without closing: nothing more is read or written;
//                              only a hang-up by the client is noticed (and closes the socket).
//                              The timestamps (CLOCK_REALTIME and CLOCK_MONOTONIC, µs) are taken
//                              before the first connection stops: every ping read later is
//                              unanswered. New connections (reconnects) are answered normally.
//   quit                     → exits (also on end of input).
// At start it prints: listening <host:port> <host:port> ... impl=<impl> tls=on|off max_fds=<n>
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace fleet {

struct Address {
  std::string host;
  uint16_t port = 0;
};

struct Options {
  std::vector<Address> listen;
  uint64_t seed = 1;
  // PEM certificate chain and key: serve TLS (wss://) on every listener. Empty: plain ws://.
  std::string tls_cert_file;
  std::string tls_key_file;
};

struct Stats {
  size_t open = 0;
  size_t stalled = 0;
  uint64_t accepted = 0;
  uint64_t handshakes = 0;
  uint64_t closed = 0;
  uint64_t pings = 0;
  uint64_t pongs = 0;
  uint64_t messages = 0;
  uint64_t accept_errors = 0;
  uint64_t tls_handshakes = 0;  // completed TLS handshakes
  uint64_t tls_errors = 0;      // failed TLS handshakes (e.g. certificate not trusted)
};

class Fleet;

// Reads and answers control commands; owned by main().
class Control {
 public:
  virtual ~Control() = default;
  virtual void onReadable(Fleet& fleet) = 0;
  virtual bool stopRequested() const = 0;
};

class Fleet {
 public:
  virtual ~Fleet() = default;
  virtual bool start(std::string& error) = 0;
  virtual std::vector<std::string> boundAddresses() const = 0;
  // Serves until control.stopRequested(); calls control.onReadable() when `control_fd` is readable.
  virtual void run(int control_fd, Control& control) = 0;
  virtual Stats stats() const = 0;
  virtual std::vector<std::string> stall(const std::string& prefix, size_t count) = 0;
};

std::unique_ptr<Fleet> makeEpollFleet(const Options& options);
std::unique_ptr<Fleet> makeWebsocketppFleet(const Options& options);

}  // namespace fleet
