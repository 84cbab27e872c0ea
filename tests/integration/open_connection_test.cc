// WebSocketTransport's open plain connections (supervisor/open_connection.h) against an upstream
// that writes raw bytes chosen by the test, over a real TCP socket: how the frames of an open
// plain connection are split into reads and what shares a read with what (two pongs in one
// write, a pong cut in two, a pong and a text frame together, a frame with reserved bits after a
// pong) is exactly what its read path must get right, and a well-behaved server library cannot be
// made to write such sequences on purpose.
//
// Every expectation here holds for websocketpp's own connection too: the events, their order and
// every failure's reason, detail and close code are what websocketpp reports.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "supervisor/readiness_poller.h"
#include "supervisor/websocket_transport.h"
#include "support/loopback_socket.h"

namespace wsvisor {
namespace {

using Bytes = std::vector<uint8_t>;
using namespace std::chrono_literals;

// Bounds every wait: a transport or peer that never answers ends the test instead of hanging it.
constexpr int kPollLimitMs = 10000;
constexpr auto kEventLimit = std::chrono::seconds(10);

// An unmasked frame as a server writes it; `first_byte` carries FIN, the RSV bits and the opcode.
Bytes serverFrame(uint8_t first_byte, const std::string& payload) {
  Bytes frame{first_byte};
  if (payload.size() < 126) {
    frame.push_back(static_cast<uint8_t>(payload.size()));
  } else {
    frame.push_back(126);
    frame.push_back(static_cast<uint8_t>(payload.size() >> 8));
    frame.push_back(static_cast<uint8_t>(payload.size()));
  }
  frame.insert(frame.end(), payload.begin(), payload.end());
  return frame;
}
Bytes pong(const std::string& payload) { return serverFrame(0x8A, payload); }
Bytes text(const std::string& payload) { return serverFrame(0x81, payload); }
Bytes ping(const std::string& payload) { return serverFrame(0x89, payload); }
Bytes closeFrame(uint16_t code, const std::string& reason) {
  std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  return serverFrame(0x88, payload + reason);
}
Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes all;
  for (const Bytes& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

// A frame the client sent, unmasked.
struct ClientFrame {
  uint8_t first_byte = 0;
  bool masked = false;
  std::array<uint8_t, 4> key{};
  std::string payload;
  // How many bytes of extended length the header had (0: the length fit in 7 bits).
  size_t length_bytes = 0;
};

// A ws:// upstream on 127.0.0.1 for one connection, written by hand: it answers the opening
// handshake and then sends exactly the bytes a test gives it, one send() per call, with Nagle off
// so that separate calls leave as separate segments.
class ScriptedUpstream {
 public:
  // `receive_buffer` > 0: the accepted connection's SO_RCVBUF (set on the listening socket, which
  // passes it on), so that a test can fill the path to it quickly.
  explicit ScriptedUpstream(int receive_buffer = 0) {
    listen_fd_ = testing::loopbackSocket(/*listen=*/true, port_, receive_buffer);
    if (listen_fd_ < 0) ADD_FAILURE() << "cannot listen on 127.0.0.1";
  }
  ~ScriptedUpstream() {
    if (peer_fd_ >= 0) ::close(peer_fd_);
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  ScriptedUpstream(const ScriptedUpstream&) = delete;
  ScriptedUpstream& operator=(const ScriptedUpstream&) = delete;

  std::string url() const { return "ws://127.0.0.1:" + std::to_string(port_) + "/"; }

  // Accepts the client, reads its handshake request and answers 101, followed in the same send()
  // by `after_response` (frames a server may write right behind its handshake response).
  bool acceptWebSocket(const Bytes& after_response = {}) {
    pollfd pending{listen_fd_, POLLIN, 0};
    if (::poll(&pending, 1, kPollLimitMs) != 1) return false;
    peer_fd_ = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (peer_fd_ < 0) return false;
    const int on = 1;
    ::setsockopt(peer_fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    std::string request;
    while (request.find("\r\n\r\n") == std::string::npos) {
      char chunk[512];
      if (!readable()) return false;
      const ssize_t n = ::recv(peer_fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) return false;
      request.append(chunk, static_cast<size_t>(n));
    }
    const std::string field = "Sec-WebSocket-Key: ";
    const size_t at = request.find(field);
    if (at == std::string::npos) return false;
    const std::string key =
        request.substr(at + field.size(), request.find("\r\n", at) - at - field.size());
    const std::string response =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " +
        acceptValue(key) + "\r\n\r\n";
    Bytes bytes(response.begin(), response.end());
    bytes.insert(bytes.end(), after_response.begin(), after_response.end());
    return send(bytes);
  }

  bool send(const Bytes& bytes) {
    return ::send(peer_fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }

  // The next frame the client sends (a 7- or 16-bit length); nullopt on timeout or EOF.
  std::optional<ClientFrame> readFrame() {
    Bytes header(2);
    if (!readExactly(header.data(), 2)) return std::nullopt;
    ClientFrame frame;
    frame.first_byte = header[0];
    frame.masked = (header[1] & 0x80) != 0;
    size_t length = header[1] & 0x7F;
    if (length == 127) return std::nullopt;
    if (length == 126) {
      uint8_t extended[2];
      if (!readExactly(extended, 2)) return std::nullopt;
      length = (size_t{extended[0]} << 8) | extended[1];
      frame.length_bytes = 2;
    }
    if (frame.masked && !readExactly(frame.key.data(), 4)) return std::nullopt;
    Bytes payload(length);
    if (length > 0 && !readExactly(payload.data(), length)) return std::nullopt;
    for (size_t i = 0; i < length; ++i) {
      frame.payload.push_back(
          static_cast<char>(payload[i] ^ (frame.masked ? frame.key[i % 4] : 0)));
    }
    return frame;
  }

  // Ends the stream to the client (FIN) but keeps reading from it, so that whatever the client
  // still writes is taken (closing with unread bytes would reset the connection instead).
  void endStream() { ::shutdown(peer_fd_, SHUT_WR); }

  // The frames the client sends until the end of its stream, described with their payload
  // unmasked; stops early at a frame this reader does not take, or when nothing arrives within
  // the limit.
  std::vector<std::string> framesUntilEnd() {
    std::vector<std::string> frames;
    while (std::optional<ClientFrame> frame = readFrame()) {
      std::string payload = frame->payload;
      if (frame->first_byte == 0x88 && payload.size() >= 2) {
        const int code = (static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]);
        payload = std::to_string(code) + " " + payload.substr(2);
      }
      frames.push_back(std::to_string(frame->first_byte) + (frame->masked ? " masked " : " ") +
                       payload);
    }
    return frames;
  }

  // Closes the TCP connection (FIN).
  void hangUp() {
    ::close(peer_fd_);
    peer_fd_ = -1;
  }

  // Closes the TCP connection with a reset (SO_LINGER 0: RST, no FIN).
  void reset() {
    const linger abort_on_close{1, 0};
    ::setsockopt(peer_fd_, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
    hangUp();
  }

 private:
  static std::string acceptValue(const std::string& key) {
    const std::string input = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
    unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
    const int length = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
    return std::string(reinterpret_cast<char*>(encoded), static_cast<size_t>(length));
  }

  bool readable() {
    pollfd pending{peer_fd_, POLLIN, 0};
    return ::poll(&pending, 1, kPollLimitMs) == 1;
  }

  bool readExactly(uint8_t* out, size_t size) {
    size_t have = 0;
    while (have < size) {
      if (!readable()) return false;
      const ssize_t n = ::recv(peer_fd_, out + have, size - have, 0);
      if (n <= 0) return false;
      have += static_cast<size_t>(n);
    }
    return true;
  }

  int listen_fd_ = -1;
  int peer_fd_ = -1;
  uint16_t port_ = 0;
};

// What the transport reported, copied out of the sink.
struct Recorded {
  enum Kind { kConnected, kConnectFailed, kMessage, kPong, kClosed } kind;
  std::string payload;    // kMessage, kPong
  core::Failure failure;  // kConnectFailed, kClosed
};

std::string describe(const Recorded& event) {
  static const char* const kNames[] = {"Connected", "ConnectFailed", "Message", "Pong", "Closed"};
  std::string text = kNames[event.kind];
  if (event.kind == Recorded::kMessage || event.kind == Recorded::kPong) {
    text += " \"" + event.payload + "\"";
  }
  if (event.kind == Recorded::kConnectFailed || event.kind == Recorded::kClosed) {
    text += std::string(" ") + core::toString(event.failure.reason) + " \"" + event.failure.detail +
            "\" code " + std::to_string(event.failure.close_code);
  }
  return text;
}

// A WebSocketTransport on its own io thread, as an IoShard runs it; every call is posted there.
class TransportThread {
 public:
  TransportThread()
      : transport_(
            io_,
            [this](uint64_t, uint64_t, const ConnectionRef& ref, const core::SessionEvent& event) {
              // As a session does: Connected names the connection from then on.
              if (std::holds_alternative<core::event::Connected>(event)) ref_ = ref;
              record(event);
              if (on_event_) on_event_(transport_, ref, event);
            }),
        work_(asio::make_work_guard(io_)),
        thread_([this] { io_.run(); }) {}
  ~TransportThread() {
    onIo([this] {
      if (ref_.valid()) transport_.abandon(ref_);
    });
    work_.reset();
    io_.stop();
    thread_.join();
  }

  // Runs `hook` on the io thread after each event is recorded, from inside the transport's call,
  // as a session's reaction would.
  using EventHook =
      std::function<void(WebSocketTransport&, const ConnectionRef&, const core::SessionEvent&)>;
  void onEvent(EventHook hook) {
    onIo([&] { on_event_ = std::move(hook); });
  }
  // Whether the reference connect() returned still names a connection.
  bool connectRefValid() {
    bool valid = false;
    onIo([&] { valid = connect_ref_.valid(); });
    return valid;
  }

  // Leaves the connections started from now on with websocketpp for their whole life.
  void keepOpenConnectionsWithWebsocketpp() {
    onIo([this] { transport_.keepOpenConnectionsWithWebsocketppForTest(); });
  }

  void connect(const std::string& url,
               uint64_t max_message_bytes = core::defaults::kMaxMessageBytes) {
    onIo([&] {
      core::EndpointSpec spec;
      spec.id = "scripted";
      spec.url = url;
      spec.max_message_bytes = max_message_bytes;
      ref_ = transport_.connect(1, 1, spec);
      connect_ref_ = ref_;
    });
  }
  void sendPing(const std::string& payload) {
    onIo([&] { transport_.sendPing(ref_, payload); });
  }
  void sendText(const std::string& payload) {
    onIo([&] { transport_.sendText(ref_, payload); });
  }
  // Runs `work` on the io thread with the transport and the current connection, and waits.
  void run(const std::function<void(WebSocketTransport&, const ConnectionRef&)>& work) {
    onIo([&] { work(transport_, ref_); });
  }
  void setBeforeHandshakeWrite(std::function<void(int)> hook) {
    onIo([&] { transport_.setBeforeHandshakeWriteForTest(std::move(hook)); });
  }
  // The transport's counters of frames that open connections sent or took themselves.
  uint64_t pingsSentDirectly() { return counter(&WebSocketTransport::pingsSentDirectlyForTest); }
  uint64_t pingsFinishedLater() { return counter(&WebSocketTransport::pingsFinishedLaterForTest); }
  uint64_t textsSentDirectly() { return counter(&WebSocketTransport::textsSentDirectlyForTest); }
  uint64_t pongsTakenFromReads() {
    return counter(&WebSocketTransport::pongsTakenFromReadsForTest);
  }
  uint64_t textsTakenFromReads() {
    return counter(&WebSocketTransport::textsTakenFromReadsForTest);
  }

  // Registers the socket of every connection started from now on in the io thread's
  // ReadinessPoller before the connection opens, so that the connection's own registration is
  // refused (EEXIST) and its reads wait through Asio: the path of a connection whose socket epoll
  // does not take.
  void occupyReadinessOfNewSockets() {
    onIo([this] {
      ReadinessPoller* poller = &asio::use_service<ReadinessPoller>(io_);
      transport_.setBeforeHandshakeWriteForTest([poller](int socket_fd) {
        poller->add(
            socket_fd, [](void*, uint32_t) {}, nullptr, nullptr);
      });
    });
  }

  // Sockets the io thread's ReadinessPoller reports readiness for.
  size_t readinessRegistered() {
    size_t registered = 0;
    onIo([&] { registered = asio::use_service<ReadinessPoller>(io_).registered(); });
    return registered;
  }

  // Waits until `count` events have been reported (or the limit passes) and returns them all.
  std::vector<Recorded> events(size_t count) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, kEventLimit, [&] { return events_.size() >= count; });
    return events_;
  }
  // Waits until the connection has ended (or the limit passes) and returns every event.
  std::vector<Recorded> eventsUntilClosed() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, kEventLimit, [&] {
      return !events_.empty() && (events_.back().kind == Recorded::kClosed ||
                                  events_.back().kind == Recorded::kConnectFailed);
    });
    return events_;
  }

 private:
  uint64_t counter(uint64_t (WebSocketTransport::*read)() const) {
    uint64_t value = 0;
    onIo([&] { value = (transport_.*read)(); });
    return value;
  }

  void onIo(const std::function<void()>& work) {
    std::promise<void> done;
    asio::post(io_, [&] {
      work();
      done.set_value();
    });
    done.get_future().wait();
  }

  void record(const core::SessionEvent& event) {
    Recorded recorded{Recorded::kConnected, {}, {}};
    if (const auto* failed = std::get_if<core::event::ConnectFailed>(&event)) {
      recorded = {Recorded::kConnectFailed, {}, failed->failure};
    } else if (const auto* message = std::get_if<core::event::MessageReceived>(&event)) {
      recorded = {Recorded::kMessage, std::string(message->payload), {}};
    } else if (const auto* pong = std::get_if<core::event::PongReceived>(&event)) {
      recorded = {Recorded::kPong, std::string(pong->payload), {}};
    } else if (const auto* closed = std::get_if<core::event::Closed>(&event)) {
      recorded = {Recorded::kClosed, {}, closed->failure};
    }
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(recorded));
    cv_.notify_all();
  }

  asio::io_context io_;
  WebSocketTransport transport_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  ConnectionRef ref_;  // io thread only
  ConnectionRef connect_ref_;
  EventHook on_event_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Recorded> events_;
  std::thread thread_;
};

// Reads the next frame the client wrote and checks that it is a close frame (FIN, opcode 8).
void expectCloseFrame(ScriptedUpstream& upstream) {
  const std::optional<ClientFrame> frame = upstream.readFrame();
  ASSERT_TRUE(frame.has_value());
  EXPECT_EQ(frame->first_byte, 0x88);
}

// The events after Connected, described, so that a mismatch prints the whole sequence.
std::vector<std::string> describeAfterOpen(const std::vector<Recorded>& events) {
  std::vector<std::string> described;
  for (const Recorded& event : events) {
    if (event.kind != Recorded::kConnected) described.push_back(describe(event));
  }
  return described;
}

class OpenConnectionTest : public ::testing::Test {
 protected:
  // Connects and waits until the transport reports the connection open.
  void open(const Bytes& after_response = {}) {
    transport_.connect(upstream_.url());
    ASSERT_TRUE(upstream_.acceptWebSocket(after_response));
    const std::vector<Recorded> events = transport_.events(1);
    ASSERT_FALSE(events.empty());
    ASSERT_EQ(events[0].kind, Recorded::kConnected) << describe(events[0]);
  }
  // The events after Connected once `count` of them have arrived.
  std::vector<std::string> afterOpen(size_t count) {
    return describeAfterOpen(transport_.events(count + 1));
  }

  ScriptedUpstream upstream_;
  TransportThread transport_;
};

TEST_F(OpenConnectionTest, TwoPongsInOneWriteAreBothReported) {
  open();
  ASSERT_TRUE(upstream_.send(concat({pong("1"), pong("2")})));
  EXPECT_EQ(afterOpen(2), (std::vector<std::string>{"Pong \"1\"", "Pong \"2\""}));
  EXPECT_EQ(transport_.pongsTakenFromReads(), 2u);
}

TEST_F(OpenConnectionTest, APongCutInTwoIsReportedOnceWhole) {
  open();
  const Bytes frame = pong("12345");
  // Cut inside the header, then inside the payload: separate segments, read separately.
  ASSERT_TRUE(upstream_.send(Bytes(frame.begin(), frame.begin() + 1)));
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(upstream_.send(Bytes(frame.begin() + 1, frame.begin() + 4)));
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(upstream_.send(concat({Bytes(frame.begin() + 4, frame.end()), pong("6")})));
  ASSERT_EQ(afterOpen(2), (std::vector<std::string>{"Pong \"12345\"", "Pong \"6\""}));
  // Back at a frame start once websocketpp has the rest: the next pong is taken from the read.
  const uint64_t taken = transport_.pongsTakenFromReads();
  ASSERT_TRUE(upstream_.send(pong("7")));
  EXPECT_EQ(afterOpen(3).back(), "Pong \"7\"");
  EXPECT_EQ(transport_.pongsTakenFromReads(), taken + 1);
}

TEST_F(OpenConnectionTest, APongAndATextFrameInOneWriteKeepTheirOrder) {
  open();
  ASSERT_TRUE(upstream_.send(concat({pong("1"), text("hello"), pong("2")})));
  ASSERT_TRUE(upstream_.send(concat({text("again"), pong("3")})));
  EXPECT_EQ(afterOpen(5), (std::vector<std::string>{"Pong \"1\"", "Message \"hello\"", "Pong \"2\"",
                                                    "Message \"again\"", "Pong \"3\""}));
  // Whole small texts are taken from the reads as pongs are, so every frame was.
  EXPECT_EQ(transport_.pongsTakenFromReads(), 3u);
  EXPECT_EQ(transport_.textsTakenFromReads(), 2u);
}

TEST_F(OpenConnectionTest, TextsTakenFromReadsAreWholeMessagesOnly) {
  open();
  // Two whole texts in one read (one with a 16-bit length, one of two-byte UTF-8) are taken from
  // it; then a message in two fragments with a pong between them, each read starting with a
  // fragment, and a text behind the last fragment: all of those are websocketpp's processor's.
  const std::string long_text(300, 'L');
  ASSERT_TRUE(upstream_.send(concat({text(long_text), text("é")})));
  EXPECT_EQ(afterOpen(2),
            (std::vector<std::string>{"Message \"" + long_text + "\"", "Message \"é\""}));
  EXPECT_EQ(transport_.textsTakenFromReads(), 2u);
  ASSERT_TRUE(upstream_.send(concat({serverFrame(0x01, "first "), pong("between")})));
  ASSERT_TRUE(upstream_.send(concat({serverFrame(0x80, "last"), text("after")})));
  EXPECT_EQ(afterOpen(5), (std::vector<std::string>{
                              "Message \"" + long_text + "\"", "Message \"é\"", "Pong \"between\"",
                              "Message \"first last\"", "Message \"after\""}));
  // Each of those reads began with a fragment, so websocketpp's processor had all of them.
  EXPECT_EQ(transport_.pongsTakenFromReads(), 0u);
  EXPECT_EQ(transport_.textsTakenFromReads(), 2u);
}

TEST_F(OpenConnectionTest, AWholeTextWhileAFragmentedMessageWaitsFailsAsWebsocketppDecides) {
  open();
  // The first fragment and a pong: once the pong is reported, the fragment has been read, and
  // the next read starts with a text frame where websocketpp expects the continuation.
  ASSERT_TRUE(upstream_.send(concat({serverFrame(0x01, "first"), pong("read")})));
  ASSERT_EQ(afterOpen(1), (std::vector<std::string>{"Pong \"read\""}));
  ASSERT_TRUE(upstream_.send(text("whole")));
  ASSERT_NO_FATAL_FAILURE(expectCloseFrame(upstream_));
  ASSERT_TRUE(upstream_.send(serverFrame(0x88, "")));
  upstream_.hangUp();
  EXPECT_EQ(
      afterOpen(2),
      (std::vector<std::string>{
          "Pong \"read\"",
          "Closed network_error \"protocol error: Invalid message continuation\" code 1002"}));
  EXPECT_EQ(transport_.textsTakenFromReads(), 0u);
}

TEST_F(OpenConnectionTest, PongsBehindALongTextFrameAreReportedAfterIt) {
  open();
  // 2,000 bytes of text take several reads of the 640-byte read buffer; the pongs behind it, and
  // the one cut by the end of a read, must wait for it.
  const std::string long_text(2000, 't');
  Bytes bytes = text(long_text);
  for (int i = 0; i < 100; ++i) bytes = concat({bytes, pong("p" + std::to_string(i))});
  ASSERT_TRUE(upstream_.send(bytes));
  std::vector<std::string> expected{"Message \"" + long_text + "\""};
  for (int i = 0; i < 100; ++i) expected.push_back("Pong \"p" + std::to_string(i) + "\"");
  EXPECT_EQ(afterOpen(101), expected);
}

TEST_F(OpenConnectionTest, BytesThatLookLikePongsInsideAFrameAreNeverTakenFromIt) {
  open();
  // A binary frame whose payload is pong after pong, 1,500 bytes: reads of the 640-byte read
  // buffer start inside it, on what looks like a pong's first byte.
  Bytes lookalikes;
  while (lookalikes.size() < 1500) lookalikes = concat({lookalikes, pong("z")});
  const std::string payload(lookalikes.begin(), lookalikes.end());
  ASSERT_TRUE(upstream_.send(concat({serverFrame(0x82, payload), pong("end")})));
  EXPECT_EQ(afterOpen(2),
            (std::vector<std::string>{"Message \"" + payload + "\"", "Pong \"end\""}));
  ASSERT_TRUE(upstream_.send(pong("next")));
  EXPECT_EQ(afterOpen(3).back(), "Pong \"next\"");
  EXPECT_LE(transport_.pongsTakenFromReads(), 2u);
}

TEST_F(OpenConnectionTest, FramesWrittenRightBehindTheHandshakeResponseAreReportedInOrder) {
  // A server may write frames in the same segment as its 101 response, even half a frame: here
  // the header of a binary frame whose payload, in the next segment, looks like a pong.
  open(concat({pong("0"), text("welcome"), Bytes{0x82, 0x04}}));
  const Bytes lookalike{0x8A, 0x01, 'x', 'y'};
  ASSERT_TRUE(upstream_.send(concat({lookalike, pong("4")})));
  EXPECT_EQ(afterOpen(4), (std::vector<std::string>{
                              "Pong \"0\"", "Message \"welcome\"",
                              "Message \"" + std::string(lookalike.begin(), lookalike.end()) + "\"",
                              "Pong \"4\""}));
  // "0" starts the bytes behind the response: taken from the read. The lookalike is the binary
  // message's payload, and "4" shares its read: both through websocketpp's processor.
  EXPECT_EQ(transport_.pongsTakenFromReads(), 1u);
  ASSERT_TRUE(upstream_.send(pong("5")));
  EXPECT_EQ(afterOpen(5).back(), "Pong \"5\"");
  EXPECT_EQ(transport_.pongsTakenFromReads(), 2u);
}

TEST_F(OpenConnectionTest, APingFromTheServerIsAnsweredAndPongsStillCount) {
  open();
  ASSERT_TRUE(upstream_.send(concat({pong("1"), ping("are you there")})));
  const std::optional<ClientFrame> answer = upstream_.readFrame();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->first_byte, 0x8A);  // FIN, pong
  EXPECT_TRUE(answer->masked);
  EXPECT_EQ(answer->payload, "are you there");
  ASSERT_TRUE(upstream_.send(pong("2")));
  EXPECT_EQ(afterOpen(2), (std::vector<std::string>{"Pong \"1\"", "Pong \"2\""}));
  EXPECT_EQ(transport_.pongsTakenFromReads(), 2u);
}

TEST_F(OpenConnectionTest, ACloseFrameRightBehindAPongClosesWithItsCode) {
  open();
  EXPECT_EQ(transport_.readinessRegistered(), 1u);
  ASSERT_TRUE(upstream_.send(concat({pong("1"), closeFrame(1001, "going away")})));
  // The connection answers the close frame; the upstream then hangs up, as a server does.
  ASSERT_NO_FATAL_FAILURE(expectCloseFrame(upstream_));
  upstream_.hangUp();
  EXPECT_EQ(afterOpen(2),
            (std::vector<std::string>{"Pong \"1\"",
                                      "Closed closed_by_peer \"close code 1001: going away\" "
                                      "code 1001"}));
  EXPECT_EQ(transport_.pongsTakenFromReads(), 1u);
  EXPECT_EQ(transport_.readinessRegistered(), 0u) << "the reads ended with the connection";
}

// A frame websocketpp's processor refuses, behind a pong in the same read: the pong counts, then
// the connection fails with websocketpp's own reason and close code (1002).
void expectProtocolErrorAfterPong(ScriptedUpstream& upstream, TransportThread& transport,
                                  const Bytes& bad_frame, const std::string& expected_close) {
  ASSERT_TRUE(upstream.send(concat({pong("1"), bad_frame, pong("after")})));
  ASSERT_NO_FATAL_FAILURE(expectCloseFrame(upstream));
  ASSERT_TRUE(upstream.send(serverFrame(0x88, "")));
  upstream.hangUp();
  EXPECT_EQ(describeAfterOpen(transport.events(3)),
            (std::vector<std::string>{"Pong \"1\"", expected_close}));
  EXPECT_EQ(transport.pongsTakenFromReads(), 1u);
  // Reading stops at the error, as websocketpp's does; the connection's end ends the
  // registration.
  EXPECT_EQ(transport.readinessRegistered(), 0u);
}

TEST_F(OpenConnectionTest, APongWithAReservedBitSetFailsAsWebsocketppDecides) {
  open();
  expectProtocolErrorAfterPong(
      upstream_, transport_, serverFrame(0x8A | 0x40, "2"),
      "Closed network_error \"protocol error: Invalid use of reserved bits\" "
      "code 1002");
}

TEST_F(OpenConnectionTest, AMaskedFrameFromTheServerFailsAsWebsocketppDecides) {
  open();
  expectProtocolErrorAfterPong(
      upstream_, transport_, Bytes{0x8A, 0x81, 1, 2, 3, 4, '2' ^ 1},
      "Closed network_error \"protocol error: Servers may not send masked frames\" code 1002");
}

TEST_F(OpenConnectionTest, AFragmentedPongFailsAsWebsocketppDecides) {
  open();
  expectProtocolErrorAfterPong(upstream_, transport_, serverFrame(0x0A, "2"),
                               "Closed network_error \"protocol error: Control messages cannot be "
                               "fragmented\" code 1002");
}

TEST_F(OpenConnectionTest, AHangUpAfterAPongIsAnAbnormalClose) {
  open();
  EXPECT_EQ(transport_.readinessRegistered(), 1u);
  ASSERT_TRUE(upstream_.send(pong("1")));
  ASSERT_EQ(afterOpen(1), (std::vector<std::string>{"Pong \"1\""}));
  upstream_.hangUp();
  EXPECT_EQ(afterOpen(2),
            (std::vector<std::string>{"Pong \"1\"",
                                      "Closed closed_by_peer \"connection ended without a "
                                      "close frame\" code 1006"}));
  EXPECT_EQ(transport_.readinessRegistered(), 0u) << "the reads ended with the connection";
}

TEST_F(OpenConnectionTest, ClosingFromOurSideEndsTheReadsOnceTheServerHangsUp) {
  open();
  ASSERT_TRUE(upstream_.send(pong("1")));
  ASSERT_EQ(afterOpen(1), (std::vector<std::string>{"Pong \"1\""}));
  transport_.run([](WebSocketTransport& transport, const ConnectionRef& ref) {
    transport.close(ref, 1001, "shutting down");
  });
  ASSERT_NO_FATAL_FAILURE(expectCloseFrame(upstream_));
  // The answer and the hang-up, sent while the io thread is busy here, so that both have arrived
  // by its next look at its sockets: one readiness report for the two.
  const auto hung_up_at = std::chrono::steady_clock::now();
  transport_.run([&](WebSocketTransport&, const ConnectionRef&) {
    EXPECT_TRUE(upstream_.send(closeFrame(1001, "")));
    upstream_.hangUp();
  });
  EXPECT_EQ(afterOpen(2),
            (std::vector<std::string>{"Pong \"1\"",
                                      "Closed closed_by_peer \"close code 1001\" code 1001"}));
  EXPECT_LT(std::chrono::steady_clock::now() - hung_up_at, std::chrono::milliseconds(2000))
      << "ended by the hang-up, not by the 5 s closing-handshake timeout";
  EXPECT_EQ(transport_.readinessRegistered(), 0u) << "the reads ended with the connection";
}

TEST_F(OpenConnectionTest, WhenThePollerCannotTakeTheSocketReadsWaitThroughAsioAlike) {
  transport_.occupyReadinessOfNewSockets();
  open();
  EXPECT_EQ(transport_.readinessRegistered(), 1u) << "the occupying registration alone";
  ASSERT_TRUE(upstream_.send(concat({pong("1"), pong("2")})));
  ASSERT_EQ(afterOpen(2), (std::vector<std::string>{"Pong \"1\"", "Pong \"2\""}));
  EXPECT_EQ(transport_.pongsTakenFromReads(), 2u);
  ASSERT_TRUE(upstream_.send(concat({pong("3"), closeFrame(1001, "going away")})));
  ASSERT_NO_FATAL_FAILURE(expectCloseFrame(upstream_));
  upstream_.hangUp();
  EXPECT_EQ(afterOpen(4),
            (std::vector<std::string>{"Pong \"1\"", "Pong \"2\"", "Pong \"3\"",
                                      "Closed closed_by_peer \"close code 1001: going away\" "
                                      "code 1001"}));
}

// The server closes; before it hangs up, the session closes too (a heartbeat deadline, a stop):
// a second close is refused (as websocketpp refuses it), so the transport drops the connection,
// closing its socket under the read. The events are those of the Asio path, and the
// registration goes.
std::vector<std::string> closeWhileTheServerCloses(ScriptedUpstream& upstream,
                                                   TransportThread& transport) {
  EXPECT_TRUE(upstream.send(closeFrame(1000, "bye")));
  expectCloseFrame(upstream);
  const auto closed_at = std::chrono::steady_clock::now();
  transport.run([](WebSocketTransport& transport, const ConnectionRef& ref) {
    transport.close(ref, 1001, "stopping");
  });
  std::vector<std::string> events = describeAfterOpen(transport.events(2));
  EXPECT_LT(std::chrono::steady_clock::now() - closed_at, std::chrono::milliseconds(2000))
      << "ended by the dropped socket, not by the 5 s closing-handshake timeout";
  return events;
}

TEST_F(OpenConnectionTest, ClosingAConnectionTheServerIsClosingDropsItAsOnTheAsioPath) {
  open();
  const std::vector<std::string> events = closeWhileTheServerCloses(upstream_, transport_);
  EXPECT_EQ(events,
            (std::vector<std::string>{"Closed closed_by_peer \"close code 1000: bye\" code 1000"}));
  EXPECT_EQ(transport_.readinessRegistered(), 0u);

  ScriptedUpstream asio_upstream;
  TransportThread asio_transport;
  asio_transport.occupyReadinessOfNewSockets();
  asio_transport.connect(asio_upstream.url());
  ASSERT_TRUE(asio_upstream.acceptWebSocket({}));
  ASSERT_EQ(asio_transport.events(1).size(), 1u);
  EXPECT_EQ(closeWhileTheServerCloses(asio_upstream, asio_transport), events);
}

TEST_F(OpenConnectionTest, PingsAreMaskedFinalPingFramesEachWithAFreshKey) {
  open();
  transport_.sendPing("1");
  transport_.sendPing("22");
  transport_.sendPing(std::string(125, 'p'));  // the longest a control frame may carry
  std::vector<ClientFrame> frames;
  for (int i = 0; i < 3; ++i) {
    std::optional<ClientFrame> frame = upstream_.readFrame();
    ASSERT_TRUE(frame.has_value()) << "frame " << i;
    EXPECT_EQ(frame->first_byte, 0x89);  // FIN, no RSV bit, ping
    EXPECT_TRUE(frame->masked);          // RFC 6455 section 5.3: every client frame
    frames.push_back(*frame);
  }
  EXPECT_EQ(frames[0].payload, "1");
  EXPECT_EQ(frames[1].payload, "22");
  EXPECT_EQ(frames[2].payload, std::string(125, 'p'));
  EXPECT_NE(frames[0].key, frames[1].key);
  EXPECT_NE(frames[1].key, frames[2].key);
  EXPECT_NE(frames[0].key, frames[2].key);
  EXPECT_EQ(transport_.pingsSentDirectly(), 3u);
  // The pongs answering them count as ever.
  ASSERT_TRUE(upstream_.send(concat({pong("1"), pong("22")})));
  EXPECT_EQ(afterOpen(2), (std::vector<std::string>{"Pong \"1\"", "Pong \"22\""}));
}

TEST_F(OpenConnectionTest, TextHeartbeatsAreMaskedFinalTextFramesEachWithAFreshKey) {
  open();
  const std::string longest(4096, 'h');  // the longest heartbeat text a spec may have
  const std::string beyond(5000, 'b');   // past the io thread's frame buffer: websocketpp's path
  for (const std::string& payload : {std::string("heartbeat"), std::string(200, 'm'), longest,
                                     std::string("\xC3\xA9t\xC3\xA9"), beyond}) {
    transport_.sendText(payload);
  }
  std::vector<ClientFrame> frames;
  for (int i = 0; i < 4; ++i) {
    std::optional<ClientFrame> frame = upstream_.readFrame();
    ASSERT_TRUE(frame.has_value()) << "frame " << i;
    EXPECT_EQ(frame->first_byte, 0x81);  // FIN, no RSV bit, text
    EXPECT_TRUE(frame->masked);
    frames.push_back(*frame);
  }
  EXPECT_EQ(frames[0].payload, "heartbeat");
  EXPECT_EQ(frames[0].length_bytes, 0u);
  EXPECT_EQ(frames[1].payload, std::string(200, 'm'));
  EXPECT_EQ(frames[1].length_bytes, 2u);  // the shortest encoding of 200
  EXPECT_EQ(frames[2].payload, longest);
  EXPECT_EQ(frames[3].payload, "\xC3\xA9t\xC3\xA9");
  std::set<std::array<uint8_t, 4>> keys;
  for (const ClientFrame& frame : frames) keys.insert(frame.key);
  EXPECT_EQ(keys.size(), frames.size()) << "a masking key was used twice";
  EXPECT_EQ(transport_.textsSentDirectly(), 4u);
  const std::optional<ClientFrame> last = upstream_.readFrame();
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->first_byte, 0x81);
  EXPECT_EQ(last->payload, beyond);
}

TEST(OpenConnectionFullSocketTest, PingsWrittenIntoAFullSocketKeepTheirOrderWithOtherFrames) {
  // Small buffers at both ends, and an upstream that reads nothing for a while: one send cannot
  // take a whole ping, Asio finishes it, and the frames asked for meanwhile (pings and texts)
  // queue behind it. On the wire: every frame whole, in the order asked for.
  ScriptedUpstream upstream(/*receive_buffer=*/2048);
  TransportThread transport;
  transport.setBeforeHandshakeWrite([](int fd) {
    const int send_buffer = 2048;
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof(send_buffer));
  });
  transport.connect(upstream.url());
  ASSERT_TRUE(upstream.acceptWebSocket());
  ASSERT_EQ(transport.events(1).at(0).kind, Recorded::kConnected);

  constexpr int kPings = 4000;  // about 40 KB of frames, many times what the buffers hold
  transport.run([&](WebSocketTransport& t, const ConnectionRef& ref) {
    for (int i = 0; i < kPings; ++i) {
      t.sendPing(ref, std::to_string(i));
      if (i == kPings / 2) t.sendText(ref, "halfway");
    }
    t.sendText(ref, "done");
  });
  std::vector<std::string> seen;
  for (int i = 0; i < kPings + 2; ++i) {
    const std::optional<ClientFrame> frame = upstream.readFrame();
    ASSERT_TRUE(frame.has_value())
        << "frame " << i << " after " << (seen.empty() ? "" : seen.back());
    ASSERT_TRUE(frame->masked);
    seen.push_back((frame->first_byte == 0x89   ? "ping "
                    : frame->first_byte == 0x81 ? "text "
                                                : "? ") +
                   frame->payload);
  }
  std::vector<std::string> expected;
  for (int i = 0; i < kPings; ++i) {
    expected.push_back("ping " + std::to_string(i));
    if (i == kPings / 2) expected.push_back("text halfway");
  }
  expected.push_back("text done");
  EXPECT_EQ(seen, expected);
  EXPECT_GE(transport.pingsFinishedLater(), 1u);
  EXPECT_EQ(transport.pingsSentDirectly(), static_cast<uint64_t>(kPings));
}

TEST(OpenConnectionFullSocketTest, APingIntoAResetConnectionFailsItAsAFailedWriteWould) {
  ScriptedUpstream upstream;
  TransportThread transport;
  int client_fd = -1;
  transport.setBeforeHandshakeWrite([&](int fd) { client_fd = fd; });
  transport.connect(upstream.url());
  ASSERT_TRUE(upstream.acceptWebSocket());
  ASSERT_EQ(transport.events(1).at(0).kind, Recorded::kConnected);
  // In one turn of the io thread: reset, wait until the reset is there, then ping, so that the
  // ping's write (not a read) is the first to meet it.
  bool reset_arrived = false;
  transport.run([&](WebSocketTransport& t, const ConnectionRef& ref) {
    upstream.reset();
    pollfd reset{client_fd, POLLIN, 0};
    reset_arrived = ::poll(&reset, 1, kPollLimitMs) == 1;
    t.sendPing(ref, "1");
  });
  ASSERT_TRUE(reset_arrived);
  EXPECT_EQ(describeAfterOpen(transport.events(2)),
            (std::vector<std::string>{"Closed closed_by_peer \"connection ended without a close "
                                      "frame\" code 1006"}));
}

// A session that drops its connection from inside one of its events (here: a close with a code
// websocketpp will not send, so the transport drops the socket): the connection stays alive
// through the read that reported the event, finishes it, and ends as websocketpp's does.
std::vector<std::string> dropFromInsideAPongEvent(bool take_over) {
  ScriptedUpstream upstream;
  TransportThread transport;
  if (!take_over) transport.keepOpenConnectionsWithWebsocketpp();
  transport.onEvent(
      [](WebSocketTransport& t, const ConnectionRef& ref, const core::SessionEvent& event) {
        if (std::holds_alternative<core::event::PongReceived>(event)) t.close(ref, 1006, "");
      });
  transport.connect(upstream.url());
  EXPECT_TRUE(upstream.acceptWebSocket());
  EXPECT_TRUE(upstream.send(concat({pong("1"), pong("2"), text("x")})));
  return describeAfterOpen(transport.eventsUntilClosed());
}

TEST(OpenConnectionLifetimeTest,
     DroppingTheConnectionFromInsideItsOwnEventEndsItAsWebsocketppDoes) {
  const std::vector<std::string> taken_over = dropFromInsideAPongEvent(/*take_over=*/true);
  EXPECT_EQ(taken_over,
            (std::vector<std::string>{"Pong \"1\"", "Pong \"2\"", "Message \"x\"",
                                      "Closed closed_by_peer \"connection ended without a close "
                                      "frame: Bad file descriptor\" code 1006"}));
  EXPECT_EQ(taken_over, dropFromInsideAPongEvent(/*take_over=*/false));
}

TEST(OpenConnectionLifetimeTest, WebsocketppLetsGoOfATakenOverConnectionAtOnce) {
  // A close frame right behind the response: websocketpp, which still runs those bytes through
  // its processor, answers it into the void and would keep its connection for its 5 s
  // closing-handshake timer.
  ScriptedUpstream upstream;
  TransportThread transport;
  transport.connect(upstream.url());
  ASSERT_TRUE(upstream.acceptWebSocket(closeFrame(1000, "bye")));
  ASSERT_EQ(transport.events(1).at(0).kind, Recorded::kConnected);
  const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (transport.connectRefValid() && std::chrono::steady_clock::now() < limit) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_FALSE(transport.connectRefValid()) << "websocketpp still holds its connection after 2 s";
  // The connection itself answered the close frame and goes on to its end.
  ASSERT_NO_FATAL_FAILURE(expectCloseFrame(upstream));
  upstream.hangUp();
  EXPECT_EQ(describeAfterOpen(transport.eventsUntilClosed()),
            (std::vector<std::string>{"Closed closed_by_peer \"close code 1000: bye\" code 1000"}));
}

// ---- The same bytes against websocketpp's own connection ----
//
// A script is a sequence of server frames, split into segments at chosen points (the first part
// may ride behind the 101 response), and played split and in one send(), each against a
// connection that wsvisor takes over and against one that websocketpp keeps for its whole life.
// The events (every failure's reason, detail and close code included) must be the same.
//
// Sent in one send() (so that both connections take the frames in the same reads), the frames the
// client writes back (answers to pings and close frames) must begin with websocketpp's, in its
// order; they may go on where websocketpp's stop. (Split, which segments share a read depends on
// timing, and so does which answers get out before a later frame ends the connection.) websocketpp
// writes a frame two turns of its loop after it is asked for (a posted write_frame, then a posted
// completion before the next), so the server's end of the stream, read meanwhile, ends the
// connection with its last answers still queued. An OpenConnection writes on the next turn and
// gets them out; nothing it reports differs.

struct Script {
  Bytes behind_response;
  std::vector<Bytes> segments;

  // The same frames in one send() after the handshake.
  Script whole() const {
    Script one;
    one.segments.push_back(behind_response);
    for (const Bytes& segment : segments) {
      one.segments[0].insert(one.segments[0].end(), segment.begin(), segment.end());
    }
    return one;
  }
};

struct Outcome {
  std::vector<std::string> events;
  std::vector<std::string> frames_written;
};

// What `taken_over` wrote begins with what `websocketpp` wrote.
bool writesWhatWebsocketppWrites(const Outcome& taken_over, const Outcome& websocketpp) {
  const std::vector<std::string>& ours = taken_over.frames_written;
  const std::vector<std::string>& theirs = websocketpp.frames_written;
  return ours.size() >= theirs.size() && std::equal(theirs.begin(), theirs.end(), ours.begin());
}

std::ostream& operator<<(std::ostream& out, const Outcome& outcome) {
  out << "events:";
  for (const std::string& event : outcome.events) out << " [" << event << "]";
  out << " frames written:";
  for (const std::string& frame : outcome.frames_written) out << " [" << frame << "]";
  return out;
}

std::string hex(const Bytes& bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string text;
  for (uint8_t byte : bytes) {
    text.push_back(kDigits[byte >> 4]);
    text.push_back(kDigits[byte & 0xF]);
  }
  return text;
}

std::string describe(const Script& script) {
  std::string text = "behind the response: " + hex(script.behind_response) + "; segments:";
  for (const Bytes& segment : script.segments) text += " " + hex(segment);
  return text;
}

// Small enough that a text frame of a script can exceed it (1009).
constexpr uint64_t kScriptMaxMessageBytes = 200;

Outcome play(const Script& script, bool take_over) {
  ScriptedUpstream upstream;
  TransportThread transport;
  if (!take_over) transport.keepOpenConnectionsWithWebsocketpp();
  transport.connect(upstream.url(), kScriptMaxMessageBytes);
  Outcome outcome;
  if (!upstream.acceptWebSocket(script.behind_response)) {
    outcome.events.push_back("no handshake");
    return outcome;
  }
  for (const Bytes& segment : script.segments) upstream.send(segment);
  // Every script ends alike: the server closes (answered if the connection is still open) and
  // ends its stream, then takes what the client writes until the client's end.
  upstream.send(closeFrame(1000, "end of script"));
  upstream.endStream();
  outcome.frames_written = upstream.framesUntilEnd();
  outcome.events = describeAfterOpen(transport.eventsUntilClosed());
  return outcome;
}

// One server frame, well-formed or not, drawn from what upstreams send and what they get wrong.
Bytes randomFrame(std::mt19937& random) {
  const auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(random); };
  const auto letters = [&](int size) {
    std::string payload;
    for (int i = 0; i < size; ++i) payload.push_back(static_cast<char>('a' + pick(26)));
    return payload;
  };
  static const uint16_t kCloseCodes[] = {1000, 1001, 1002, 1005, 1006, 1009, 999,
                                         1015, 1016, 2999, 3000, 4999, 5000};
  // Mostly frames a connection takes in its stride, so that scripts get past their first frame.
  switch (pick(27)) {
    case 0:
    case 1:
    case 2:
    case 16:
    case 17:
    case 18:
    case 19:
      return pong(letters(pick(20)));
    case 3:
      return pong(letters(110 + pick(30)));  // past 125 at times: too big for a control frame
    case 4:
    case 20:
      return ping(letters(pick(30)));
    case 5:
    case 21:
      return text(letters(pick(250)));  // past kScriptMaxMessageBytes at times
    case 6:
    case 22:
      return serverFrame(0x82, letters(pick(50)));  // binary
    case 7:  // a text message in two fragments, with a pong between them
      return concat({serverFrame(0x01, letters(pick(10))), pong("between"),
                     serverFrame(0x80, letters(pick(10)))});
    case 8:
      return serverFrame(0x80, "x");  // a continuation with nothing to continue
    case 9:
      return serverFrame(0x0A, "fragmented pong");
    case 10:
      return serverFrame(static_cast<uint8_t>(0x81 | (0x10 << pick(3))), "reserved bit");
    case 11: {  // masked, which a server may not do
      const std::string payload = letters(1 + pick(5));
      Bytes frame{0x8A, static_cast<uint8_t>(0x80 | payload.size()), 1, 2, 3, 4};
      for (size_t i = 0; i < payload.size(); ++i) {
        frame.push_back(static_cast<uint8_t>(payload[i] ^ (1 + i % 4)));
      }
      return frame;
    }
    case 12: {  // an opcode RFC 6455 reserves
      static const uint8_t kReserved[] = {0x83, 0x85, 0x87, 0x8B, 0x8D, 0x8F};
      return serverFrame(kReserved[pick(6)], "?");
    }
    case 13:
      return closeFrame(kCloseCodes[pick(13)], pick(2) == 0 ? "" : letters(pick(20)));
    case 14:  // a close frame with a 1-byte payload, or a reason that is not UTF-8
      return pick(2) == 0 ? serverFrame(0x88, "x") : closeFrame(1000, "\xC3\x28");
    case 15:
      return text("\xC3\x28");  // not UTF-8
    case 23:                    // a message's first fragment alone: what follows must continue it
      return serverFrame(0x01, letters(pick(10)));
    case 24: {  // a 16-bit length that 7 bits could hold
      const std::string payload = letters(pick(20));
      Bytes frame{0x81, 126, 0, static_cast<uint8_t>(payload.size())};
      frame.insert(frame.end(), payload.begin(), payload.end());
      return frame;
    }
    case 25:
      return text(pick(2) == 0 ? "caf\xC3\xA9" : "\xE2\x82");  // UTF-8, or cut inside a character
    default:                                                   // a text message in two fragments
      return concat({serverFrame(0x01, letters(pick(10))), serverFrame(0x80, letters(pick(10)))});
  }
}

Script randomScript(std::mt19937& random) {
  const auto pick = [&](size_t n) {
    return std::uniform_int_distribution<size_t>(0, n - 1)(random);
  };
  // At most 5 frames, and under websocketpp's read buffer (640 bytes) in all: both connections
  // then see the bytes in the same reads, so that even what they write back in between matches.
  Bytes stream;
  for (size_t frames = 1 + pick(5); frames > 0 && stream.size() < 300; --frames) {
    const Bytes frame = randomFrame(random);
    stream.insert(stream.end(), frame.begin(), frame.end());
  }
  Script script;
  size_t at = 0;
  if (pick(3) == 0) {
    at = pick(stream.size() + 1);
    script.behind_response.assign(stream.begin(), stream.begin() + static_cast<ptrdiff_t>(at));
  }
  for (size_t cuts = pick(4); cuts > 0 && at < stream.size(); --cuts) {
    const size_t end = at + 1 + pick(stream.size() - at);
    script.segments.emplace_back(stream.begin() + static_cast<ptrdiff_t>(at),
                                 stream.begin() + static_cast<ptrdiff_t>(end));
    at = end;
  }
  if (at < stream.size()) {
    script.segments.emplace_back(stream.begin() + static_cast<ptrdiff_t>(at), stream.end());
  }
  return script;
}

TEST(OpenConnectionAgainstWebsocketppTest, EveryRandomScriptEndsAsOnWebsocketppsOwnConnection) {
  constexpr uint32_t kSeed = 20261207;
  constexpr int kScripts = 400;
  std::mt19937 random(kSeed);
  // How the scripts ended, so that a generator that stops reaching some ending shows.
  std::map<std::string, int> endings;
  for (int i = 0; i < kScripts; ++i) {
    const Script script = randomScript(random);
    for (const bool split : {true, false}) {
      const Script played = split ? script : script.whole();
      const Outcome taken_over = play(played, /*take_over=*/true);
      const Outcome websocketpp = play(played, /*take_over=*/false);
      ASSERT_EQ(taken_over.events, websocketpp.events)
          << "script " << i << " of seed " << kSeed << ": " << describe(played) << "\n"
          << taken_over << "\n"
          << websocketpp;
      if (split) continue;
      ASSERT_TRUE(writesWhatWebsocketppWrites(taken_over, websocketpp))
          << "script " << i << " of seed " << kSeed << ": " << describe(played) << "\n"
          << taken_over << "\n"
          << websocketpp;
    }
    const Outcome websocketpp = play(script, /*take_over=*/false);
    ASSERT_FALSE(websocketpp.events.empty()) << describe(script);
    const std::string& last = websocketpp.events.back();
    ASSERT_EQ(last.rfind("Closed", 0), 0u) << describe(script);
    ++endings[last.substr(0, std::min(last.size(), last.find('"') + 30))];
  }
  for (const auto& [ending, count] : endings) std::printf("%4d  %s\n", count, ending.c_str());
  EXPECT_GE(endings.size(), 4u) << "the scripts should end in several ways";
}

}  // namespace
}  // namespace wsvisor
