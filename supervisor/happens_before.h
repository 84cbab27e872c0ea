#pragma once

// Declares to ThreadSanitizer an ordering that a library guarantees but that the sanitizer cannot
// observe, because the library was not compiled with -fsanitize=thread (Debian's gRPC). Each use
// names the guarantee it relies on; outside ThreadSanitizer builds both calls compile to nothing.
//
//   thread A: ...; annotateHappensBefore(token);
//   thread B: annotateHappensAfter(token); ...
//
// orders everything A did before the first call before everything B does after the second, as if
// A had released and B had then acquired a lock. Declaring an ordering that does not exist hides
// real races: use only where the library documents it.

#if defined(__SANITIZE_THREAD__)
#define WSVISOR_THREAD_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WSVISOR_THREAD_SANITIZER 1
#endif
#endif

#ifdef WSVISOR_THREAD_SANITIZER
#include <sanitizer/tsan_interface.h>
#endif

namespace wsvisor {

inline void annotateHappensBefore([[maybe_unused]] const void* token) {
#ifdef WSVISOR_THREAD_SANITIZER
  __tsan_release(const_cast<void*>(token));
#endif
}

inline void annotateHappensAfter([[maybe_unused]] const void* token) {
#ifdef WSVISOR_THREAD_SANITIZER
  __tsan_acquire(const_cast<void*>(token));
#endif
}

}  // namespace wsvisor
