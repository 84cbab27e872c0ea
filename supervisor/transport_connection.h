#pragma once

// websocketpp's Asio transport connection as wsvisor's client uses it: websocketpp keeps the
// opening and closing handshakes and every frame it is given; this subclass keeps the socket's
// error of a failed handshake write, and runs the reads of an open plain (ws://) connection.
//
// Included by supervisor/websocket_transport.cc only. websocketpp::connection calls
// `transport_con_type::async_read_at_least` and `transport_con_type::async_write` by qualified
// name, so the members below hide the transport's own: that is the hook, and
// /usr/include/websocketpp/impl/connection_impl.hpp says where each call comes from.

#include <sys/socket.h>
#include <sys/types.h>

#include <asio/error.hpp>
#include <asio/socket_base.hpp>
#include <asio/write.hpp>
#include <cerrno>
#include <cstddef>
#include <memory>
#include <system_error>
#include <type_traits>
#include <utility>
#include <websocketpp/transport/asio/connection.hpp>
#include <websocketpp/transport/asio/endpoint.hpp>
#include <websocketpp/transport/asio/security/none.hpp>

namespace wsvisor {

template <typename TransportConfig>
class TransportConnection : public websocketpp::transport::asio::connection<TransportConfig> {
  using base = websocketpp::transport::asio::connection<TransportConfig>;
  // The reads and writes below run their handlers directly, not on a strand.
  static_assert(!TransportConfig::enable_multithreading, "one thread per io_context");
  // Reads of an open connection are taken over on plain TCP only: over TLS the bytes come out of
  // OpenSSL, whose buffered records a socket readiness wait would not see.
  static constexpr bool kPlain =
      std::is_same_v<typename TransportConfig::socket_type,
                     websocketpp::transport::asio::basic_socket::endpoint>;

 public:
  typedef TransportConnection type;
  typedef std::shared_ptr<type> ptr;

  using base::base;

  // The socket's error when writing the handshake request failed; empty otherwise.
  const std::error_code& handshakeWriteError() const { return handshake_write_error_; }

  // Called once the connection is open (from websocketpp's open handler, before websocketpp
  // issues its first frame read): from then on a plain connection's reads wait for readiness
  // first. No-op over TLS.
  void startOpenReads() {
    if constexpr (kPlain) open_reads_ = true;
  }

 protected:
  // websocketpp::transport::asio::connection
  using base::async_write;
  // The handshake request goes through this overload and nothing else (frames take the other
  // one). As websocketpp's own: the handler sees pass_through on failure, so websocketpp behaves
  // exactly as before (it fails the connection), but websocketpp turns every failed write into
  // pass_through ("Underlying Transport Error") and keeps the socket's error nowhere (its reads
  // keep theirs in get_transport_ec()), so a reset that lands while the handshake request is
  // written would be reported without its cause: the socket's error is kept here.
  void async_write(const char* buf, size_t len, websocketpp::transport::write_handler handler) {
    asio::async_write(
        this->get_socket(), asio::buffer(buf, len),
        [self = selfPtr(), handler = std::move(handler)](const std::error_code& ec, size_t) {
          std::error_code result;
          if (ec) {
            self->handshake_write_error_ = ec;
            result = websocketpp::transport::error::make_error_code(
                websocketpp::transport::error::pass_through);
          }
          if (handler) handler(result);
        });
  }

  // websocketpp's own reads with Asio's async_read, whose first recv is speculative: after a
  // read that returned data Asio tries the socket again at once, which on a heartbeat connection
  // (one small frame a heartbeat) returns EAGAIN every time. An open plain connection waits for
  // readiness first and then reads without blocking, so every recv it makes finds data (unless
  // another reader raced it, which nothing here does). Completion, errors and end of stream
  // reach websocketpp through its own handle_async_read, exactly as Asio's read would report
  // them: the same codes, the same get_transport_ec().
  void async_read_at_least(size_t num_bytes, char* buf, size_t len,
                           websocketpp::transport::read_handler handler) {
    if constexpr (kPlain) {
      if (open_reads_) {
        read_ = PendingRead{buf, len, num_bytes, 0};
        read_handler_ = std::move(handler);
        awaitReadable();
        return;
      }
    }
    base::async_read_at_least(num_bytes, buf, len, std::move(handler));
  }

 private:
  // The read websocketpp asked for and how much of it has arrived.
  struct PendingRead {
    char* buf = nullptr;
    size_t size = 0;
    size_t wanted = 0;  // websocketpp's num_bytes: complete once this many have arrived
    size_t have = 0;
  };

  ptr selfPtr() { return std::static_pointer_cast<type>(this->get_shared()); }

  // Asio wakes the handler when the socket is readable, has an error or hung up (epoll reports
  // the last two with any read interest), or with operation_aborted when websocketpp shuts the
  // socket down under it.
  void awaitReadable() {
    this->get_raw_socket().async_wait(
        asio::socket_base::wait_read,
        [self = selfPtr()](const std::error_code& ec) { self->onReadable(ec); });
  }

  void onReadable(const std::error_code& ec) {
    if (ec) {
      finishRead(ec);
      return;
    }
    const int fd = this->get_raw_socket().native_handle();
    while (read_.have < read_.wanted) {
      const ssize_t n = ::recv(fd, read_.buf + read_.have, read_.size - read_.have, MSG_DONTWAIT);
      if (n > 0) {
        read_.have += static_cast<size_t>(n);
      } else if (n == 0) {
        finishRead(asio::error::make_error_code(asio::error::eof));
        return;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        awaitReadable();  // woken without data (or not enough yet): wait again
        return;
      } else if (errno != EINTR) {
        // As Asio reports a failed recv: the errno in the system category.
        finishRead(std::error_code(errno, asio::error::get_system_category()));
        return;
      }
    }
    finishRead(std::error_code());
  }

  // Hands the read to websocketpp, which may issue the next read from inside the handler: the
  // handler is moved out first and nothing here is touched after the call.
  void finishRead(const std::error_code& ec) {
    websocketpp::transport::read_handler handler = std::move(read_handler_);
    read_handler_ = nullptr;
    this->handle_async_read(std::move(handler), ec, read_.have);
  }

  std::error_code handshake_write_error_;
  bool open_reads_ = false;
  PendingRead read_;
  websocketpp::transport::read_handler read_handler_;
};

// websocketpp's Asio transport endpoint, making TransportConnection its connections' transport
// (websocketpp::endpoint and websocketpp::connection take the type from here).
template <typename TransportConfig>
struct TransportEndpoint : public websocketpp::transport::asio::endpoint<TransportConfig> {
  typedef TransportEndpoint type;
  typedef TransportConnection<TransportConfig> transport_con_type;
  typedef typename transport_con_type::ptr transport_con_ptr;
};

}  // namespace wsvisor
