#include "supervisor/heartbeat_frames.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

namespace wsvisor {

namespace {

constexpr uint8_t kFinBit = 0x80;
constexpr uint8_t kOpcodeBits = 0x0F;
// Opcodes from 0x8 up are control frames, which may come between a message's fragments.
constexpr uint8_t kFirstControlOpcode = 0x8;
constexpr uint8_t kMaskBit = 0x80;
constexpr uint8_t kLengthBits = 0x7F;
// The 7-bit length values that announce a 16-bit and a 64-bit extended length.
constexpr uint8_t kLength16 = 126;
constexpr uint8_t kLength64 = 127;

// The size of a frame header (extended length and masking key included) from its first two
// bytes.
size_t headerSize(uint8_t second_byte) {
  size_t size = 2;
  const uint8_t length = second_byte & kLengthBits;
  if (length == kLength16) size += 2;
  if (length == kLength64) size += 8;
  if (second_byte & kMaskBit) size += 4;
  return size;
}

// Masks `payload` with `key` into `out` (RFC 6455 section 5.3).
void mask(std::string_view payload, const std::array<uint8_t, 4>& key, uint8_t* out) {
  for (size_t i = 0; i < payload.size(); ++i) {
    out[i] = static_cast<uint8_t>(payload[i]) ^ key[i % 4];
  }
}

}  // namespace

LeadingFrame leadingPong(const uint8_t* bytes, size_t size) {
  // The first byte must be exactly FIN + opcode PONG: a reserved bit set, a fragment or any other
  // opcode is websocketpp's to judge.
  if (size < 2 || bytes[0] != (kFinBit | kOpcodePong)) return {};
  // A masked frame from a server is a protocol error websocketpp reports; a length above 125 is
  // one too for a control frame (and 126/127 announce extended lengths).
  if ((bytes[1] & kMaskBit) != 0) return {};
  const size_t length = bytes[1] & kLengthBits;
  if (length > kMaxControlPayload || size < 2 + length) return {};
  return LeadingFrame{2 + length,
                      std::string_view(reinterpret_cast<const char*>(bytes + 2), length)};
}

LeadingFrame leadingText(const uint8_t* bytes, size_t size) {
  // Exactly FIN + opcode TEXT, unmasked: as for a pong, anything else is websocketpp's to judge.
  if (size < 2 || bytes[0] != (kFinBit | kOpcodeText) || (bytes[1] & kMaskBit) != 0) return {};
  size_t header = 2;
  size_t length = bytes[1] & kLengthBits;
  if (length == kLength64) return {};  // 64 KiB or more: never a small text
  if (length == kLength16) {
    if (size < 4) return {};
    header = 4;
    length = (size_t{bytes[2]} << 8) | bytes[3];
    // A 16-bit length that 7 bits could hold is a protocol error websocketpp reports.
    if (length < kLength16) return {};
  }
  if (size < header + length) return {};
  return LeadingFrame{header + length,
                      std::string_view(reinterpret_cast<const char*>(bytes + header), length)};
}

void FrameBoundaries::consume(const uint8_t* bytes, size_t size) {
  size_t p = 0;
  while (p < size) {
    if (payload_left_ > 0) {
      const uint64_t skipped = std::min<uint64_t>(payload_left_, size - p);
      payload_left_ -= skipped;
      p += static_cast<size_t>(skipped);
      continue;
    }
    if (header_have_ < header_.size()) header_[header_have_] = bytes[p];
    ++header_have_;
    ++p;
    if (header_have_ < 2 || header_have_ < headerSize(header_[1])) continue;
    // The whole header is here: what follows is the payload, then the next frame.
    const uint8_t opcode = header_[0] & kOpcodeBits;
    if (opcode < kFirstControlOpcode) inside_fragmented_message_ = (header_[0] & kFinBit) == 0;
    const uint8_t length = header_[1] & kLengthBits;
    if (length == kLength16) {
      payload_left_ = (uint64_t{header_[2]} << 8) | header_[3];
    } else if (length == kLength64) {
      payload_left_ = 0;
      for (int i = 0; i < 8; ++i) payload_left_ = (payload_left_ << 8) | header_[2 + i];
    } else {
      payload_left_ = length;
    }
    header_have_ = 0;
  }
}

size_t buildMaskedControlFrame(uint8_t opcode, std::string_view payload,
                               const std::array<uint8_t, 4>& key, uint8_t* out) {
  if (payload.size() > kMaxControlPayload) return 0;
  out[0] = kFinBit | opcode;
  out[1] = kMaskBit | static_cast<uint8_t>(payload.size());
  std::memcpy(out + 2, key.data(), key.size());
  mask(payload, key, out + 6);
  return 6 + payload.size();
}

size_t buildMaskedTextFrame(std::string_view payload, const std::array<uint8_t, 4>& key,
                            uint8_t* out) {
  if (payload.size() > kMaxTextPayload) return 0;
  out[0] = kFinBit | kOpcodeText;
  size_t header = 2;
  if (payload.size() < kLength16) {
    out[1] = kMaskBit | static_cast<uint8_t>(payload.size());
  } else {
    out[1] = kMaskBit | kLength16;
    out[2] = static_cast<uint8_t>(payload.size() >> 8);
    out[3] = static_cast<uint8_t>(payload.size());
    header = 4;
  }
  std::memcpy(out + header, key.data(), key.size());
  mask(payload, key, out + header + 4);
  return header + 4 + payload.size();
}

bool MaskingKeys::next(std::array<uint8_t, 4>& key) {
  if (used_ == kBatchKeys) {
    if (RAND_bytes(batch_.data(), static_cast<int>(batch_.size())) != 1) return false;
    used_ = 0;
  }
  std::memcpy(key.data(), batch_.data() + 4 * used_, key.size());
  ++used_;
  return true;
}

}  // namespace wsvisor
