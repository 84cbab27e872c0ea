#include "service/allocator_settings.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

// Built twice (tests/CMakeLists.txt): linked with tcmalloc and compiled with WSVISOR_TCMALLOC, as
// the wsvisor executable is by default, and with the system's allocator (glibc's, or the
// sanitizer's in a sanitizer build), as with -DWSVISOR_ALLOCATOR=system. Each binary checks the
// figure of the allocator it runs on.

namespace wsvisor::service {
namespace {

constexpr size_t kSmallBlock = 4096;  // a tcmalloc size class; above glibc's per-thread caches
constexpr size_t kSmallBlocks = 1024;
constexpr size_t kLargeBlock = size_t{8} << 20;  // a span of its own; glibc mmaps it
constexpr size_t kAllocated = kSmallBlock * kSmallBlocks + kLargeBlock;
// Headers (glibc: 16 bytes a chunk) and what gtest allocates meanwhile.
constexpr int64_t kSlack = int64_t{1} << 20;

// Keeps the compiler from eliding an allocation that is freed unused.
void escape(void* p) { asm volatile("" : : "g"(p) : "memory"); }

int64_t readBytes() {
  const std::optional<uint64_t> bytes = allocatedHeapBytes();
  EXPECT_TRUE(bytes.has_value());
  return static_cast<int64_t>(bytes.value_or(0));
}

TEST(AllocatedHeapBytesTest, CountsWhatIsAllocatedUntilItIsFreed) {
  std::vector<void*> blocks;
  blocks.reserve(kSmallBlocks + 1);
  const int64_t before = readBytes();

  for (size_t i = 0; i < kSmallBlocks; ++i) blocks.push_back(std::malloc(kSmallBlock));
  blocks.push_back(std::malloc(kLargeBlock));
  for (void* block : blocks) {
    ASSERT_NE(block, nullptr);
    escape(block);
  }
  const int64_t allocated = readBytes();
  EXPECT_GE(allocated - before, static_cast<int64_t>(kAllocated));
  EXPECT_LE(allocated - before, static_cast<int64_t>(kAllocated) + kSlack);

  for (void* block : blocks) std::free(block);
  const int64_t freed = readBytes();
  EXPECT_LE(freed, before + kSlack);
  EXPECT_GE(freed, before - kSlack);
}

TEST(AllocatedHeapBytesTest, CountsOperatorNew) {
  const int64_t before = readBytes();
  auto* block = new char[kLargeBlock];
  std::memset(block, 1, kLargeBlock);
  escape(block);
  EXPECT_GE(readBytes() - before, static_cast<int64_t>(kLargeBlock));
  delete[] block;
  EXPECT_LE(readBytes() - before, kSlack);
}

}  // namespace
}  // namespace wsvisor::service
