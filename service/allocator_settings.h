#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace wsvisor::service {

// Applies wsvisor's settings to the allocator it was linked with (CMake WSVISOR_ALLOCATOR) and
// describes the result for the start-up log. Call first in main(), before any thread starts.
std::string applyAllocatorSettings();

// The bytes the program has allocated and not yet freed, from the allocator it was linked with:
// tcmalloc's generic.current_allocated_bytes; in a sanitizer build (which replaces malloc) the
// sanitizer's own count; otherwise glibc's mallinfo2() uordblks + hblkhd (in-use chunks of the
// arenas, headers included, plus mmapped chunks). nullopt when none of these applies. Takes the
// allocator's locks and walks its statistics: for scrapes (wsvisor_heap_allocated_bytes), not for
// hot paths. An allocator preloaded with LD_PRELOAD is not seen: the figure is then glibc's, which
// does not move.
std::optional<uint64_t> allocatedHeapBytes();

}  // namespace wsvisor::service
