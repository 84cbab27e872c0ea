#pragma once

// RFC 6455 framing for the heartbeat path of an open client connection: recognising the pongs and
// small text messages a server sends, following where frames and messages start in what
// websocketpp's frame processor is given, and building masked ping, pong and text frames.
// Plain byte buffers only (no Asio, no websocketpp), so that every edge case is unit-tested over
// bytes (tests/unit/supervisor/heartbeat_frames_test.cc).
//
// The heartbeat path takes only what it can handle exactly as websocketpp would: a complete,
// final, unmasked pong or text frame with no reserved bit and a minimally encoded length, found
// where a frame starts (and, for a text frame, outside a fragmented message, at most the
// connection's largest message, and valid UTF-8: open_connection.cc checks those). Everything
// else (partial frames, other opcodes, reserved bits, a masked server frame) is left to
// websocketpp's frame processor, so that every failure and close code it reports stays its own.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace wsvisor {

// RFC 6455 section 5.2: the opcodes of the frames a heartbeat sends and answers.
inline constexpr uint8_t kOpcodeText = 0x1;
inline constexpr uint8_t kOpcodePing = 0x9;
inline constexpr uint8_t kOpcodePong = 0xA;
// RFC 6455 section 5.5: control frames carry at most 125 bytes of payload.
inline constexpr size_t kMaxControlPayload = 125;
// A masked client control frame: 2 header bytes, a 4-byte masking key, the payload.
inline constexpr size_t kMaxPingFrameSize = 2 + 4 + kMaxControlPayload;
// The longest text a frame built here carries (a heartbeat's text is at most 4096 bytes:
// supervisor/core/spec_validation.h; open_connection.cc checks that it fits), and the size of its
// masked frame: 2 header bytes, a 16-bit extended length, a 4-byte masking key, the payload.
inline constexpr size_t kMaxTextPayload = 4096;
inline constexpr size_t kMaxTextFrameSize = 2 + 2 + 4 + kMaxTextPayload;

// A complete frame found at the start of a buffer: its whole size (0 when none) and its payload,
// viewed inside the buffer.
struct LeadingFrame {
  size_t frame_size = 0;
  std::string_view payload;
};

// The complete pong frame at the start of `bytes`, if there is one that the heartbeat path may
// take: FIN set, RSV1-3 clear, opcode 0xA, mask bit clear (a server never masks), payload length
// ≤ 125 and all of it present. Anything else, including a pong that is not complete yet, gives
// frame_size 0.
LeadingFrame leadingPong(const uint8_t* bytes, size_t size);

// The complete text frame at the start of `bytes` that the heartbeat path may take as a whole
// message: FIN set, RSV1-3 clear, opcode 0x1, mask bit clear, a 7-bit length or a minimally
// encoded 16-bit one, and all of the payload present. Anything else gives frame_size 0. Whether
// it may be taken also depends on what came before it and on its payload (see the top).
LeadingFrame leadingText(const uint8_t* bytes, size_t size);

// Follows the frame boundaries of a byte stream by header and length alone, as websocketpp's
// frame processor reads them, so that the heartbeat path takes bytes only where websocketpp's
// processor would be about to read a new frame header, and text only where no fragmented message
// is waiting for its continuation. It validates nothing: a frame websocketpp rejects ends the
// connection's open state, after which the heartbeat path takes nothing.
class FrameBoundaries {
 public:
  // Advances over `size` bytes of the stream.
  void consume(const uint8_t* bytes, size_t size);
  // True when the next byte of the stream is the first byte of a frame.
  bool atFrameStart() const { return header_have_ == 0 && payload_left_ == 0; }
  // True from the header of a data frame without FIN (a message's first fragment) to the header
  // of the continuation with FIN that ends the message.
  bool insideFragmentedMessage() const { return inside_fragmented_message_; }

 private:
  // Payload bytes of the current frame still to come.
  uint64_t payload_left_ = 0;
  // The header being read: its first 10 bytes (2, then up to 8 of extended length; a masking
  // key's 4 bytes are counted, not kept), and how much of it has arrived.
  std::array<uint8_t, 10> header_{};
  uint8_t header_have_ = 0;
  bool inside_fragmented_message_ = false;
};

// Writes a masked control frame (FIN set, `opcode` 0x9 for a ping, 0xA for a pong) carrying
// `payload` (at most kMaxControlPayload bytes) into `out` (at least kMaxPingFrameSize bytes) with
// masking key `key`, and returns the frame's size; 0 when the payload is too long for a control
// frame.
size_t buildMaskedControlFrame(uint8_t opcode, std::string_view payload,
                               const std::array<uint8_t, 4>& key, uint8_t* out);

// Writes a masked, final text frame carrying `payload` (at most kMaxTextPayload bytes; the caller
// has checked that it is UTF-8) into `out` (at least kMaxTextFrameSize bytes) with masking key
// `key`, its length encoded minimally, and returns the frame's size; 0 when the payload is longer
// than kMaxTextPayload.
size_t buildMaskedTextFrame(std::string_view payload, const std::array<uint8_t, 4>& key,
                            uint8_t* out);

// Masking keys for a client's frames (RFC 6455 section 5.3: each frame's key must be fresh and
// unpredictable): drawn from OpenSSL's CSPRNG a batch at a time, each handed out once.
//
// Not thread-safe: one per io thread.
class MaskingKeys {
 public:
  // Writes the next unused key to `key`; false when OpenSSL could not supply random bytes (the
  // caller then has websocketpp's frame processor mask with its own generator).
  bool next(std::array<uint8_t, 4>& key);

 private:
  static constexpr size_t kBatchKeys = 256;
  std::array<uint8_t, 4 * kBatchKeys> batch_{};
  size_t used_ = kBatchKeys;  // keys of batch_ already handed out; a full count means refill
};

}  // namespace wsvisor
