#pragma once

// websocketpp's Asio transport connection as wsvisor's client uses it. websocketpp keeps the
// opening handshake and, over TLS, the whole connection; this subclass keeps the socket's error
// of a failed handshake write, and lets an open plain (ws://) connection's socket be taken over
// (by supervisor/open_connection.h), with the frames that came right behind the handshake
// response.
//
// Included by supervisor/websocket_client_config.h only. websocketpp::connection calls
// `transport_con_type::async_read_at_least`, `transport_con_type::async_write` and
// `transport_con_type::async_shutdown` by qualified name, so the members below hide the
// transport's own: that is the hook, and /usr/include/websocketpp/impl/connection_impl.hpp says
// where each call comes from.

#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>
#include <websocketpp/connection.hpp>
#include <websocketpp/transport/asio/connection.hpp>
#include <websocketpp/transport/asio/endpoint.hpp>
#include <websocketpp/transport/asio/security/none.hpp>

namespace wsvisor {

// `Config` is the client's websocketpp config: websocketpp::connection<Config> derives from this
// class.
template <typename TransportConfig, typename Config>
class TransportConnection : public websocketpp::transport::asio::connection<TransportConfig> {
  using base = websocketpp::transport::asio::connection<TransportConfig>;
  // The reads and writes below run their handlers directly, not on a strand.
  static_assert(!TransportConfig::enable_multithreading, "one thread per io_context");
  // Only plain TCP connections are taken over: over TLS the socket's bytes are OpenSSL's records.
  static constexpr bool kPlain =
      std::is_same_v<typename TransportConfig::socket_type,
                     websocketpp::transport::asio::basic_socket::endpoint>;
  // Offsets into websocketpp's read buffer are kept in 16 bits.
  static_assert(Config::connection_read_buffer_size <= std::numeric_limits<uint16_t>::max());

 public:
  typedef TransportConnection type;
  typedef std::shared_ptr<type> ptr;

  using base::base;

  // The socket's error when writing the handshake request failed; empty otherwise.
  const std::error_code& handshakeWriteError() const { return handshake_write_error_; }

  // The bytes that came behind the handshake response's header in the same reads, which
  // websocketpp hands to its frame processor right after its open handler: the first frames.
  // Valid in the open handler only; false when where the frames start is not known (the response
  // announced a body, which websocketpp reads as such, or its end was not seen here).
  bool framesBehindResponse(bool response_has_body, std::string_view& frames) const {
    if (!handshake_end_seen_ || response_has_body) return false;
    frames = std::string_view(handshake_buf_ + frames_begin_, frames_end_ - frames_begin_);
    return true;
  }

  // Takes the open connection's socket (plain TCP only), from websocketpp's open handler. From
  // then on websocketpp's reads, frame writes and shutdown of this connection do nothing and
  // complete never: websocketpp still runs the bytes behind the response through its processor
  // (framesBehindResponse: whoever took the socket reads them too) and then asks for a read, but
  // it touches no socket and, with no handler of its called again, reports nothing; the object
  // is freed once websocketpp's own handlers let go of it.
  asio::ip::tcp::socket takeSocket() {
    static_assert(kPlain, "a TLS connection's socket stays with websocketpp");
    handed_over_ = true;
    return std::move(this->get_raw_socket());
  }

 protected:
  // websocketpp::transport::asio::connection
  using base::async_write;

  // Frames (websocketpp's write_frame).
  void async_write(const std::vector<websocketpp::transport::buffer>& bufs,
                   websocketpp::transport::write_handler handler) {
    if (handed_over_) return;
    base::async_write(bufs, std::move(handler));
  }

  // websocketpp ends every connection here (terminate).
  void async_shutdown(websocketpp::transport::shutdown_handler callback) {
    if (handed_over_) return;
    base::async_shutdown(std::move(callback));
  }

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

  // websocketpp's reads: on a plain connection, until the response header has been read, each
  // notes where it ends (framesBehindResponse). One handler object more per handshake read.
  void async_read_at_least(size_t num_bytes, char* buf, size_t len,
                           websocketpp::transport::read_handler handler) {
    if (handed_over_) return;
    if constexpr (kPlain) {
      if (!handshake_end_seen_) {
        base::async_read_at_least(num_bytes, buf, len,
                                  [self = selfPtr(), buf, handler = std::move(handler)](
                                      const std::error_code& ec, size_t n) {
                                    if (!ec) self->noteHandshakeBytes(buf, n);
                                    if (handler) handler(ec, n);
                                  });
        return;
      }
    }
    base::async_read_at_least(num_bytes, buf, len, std::move(handler));
  }

 private:
  ptr selfPtr() { return std::static_pointer_cast<type>(this->get_shared()); }

  // Finds where the handshake response's header ends: websocketpp's HTTP parser ends it at the
  // first blank line (CRLF CRLF) and, for a response without a body, leaves what follows in its
  // read buffer to the frame processor.
  void noteHandshakeBytes(char* buf, size_t size) {
    static constexpr char kDelimiter[] = "\r\n\r\n";
    for (size_t i = 0; i < size; ++i) {
      // No proper prefix of CRLF CRLF is also a suffix of it but "\r": a mismatch falls back to
      // having matched that "\r" or nothing.
      if (buf[i] == kDelimiter[delimiter_matched_]) {
        ++delimiter_matched_;
      } else {
        delimiter_matched_ = buf[i] == '\r' ? 1 : 0;
      }
      if (delimiter_matched_ == 4) {
        handshake_end_seen_ = true;
        handshake_buf_ = buf;
        frames_begin_ = static_cast<uint16_t>(i + 1);
        frames_end_ = static_cast<uint16_t>(size);
        return;
      }
    }
  }

  std::error_code handshake_write_error_;
  // websocketpp's read buffer, and where the frames behind the response header lie in it.
  const char* handshake_buf_ = nullptr;
  uint16_t frames_begin_ = 0;
  uint16_t frames_end_ = 0;
  uint8_t delimiter_matched_ = 0;  // bytes of CRLF CRLF matched so far, across handshake reads
  bool handshake_end_seen_ = false;
  bool handed_over_ = false;
};

// websocketpp's Asio transport endpoint, making TransportConnection its connections' transport
// (websocketpp::endpoint and websocketpp::connection take the type from here).
template <typename TransportConfig, typename Config>
struct TransportEndpoint : public websocketpp::transport::asio::endpoint<TransportConfig> {
  typedef TransportEndpoint type;
  typedef TransportConnection<TransportConfig, Config> transport_con_type;
  typedef typename transport_con_type::ptr transport_con_ptr;
};

}  // namespace wsvisor
