#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <set>

#include "service/api/watch_pump.h"
#include "supervisor/health_bus.h"
#include "supervisor/mutex.h"
#include "wsvisor/v1/supervisor.grpc.pb.h"

namespace wsvisor::service {

class WatchStream;

// The open WatchHealth streams, so that shutdown can end each with a final status.
class WatchStreamSet {
 public:
  ~WatchStreamSet();

  void add(WatchStream* stream);
  void remove(WatchStream* stream);
  // Ends every open stream with `status`; streams opened later are refused by the caller.
  void finishAll(const grpc::Status& status);
  size_t size() const;

 private:
  mutable Mutex mu_;
  std::set<WatchStream*> streams_ WSV_GUARDED_BY(mu_);
};

// One WatchHealth call. Owns itself: created by the service, deleted in OnDone().
//
// Feeding: the bus pushes events into the subscription's bounded queue and calls wake() from the
// publishing thread, which only posts the stream to the WatchPump (once, however many events
// arrive meanwhile); the pump turns the next event into a message and starts the write. At most
// one write is in flight, and OnWriteDone() pulls the next event. No thread blocks and none is
// spawned per stream. A watcher that reads slowly is coalesced by its queue (see WatchQueue) and
// never slows the bus.
//
// Locking: `shared_->mu` guards the write state and the pointer back to the reactor. StartWrite()
// and Finish() are called under it; gRPC never runs OnWriteDone() inline from StartWrite(), so
// this cannot deadlock. The wake callback holds only `shared_`, which outlives the reactor, so a
// publish racing with OnDone() finds `reactor == nullptr` and does nothing.
class WatchStream : public grpc::ServerWriteReactor<v1::HealthEvent> {
 public:
  // Live events queued per watcher before coalescing starts.
  static constexpr size_t kLiveQueueCapacity = 1024;

  // `since_revision` 0 starts with a snapshot; otherwise the stream resumes after that revision
  // (HealthBus::resume) or, when the bus refuses, ends at once with OUT_OF_RANGE.
  WatchStream(HealthBus& bus, WatchStreamSet& streams, WatchPump& pump, WatchFilter filter,
              uint64_t since_revision = 0);

  // Ends the stream with `status` as soon as the write in flight (if any) completes.
  void finish(const grpc::Status& status);

  // grpc::ServerWriteReactor
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  struct Shared {
    explicit Shared(WatchPump& p) : pump(p) {}
    WatchPump& pump;
    // Set while a wake is posted to the pump and has not started: later wakes need not post.
    std::atomic<bool> wake_posted{false};
    Mutex mu;
    WatchStream* reactor WSV_GUARDED_BY(mu) = nullptr;  // null once OnDone() has run
    bool write_in_flight WSV_GUARDED_BY(mu) = false;
    bool finished WSV_GUARDED_BY(mu) = false;
    std::optional<grpc::Status> pending_finish WSV_GUARDED_BY(mu);
    // The event being written; stable until OnWriteDone().
    v1::HealthEvent message WSV_GUARDED_BY(mu);
  };

  // Starts the next write if none is in flight and an event is waiting.
  void writeNextUnderStreamLock() WSV_REQUIRES(shared_->mu);
  static void wake(const std::shared_ptr<Shared>& shared);

  HealthBus& bus_;
  WatchStreamSet& streams_;
  std::shared_ptr<Shared> shared_;
  std::shared_ptr<WatchSubscription> subscription_;
};

}  // namespace wsvisor::service
