#include "supervisor/heartbeat_frames.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace wsvisor {
namespace {

using Bytes = std::vector<uint8_t>;

// An unmasked frame as a server sends it (first byte given whole: FIN, RSV bits, opcode).
Bytes serverFrame(uint8_t first_byte, const std::string& payload) {
  Bytes frame{first_byte};
  if (payload.size() < 126) {
    frame.push_back(static_cast<uint8_t>(payload.size()));
  } else if (payload.size() < 65536) {
    frame.push_back(126);
    frame.push_back(static_cast<uint8_t>(payload.size() >> 8));
    frame.push_back(static_cast<uint8_t>(payload.size()));
  } else {
    frame.push_back(127);
    for (int shift = 56; shift >= 0; shift -= 8) {
      frame.push_back(static_cast<uint8_t>(uint64_t{payload.size()} >> shift));
    }
  }
  frame.insert(frame.end(), payload.begin(), payload.end());
  return frame;
}

Bytes pong(const std::string& payload) { return serverFrame(0x8A, payload); }

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes all;
  for (const Bytes& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

TEST(LeadingPongTest, TakesACompletePongAndViewsItsPayload) {
  const Bytes bytes = pong("17");
  const LeadingFrame found = leadingPong(bytes.data(), bytes.size());
  EXPECT_EQ(found.frame_size, 4u);
  EXPECT_EQ(found.payload, "17");
}

TEST(LeadingPongTest, TakesAnEmptyPongAndOneOfTheLargestAllowed) {
  const Bytes empty = pong("");
  EXPECT_EQ(leadingPong(empty.data(), empty.size()).frame_size, 2u);
  const Bytes largest = pong(std::string(125, 'x'));
  const LeadingFrame found = leadingPong(largest.data(), largest.size());
  EXPECT_EQ(found.frame_size, 127u);
  EXPECT_EQ(found.payload, std::string(125, 'x'));
}

TEST(LeadingPongTest, TwoPongsInOneBufferAreTakenOneAfterTheOther) {
  const Bytes bytes = concat({pong("1"), pong("22")});
  const LeadingFrame first = leadingPong(bytes.data(), bytes.size());
  ASSERT_EQ(first.frame_size, 3u);
  EXPECT_EQ(first.payload, "1");
  const LeadingFrame second =
      leadingPong(bytes.data() + first.frame_size, bytes.size() - first.frame_size);
  EXPECT_EQ(second.frame_size, 4u);
  EXPECT_EQ(second.payload, "22");
}

TEST(LeadingPongTest, APongThatHasNotFullyArrivedIsNotTaken) {
  const Bytes bytes = pong("12345");
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_EQ(leadingPong(bytes.data(), cut).frame_size, 0u) << "cut at " << cut;
  }
}

TEST(LeadingPongTest, OnlyTheFirstFrameCounts) {
  const Bytes text_then_pong = concat({serverFrame(0x81, "hi"), pong("1")});
  EXPECT_EQ(leadingPong(text_then_pong.data(), text_then_pong.size()).frame_size, 0u);
  const Bytes pong_then_text = concat({pong("1"), serverFrame(0x81, "hi")});
  EXPECT_EQ(leadingPong(pong_then_text.data(), pong_then_text.size()).frame_size, 3u);
}

TEST(LeadingPongTest, LeavesEverythingUnusualToWebsocketpp) {
  const std::vector<std::pair<const char*, Bytes>> cases = {
      {"RSV1 set", serverFrame(0x8A | 0x40, "1")},
      {"RSV2 set", serverFrame(0x8A | 0x20, "1")},
      {"RSV3 set", serverFrame(0x8A | 0x10, "1")},
      {"FIN clear", serverFrame(0x0A, "1")},
      {"ping", serverFrame(0x89, "1")},
      {"close", serverFrame(0x88, "\x03\xe8")},
      {"text", serverFrame(0x81, "1")},
      {"binary", serverFrame(0x82, "1")},
      {"continuation", serverFrame(0x80, "1")},
      {"reserved opcode", serverFrame(0x8B, "1")},
      {"too long for a control frame", serverFrame(0x8A, std::string(126, 'x'))},
      {"masked", Bytes{0x8A, 0x81, 1, 2, 3, 4, '1' ^ 1}},
  };
  for (const auto& [what, bytes] : cases) {
    EXPECT_EQ(leadingPong(bytes.data(), bytes.size()).frame_size, 0u) << what;
  }
}

TEST(LeadingTextTest, TakesCompleteTextsWithEitherLengthEncoding) {
  const Bytes short_text = serverFrame(0x81, "hello");
  const LeadingFrame found = leadingText(short_text.data(), short_text.size());
  EXPECT_EQ(found.frame_size, short_text.size());
  EXPECT_EQ(found.payload, "hello");
  const Bytes empty = serverFrame(0x81, "");
  EXPECT_EQ(leadingText(empty.data(), empty.size()).frame_size, 2u);
  for (size_t length : {size_t{125}, size_t{126}, size_t{600}}) {
    const Bytes bytes = concat({serverFrame(0x81, std::string(length, 't')), pong("1")});
    const LeadingFrame text = leadingText(bytes.data(), bytes.size());
    EXPECT_EQ(text.frame_size, (length < 126 ? 2 : 4) + length) << length;
    EXPECT_EQ(text.payload, std::string(length, 't')) << length;
  }
}

TEST(LeadingTextTest, ATextThatHasNotFullyArrivedIsNotTaken) {
  for (const Bytes& bytes :
       {serverFrame(0x81, "abcdef"), serverFrame(0x81, std::string(300, 'x'))}) {
    for (size_t cut = 0; cut < bytes.size(); ++cut) {
      EXPECT_EQ(leadingText(bytes.data(), cut).frame_size, 0u) << "cut at " << cut;
    }
  }
}

TEST(LeadingTextTest, LeavesEverythingUnusualToWebsocketpp) {
  Bytes non_minimal{0x81, 126, 0, 3, 'a', 'b', 'c'};
  // The longest length 7 bits can hold, written in 16: still not minimal (websocketpp: 1002).
  Bytes non_minimal_125{0x81, 126, 0, 125};
  non_minimal_125.resize(4 + 125, 'x');
  const std::vector<std::pair<const char*, Bytes>> cases = {
      {"RSV1 set", serverFrame(0x81 | 0x40, "1")},
      {"RSV3 set", serverFrame(0x81 | 0x10, "1")},
      {"first fragment", serverFrame(0x01, "1")},
      {"last fragment", serverFrame(0x80, "1")},
      {"binary", serverFrame(0x82, "1")},
      {"pong", pong("1")},
      {"masked", Bytes{0x81, 0x81, 1, 2, 3, 4, '1' ^ 1}},
      {"16-bit length under 126", non_minimal},
      {"16-bit length of 125", non_minimal_125},
      {"64-bit length", serverFrame(0x81, std::string(70000, 'x'))},
  };
  for (const auto& [what, bytes] : cases) {
    EXPECT_EQ(leadingText(bytes.data(), bytes.size()).frame_size, 0u) << what;
  }
}

// Feeds `stream` to a FrameBoundaries in pieces of `piece` bytes and returns the stream offsets
// at which it reported a frame start.
std::set<size_t> boundariesSeen(const Bytes& stream, size_t piece) {
  FrameBoundaries boundaries;
  std::set<size_t> seen;
  for (size_t offset = 0; offset < stream.size(); offset += piece) {
    const size_t size = std::min(piece, stream.size() - offset);
    boundaries.consume(stream.data() + offset, size);
    if (boundaries.atFrameStart()) seen.insert(offset + size);
  }
  return seen;
}

TEST(FrameBoundariesTest, StartsAtAFrameStart) { EXPECT_TRUE(FrameBoundaries().atFrameStart()); }

TEST(FrameBoundariesTest, FollowsFramesOfEveryLengthEncodingInPiecesOfAnySize) {
  const std::vector<Bytes> frames = {
      pong(""),
      serverFrame(0x81, "hello"),
      serverFrame(0x82, std::string(126, 'a')),         // 16-bit length
      serverFrame(0x01, std::string(300, 'b')),         // a fragment, 16-bit length
      serverFrame(0x80, std::string(70000, 'c')),       // 64-bit length
      Bytes{0x81, 0x82, 9, 9, 9, 9, 'o' ^ 9, 'k' ^ 9},  // masked (websocketpp would refuse it)
      Bytes{0x89, 0xFE, 0x00, 0x02, 1, 2, 3, 4, 5, 6},  // masked, 16-bit length
      pong("9"),
  };
  Bytes stream;
  std::set<size_t> starts;
  for (const Bytes& frame : frames) {
    stream.insert(stream.end(), frame.begin(), frame.end());
    starts.insert(stream.size());
  }
  for (size_t piece : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{640}, stream.size()}) {
    const std::set<size_t> seen = boundariesSeen(stream, piece);
    // Every offset it calls a frame start is one, and it sees each one its pieces end at.
    for (size_t offset : seen) EXPECT_TRUE(starts.count(offset)) << offset << " piece " << piece;
    for (size_t offset : starts) {
      if (offset % piece == 0 || offset == stream.size()) {
        EXPECT_TRUE(seen.count(offset)) << offset << " piece " << piece;
      }
    }
  }
}

TEST(FrameBoundariesTest, IsInsideAFrameUntilItsLastByte) {
  const Bytes frame = serverFrame(0x81, "abc");
  for (size_t cut = 1; cut < frame.size(); ++cut) {
    FrameBoundaries boundaries;
    boundaries.consume(frame.data(), cut);
    EXPECT_FALSE(boundaries.atFrameStart()) << "cut at " << cut;
    boundaries.consume(frame.data() + cut, frame.size() - cut);
    EXPECT_TRUE(boundaries.atFrameStart()) << "cut at " << cut;
  }
}

TEST(FrameBoundariesTest, KnowsWhenAFragmentedMessageWaitsForItsContinuation) {
  // Frame by frame, and whether a message is waiting for its continuation after each.
  const std::vector<std::pair<Bytes, bool>> stream = {
      {serverFrame(0x81, "whole"), false},
      {serverFrame(0x01, "first"), true},
      {pong("between"), true},  // a control frame may come between fragments
      {serverFrame(0x00, "middle"), true},
      {serverFrame(0x80, "last"), false},
      {serverFrame(0x02, "binary first"), true},
      {serverFrame(0x80, std::string(300, 'b')), false},
  };
  FrameBoundaries boundaries;
  EXPECT_FALSE(boundaries.insideFragmentedMessage());
  for (const auto& [frame, inside] : stream) {
    boundaries.consume(frame.data(), frame.size());
    EXPECT_EQ(boundaries.insideFragmentedMessage(), inside)
        << "after a frame starting " << int{frame[0]};
  }
}

Bytes unmask(const uint8_t* frame, size_t size) {
  Bytes payload;
  for (size_t i = 6; i < size; ++i) payload.push_back(frame[i] ^ frame[2 + (i - 6) % 4]);
  return payload;
}

TEST(BuildMaskedControlFrameTest, WritesAFinalMaskedPingWithTheKeyAndMaskedPayload) {
  uint8_t out[kMaxPingFrameSize];
  const std::array<uint8_t, 4> key{0x12, 0x34, 0x56, 0x78};
  const size_t size = buildMaskedControlFrame(kOpcodePing, "12345", key, out);
  ASSERT_EQ(size, 11u);
  EXPECT_EQ(out[0], 0x89);      // FIN, no RSV, opcode ping
  EXPECT_EQ(out[1], 0x80 | 5);  // masked, 5 bytes
  EXPECT_EQ(out[2], 0x12);
  EXPECT_EQ(out[5], 0x78);
  EXPECT_EQ(out[6], '1' ^ 0x12);
  EXPECT_EQ(out[10], '5' ^ 0x12);  // the key repeats every 4 bytes
  const Bytes payload = unmask(out, size);
  EXPECT_EQ(std::string(payload.begin(), payload.end()), "12345");
}

TEST(BuildMaskedControlFrameTest, TakesUpTo125BytesAndRefusesMore) {
  uint8_t out[kMaxPingFrameSize];
  const std::array<uint8_t, 4> key{1, 2, 3, 4};
  EXPECT_EQ(buildMaskedControlFrame(kOpcodePing, "", key, out), 6u);
  EXPECT_EQ(out[1], 0x80);
  EXPECT_EQ(buildMaskedControlFrame(kOpcodePing, std::string(125, 'p'), key, out),
            kMaxPingFrameSize);
  EXPECT_EQ(buildMaskedControlFrame(kOpcodePing, std::string(126, 'p'), key, out), 0u);
}

TEST(BuildMaskedControlFrameTest, WritesAPongWithItsOwnOpcode) {
  uint8_t out[kMaxPingFrameSize];
  const std::array<uint8_t, 4> key{9, 8, 7, 6};
  const size_t size = buildMaskedControlFrame(kOpcodePong, "ok", key, out);
  ASSERT_EQ(size, 8u);
  EXPECT_EQ(out[0], 0x8A);  // FIN, no RSV, opcode pong
  EXPECT_EQ(out[1], 0x80 | 2);
  const Bytes payload = unmask(out, size);
  EXPECT_EQ(std::string(payload.begin(), payload.end()), "ok");
}

TEST(BuildMaskedTextFrameTest, EncodesEachLengthMinimallyAndMasksThePayload) {
  std::vector<uint8_t> out(kMaxTextFrameSize);
  const std::array<uint8_t, 4> key{0xA1, 0xB2, 0xC3, 0xD4};
  for (size_t length : {size_t{0}, size_t{9}, size_t{125}, size_t{126}, kMaxTextPayload}) {
    std::string payload;
    for (size_t i = 0; i < length; ++i) payload.push_back(static_cast<char>('a' + i % 26));
    const size_t size = buildMaskedTextFrame(payload, key, out.data());
    const size_t header = length < 126 ? 2 : 4;
    ASSERT_EQ(size, header + 4 + length) << length;
    EXPECT_EQ(out[0], 0x81) << length;  // FIN, no RSV, opcode text
    if (header == 2) {
      EXPECT_EQ(out[1], 0x80 | length) << length;
    } else {
      EXPECT_EQ(out[1], 0x80 | 126) << length;
      EXPECT_EQ((size_t{out[2]} << 8) | out[3], length);
    }
    EXPECT_TRUE(std::equal(key.begin(), key.end(), out.begin() + header)) << length;
    std::string unmasked;
    for (size_t i = 0; i < length; ++i) {
      unmasked.push_back(static_cast<char>(out[header + 4 + i] ^ key[i % 4]));
    }
    EXPECT_EQ(unmasked, payload) << length;
  }
  EXPECT_EQ(buildMaskedTextFrame(std::string(kMaxTextPayload + 1, 'x'), key, out.data()), 0u);
}

TEST(MaskingKeysTest, HandsOutAFreshKeyEachTimeAcrossBatchRefills) {
  MaskingKeys keys;
  std::array<uint8_t, 4> previous{};
  ASSERT_TRUE(keys.next(previous));
  // Three batches' worth, refills on the way. Two random 32-bit keys in a row are equal with a
  // probability of 2^-32 each: an equal pair means a key was handed out twice.
  for (int i = 0; i < 768; ++i) {
    std::array<uint8_t, 4> key{};
    ASSERT_TRUE(keys.next(key));
    EXPECT_NE(key, previous) << "key " << i;
    previous = key;
  }
}

}  // namespace
}  // namespace wsvisor
