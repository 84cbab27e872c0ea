#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

// A mutex, its scoped lock and a condition variable that Clang's thread-safety analysis
// understands (libstdc++'s std::mutex carries no annotations), and the annotation macros (with a
// WSV_ prefix: gRPC's headers define some of the plain names). `scripts/check-thread-safety`
// builds the service with clang -Wthread-safety -Werror: a member marked WSV_GUARDED_BY(mu_)
// read or written without mu_ held, a function marked WSV_REQUIRES(mu_) called without it, or
// locks taken against a declared WSV_ACQUIRED_BEFORE order fail that build. Other compilers see
// plain std::mutex code.
//
//   class Counter {
//    public:
//     void add() { MutexLock lock(mu_); ++count_; }
//    private:
//     void addUnderLock() WSV_REQUIRES(mu_) { ++count_; }
//     Mutex mu_;
//     int count_ WSV_GUARDED_BY(mu_) = 0;
//   };
//
// Waiting: write the condition as a loop in the function that holds the lock, so that the
// analysis sees the guarded reads under it:
//   MutexLock lock(mu_);
//   while (!ready_) changed_.wait(lock);

#if defined(__clang__)
#define WSV_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define WSV_THREAD_ANNOTATION(x)
#endif

#define WSV_CAPABILITY(x) WSV_THREAD_ANNOTATION(capability(x))
#define WSV_SCOPED_CAPABILITY WSV_THREAD_ANNOTATION(scoped_lockable)
#define WSV_GUARDED_BY(x) WSV_THREAD_ANNOTATION(guarded_by(x))
#define WSV_PT_GUARDED_BY(x) WSV_THREAD_ANNOTATION(pt_guarded_by(x))
#define WSV_ACQUIRED_BEFORE(...) WSV_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define WSV_ACQUIRED_AFTER(...) WSV_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define WSV_REQUIRES(...) WSV_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define WSV_ACQUIRE(...) WSV_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define WSV_RELEASE(...) WSV_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define WSV_TRY_ACQUIRE(...) WSV_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define WSV_EXCLUDES(...) WSV_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define WSV_ASSERT_CAPABILITY(x) WSV_THREAD_ANNOTATION(assert_capability(x))
#define WSV_RETURN_CAPABILITY(x) WSV_THREAD_ANNOTATION(lock_returned(x))
#define WSV_NO_THREAD_SAFETY_ANALYSIS WSV_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace wsvisor {

class WSV_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() WSV_ACQUIRE() { mu_.lock(); }
  void unlock() WSV_RELEASE() { mu_.unlock(); }
  // Tells the analysis that the caller holds this mutex where it cannot see it (a callback that
  // is documented to run under it). Checks nothing at run time.
  void assertHeld() const WSV_ASSERT_CAPABILITY(this) {}

 private:
  friend class MutexLock;
  std::mutex mu_;
};

// Holds a Mutex for its scope (std::lock_guard), and is what CondVar waits with.
class WSV_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) WSV_ACQUIRE(mu) : lock_(mu.mu_) {}
  ~MutexLock() WSV_RELEASE() {}
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  friend class CondVar;
  std::unique_lock<std::mutex> lock_;
};

// std::condition_variable for a MutexLock. Every wait may wake spuriously: wait in a loop that
// tests the condition (see the top of this file).
class CondVar {
 public:
  void notifyOne() { cv_.notify_one(); }
  void notifyAll() { cv_.notify_all(); }
  void wait(MutexLock& lock) { cv_.wait(lock.lock_); }
  // False when `deadline` has passed.
  template <typename Clock, typename Duration>
  bool waitUntil(MutexLock& lock, const std::chrono::time_point<Clock, Duration>& deadline) {
    return cv_.wait_until(lock.lock_, deadline) == std::cv_status::no_timeout;
  }

 private:
  std::condition_variable cv_;
};

}  // namespace wsvisor
