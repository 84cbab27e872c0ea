#include "supervisor/open_connection.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/socket_base.hpp>
#include <asio/write.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>
#include <websocketpp/error.hpp>
#include <websocketpp/frame.hpp>
#include <websocketpp/processors/hybi13.hpp>
#include <websocketpp/utf8_validator.hpp>

#include "supervisor/core/spec_validation.h"
#include "supervisor/websocket_client_config.h"

namespace wsvisor {

namespace {

using FrameProcessor = websocketpp::processor::hybi13<PlainClientConfig>;
using MessageManager = PlainClientConfig::con_msg_manager_type;
using MessagePtr = PlainClientConfig::message_type::ptr;
namespace close_status = websocketpp::close::status;
namespace opcode = websocketpp::frame::opcode;

std::error_code invalidState() {
  return websocketpp::error::make_error_code(websocketpp::error::invalid_state);
}

std::error_code transportError(websocketpp::transport::error::value e) {
  return websocketpp::transport::error::make_error_code(e);
}

// websocketpp's verdict on a text message's payload (utf8_validator::validate, over a view).
bool isUtf8(std::string_view text) {
  websocketpp::utf8_validator::validator validator;
  return validator.decode(text.begin(), text.end()) && validator.complete();
}

}  // namespace

static_assert(OpenConnections::kReadBufferSize == PlainClientConfig::connection_read_buffer_size);
// Every heartbeat text a spec may have is built in the io thread's text frame buffer, never through
// websocketpp's processor.
static_assert(kMaxTextPayload >= core::limits::kMaxPayloadLength);

struct OpenConnections::ProcessorParts {
  MessageManager::ptr messages = std::make_shared<MessageManager>();
  PlainClientConfig::rng_type rng;
};

OpenConnections::OpenConnections(ReadinessPoller& poller, Events handlers)
    : readiness(poller), events(handlers), processor_parts(std::make_unique<ProcessorParts>()) {}

OpenConnections::~OpenConnections() = default;

// websocketpp's frame processor for one connection, as websocketpp's connection makes it
// (get_processor: a client's, with the connection's largest message).
struct OpenConnection::Processor {
  Processor(OpenConnections::ProcessorParts& parts, uint64_t max_message_bytes)
      : frames(/*secure=*/false, /*p_is_server=*/false, parts.messages, parts.rng) {
    frames.set_max_message_size(max_message_bytes);
  }
  FrameProcessor frames;
};

// Frames waiting to be written: `writing` while Asio writes it (empty when it does not), `queued`
// behind it or for the posted flush. `*_terminal`: the connection ends once that part is written
// (a terminal close frame is the last frame a connection asks for).
struct OpenConnection::PendingWrites {
  std::string writing;
  std::string queued;
  bool writing_terminal = false;
  bool queued_terminal = false;
  bool flush_posted = false;
};

std::shared_ptr<OpenConnection> OpenConnection::start(OpenConnections& shared,
                                                      asio::ip::tcp::socket socket, uint64_t key,
                                                      uint64_t attempt,
                                                      uint64_t max_message_bytes) {
  std::shared_ptr<OpenConnection> con(
      new OpenConnection(shared, std::move(socket), key, attempt, max_message_bytes));
  // The registration holds the connection, as a pending Asio read would, until it ends
  // (terminate, dropSocket). If epoll refuses the socket, reads wait through Asio.
  con->readiness_slot_ =
      shared.readiness.add(con->socket_.native_handle(), &OpenConnection::onReady, con.get(), con);
  con->polled_ = con->readiness_slot_ != ReadinessPoller::kNoSlot;
  return con;
}

OpenConnection::OpenConnection(OpenConnections& shared, asio::ip::tcp::socket socket, uint64_t key,
                               uint64_t attempt, uint64_t max_message_bytes)
    : shared_(shared),
      socket_(std::move(socket)),
      key_(key),
      attempt_(attempt),
      max_message_bytes_(max_message_bytes) {}

OpenConnection::~OpenConnection() = default;

MessagePtr OpenConnection::newMessage() { return shared_.processor_parts->messages->get_message(); }

OpenConnection::Processor& OpenConnection::processor() {
  if (!processor_) {
    processor_ = std::make_unique<Processor>(*shared_.processor_parts, max_message_bytes_);
  }
  return *processor_;
}

// ---- Reads ----

void OpenConnection::readFramesBehindResponse(std::string_view frames) {
  // websocketpp's processor may rewrite what it is given (it unmasks in place): a copy, in the
  // buffer every read of this thread lands in.
  const size_t size = std::min(frames.size(), OpenConnections::kReadBufferSize);
  std::memcpy(shared_.read_buffer.data(), frames.data(), size);
  processBytes(shared_.read_buffer.data(), size);
  awaitReadable();
}

// Waits for the socket to be readable, have an error or hang up. With the io thread's
// ReadinessPoller: at once (on the next turn of the loop) when bytes were reported that no read
// has taken yet, else when the poller reports some (onReady). Otherwise through Asio, which also
// completes the wait with operation_aborted when the socket is closed under it.
void OpenConnection::awaitReadable() {
  if (!reading_ || state_ == State::kClosed) return;
  if (polled_) {
    if (!readable_) {
      read_parked_ = true;
      return;
    }
    // Not from here: the previous read's processing is still on the stack, and a connection that
    // keeps its socket full must not keep the io thread from the others.
    asio::post(socket_.get_executor(),
               [self = shared_from_this()] { self->onReadable(std::error_code()); });
    return;
  }
  socket_.async_wait(
      asio::socket_base::wait_read,
      [self = shared_from_this()](const std::error_code& ec) { self->onReadable(ec); });
}

// The poller's call: bytes (or an error or hang-up) arrived. The registration keeps the
// connection alive through the read it completes.
void OpenConnection::onReady(void* target, uint32_t events) {
  auto* self = static_cast<OpenConnection*>(target);
  self->readable_ = true;
  if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) self->ended_ = true;
  if (!self->read_parked_) return;  // the next read takes them
  self->read_parked_ = false;
  self->onReadable(std::error_code());
}

void OpenConnection::onReadable(const std::error_code& ec) {
  if (!reading_ || state_ == State::kClosed) return;  // websocketpp ignores reads after its end
  if (ec) {
    readFailed(ec);
    return;
  }
  if (!socket_.is_open()) {
    // A read posted before the socket was closed under it: aborted, as Asio's would be.
    readFailed(asio::error::make_error_code(asio::error::operation_aborted));
    return;
  }
  const int fd = socket_.native_handle();
  uint8_t* buffer = shared_.read_buffer.data();
  for (;;) {
    const ssize_t n = ::recv(fd, buffer, OpenConnections::kReadBufferSize, MSG_DONTWAIT);
    if (n > 0) {
      // A read that did not fill the buffer emptied the socket of its bytes: what arrives later
      // is reported again. A full one may have left bytes behind, and once the peer's end (or an
      // error) was reported, reads go on until they see it: either way the next read goes to the
      // socket at once.
      readable_ = ended_ || static_cast<size_t>(n) == OpenConnections::kReadBufferSize;
      processBytes(buffer, static_cast<size_t>(n));
      awaitReadable();
      return;
    }
    if (n == 0) {
      readFailed(asio::error::make_error_code(asio::error::eof));
      return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable_ = false;
      awaitReadable();  // woken without data: wait again
      return;
    }
    if (errno != EINTR) {
      // As Asio reports a failed recv: the errno in the system category.
      readFailed(std::error_code(errno, asio::error::get_system_category()));
      return;
    }
  }
}

// Takes the complete pongs and whole text messages at the start of the bytes while the connection
// is open (where websocketpp's processor would read a new frame header, and in the one state in
// which websocketpp reports them), then hands the rest to the processor.
//
// Hazard: `bytes` is the io thread's read buffer. Nothing called from here reads into it: events
// go to the session, whose actions start connects, write and close, but never read.
void OpenConnection::processBytes(uint8_t* bytes, size_t size) {
  size_t taken = 0;
  // The session may close the connection from any event; the state check sees that.
  while (state_ == State::kOpen && boundaries_.atFrameStart()) {
    const LeadingFrame pong = leadingPong(bytes + taken, size - taken);
    if (pong.frame_size != 0) {
      taken += pong.frame_size;
      ++shared_.pongs_taken_from_reads;
      shared_.events.pong(shared_.events.context, *this, pong.payload);
      continue;
    }
    const LeadingFrame text = leadingText(bytes + taken, size - taken);
    if (text.frame_size == 0 || !isWholeTextMessage(text.payload)) break;
    taken += text.frame_size;
    ++shared_.texts_taken_from_reads;
    shared_.events.message(shared_.events.context, *this, text.payload);
  }
  if (taken == size) return;
  boundaries_.consume(bytes + taken, size - taken);
  consumeFrames(bytes + taken, size - taken);
}

// A text frame at a frame start is a message of its own that websocketpp's processor would
// accept whole: no fragmented message is waiting for its continuation (hybi13's
// validate_incoming_basic_header), it is no larger than the connection's largest message (its
// consume), and it is UTF-8 (its validator). Otherwise the processor judges it.
bool OpenConnection::isWholeTextMessage(std::string_view payload) const {
  return !boundaries_.insideFragmentedMessage() && payload.size() <= max_message_bytes_ &&
         isUtf8(payload);
}

// websocketpp: connection::handle_read_frame, from its loop over the bytes read.
void OpenConnection::consumeFrames(uint8_t* bytes, size_t size) {
  size_t p = 0;
  while (p < size) {
    std::error_code consume_ec;
    FrameProcessor& frames = processor().frames;
    p += frames.consume(bytes + p, size - p, consume_ec);
    if (consume_ec) {
      // A frame the processor rejects: closed with the code and the message of its error, and
      // no further read (websocketpp issues none).
      reading_ = false;
      const std::error_code close_ec =
          close(websocketpp::processor::error::to_ws(consume_ec), consume_ec.message());
      if (close_ec) terminate(close_ec);
      return;
    }
    if (!frames.ready()) continue;
    const MessagePtr message = frames.get_message();
    if (!message) continue;
    if (!websocketpp::frame::opcode::is_control(message->get_opcode())) {
      // A data message is reported while open only ("got non-close frame while closing").
      if (state_ == State::kOpen) {
        shared_.events.message(shared_.events.context, *this, message->get_payload());
      }
    } else {
      processControlFrame(message->get_opcode(), message->get_payload());
    }
  }
}

// websocketpp: connection::process_control_frame (no ping handler: every ping is answered).
void OpenConnection::processControlFrame(int frame_opcode, const std::string& payload) {
  if (state_ == State::kClosed) return;
  if (frame_opcode != opcode::close && state_ != State::kOpen) return;
  if (frame_opcode == opcode::ping) {
    // websocketpp's pong(): the answer carries the ping's payload (at most 125 bytes, as the
    // processor has checked).
    std::array<uint8_t, 4> key;
    if (shared_.masking_keys.next(key)) {
      const size_t frame_size =
          buildMaskedControlFrame(kOpcodePong, payload, key, shared_.control_frame.data());
      writeFrame(
          std::string_view(reinterpret_cast<const char*>(shared_.control_frame.data()), frame_size),
          {}, /*terminal=*/false, When::kNextTurn);
    } else {
      const MessagePtr frame = newMessage();
      if (!processor().frames.prepare_pong(payload, frame)) {
        writeFrame(frame->get_header(), frame->get_payload(), /*terminal=*/false, When::kNextTurn);
      }
    }
  } else if (frame_opcode == opcode::pong) {
    shared_.events.pong(shared_.events.context, *this, payload);
  } else if (frame_opcode == opcode::close) {
    std::error_code ec;
    remote_close_code_ = websocketpp::close::extract_code(payload, ec);
    if (ec) {
      sendCloseFrame(close_status::protocol_error, "Invalid close code", /*ack=*/true,
                     /*terminal=*/false);
      return;
    }
    remote_close_reason_ = websocketpp::close::extract_reason(payload, ec);
    if (ec) {
      sendCloseFrame(close_status::protocol_error, "Invalid close reason", /*ack=*/true,
                     /*terminal=*/false);
      return;
    }
    if (state_ == State::kOpen) {
      sendCloseFrame(close_status::blank, std::string(), /*ack=*/true, /*terminal=*/false);
    } else if (state_ == State::kClosing && !was_clean_) {
      // The answer to our close frame. A client leaves the TCP close to the server; the closing
      // handshake's timer covers a server that never makes it.
      was_clean_ = true;
    }
  }
}

// websocketpp: transport::asio::connection::handle_async_read (which keeps a failed read's error,
// but not the end of the stream, as the transport error), then connection::handle_read_frame.
void OpenConnection::readFailed(const std::error_code& ec) {
  std::error_code translated;
  if (ec == asio::error::eof) {
    translated = transportError(websocketpp::transport::error::eof);
    if (state_ == State::kClosing) {
      // A client expects the server's end after the closing handshake.
      terminate(std::error_code());
      return;
    }
  } else {
    translated = ec;
    transport_ec_ = ec;
  }
  terminate(translated);
}

// Ends the poller's reports for this socket and returns the registration's hold on the
// connection (null when there was none), for the caller to let go where that is safe. A read
// parked on the poller is left waiting.
std::shared_ptr<void> OpenConnection::stopReadiness() {
  if (!polled_) return nullptr;
  polled_ = false;
  read_parked_ = false;
  return shared_.readiness.remove(readiness_slot_,
                                  socket_.is_open() ? socket_.native_handle() : -1);
}

// ---- Writes ----

void OpenConnection::sendPing(std::string_view payload) {
  // websocketpp's ping(): open connections only, and a payload a control frame can carry.
  if (state_ != State::kOpen || payload.size() > kMaxControlPayload) return;
  std::array<uint8_t, 4> key;
  bool whole;
  if (shared_.masking_keys.next(key)) {
    const size_t frame_size =
        buildMaskedControlFrame(kOpcodePing, payload, key, shared_.control_frame.data());
    whole = writeFrame(
        std::string_view(reinterpret_cast<const char*>(shared_.control_frame.data()), frame_size),
        {}, /*terminal=*/false, When::kNow);
  } else {
    // OpenSSL could not supply random bytes: websocketpp's processor masks with its own
    // generator.
    const MessagePtr frame = newMessage();
    if (processor().frames.prepare_ping(std::string(payload), frame)) return;
    whole = writeFrame(frame->get_header(), frame->get_payload(), /*terminal=*/false, When::kNow);
  }
  ++shared_.pings_sent_directly;
  if (!whole) ++shared_.pings_finished_later;
}

// websocketpp: connection::send(payload, op). A text heartbeat is built in the io thread's
// buffer with a fresh masking key and, like a ping, sent at once; a payload the buffer cannot
// hold, one that is not UTF-8 (whose error the processor gives), or a failed key goes through
// websocketpp's processor as before.
std::error_code OpenConnection::sendText(const std::string& payload) {
  if (state_ != State::kOpen) return invalidState();
  std::array<uint8_t, 4> key;
  if (payload.size() <= kMaxTextPayload && isUtf8(payload) && shared_.masking_keys.next(key)) {
    const size_t frame_size = buildMaskedTextFrame(payload, key, shared_.text_frame.data());
    writeFrame(
        std::string_view(reinterpret_cast<const char*>(shared_.text_frame.data()), frame_size), {},
        /*terminal=*/false, When::kNow);
    ++shared_.texts_sent_directly;
    return std::error_code();
  }
  const MessagePtr message =
      shared_.processor_parts->messages->get_message(opcode::text, payload.size());
  message->append_payload(payload);
  const MessagePtr frame = newMessage();
  if (const std::error_code ec = processor().frames.prepare_data_frame(message, frame)) return ec;
  writeFrame(frame->get_header(), frame->get_payload(), /*terminal=*/false, When::kNow);
  return std::error_code();
}

// Writes a frame (its header and payload) behind whatever is still waiting or being written:
// `when` says whether it may go out in this turn of the loop. Returns true when the whole frame
// went out at once.
bool OpenConnection::writeFrame(std::string_view header, std::string_view payload, bool terminal,
                                When when) {
  if (terminal_written_) return false;
  terminal_written_ = terminal;
  if (pending_writes_ == nullptr && when == When::kNow) return sendNow(header, payload, terminal);
  if (pending_writes_ == nullptr) pending_writes_ = std::make_unique<PendingWrites>();
  PendingWrites& pending = *pending_writes_;
  pending.queued.append(header);
  pending.queued.append(payload);
  pending.queued_terminal = pending.queued_terminal || terminal;
  // While Asio writes, its completion takes what is queued; otherwise a flush is posted.
  if (pending.writing.empty() && !pending.flush_posted) {
    pending.flush_posted = true;
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->flushQueued(); });
  }
  return false;
}

// websocketpp's write_frame: after the connection's end, nothing more goes out.
void OpenConnection::flushQueued() {
  std::unique_ptr<PendingWrites> pending = std::move(pending_writes_);
  if (pending == nullptr || state_ == State::kClosed) return;
  sendNow(pending->queued, {}, pending->queued_terminal);
}

// Sends with one non-blocking sendmsg; what it cannot take, Asio writes (later frames queue
// behind it). As websocketpp's write_frame and handle_write_frame: a failed write fails the
// connection with pass_through, and once a `terminal` frame is written the connection ends;
// either on a later turn of the loop, as a completion handler would, so that the caller is never
// re-entered from inside its own action.
bool OpenConnection::sendNow(std::string_view header, std::string_view payload, bool terminal) {
  iovec parts[2] = {{const_cast<char*>(header.data()), header.size()},
                    {const_cast<char*>(payload.data()), payload.size()}};
  msghdr message{};
  message.msg_iov = parts;
  message.msg_iovlen = payload.empty() ? 1 : 2;
  const size_t size = header.size() + payload.size();
  ssize_t sent;
  do {
    sent = ::sendmsg(socket_.native_handle(), &message, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent == static_cast<ssize_t>(size)) {
    if (terminal) {
      asio::post(socket_.get_executor(),
                 [self = shared_from_this()] { self->terminate(std::error_code()); });
    }
    return true;
  }
  if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->terminate(transportError(websocketpp::transport::error::pass_through));
    });
    return false;
  }
  const size_t done = sent > 0 ? static_cast<size_t>(sent) : 0;
  pending_writes_ = std::make_unique<PendingWrites>();
  std::string& rest = pending_writes_->writing;
  rest.reserve(size - done);
  if (done < header.size()) {
    rest.append(header.substr(done));
    rest.append(payload);
  } else {
    rest.append(payload.substr(done - header.size()));
  }
  pending_writes_->writing_terminal = terminal;
  writePending();
  return false;
}

void OpenConnection::writePending() {
  asio::async_write(socket_, asio::buffer(pending_writes_->writing),
                    [self = shared_from_this()](const std::error_code& ec, size_t) {
                      self->onPendingWritten(ec);
                    });
}

void OpenConnection::onPendingWritten(const std::error_code& ec) {
  if (ec) {
    pending_writes_.reset();
    terminate(transportError(websocketpp::transport::error::pass_through));
    return;
  }
  if (pending_writes_->writing_terminal) {
    pending_writes_.reset();
    terminate(std::error_code());
    return;
  }
  if (pending_writes_->queued.empty()) {
    pending_writes_.reset();
    return;
  }
  pending_writes_->writing.swap(pending_writes_->queued);
  pending_writes_->queued.clear();
  pending_writes_->writing_terminal = pending_writes_->queued_terminal;
  pending_writes_->queued_terminal = false;
  writePending();
}

// ---- Closing and the end ----

// websocketpp: connection::close(code, reason, ec).
std::error_code OpenConnection::close(websocketpp::close::status::value code,
                                      const std::string& reason) {
  const std::string truncated(
      reason, 0, std::min<size_t>(reason.size(), websocketpp::frame::limits::close_reason_size));
  if (state_ != State::kOpen) return invalidState();
  return sendCloseFrame(code, truncated, /*ack=*/false, close_status::terminal(code));
}

// websocketpp: connection::send_close_frame (and send_close_ack: ack, not terminal for a client).
std::error_code OpenConnection::sendCloseFrame(websocketpp::close::status::value code,
                                               const std::string& reason, bool ack, bool terminal) {
  if (code != close_status::blank) {
    local_close_code_ = code;
    local_close_reason_ = reason;
  } else if (!ack) {
    local_close_code_ = close_status::no_status;
    local_close_reason_.clear();
  } else if (remote_close_code_ == close_status::no_status) {
    local_close_code_ = close_status::normal;
    local_close_reason_.clear();
  } else {
    local_close_code_ = remote_close_code_;
    local_close_reason_ = remote_close_reason_;
  }
  const MessagePtr frame = newMessage();
  if (const std::error_code ec =
          processor().frames.prepare_close(local_close_code_, local_close_reason_, frame)) {
    return ec;
  }
  state_ = State::kClosing;
  if (ack) was_clean_ = true;
  // websocketpp starts a timer for each close frame it sends without cancelling an earlier one:
  // the first to expire ends the connection, which is the earliest.
  if (close_timer_ == nullptr) {
    close_timer_ = std::make_unique<asio::steady_timer>(
        socket_.get_executor(), std::chrono::milliseconds(kCloseHandshakeTimeoutMs));
    close_timer_->async_wait([self = shared_from_this()](const std::error_code& ec) {
      self->onCloseHandshakeTimeout(ec);
    });
  }
  writeFrame(frame->get_header(), frame->get_payload(), terminal, When::kNextTurn);
  return std::error_code();
}

void OpenConnection::onCloseHandshakeTimeout(const std::error_code& ec) {
  if (ec) return;  // cancelled: the connection ended first
  terminate(websocketpp::error::make_error_code(websocketpp::error::close_handshake_timeout));
}

// websocketpp: connection::terminate, the transport's async_shutdown (the socket shut down both
// ways; an error other than "not connected" kept as the transport error), then handle_terminate
// (the close handler).
void OpenConnection::terminate(const std::error_code& ec) {
  if (state_ == State::kClosed) return;
  close_timer_.reset();  // cancels its wait
  if (ec) {
    local_close_code_ = close_status::abnormal_close;
    local_close_reason_ = ec.message();
  }
  state_ = State::kClosed;
  // The registration goes now; its hold on this connection is let go on a later turn of the
  // loop, as this may run from inside a read the poller's call started, which that hold keeps
  // alive.
  std::shared_ptr<void> held = stopReadiness();
  std::error_code shutdown_ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, shutdown_ec);
  if (shutdown_ec && shutdown_ec != asio::error::not_connected) transport_ec_ = shutdown_ec;
  shared_.events.closed(shared_.events.context, *this);
  if (held) asio::post(socket_.get_executor(), [held = std::move(held)] {});
}

void OpenConnection::dropSocket() {
  const bool parked = read_parked_;
  std::shared_ptr<void> held = stopReadiness();
  std::error_code ignored;
  socket_.close(ignored);
  if (parked) {
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->onReadable(asio::error::make_error_code(asio::error::operation_aborted));
    });
  }
  // The registration's hold may be all that keeps this connection alive: the caller may be an
  // event of its own, from inside a read the poller's call started. Let go on a later turn.
  if (held) asio::post(socket_.get_executor(), [held = std::move(held)] {});
}

bool OpenConnection::hasUnreadInput() {
  std::error_code ec;
  return socket_.available(ec) > 0 && !ec;
}

}  // namespace wsvisor
