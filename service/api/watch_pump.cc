#include "service/api/watch_pump.h"

#include <pthread.h>

#include <utility>

namespace wsvisor::service {

WatchPump::WatchPump() : thread_([this] { run(); }) {
  pthread_setname_np(thread_.native_handle(), "watch-pump");
}

WatchPump::~WatchPump() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  ready_.notify_one();
  thread_.join();
}

void WatchPump::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  ready_.notify_one();
}

void WatchPump::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    ready_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
    if (stopping_) return;
    std::function<void()> task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

}  // namespace wsvisor::service
