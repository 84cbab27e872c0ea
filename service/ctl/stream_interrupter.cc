#include "service/ctl/stream_interrupter.h"

#include <pthread.h>

#include <cstdlib>

namespace wsvisor::ctl {

namespace {

// The shell's convention for "ended by SIGINT".
constexpr int kExitStatusInterrupted = 130;

}  // namespace

StreamInterrupter::StreamInterrupter() {
  sigemptyset(&signals_);
  sigaddset(&signals_, SIGINT);
  sigaddset(&signals_, SIGTERM);
  // Before the thread starts, so that it inherits the mask: sigwait() needs the signals blocked.
  pthread_sigmask(SIG_BLOCK, &signals_, &previous_mask_);
  waiter_ = std::thread([this] { waitForSignals(); });
}

StreamInterrupter::~StreamInterrupter() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    context_ = nullptr;
  }
  // A thread-directed SIGTERM wakes the waiter, which sees stopping_ and returns; the signal is
  // consumed by its sigwait() and reaches nothing else.
  pthread_kill(waiter_.native_handle(), SIGTERM);
  waiter_.join();
  pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
}

void StreamInterrupter::attach(grpc::ClientContext* context) {
  std::lock_guard<std::mutex> lock(mutex_);
  context_ = context;
  if (interrupted_) context_->TryCancel();
}

void StreamInterrupter::detach() {
  std::lock_guard<std::mutex> lock(mutex_);
  context_ = nullptr;
}

bool StreamInterrupter::interrupted() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return interrupted_;
}

void StreamInterrupter::waitForSignals() {
  for (;;) {
    int received = 0;
    if (sigwait(&signals_, &received) != 0) continue;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      if (interrupted_) std::_Exit(kExitStatusInterrupted);
    }
    interrupt();
  }
}

void StreamInterrupter::interrupt() {
  std::lock_guard<std::mutex> lock(mutex_);
  interrupted_ = true;
  if (context_ != nullptr) context_->TryCancel();
}

}  // namespace wsvisor::ctl
