#pragma once

// RFC 6455 framing for the heartbeat path of an open client connection: recognising the pongs a
// server sends, following where frames start in what websocketpp's frame processor is given, and
// building masked ping and pong frames.
// Plain byte buffers only (no Asio, no websocketpp), so that every edge case is unit-tested over
// bytes (tests/unit/supervisor/heartbeat_frames_test.cc).
//
// The heartbeat path takes only what it can handle exactly as websocketpp would: a complete,
// final, unmasked pong with no reserved bit and at most 125 bytes of payload, found where a frame
// starts. Everything else (partial frames, other opcodes, reserved bits, a masked server frame)
// is left to websocketpp's frame processor, so that every failure and close code it reports stays
// its own.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace wsvisor {

// RFC 6455 section 5.2: the opcodes of the control frames a heartbeat sends and answers.
inline constexpr uint8_t kOpcodePing = 0x9;
inline constexpr uint8_t kOpcodePong = 0xA;
// RFC 6455 section 5.5: control frames carry at most 125 bytes of payload.
inline constexpr size_t kMaxControlPayload = 125;
// A masked client control frame: 2 header bytes, a 4-byte masking key, the payload.
inline constexpr size_t kMaxPingFrameSize = 2 + 4 + kMaxControlPayload;

// The complete pong frame at the start of `bytes`, if there is one that the heartbeat path may
// take: FIN set, RSV1-3 clear, opcode 0xA, mask bit clear (a server never masks), payload length
// ≤ 125 and all of it present. `frame_size` is the whole frame's size and `payload` views its
// payload inside `bytes`. Anything else, including a pong that is not complete yet, gives
// frame_size 0.
struct LeadingPong {
  size_t frame_size = 0;
  std::string_view payload;
};
LeadingPong leadingPong(const uint8_t* bytes, size_t size);

// Follows the frame boundaries of a byte stream by header and length alone, as websocketpp's
// frame processor reads them, so that the heartbeat path takes bytes only where websocketpp's
// processor would be about to read a new frame header. It validates nothing: a frame websocketpp
// rejects ends the connection's open state, after which the heartbeat path takes nothing.
class FrameBoundaries {
 public:
  // Advances over `size` bytes of the stream.
  void consume(const uint8_t* bytes, size_t size);
  // True when the next byte of the stream is the first byte of a frame.
  bool atFrameStart() const { return header_have_ == 0 && payload_left_ == 0; }

 private:
  // Payload bytes of the current frame still to come.
  uint64_t payload_left_ = 0;
  // The header being read: its first 10 bytes (2, then up to 8 of extended length; a masking
  // key's 4 bytes are counted, not kept), and how much of it has arrived.
  std::array<uint8_t, 10> header_{};
  uint8_t header_have_ = 0;
};

// Writes a masked control frame (FIN set, `opcode` 0x9 for a ping, 0xA for a pong) carrying
// `payload` (at most kMaxControlPayload bytes) into `out` (at least kMaxPingFrameSize bytes) with
// masking key `key`, and returns the frame's size; 0 when the payload is too long for a control
// frame.
size_t buildMaskedControlFrame(uint8_t opcode, std::string_view payload,
                               const std::array<uint8_t, 4>& key, uint8_t* out);

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
