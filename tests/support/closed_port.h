#pragma once

#include <unistd.h>

#include <cstdint>
#include <string>

#include "support/loopback_socket.h"

namespace wsvisor::testing {

// A loopback TCP port where a connect is refused at once: a socket is bound to it but does not
// listen, so no other process can start listening there while this object lives.
class ClosedPort {
 public:
  ClosedPort() { fd_ = loopbackSocket(/*listen=*/false, port_); }
  ~ClosedPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;

  uint16_t port() const { return port_; }
  // "127.0.0.1:PORT".
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

}  // namespace wsvisor::testing
