#pragma once

// websocketpp's Asio transport connection as wsvisor's client uses it. websocketpp keeps the
// opening and closing handshakes and every frame it is given; this subclass keeps the socket's
// error of a failed handshake write, and runs the heartbeat path of an open plain (ws://)
// connection: its reads, taking the pongs that start a read out of it before websocketpp sees the
// rest, and its pings, written straight to the socket when websocketpp is not writing.
//
// Included by supervisor/websocket_transport.cc only. websocketpp::connection calls
// `transport_con_type::async_read_at_least` and `transport_con_type::async_write` by qualified
// name, so the members below hide the transport's own: that is the hook, and
// /usr/include/websocketpp/impl/connection_impl.hpp says where each call comes from.
//
// Memory: websocketpp allocates a connection object per connection with make_shared; a plain
// one was 4,496 bytes (+16 for the control block) in tcmalloc's 4,608-byte size class before
// the members here. They are packed so that it stays there (bench/README.md, "The read buffer").

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <algorithm>
#include <array>
#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/socket_base.hpp>
#include <asio/write.hpp>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>
#include <websocketpp/common/connection_hdl.hpp>
#include <websocketpp/connection.hpp>
#include <websocketpp/transport/asio/connection.hpp>
#include <websocketpp/transport/asio/endpoint.hpp>
#include <websocketpp/transport/asio/security/none.hpp>

#include "supervisor/heartbeat_frames.h"
#include "supervisor/readiness_poller.h"

namespace wsvisor {

// Where an open connection's pongs go when its reads take them: the place websocketpp's pong
// handler sends them to. A plain function and its context rather than a std::function: it runs
// once per heartbeat. One per transport; connections point at it.
struct PongSink {
  void (*deliver)(void* context, uint64_t key, uint64_t attempt,
                  const websocketpp::connection_hdl& handle, std::string_view payload) = nullptr;
  void* context = nullptr;
};

// What TransportConnection::sendPing did with a ping.
enum class DirectPing {
  kNotSent,  // nothing: the caller pings through websocketpp
  kSent,     // the whole frame went out in one send
  kSending,  // part (or none) of it went out; Asio writes the rest, websocketpp's writes wait
  kFailed,   // the socket refused it; the connection fails as a failed websocketpp write would
};

// `Config` is the client's websocketpp config: websocketpp::connection<Config> derives from this
// class, which asks it whether the connection is still open and hands it its reads.
template <typename TransportConfig, typename Config>
class TransportConnection : public websocketpp::transport::asio::connection<TransportConfig> {
  using base = websocketpp::transport::asio::connection<TransportConfig>;
  using WebSocketConnection = websocketpp::connection<Config>;
  // The reads and writes below run their handlers directly, not on a strand.
  static_assert(!TransportConfig::enable_multithreading, "one thread per io_context");
  // Reads of an open connection are taken over on plain TCP only: over TLS the bytes come out of
  // OpenSSL, whose buffered records a socket readiness wait would not see.
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

  // Called once the connection is open, from websocketpp's open handler (which runs before
  // websocketpp hands the bytes that came behind the handshake response to its frame processor,
  // and before it issues its first frame read). From then on a plain connection's reads wait for
  // readiness from `readiness` (the io thread's; through Asio if it cannot take the socket)
  // first, and complete pongs at the start of a read go to `pongs` (tagged with `key` and
  // `attempt`) instead of through websocketpp. `response_has_body`: the 101 response announced a
  // body (a Content-Length other than 0), which websocketpp reads as such, so where the frames
  // start is not known here and every frame stays websocketpp's. No-op over TLS.
  void startOpenReads(ReadinessPoller& readiness, const PongSink* pongs, uint64_t key,
                      uint64_t attempt, bool response_has_body) {
    if constexpr (kPlain) {
      open_reads_ = true;
      // The registration holds the connection, as a pending Asio read would, until its reads end
      // (finishRead with an error), websocketpp ends it (async_shutdown) or the transport drops
      // it (cancelReadsBeforeClose).
      readiness_slot_ = readiness.add(this->get_raw_socket().native_handle(),
                                      &TransportConnection::onReady, this, selfPtr());
      if (readiness_slot_ != ReadinessPoller::kNoSlot) readiness_ = &readiness;
      if (handshake_end_seen_ && !response_has_body) {
        // websocketpp hands what followed the response header to its frame processor right after
        // the open handler (still in its read buffer now): the frame boundaries start there.
        boundaries_.consume(reinterpret_cast<const uint8_t*>(read_buf_) + read_have_,
                            handshake_frames_end_ - read_have_);
        pongs_ = pongs;
        key_ = key;
        attempt_ = attempt;
      }
      read_have_ = 0;
    }
  }

  // Called just before the socket is closed under the connection (a connection dropped without
  // its closing handshake): closing a descriptor takes it out of the epoll set without a report,
  // so a read parked on the poller completes with operation_aborted, on a later turn of the loop,
  // as Asio completes a wait on a socket closed under it; and the poller lets the connection go.
  void cancelReadsBeforeClose() {
    if (readiness_ == nullptr) return;
    const bool parked = read_parked_;
    // The caller holds the connection; the posted read holds it until it has run.
    const std::shared_ptr<void> held = stopReadiness();
    if (parked) {
      asio::post(this->get_raw_socket().get_executor(), [self = selfPtr()] {
        self->finishRead(asio::error::make_error_code(asio::error::operation_aborted));
      });
    }
  }

  // Sends a ping carrying `payload` without websocketpp's message manager and send queue: the
  // frame is built in `frame_space` (kMaxPingFrameSize bytes, the io thread's; only the rest of a
  // partly sent frame is copied, into memory of this connection's own until it is written) with a
  // fresh key from `keys`, and written with one non-blocking send. Only on an open plain
  // connection where websocketpp has nothing queued or being written, so that frames keep the
  // order they were asked for in; otherwise kNotSent and nothing happened.
  DirectPing sendPing(std::string_view payload, MaskingKeys& keys, uint8_t* frame_space) {
    if constexpr (kPlain) {
      if (!open_reads_ || websocket_write_in_flight_ || ping_rest_ != nullptr ||
          payload.size() > kMaxControlPayload) {
        return DirectPing::kNotSent;
      }
      WebSocketConnection& web_socket = webSocket();
      // get_buffered_amount() counts the payload bytes of websocketpp's queued messages; a frame
      // of its own waiting for write_frame (posted by ping(), send(), close()) shows there.
      if (web_socket.get_state() != websocketpp::session::state::open ||
          web_socket.get_buffered_amount() != 0) {
        return DirectPing::kNotSent;
      }
      std::array<uint8_t, 4> key;
      if (!keys.next(key)) return DirectPing::kNotSent;
      const size_t size = buildMaskedPing(payload, key, frame_space);
      const int fd = this->get_raw_socket().native_handle();
      ssize_t sent;
      do {
        sent = ::send(fd, frame_space, size, MSG_DONTWAIT | MSG_NOSIGNAL);
      } while (sent < 0 && errno == EINTR);
      if (sent == static_cast<ssize_t>(size)) return DirectPing::kSent;
      if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        // websocketpp fails the connection when a frame cannot be written (handle_write_frame:
        // terminate with pass_through), from a completion handler: the same, on the next turn
        // of the loop, so that the session is not re-entered from inside its own action.
        asio::post(this->get_raw_socket().get_executor(), [self = selfPtr()] {
          self->webSocket().terminate(websocketpp::transport::error::make_error_code(
              websocketpp::transport::error::pass_through));
        });
        return DirectPing::kFailed;
      }
      const size_t done = sent > 0 ? static_cast<size_t>(sent) : 0;
      ping_rest_ = std::make_unique<uint8_t[]>(size - done);
      std::memcpy(ping_rest_.get(), frame_space + done, size - done);
      asio::async_write(
          this->get_raw_socket(), asio::buffer(ping_rest_.get(), size - done),
          [self = selfPtr()](const std::error_code& ec, size_t) { self->onPingRestWritten(ec); });
      return DirectPing::kSending;
    } else {
      return DirectPing::kNotSent;
    }
  }

 protected:
  // websocketpp::transport::asio::connection
  using base::async_write;

  // Frames: websocketpp writes them only from write_frame(), one write at a time, with
  // handle_write_frame as the handler (websocketpp/impl/connection_impl.hpp), which is called
  // directly rather than kept. On an open plain connection this notes that a write is in flight
  // (sendPing then leaves the socket alone), and holds the write while the rest of a ping is
  // being written, so that frames never interleave on the wire.
  void async_write(const std::vector<websocketpp::transport::buffer>& bufs,
                   websocketpp::transport::write_handler handler) {
    if constexpr (kPlain) {
      if (open_reads_) {
        if (ping_rest_ != nullptr) {
          held_write_ = &bufs;  // websocketpp's m_send_buffer: unchanged until the handler runs
          return;
        }
        startWebSocketWrite(bufs);
        return;
      }
    }
    base::async_write(bufs, std::move(handler));
  }

  // websocketpp ends every connection here (terminate), also one it stopped reading (after a
  // protocol error it closes without asking for another read): the poller's registration goes
  // now, or it would keep the connection, its socket only shut down, for good. A read still
  // parked is left waiting, as websocketpp ignores whatever a read reports after this. The
  // registration's hold is let go on a later turn of the loop: websocketpp may be terminating
  // from inside a read the poller's call started, which that hold keeps alive.
  void async_shutdown(websocketpp::transport::shutdown_handler callback) {
    std::shared_ptr<void> held = stopReadiness();
    base::async_shutdown(std::move(callback));
    if (held) asio::post(this->get_raw_socket().get_executor(), [held = std::move(held)] {});
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

  // websocketpp's own reads use Asio's async_read, whose first recv is speculative: after a read
  // that returned data Asio tries the socket again at once, which on a heartbeat connection (one
  // small frame a heartbeat) returns EAGAIN every time. An open plain connection waits for
  // readiness first and then reads without blocking. Completion, errors and end of stream reach
  // websocketpp through its own handle_async_read, exactly as Asio's read would report them: the
  // same codes, the same get_transport_ec().
  //
  // Once the connection is open websocketpp reads only from read_frame(), always at least one
  // byte into its read buffer, always with handle_read_frame as the handler
  // (websocketpp/impl/connection_impl.hpp): that handler is called directly rather than kept, so
  // that no std::function is stored or copied per read.
  void async_read_at_least(size_t num_bytes, char* buf, size_t len,
                           websocketpp::transport::read_handler handler) {
    if constexpr (kPlain) {
      if (open_reads_) {
        read_buf_ = buf;
        // len is websocketpp's read buffer size, which fits (static_assert above); std::min takes
        // a value here, not the static member itself (declared, never defined out of class).
        read_size_ =
            static_cast<uint16_t>(std::min<size_t>(len, std::numeric_limits<uint16_t>::max()));
        read_have_ = 0;
        (void)num_bytes;  // 1: any data completes the read
        awaitReadable();
        return;
      }
      // A read of the handshake response: note where the response header ends, because the
      // frames start behind it (startOpenReads). One handler object more per handshake read.
      base::async_read_at_least(num_bytes, buf, len,
                                [self = selfPtr(), buf, handler = std::move(handler)](
                                    const std::error_code& ec, size_t n) {
                                  if (!ec) self->noteHandshakeBytes(buf, n);
                                  if (handler) handler(ec, n);
                                });
      return;
    }
    base::async_read_at_least(num_bytes, buf, len, std::move(handler));
  }

 private:
  void startWebSocketWrite(const std::vector<websocketpp::transport::buffer>& bufs) {
    websocket_write_in_flight_ = true;
    // websocketpp's transport write (its m_bufs, its handler allocator, pass_through on error);
    // it holds a shared pointer to this connection until the handler runs.
    base::async_write(bufs, [this](const std::error_code& ec) {
      websocket_write_in_flight_ = false;
      webSocket().handle_write_frame(ec);
    });
  }

  // The rest of a ping is out (or the socket failed): as after a failed websocketpp write, a
  // failure fails the connection; then websocketpp's held write goes (on a failed socket it fails
  // too, and websocketpp finds the connection already terminated).
  void onPingRestWritten(const std::error_code& ec) {
    ping_rest_.reset();
    if (ec) {
      webSocket().terminate(websocketpp::transport::error::make_error_code(
          websocketpp::transport::error::pass_through));
    }
    if (held_write_ != nullptr) {
      const std::vector<websocketpp::transport::buffer>* held = held_write_;
      held_write_ = nullptr;
      startWebSocketWrite(*held);
    }
  }

  ptr selfPtr() { return std::static_pointer_cast<type>(this->get_shared()); }
  WebSocketConnection& webSocket() { return static_cast<WebSocketConnection&>(*this); }

  // Waits for the socket to be readable, have an error or hang up. With the io thread's
  // ReadinessPoller: at once (on the next turn of the loop) when bytes were reported that no
  // read has taken yet, else when the poller reports some (onReady). Otherwise through Asio,
  // which also completes the wait with operation_aborted when the socket is closed under it, and
  // re-arms the socket in its epoll set for each wait (one epoll_ctl per read).
  void awaitReadable() {
    if (readiness_ != nullptr) {
      if (!readable_) {
        read_parked_ = true;
        return;
      }
      // Not from here: websocketpp may be asking for this read from inside the handler of the
      // last one, which Asio never completes in place either.
      asio::post(this->get_raw_socket().get_executor(),
                 [self = selfPtr()] { self->onReadable(std::error_code()); });
      return;
    }
    this->get_raw_socket().async_wait(
        asio::socket_base::wait_read,
        [self = selfPtr()](const std::error_code& ec) { self->onReadable(ec); });
  }

  // The poller's call: bytes (or an error or hang-up) arrived. The registration keeps the
  // connection alive through the read it completes.
  static void onReady(void* target, uint32_t events) {
    auto* self = static_cast<TransportConnection*>(target);
    self->readable_ = true;
    if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) self->ended_ = true;
    if (!self->read_parked_) return;  // the next read takes them
    self->read_parked_ = false;
    self->onReadable(std::error_code());
  }

  void onReadable(const std::error_code& ec) {
    if (ec) {
      finishRead(ec);
      return;
    }
    if (!this->get_raw_socket().is_open()) {
      // A read posted before the socket was closed under it: aborted, as Asio's would be.
      finishRead(asio::error::make_error_code(asio::error::operation_aborted));
      return;
    }
    const int fd = this->get_raw_socket().native_handle();
    for (;;) {
      const ssize_t n = ::recv(fd, read_buf_, read_size_, MSG_DONTWAIT);
      if (n > 0) {
        // A read that did not fill the buffer emptied the socket of its bytes: what arrives later
        // is reported again. A full one may have left bytes behind, and once the peer's end (or
        // an error) was reported, reads go on until they see it: either way the next read goes
        // to the socket at once.
        readable_ = ended_ || n == read_size_;
        read_have_ = static_cast<uint16_t>(n);
        deliverRead();
        return;
      }
      if (n == 0) {
        finishRead(asio::error::make_error_code(asio::error::eof));
        return;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        readable_ = false;
        awaitReadable();  // woken without data: wait again
        return;
      }
      if (errno != EINTR) {
        // As Asio reports a failed recv: the errno in the system category.
        finishRead(std::error_code(errno, asio::error::get_system_category()));
        return;
      }
    }
  }

  // Takes the complete pongs at the start of the read, then hands the rest (if any) to
  // websocketpp. Only where websocketpp's processor would read a new frame header, and only while
  // the connection is open (in any other state websocketpp drops pongs: process_control_frame in
  // websocketpp/impl/connection_impl.hpp), so websocketpp still sees whole frames in stream order
  // and judges everything else, failures and close codes included.
  void deliverRead() {
    auto* bytes = reinterpret_cast<uint8_t*>(read_buf_);
    size_t taken = 0;
    if (pongs_ != nullptr) {
      while (boundaries_.atFrameStart() &&
             webSocket().get_state() == websocketpp::session::state::open) {
        const LeadingPong pong = leadingPong(bytes + taken, read_have_ - taken);
        if (pong.frame_size == 0) break;
        taken += pong.frame_size;
        // The session may close the connection from here; the state check above sees that.
        pongs_->deliver(pongs_->context, key_, attempt_, this->get_handle(), pong.payload);
      }
    }
    if (taken == read_have_) {  // all pongs: websocketpp's read is still pending
      awaitReadable();
      return;
    }
    if (taken > 0) {
      read_have_ = static_cast<uint16_t>(read_have_ - taken);
      std::memmove(read_buf_, read_buf_ + taken, read_have_);
    }
    boundaries_.consume(bytes, read_have_);
    finishRead(std::error_code());
  }

  // Completes websocketpp's read through its own handle_async_read (which translates the error
  // and keeps it for get_transport_ec()); websocketpp may issue the next read from inside it.
  void finishRead(const std::error_code& ec) {
    // An error or the end of the stream ends the reads: the registration goes, and its hold on
    // this connection is kept here until websocketpp has been told.
    std::shared_ptr<void> held;
    if (ec) held = stopReadiness();
    const size_t have = read_have_;
    read_have_ = 0;
    this->handle_async_read([this](const std::error_code& read_ec,
                                   size_t n) { webSocket().handle_read_frame(read_ec, n); },
                            ec, have);
  }

  // Ends the poller's reports for this socket and returns the registration's hold on the
  // connection (null when there was none), for the caller to let go where that is safe. A read
  // parked on the poller is left waiting.
  std::shared_ptr<void> stopReadiness() {
    if (readiness_ == nullptr) return nullptr;
    ReadinessPoller* readiness = readiness_;
    readiness_ = nullptr;
    read_parked_ = false;
    return readiness->remove(readiness_slot_, this->get_raw_socket().is_open()
                                                  ? this->get_raw_socket().native_handle()
                                                  : -1);
  }

  // Finds where the handshake response's header ends: websocketpp's HTTP parser ends it at the
  // first blank line (CRLF CRLF) and, for a response without a body, leaves what follows in its
  // read buffer to the frame processor. Kept for startOpenReads: the buffer, where the frames
  // begin in it (read_have_) and end (handshake_frames_end_).
  void noteHandshakeBytes(char* buf, size_t size) {
    static constexpr char kDelimiter[] = "\r\n\r\n";
    if (handshake_end_seen_) return;
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
        read_buf_ = buf;
        read_have_ = static_cast<uint16_t>(i + 1);
        handshake_frames_end_ = static_cast<uint16_t>(size);
        return;
      }
    }
  }

  std::error_code handshake_write_error_;
  // Where frames start in what websocketpp's processor has been given since the connection
  // opened.
  FrameBoundaries boundaries_;
  // websocketpp's read buffer and the read in progress.
  char* read_buf_ = nullptr;
  // null while websocketpp takes every pong; key_ and attempt_ tag the pongs taken.
  const PongSink* pongs_ = nullptr;
  // The io thread's poller while it reports this socket's readiness (null otherwise), and the
  // registration's slot in it.
  ReadinessPoller* readiness_ = nullptr;
  uint32_t readiness_slot_ = ReadinessPoller::kNoSlot;
  uint64_t key_ = 0;
  uint64_t attempt_ = 0;
  // The rest of a ping that one send could not take, while Asio writes it, and websocketpp's
  // write waiting for it (both null otherwise).
  std::unique_ptr<uint8_t[]> ping_rest_;
  const std::vector<websocketpp::transport::buffer>* held_write_ = nullptr;
  uint16_t read_size_ = 0;
  uint16_t read_have_ = 0;
  uint16_t handshake_frames_end_ = 0;
  uint8_t delimiter_matched_ = 0;  // bytes of CRLF CRLF matched so far, across handshake reads
  bool handshake_end_seen_ = false;
  bool open_reads_ = false;
  bool websocket_write_in_flight_ = false;
  // Bytes were reported that no read has taken yet; the peer's end or an error was reported;
  // a read is waiting for the poller.
  bool readable_ = false;
  bool ended_ = false;
  bool read_parked_ = false;
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
