#pragma once

// An open plain (ws://) client connection after its opening handshake, taken over from
// websocketpp: its socket, and the frames that came behind the handshake response.
//
// Why: websocketpp keeps a connection's whole machinery for its whole life (4.6 KB per
// connection: two 1 KiB handler buffers, its read buffer, its send queue, a dozen std::function
// handlers, handshake state), and runs every frame through a generic path (a message object and a
// type-erased handler per frame). A heartbeated connection needs far less once it is open: this
// object is about 0.4 KB, reads into its io thread's buffer, and takes a pong or a small text
// message, or sends a ping or a text heartbeat, without allocating anything.
//
// What stays websocketpp's: the opening handshake (supervisor/transport_connection.h hands the
// socket over from the open handler), and RFC 6455 decoding: every frame but a complete pong or
// a whole small text message at a frame boundary goes through websocketpp's own frame processor
// (hybi13), and close frames (and anything the heartbeat path's buffers cannot hold) are built by
// it too. What websocketpp's connection did with the processor's output
// (websocketpp/impl/connection_impl.hpp: handle_read_frame, process_control_frame, close,
// send_close_frame, terminate, write_frame) is done here the same way, step for step, so that
// every event, failure reason, close code and detail stays what websocketpp reported: the comments
// below name the websocketpp function each part follows.
//
// Threading: one io thread; every call and callback runs on it.

#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <websocketpp/close.hpp>
#include <websocketpp/message_buffer/alloc.hpp>
#include <websocketpp/message_buffer/message.hpp>

#include "supervisor/heartbeat_frames.h"
#include "supervisor/readiness_poller.h"

namespace wsvisor {

class OpenConnection;

// What one io thread's open connections share: where their events go (plain functions and a
// context rather than std::functions: they run once per heartbeat), their masking keys, the
// buffer their reads land in and the ones control and text frames are built in, and what
// websocketpp's processor needs.
struct OpenConnections {
  struct Events {
    void (*pong)(void* context, OpenConnection& con, std::string_view payload) = nullptr;
    void (*message)(void* context, OpenConnection& con, std::string_view payload) = nullptr;
    // The connection ended: its close codes, reasons and transport error are final.
    void (*closed)(void* context, OpenConnection& con) = nullptr;
    void* context = nullptr;
  };

  OpenConnections(ReadinessPoller& poller, Events handlers);
  ~OpenConnections();
  OpenConnections(const OpenConnections&) = delete;
  OpenConnections& operator=(const OpenConnections&) = delete;

  ReadinessPoller& readiness;
  const Events events;
  MaskingKeys masking_keys;
  // A read takes at most this much; whatever a frame processor needs to keep of it, it copies.
  // websocketpp's read buffer size (checked in open_connection.cc): a connection then takes what
  // websocketpp took in a turn of the loop, so that timers and the other connections get their
  // turns between the reads of a long message as they did.
  static constexpr size_t kReadBufferSize = 640;
  std::array<uint8_t, kReadBufferSize> read_buffer{};
  std::array<uint8_t, kMaxPingFrameSize> control_frame{};
  std::array<uint8_t, kMaxTextFrameSize> text_frame{};
  // websocketpp's message manager and random generator, shared by the processors of the thread's
  // connections (neither keeps anything per connection).
  struct ProcessorParts;
  std::unique_ptr<ProcessorParts> processor_parts;

  uint64_t pongs_taken_from_reads = 0;
  uint64_t texts_taken_from_reads = 0;
  uint64_t texts_sent_directly = 0;
  uint64_t pings_sent_directly = 0;
  uint64_t pings_finished_later = 0;
};

class OpenConnection : public std::enable_shared_from_this<OpenConnection> {
 public:
  // Starts the connection on `socket`, open, with `frames_behind_response` (the bytes that came
  // behind the handshake response) as its first bytes read: they are processed at once, as
  // websocketpp processes them right after its open handler.
  static std::shared_ptr<OpenConnection> start(OpenConnections& shared,
                                               asio::ip::tcp::socket socket, uint64_t key,
                                               uint64_t attempt, uint64_t max_message_bytes);
  void readFramesBehindResponse(std::string_view frames);

  ~OpenConnection();
  OpenConnection(const OpenConnection&) = delete;
  OpenConnection& operator=(const OpenConnection&) = delete;

  uint64_t key() const { return key_; }
  uint64_t attempt() const { return attempt_; }
  bool isOpen() const { return state_ == State::kOpen; }

  // Sends a ping carrying `payload`, masked with a fresh key; a ping that cannot be sent shows up
  // as a missing pong, as with websocketpp.
  void sendPing(std::string_view payload);
  // As websocketpp's send(payload, text): an error (invalid_state when not open, invalid_payload
  // for text that is not UTF-8) and nothing sent, or the frame sent behind what is being written.
  std::error_code sendText(const std::string& payload);
  // As websocketpp's close(code, reason, ec): starts the closing handshake; invalid_state when the
  // connection is not open.
  std::error_code close(websocketpp::close::status::value code, const std::string& reason);
  // Closes the socket under the connection (websocketpp's connection, when the transport closes
  // its raw socket): a read waiting for the socket completes with operation_aborted on a later
  // turn of the loop and ends the connection, if it has not ended yet.
  void dropSocket();
  // Bytes have arrived that nobody has read yet.
  bool hasUnreadInput();

  // Why the connection ended, named as websocketpp's connection's accessors so that one
  // classification reads both (supervisor/websocket_transport.cc, classifyClose).
  websocketpp::close::status::value get_local_close_code() const { return local_close_code_; }
  const std::string& get_local_close_reason() const { return local_close_reason_; }
  websocketpp::close::status::value get_remote_close_code() const { return remote_close_code_; }
  const std::string& get_remote_close_reason() const { return remote_close_reason_; }
  const std::error_code& get_transport_ec() const { return transport_ec_; }

 private:
  enum class State : uint8_t { kOpen, kClosing, kClosed };
  struct Processor;
  struct PendingWrites;

  OpenConnection(OpenConnections& shared, asio::ip::tcp::socket socket, uint64_t key,
                 uint64_t attempt, uint64_t max_message_bytes);

  // Reads.
  static void onReady(void* target, uint32_t events);
  void awaitReadable();
  void onReadable(const std::error_code& ec);
  void processBytes(uint8_t* bytes, size_t size);
  bool isWholeTextMessage(std::string_view payload) const;
  void consumeFrames(uint8_t* bytes, size_t size);
  void processControlFrame(int opcode, const std::string& payload);
  void readFailed(const std::error_code& ec);
  std::shared_ptr<void> stopReadiness();

  // Writes. kNow: a heartbeat (a ping or a text), sent at once. kNextTurn: every other frame,
  // written on a later turn of the loop, as websocketpp queues a frame and writes it from a posted
  // write_frame (what happens meanwhile, a read that ends the connection for one, happens first, as
  // with websocketpp).
  enum class When : uint8_t { kNow, kNextTurn };
  bool writeFrame(std::string_view header, std::string_view payload, bool terminal, When when);
  void flushQueued();
  bool sendNow(std::string_view header, std::string_view payload, bool terminal);
  void writePending();
  void onPendingWritten(const std::error_code& ec);
  void failWriteLater();

  // Closing and the end.
  std::error_code sendCloseFrame(websocketpp::close::status::value code, const std::string& reason,
                                 bool ack, bool terminal);
  void onCloseHandshakeTimeout(const std::error_code& ec);
  void terminate(const std::error_code& ec);
  Processor& processor();
  // An empty message of websocketpp's, for its processor to build a frame in.
  std::shared_ptr<
      websocketpp::message_buffer::message<websocketpp::message_buffer::alloc::con_msg_manager>>
  newMessage();

  OpenConnections& shared_;
  asio::ip::tcp::socket socket_;
  const uint64_t key_;
  const uint64_t attempt_;
  const uint64_t max_message_bytes_;
  // websocketpp's frame processor, made on the first bytes the pong path does not take.
  std::unique_ptr<Processor> processor_;
  // Frames one send could not take whole, while Asio writes them (null when none).
  std::unique_ptr<PendingWrites> pending_writes_;
  // The closing handshake's timer, while one runs.
  std::unique_ptr<asio::steady_timer> close_timer_;
  // Where frames start in the bytes read so far.
  FrameBoundaries boundaries_;
  std::string local_close_reason_;
  std::string remote_close_reason_;
  std::error_code transport_ec_;
  uint32_t readiness_slot_ = ReadinessPoller::kNoSlot;
  websocketpp::close::status::value local_close_code_ = websocketpp::close::status::abnormal_close;
  websocketpp::close::status::value remote_close_code_ = websocketpp::close::status::abnormal_close;
  State state_ = State::kOpen;
  // websocketpp stops reading after a frame its processor rejects.
  bool reading_ = true;
  bool was_clean_ = false;
  // A terminal frame (a close after which the connection ends) has been asked for: websocketpp
  // writes nothing after it.
  bool terminal_written_ = false;
  // The poller reports this socket's readiness (else reads wait through Asio); bytes were
  // reported that no read has taken yet; the peer's end or an error was reported; a read waits
  // for the poller.
  bool polled_ = false;
  bool readable_ = false;
  bool ended_ = false;
  bool read_parked_ = false;
};

}  // namespace wsvisor
