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
  {
    MutexLock lock(mu_);
    tasks_.push_back(std::move(task));
  }
  ready_.notifyOne();
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
