#include "service/allocator_settings.h"

#include <cstddef>
#include <cstdlib>

#if WSVISOR_TCMALLOC
#include <gperftools/malloc_extension.h>
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

}  // namespace wsvisor::service
