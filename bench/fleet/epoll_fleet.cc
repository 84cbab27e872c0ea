// The lean fleet: one epoll loop, a minimal RFC 6455 server (opening handshake, ping → pong,
// text/binary echo, close echo). Per connection it keeps a few dozen bytes plus the endpoint id;
// per ping it does one read() and one write(). With Options::tls_cert_file it serves TLS instead
// (tls_stream.h): the same loop and WebSocket handling over decrypted bytes. See fleet.h for the
// control protocol.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>
#include <websocketpp/base64/base64.hpp>
#include <websocketpp/sha1/sha1.hpp>

#include "fleet.h"
#include "tls_stream.h"

namespace fleet {

namespace {

constexpr size_t kMaxHandshakeBytes = 8192;
constexpr size_t kMaxFrameBytes = 64 * 1024;  // heartbeats are tiny; anything bigger is closed
// Decrypted input taken from one TLS connection per event. OpenSSL's read-ahead buffer holds
// about one record's worth, so a peer reaches this only by sending faster than the loop reads:
// it is closed rather than allowed to hold the loop.
constexpr size_t kMaxTlsInputPerEvent = 1024 * 1024;
constexpr char kWebSocketGuid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

enum class State : uint8_t { kHandshake, kOpen, kStalled };

struct Connection {
  int fd = -1;
  State state = State::kHandshake;
  bool out_armed = false;          // TLS only: EPOLLOUT is in the interest set
  uint32_t index = 0;              // position in EpollFleet::open_ (for O(1) removal)
  std::string id;                  // request path without the leading '/'
  std::string in;                  // unparsed input (handshake, or a partial frame)
  std::string out;                 // unsent output (only when the socket buffer was full)
  std::unique_ptr<TlsStream> tls;  // null on a plain connection
};

// Tags in epoll_event.data.u64: listeners have the top bit set.
constexpr uint64_t kListenerTag = 1ULL << 63;

std::string lowerCase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

class EpollFleet : public Fleet {
 public:
  explicit EpollFleet(const Options& options) : options_(options), rng_(options.seed) {}

  ~EpollFleet() override {
    for (auto& c : conns_) {
      if (c) ::close(c->fd);
    }
    for (int fd : listeners_) ::close(fd);
    if (epfd_ >= 0) ::close(epfd_);
  }

  bool start(std::string& error) override {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
      error = std::string("epoll_create1: ") + std::strerror(errno);
      return false;
    }
    if (!options_.tls_cert_file.empty()) {
      tls_ = TlsContext::load(options_.tls_cert_file, options_.tls_key_file, error);
      if (!tls_) return false;
    }
    for (const auto& addr : options_.listen) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(addr.port);
      if (inet_pton(AF_INET, addr.host.c_str(), &sa.sin_addr) != 1) {
        error = "bad address " + addr.host;
        return false;
      }
      if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 4096) != 0) {
        error = "cannot listen on " + addr.host + ":" + std::to_string(addr.port) + ": " +
                std::strerror(errno);
        return false;
      }
      socklen_t len = sizeof sa;
      getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
      bound_.push_back(addr.host + ":" + std::to_string(ntohs(sa.sin_port)));
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = kListenerTag | listeners_.size();
      epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
      listeners_.push_back(fd);
    }
    return true;
  }

  std::vector<std::string> boundAddresses() const override { return bound_; }

  // Runs until `stop` is set by a control command. The control fd (stdin) is polled by the same
  // loop so that a stall happens between two I/O events, never in the middle of one.
  void run(int control_fd, Control& control) override {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenerTag | (kListenerTag - 1);  // control
    epoll_ctl(epfd_, EPOLL_CTL_ADD, control_fd, &ev);
    std::vector<epoll_event> events(1024);
    while (!control.stopRequested()) {
      const int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), 1000);
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int i = 0; i < n; ++i) {
        const uint64_t tag = events[i].data.u64;
        if (tag & kListenerTag) {
          const uint64_t index = tag & ~kListenerTag;
          if (index == kListenerTag - 1) {
            control.onReadable(*this);
          } else {
            acceptAll(listeners_[index]);
          }
          continue;
        }
        onConnectionEvent(static_cast<uint32_t>(tag), events[i].events);
      }
    }
  }

  Stats stats() const override {
    Stats s = counters_;
    s.open = open_.size();
    s.stalled = stalled_count_;
    return s;
  }

  std::vector<std::string> stall(const std::string& prefix, size_t count) override {
    std::vector<uint32_t> candidates;
    for (uint32_t slot : open_) {
      const Connection& c = *conns_[slot];
      if (c.state == State::kOpen && c.id.compare(0, prefix.size(), prefix) == 0) {
        candidates.push_back(slot);
      }
    }
    std::shuffle(candidates.begin(), candidates.end(), rng_);
    if (candidates.size() > count) candidates.resize(count);
    std::vector<std::string> ids;
    for (uint32_t slot : candidates) {
      Connection& c = *conns_[slot];
      c.state = State::kStalled;
      ++stalled_count_;
      // Hung, not gone: the kernel keeps acknowledging, nobody reads. Only a hang-up is watched,
      // so that the socket is released once the client gives up on it.
      epoll_event ev{};
      ev.events = EPOLLRDHUP;
      ev.data.u64 = slot;
      epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
      ids.push_back(c.id);
    }
    return ids;
  }

 private:
  void acceptAll(int listener) {
    for (;;) {
      int fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) ++counters_.accept_errors;
        return;  // EAGAIN or out of descriptors: try again on the next event
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      uint32_t slot;
      if (!free_slots_.empty()) {
        slot = free_slots_.back();
        free_slots_.pop_back();
      } else {
        slot = static_cast<uint32_t>(conns_.size());
        conns_.emplace_back();
      }
      conns_[slot] = std::make_unique<Connection>();
      Connection& c = *conns_[slot];
      c.fd = fd;
      c.index = static_cast<uint32_t>(open_.size());
      open_.push_back(slot);
      ++counters_.accepted;
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.u64 = slot;
      epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
      if (tls_) {
        // The handshake starts with the client's first bytes (EPOLLIN).
        c.tls = TlsStream::accept(*tls_, fd);
        if (!c.tls) {
          ++counters_.tls_errors;
          closeConnection(slot);
        }
      }
    }
  }

  void closeConnection(uint32_t slot) {
    Connection& c = *conns_[slot];
    ::close(c.fd);  // also removes it from the epoll set
    if (c.state == State::kStalled) --stalled_count_;
    const uint32_t last = open_.back();
    open_[c.index] = last;
    conns_[last]->index = c.index;
    open_.pop_back();
    conns_[slot].reset();
    free_slots_.push_back(slot);
    ++counters_.closed;
  }

  void onConnectionEvent(uint32_t slot, uint32_t events) {
    if (slot >= conns_.size() || !conns_[slot]) return;
    Connection& c = *conns_[slot];
    if (c.state == State::kStalled) {
      if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) closeConnection(slot);
      return;
    }
    if (c.tls) return onTlsEvent(slot, c);
    if (events & EPOLLOUT) {
      if (!flush(c)) return closeConnection(slot);
      if (c.out.empty()) watch(slot, EPOLLIN | EPOLLRDHUP);
    }
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
    char buf[4096];
    for (;;) {
      const ssize_t got = ::read(c.fd, buf, sizeof buf);
      if (got > 0) {
        c.in.append(buf, static_cast<size_t>(got));
        if (static_cast<size_t>(got) < sizeof buf) break;
        continue;
      }
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) break;
      return closeConnection(slot);  // EOF or error
    }
    if (!process(slot, c)) return closeConnection(slot);
  }

  void watch(uint32_t slot, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = slot;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, conns_[slot]->fd, &ev);
  }

  // Sends what it can of `data` (after anything already queued). False: the connection broke.
  bool send(uint32_t slot, Connection& c, const char* data, size_t size) {
    if (c.tls) return sendTls(c, data, size);
    if (c.out.empty()) {
      const ssize_t sent = ::send(c.fd, data, size, MSG_NOSIGNAL);
      if (sent == static_cast<ssize_t>(size)) return true;
      if (sent < 0 && errno != EAGAIN) return false;
      const size_t done = sent > 0 ? static_cast<size_t>(sent) : 0;
      c.out.append(data + done, size - done);
      watch(slot, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
      return true;
    }
    c.out.append(data, size);
    return true;
  }

  bool flush(Connection& c) {
    if (c.tls) return flushTls(c);
    while (!c.out.empty()) {
      const ssize_t sent = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (sent < 0) return errno == EAGAIN;
      c.out.erase(0, static_cast<size_t>(sent));
    }
    c.out.shrink_to_fit();
    return true;
  }

  // Consumes complete input. False: close the connection.
  bool process(uint32_t slot, Connection& c) {
    if (c.state == State::kHandshake) {
      const size_t end = c.in.find("\r\n\r\n");
      if (end == std::string::npos) return c.in.size() <= kMaxHandshakeBytes;
      if (!handshake(slot, c, c.in.substr(0, end))) return false;
      c.in.erase(0, end + 4);
    }
    size_t pos = 0;
    while (c.state == State::kOpen) {
      const size_t avail = c.in.size() - pos;
      if (avail < 2) break;
      const auto* p = reinterpret_cast<const unsigned char*>(c.in.data() + pos);
      const unsigned opcode = p[0] & 0x0f;
      const bool masked = p[1] & 0x80;
      uint64_t length = p[1] & 0x7f;
      size_t header = 2;
      if (length == 126) {
        if (avail < 4) break;
        length = (uint64_t{p[2]} << 8) | p[3];
        header = 4;
      } else if (length == 127) {
        if (avail < 10) break;
        length = 0;
        for (int i = 0; i < 8; ++i) length = (length << 8) | p[2 + i];
        header = 10;
      }
      if (length > kMaxFrameBytes) return false;
      const size_t mask_at = header;
      if (masked) header += 4;
      if (avail < header + length) break;
      std::string payload(c.in.data() + pos + header, length);
      if (masked) {
        for (size_t i = 0; i < length; ++i) payload[i] ^= static_cast<char>(p[mask_at + i % 4]);
      }
      pos += header + length;
      switch (opcode) {
        case 0x9:  // ping → pong
          ++counters_.pings;
          if (!reply(slot, c, 0xA, payload)) return false;
          ++counters_.pongs;
          break;
        case 0x1:  // text, binary, continuation: echo (TEXT-mode heartbeats)
        case 0x2:
        case 0x0:
          ++counters_.messages;
          if (!reply(slot, c, opcode == 0 ? 0x1 : opcode, payload)) return false;
          break;
        case 0x8:  // close: echo the code and hang up (the server closes TCP first)
          reply(slot, c, 0x8, payload.substr(0, std::min<size_t>(payload.size(), 2)));
          flush(c);
          if (c.tls) c.tls->shutdown();
          return false;
        default:
          break;  // pong or reserved: ignore
      }
    }
    c.in.erase(0, pos);
    if (c.in.capacity() > 256 && c.in.empty()) c.in.shrink_to_fit();
    return true;
  }

  // TLS: the handshake first, then the same input handling as a plain connection over decrypted
  // bytes. A TLS read can need the socket writable and a write can wait behind it, so whatever
  // the event, queued output is retried and input read; epoll is then armed for what is pending.
  void onTlsEvent(uint32_t slot, Connection& c) {
    TlsStream& tls = *c.tls;
    if (!tls.established()) {
      const TlsStep step = tls.handshake();
      if (step == TlsStep::kWouldBlock) return armTls(slot, c);
      if (step != TlsStep::kDone) {
        ++counters_.tls_errors;  // e.g. the client did not trust the certificate
        return closeConnection(slot);
      }
      ++counters_.tls_handshakes;
    }
    if (!flushTls(c)) return closeConnection(slot);
    char buf[4096];
    size_t taken = 0;
    while (taken <= kMaxTlsInputPerEvent) {
      size_t got = 0;
      const TlsStep step = tls.read(buf, sizeof buf, got);
      if (step == TlsStep::kWouldBlock) break;
      if (step != TlsStep::kDone) return closeConnection(slot);  // closed or failed
      c.in.append(buf, got);
      taken += got;
      // Level-triggered epoll announces what is still in the kernel, not what OpenSSL holds.
      if (!tls.hasBuffered()) break;
    }
    if (taken > kMaxTlsInputPerEvent) return closeConnection(slot);
    if (!process(slot, c)) return closeConnection(slot);
    armTls(slot, c);
  }

  // Watches for writability while output or a TLS step waits for it; one epoll_ctl per change.
  void armTls(uint32_t slot, Connection& c) {
    const bool out = !c.out.empty() || c.tls->wantsWrite();
    if (out == c.out_armed) return;
    c.out_armed = out;
    watch(slot, out ? EPOLLIN | EPOLLOUT | EPOLLRDHUP : EPOLLIN | EPOLLRDHUP);
  }

  // TLS output is all or nothing per write (TlsStream::write): once a write waits, later data
  // queues behind it and the whole queue is offered again (armTls arms EPOLLOUT).
  bool sendTls(Connection& c, const char* data, size_t size) {
    if (c.out.empty()) {
      const TlsStep step = c.tls->write(data, size);
      if (step == TlsStep::kDone) return true;
      if (step != TlsStep::kWouldBlock) return false;
    }
    c.out.append(data, size);
    return true;
  }

  bool flushTls(Connection& c) {
    if (c.out.empty()) return true;
    const TlsStep step = c.tls->write(c.out.data(), c.out.size());
    if (step == TlsStep::kWouldBlock) return true;
    if (step != TlsStep::kDone) return false;
    c.out.clear();
    c.out.shrink_to_fit();
    return true;
  }

  bool reply(uint32_t slot, Connection& c, unsigned opcode, const std::string& payload) {
    char frame[10 + kMaxFrameBytes];
    size_t n = 0;
    frame[n++] = static_cast<char>(0x80 | opcode);
    if (payload.size() < 126) {
      frame[n++] = static_cast<char>(payload.size());
    } else {
      frame[n++] = 126;
      frame[n++] = static_cast<char>(payload.size() >> 8);
      frame[n++] = static_cast<char>(payload.size() & 0xff);
    }
    std::memcpy(frame + n, payload.data(), payload.size());
    return send(slot, c, frame, n + payload.size());
  }

  bool handshake(uint32_t slot, Connection& c, const std::string& request) {
    // Request line: GET /path HTTP/1.1
    const size_t line_end = request.find("\r\n");
    const std::string line = request.substr(0, line_end);
    const size_t sp1 = line.find(' ');
    const size_t sp2 = line.find(' ', sp1 + 1);
    if (line.compare(0, 4, "GET ") != 0 || sp2 == std::string::npos) return false;
    std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string key;
    size_t at = line_end;
    while (at != std::string::npos && at < request.size()) {
      const size_t next = request.find("\r\n", at + 2);
      const std::string header =
          request.substr(at + 2, next == std::string::npos ? std::string::npos : next - at - 2);
      const size_t colon = header.find(':');
      if (colon != std::string::npos &&
          lowerCase(trim(header.substr(0, colon))) == "sec-websocket-key") {
        key = trim(header.substr(colon + 1));
      }
      at = next;
    }
    if (key.empty()) {
      const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
      send(slot, c, bad, sizeof bad - 1);
      return false;
    }
    unsigned char digest[20];
    const std::string accept_input = key + kWebSocketGuid;
    websocketpp::sha1::calc(accept_input.data(), accept_input.size(), digest);
    const std::string response =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " +
        websocketpp::base64_encode(digest, sizeof digest) + "\r\n\r\n";
    if (!send(slot, c, response.data(), response.size())) return false;
    c.id = path.size() > 1 && path[0] == '/' ? path.substr(1) : path;
    c.id.shrink_to_fit();
    c.state = State::kOpen;
    ++counters_.handshakes;
    return true;
  }

  const Options options_;
  std::unique_ptr<TlsContext> tls_;  // null: plain ws://
  std::mt19937_64 rng_;
  int epfd_ = -1;
  std::vector<int> listeners_;
  std::vector<std::string> bound_;
  std::vector<std::unique_ptr<Connection>> conns_;  // by slot
  std::vector<uint32_t> free_slots_;
  std::vector<uint32_t> open_;  // slots in use
  size_t stalled_count_ = 0;
  Stats counters_;
};

}  // namespace

std::unique_ptr<Fleet> makeEpollFleet(const Options& options) {
  return std::make_unique<EpollFleet>(options);
}

}  // namespace fleet
