#pragma once

#include <grpcpp/client_context.h>

#include <csignal>
#include <mutex>
#include <thread>

namespace wsvisor::ctl {

// Turns SIGINT and SIGTERM into cancellation of the one streaming call in flight, so that
// `watch` stops cleanly (flushed output, exit status 0) when the user presses Ctrl-C.
//
// Why a thread: a blocked ClientReader::Read() can only be ended by ClientContext::TryCancel(),
// which is not async-signal-safe, so it cannot be called from a signal handler. Instead the
// signals are blocked and one thread waits for them with sigwait() and cancels.
//
// Hazard: signal masks are inherited by threads when they are created. Construct this object
// before anything starts threads (in particular before the gRPC channel is created), or a
// thread that does not block the signals may receive them and be killed by the default action.
// A second signal while the first is being handled exits at once with status 130, for a user
// whose server does not answer the cancellation.
class StreamInterrupter {
 public:
  // Blocks SIGINT and SIGTERM in the calling thread and starts the waiting thread.
  StreamInterrupter();
  // Stops the waiting thread and restores the calling thread's signal mask.
  ~StreamInterrupter();
  StreamInterrupter(const StreamInterrupter&) = delete;
  StreamInterrupter& operator=(const StreamInterrupter&) = delete;

  // The call to cancel on interruption; cancelled at once if the interruption came first.
  // `context` must stay alive until detach().
  void attach(grpc::ClientContext* context);
  void detach();

  // True once SIGINT or SIGTERM arrived (or interruptForTest() was called).
  bool interrupted() const;

  // Acts as if a signal had arrived, without sending one.
  void interruptForTest() { interrupt(); }

 private:
  void waitForSignals();
  void interrupt();

  sigset_t signals_;
  sigset_t previous_mask_;

  mutable std::mutex mutex_;
  grpc::ClientContext* context_ = nullptr;  // guarded by mutex_
  bool interrupted_ = false;                // guarded by mutex_
  bool stopping_ = false;                   // guarded by mutex_

  std::thread waiter_;  // last: started after the fields above are ready
};

}  // namespace wsvisor::ctl
