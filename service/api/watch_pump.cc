#include "service/api/watch_pump.h"

#include <pthread.h>

#include <utility>

namespace wsvisor::service {

WatchPump::WatchPump() : thread_([this] { run(); }) {
  pthread_setname_np(thread_.native_handle(), "watch-pump");
}

WatchPump::~WatchPump() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  ready_.notifyOne();
  thread_.join();
}

void WatchPump::post(std::function<void()> task) {
  bool was_empty = false;
  {
    MutexLock lock(mu_);
    was_empty = tasks_.empty();
    tasks_.push_back(std::move(task));
  }
  // The thread waits only while there is no task, so only the first of a burst needs to wake it:
  // a publish that wakes 2,000 streams makes one futex call, not 2,000.
  if (was_empty) ready_.notifyOne();
}

void WatchPump::run() {
  for (;;) {
    std::function<void()> task;
    {
      MutexLock lock(mu_);
      while (!stopping_ && tasks_.empty()) ready_.wait(lock);
      if (stopping_) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace wsvisor::service
