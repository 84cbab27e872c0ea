// WebSocketTransport on a real io_context against a listening socket owned by the test, for
// failures whose timing a real upstream cannot choose: the test acts at the exact moment the
// transport is about to write the opening handshake (setBeforeHandshakeWriteForTest).
#include "supervisor/websocket_transport.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <variant>

#include "support/loopback_socket.h"

namespace wsvisor {
namespace {

// Bounds every wait: a transport that never reports ends the test instead of hanging it.
constexpr auto kRunLimit = std::chrono::seconds(10);
constexpr int kPollLimitMs = 10000;

// A TCP listener on 127.0.0.1 that never accepts by itself.
class Listener {
 public:
  Listener() {
    fd_ = testing::loopbackSocket(/*listen=*/true, port_);
    if (fd_ < 0) ADD_FAILURE() << "cannot listen on 127.0.0.1";
  }
  ~Listener() {
    if (fd_ >= 0) ::close(fd_);
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  std::string url() const { return "ws://127.0.0.1:" + std::to_string(port_) + "/"; }

  // Accepts the next connection and resets it at once (SO_LINGER 0: RST, no FIN).
  bool acceptAndReset() {
    pollfd pending{fd_, POLLIN, 0};
    if (::poll(&pending, 1, kPollLimitMs) != 1) return false;
    const int peer = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (peer < 0) return false;
    const linger abort_on_close{1, 0};
    ::setsockopt(peer, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
    ::close(peer);
    return true;
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// A reset that has reached the socket before wsvisor writes its handshake request (what a slow
// machine sees when the upstream resets right after accepting): the write fails, and the failure
// must say that the connection was reset, not websocketpp's "Underlying Transport Error".
TEST(WebSocketTransportTest, ResetBeforeTheHandshakeWriteIsNetworkErrorNamingTheReset) {
  Listener upstream;
  asio::io_context io;
  std::optional<core::Failure> failure;
  bool opened = false;
  WebSocketTransport transport(
      io, [&](uint64_t, uint64_t, const ConnectionRef&, const core::SessionEvent& event) {
        if (const auto* failed = std::get_if<core::event::ConnectFailed>(&event)) {
          failure = failed->failure;
        } else if (std::holds_alternative<core::event::Connected>(event)) {
          opened = true;
        }
      });
  bool reset_arrived = false;
  transport.setBeforeHandshakeWriteForTest([&](int socket_fd) {
    ASSERT_TRUE(upstream.acceptAndReset());
    // Wait until the reset has reached wsvisor's end; poll() leaves the socket's error for the
    // write to find.
    pollfd reset{socket_fd, POLLIN, 0};
    reset_arrived = ::poll(&reset, 1, kPollLimitMs) == 1 && (reset.revents & (POLLERR | POLLHUP));
  });

  core::EndpointSpec spec;
  spec.id = "reset";
  spec.url = upstream.url();
  spec.max_message_bytes = core::defaults::kMaxMessageBytes;
  transport.connect(1, 1, spec);
  const auto deadline = std::chrono::steady_clock::now() + kRunLimit;
  while (!failure && !opened && std::chrono::steady_clock::now() < deadline) {
    io.run_one_for(std::chrono::milliseconds(100));
  }

  ASSERT_TRUE(reset_arrived) << "the reset did not reach wsvisor's socket before the write";
  ASSERT_TRUE(failure.has_value()) << (opened ? "the connection opened" : "no event");
  std::printf("reset before the handshake write: %s, detail \"%s\"\n",
              core::toString(failure->reason), failure->detail.c_str());
  EXPECT_EQ(failure->reason, core::FailureReason::kNetworkError);
  EXPECT_EQ(failure->detail, "writing the opening handshake failed: Connection reset by peer");
}

}  // namespace
}  // namespace wsvisor
