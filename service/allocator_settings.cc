#include "service/allocator_settings.h"

#include <cstddef>
#include <cstdlib>

#if WSVISOR_TCMALLOC
#include <gperftools/malloc_extension.h>
#endif

// Sanitizers that replace malloc count what they allocate themselves; glibc's statistics then see
// only glibc's own, nearly empty, arenas (ASan intercepts mallinfo() but not mallinfo2()).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WSVISOR_SANITIZER_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define WSVISOR_SANITIZER_MALLOC 1
#endif
#endif

#if !WSVISOR_TCMALLOC && !defined(WSVISOR_SANITIZER_MALLOC) && defined(__GLIBC__)
#if __GLIBC_PREREQ(2, 33)
#include <malloc.h>
#define WSVISOR_GLIBC_MALLINFO2 1
#endif
#endif

#if defined(WSVISOR_SANITIZER_MALLOC)
// sanitizer/allocator_interface.h, which GCC does not install; the runtimes export it.
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

namespace wsvisor::service {

#if WSVISOR_TCMALLOC
namespace {

// tcmalloc's per-thread caches may hold 32 MiB in all by default. Memory one thread frees (a gRPC
// worker's request, an io thread's connection) waits in that thread's cache for reuse, and under
// registration churn the caches grow towards the limit: wsvisor's RSS rose by ~6 MB in ten
// minutes of bench/soak at 3,000 endpoints. 4 MiB bounds that and cost no measurable CPU per
// heartbeat at 19,000 endpoints (bench/README.md). TCMALLOC_MAX_TOTAL_THREAD_CACHE_BYTES in the
// environment still wins.
constexpr size_t kThreadCacheBytes = size_t{4} << 20;
constexpr const char* kThreadCacheProperty = "tcmalloc.max_total_thread_cache_bytes";

}  // namespace
#endif

std::string applyAllocatorSettings() {
#if WSVISOR_TCMALLOC
  MallocExtension* tcmalloc = MallocExtension::instance();
  if (std::getenv("TCMALLOC_MAX_TOTAL_THREAD_CACHE_BYTES") == nullptr) {
    tcmalloc->SetNumericProperty(kThreadCacheProperty, kThreadCacheBytes);
  }
  size_t bytes = 0;
  tcmalloc->GetNumericProperty(kThreadCacheProperty, &bytes);
  return "tcmalloc, thread caches up to " + std::to_string(bytes >> 10) + " KiB in all";
#else
  return "the system's malloc";
#endif
}

std::optional<uint64_t> allocatedHeapBytes() {
#if WSVISOR_TCMALLOC
  // Bytes handed out in tcmalloc's size classes and large spans (a request is rounded up to its
  // class); its thread, transfer and central caches, free pages and metadata are not in it.
  size_t bytes = 0;
  if (!MallocExtension::instance()->GetNumericProperty("generic.current_allocated_bytes", &bytes)) {
    return std::nullopt;
  }
  return bytes;
#elif defined(WSVISOR_SANITIZER_MALLOC)
  return __sanitizer_get_current_allocated_bytes();
#elif defined(WSVISOR_GLIBC_MALLINFO2)
  // Chunks in use in every arena, with their headers (uordblks), plus chunks served by mmap
  // (hblkhd). uordblks also counts the freed chunks that glibc's per-thread caches hold for reuse:
  // at most 7 of each size up to 1,032 bytes, ~230 KiB per thread, usually far less. Walks every
  // arena under its lock.
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
#else
  return std::nullopt;
#endif
}

}  // namespace wsvisor::service
