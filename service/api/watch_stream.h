#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <set>

#include "service/api/watch_limits.h"
#include "service/api/watch_pump.h"
#include "supervisor/health_bus.h"
#include "supervisor/mutex.h"
#include "wsvisor/v1/supervisor.grpc.pb.h"

namespace wsvisor::service {

class WatchStream;

// The open WatchHealth streams, so that shutdown can end each with a final status, and so that at
// most `max_streams` are open at once.
class WatchStreamSet {
 public:
  explicit WatchStreamSet(size_t max_streams = WatchLimits::kDefaultMaxStreams)
      : max_streams_(max_streams) {}
  ~WatchStreamSet();

  // Reserves a place for a stream about to be created, whose constructor add()s itself into it;
  // false when `max_streams` are open or reserved already.
  bool reserve();
  // Takes a place reserve() granted.
  void add(WatchStream* stream);
  void remove(WatchStream* stream);
  // Ends every open stream with `status`; streams opened later are refused by the caller.
  void finishAll(const grpc::Status& status);
  size_t size() const;
  size_t maxStreams() const { return max_streams_; }

 private:
  const size_t max_streams_;
  mutable Mutex mu_;
  std::set<WatchStream*> streams_ WSV_GUARDED_BY(mu_);
  size_t reserved_ WSV_GUARDED_BY(mu_) = 0;
};

// One WatchHealth call. Owns itself: created by the service, deleted in OnDone().
//
// Feeding: the bus appends each change to its change log once, and wakes a subscription that
// had caught up from the publishing thread; the wake only posts the stream to the WatchPump
// (once, however many events arrive meanwhile); the pump reads the next event at the
// subscription's position, turns it into a message and starts the write. At most one write is in
// flight, and OnWriteDone() pulls the next event. No thread blocks and none is spawned per
// stream. A watcher that reads slowly is coalesced when it falls behind (see WatchCursor) and
// never slows the bus; a watcher that reads nothing costs a publish nothing. When even the
// coalesced state it would have to be sent exceeds `stream_bytes`, the stream ends with
// RESOURCE_EXHAUSTED, naming the budget and its flag, after the write in flight (if any)
// completes.
//
// A wake while a write is in flight posts nothing: OnWriteDone() pulls the next event. So a
// watcher that reads nothing costs the pump nothing per event, however many are published.
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
  // The stream takes the place `streams.reserve()` granted. `on_exhausted` runs (once, under the
  // stream's lock; it must not call back into the stream) when the stream is ended because it
  // fell too far behind (see WatchCursor), with the reason.
  WatchStream(HealthBus& bus, WatchStreamSet& streams, WatchPump& pump, WatchFilter filter,
              uint64_t since_revision, size_t stream_bytes,
              std::function<void(WatchExhaustion::Why)> on_exhausted);

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
    // Mirrors write_in_flight for wake(), which does not lock: a wake that sees a write in flight
    // needs no post. Set before StartWrite() and cleared by OnWriteDone() before it pulls the
    // next event, both under `mu`. The bus logs an event (under its lock) before it wakes, and
    // OnWriteDone() pulls (under that lock) after clearing this: either the wake sees the flag
    // cleared and posts, or the pull finds the event.
    std::atomic<bool> writing{false};
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

  // RESOURCE_EXHAUSTED for a watcher that fell too far behind.
  grpc::Status exhaustedStatus(const WatchExhaustion& exhaustion) const;

  HealthBus& bus_;
  WatchStreamSet& streams_;
  const size_t stream_bytes_;
  const std::function<void(WatchExhaustion::Why)> on_exhausted_;
  std::shared_ptr<Shared> shared_;
  std::shared_ptr<WatchSubscription> subscription_;
};

}  // namespace wsvisor::service
