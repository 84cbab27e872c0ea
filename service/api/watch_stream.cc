#include "service/api/watch_stream.h"

#include <cstdio>
#include <string>

#include "service/api/proto_conversions.h"
#include "supervisor/happens_before.h"
#include "supervisor/log.h"

namespace wsvisor::service {

WatchStreamSet::~WatchStreamSet() {
  // The service that owns this set is destroyed only after Server::Shutdown() has returned, and
  // gRPC returns from it only once every reactor's OnDone() has run (each call's CallbackRequest
  // holds a reference on the server that Shutdown() waits for). ThreadSanitizer cannot see that
  // wait inside gRPC; OnDone() declares its side after its last remove().
  annotateHappensAfter(this);
}

bool WatchStreamSet::reserve() {
  MutexLock lock(mu_);
  if (streams_.size() + reserved_ >= max_streams_) return false;
  ++reserved_;
  return true;
}

void WatchStreamSet::add(WatchStream* stream) {
  MutexLock lock(mu_);
  if (reserved_ > 0) --reserved_;
  streams_.insert(stream);
}

void WatchStreamSet::remove(WatchStream* stream) {
  MutexLock lock(mu_);
  streams_.erase(stream);
}

void WatchStreamSet::finishAll(const grpc::Status& status) {
  MutexLock lock(mu_);
  for (WatchStream* stream : streams_) stream->finish(status);
}

size_t WatchStreamSet::size() const {
  MutexLock lock(mu_);
  return streams_.size();
}

WatchStream::WatchStream(HealthBus& bus, WatchStreamSet& streams, WatchPump& pump,
                         WatchFilter filter, uint64_t since_revision, size_t stream_bytes,
                         std::function<void(WatchExhaustion::Why)> on_exhausted)
    : bus_(bus),
      streams_(streams),
      stream_bytes_(stream_bytes),
      on_exhausted_(std::move(on_exhausted)),
      shared_(std::make_shared<Shared>(pump)) {
  shared_->reactor = this;
  streams_.add(this);
  // subscribe() and resume() queue the first events and call wake() once, which starts the
  // first write.
  std::weak_ptr<Shared> weak = shared_;
  auto wake_this = [weak] {
    if (auto shared = weak.lock()) wake(shared);
  };
  std::shared_ptr<WatchSubscription> subscription;
  std::optional<ResumeRefused> refused;
  if (since_revision == 0) {
    subscription =
        bus_.subscribe(std::move(filter), kLiveQueueCapacity, std::move(wake_this), stream_bytes_);
  } else {
    auto resumed = bus_.resume(std::move(filter), since_revision, kLiveQueueCapacity,
                               std::move(wake_this), stream_bytes_);
    if (auto* ok = std::get_if<std::shared_ptr<WatchSubscription>>(&resumed)) {
      subscription = std::move(*ok);
    } else {
      refused = std::get<ResumeRefused>(std::move(resumed));
    }
  }
  {
    MutexLock lock(shared_->mu);
    if (refused) {
      // Nothing was subscribed; OnDone() unsubscribes a null subscription, which is a no-op.
      shared_->finished = true;
      Finish(grpc::Status(grpc::StatusCode::OUT_OF_RANGE, refused->message));
    } else {
      // Wakes that ran before the assignment found no subscription to read; start the first
      // write.
      subscription_ = std::move(subscription);
      writeNextUnderStreamLock();
    }
  }
  // gRPC calls OnWriteDone(), OnCancel() and OnDone() only after WatchHealth() has returned this
  // reactor (ServerCallbackWriterImpl::SetupReactor). ThreadSanitizer cannot see that ordering
  // inside gRPC; each of them declares its side first. (OnDone() after the other reactions needs
  // no declaration: each of them takes shared_->mu, and so does OnDone() before anything else.)
  annotateHappensBefore(this);
}

void WatchStream::wake(const std::shared_ptr<Shared>& shared) {
  // OnWriteDone() pulls the next event; see Shared::writing.
  if (shared->writing.load()) return;
  if (shared->wake_posted.exchange(true)) return;
  shared->pump.post([shared] {
    // Cleared first: an event queued from here on posts again, so none is left waiting.
    shared->wake_posted.store(false);
    MutexLock lock(shared->mu);
    WatchStream* reactor = shared->reactor;
    if (reactor == nullptr) return;
    reactor->shared_->mu.assertHeld();  // the reactor's shared_ is `shared`
    reactor->writeNextUnderStreamLock();
  });
}

void WatchStream::writeNextUnderStreamLock() {
  if (shared_->write_in_flight || shared_->finished || !subscription_) return;
  if (shared_->pending_finish) {
    shared_->finished = true;
    Finish(*shared_->pending_finish);
    return;
  }
  std::optional<core::HealthEvent> event = subscription_->next();
  if (!event) {
    // An exhausted subscription sends nothing more, so the stream ends here.
    if (auto exhaustion = subscription_->exhaustion()) {
      shared_->finished = true;
      if (on_exhausted_) on_exhausted_(exhaustion->why);
      grpc::Status status = exhaustedStatus(*exhaustion);
      WSV_LOG(kWarning) << "WatchHealth stream ended with RESOURCE_EXHAUSTED: "
                        << status.error_message();
      Finish(std::move(status));
    }
    return;
  }
  shared_->message.Clear();
  healthEventToProto(*event, &shared_->message);
  shared_->write_in_flight = true;
  shared_->writing.store(true);
  StartWrite(&shared_->message);
}

namespace {

// "256 KiB" below 10 MiB, "16.0 MiB" from there.
std::string sizeText(size_t bytes) {
  char text[32];
  if (bytes < (size_t{10} << 20)) {
    std::snprintf(text, sizeof text, "%zu KiB", (bytes + 512) / 1024);
  } else {
    std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  }
  return text;
}

}  // namespace

grpc::Status WatchStream::exhaustedStatus(const WatchExhaustion& exhaustion) const {
  if (exhaustion.why == WatchExhaustion::Why::kTooFarBehind) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "this watch fell too far behind: endpoints were unregistered since the "
                        "last event it read, more than wsvisor keeps for a watcher that reads "
                        "nothing; read faster or watch fewer endpoints (ids, label_selector), then "
                        "watch again");
  }
  return grpc::Status(
      grpc::StatusCode::RESOURCE_EXHAUSTED,
      "this watch fell too far behind: even with only the latest state per endpoint, its " +
          std::to_string(exhaustion.events) + " queued events need " + sizeText(exhaustion.bytes) +
          ", more than the per-stream budget of " + sizeText(stream_bytes_) + " (" +
          std::to_string(stream_bytes_) +
          " bytes, --watch-stream-bytes); read faster, watch fewer endpoints (ids, "
          "label_selector) or raise --watch-stream-bytes, then watch again");
}

void WatchStream::finish(const grpc::Status& status) {
  MutexLock lock(shared_->mu);
  if (shared_->finished) return;
  shared_->pending_finish = status;
  writeNextUnderStreamLock();
}

void WatchStream::OnWriteDone(bool ok) {
  annotateHappensAfter(this);  // after the constructor; see there
  MutexLock lock(shared_->mu);
  shared_->write_in_flight = false;
  shared_->writing.store(false);
  if (!ok) {
    // The client went away; OnCancel() follows or the stream is already broken.
    if (!shared_->finished) {
      shared_->finished = true;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "watcher went away"));
    }
    return;
  }
  writeNextUnderStreamLock();
}

void WatchStream::OnCancel() {
  annotateHappensAfter(this);  // after the constructor; see there
  MutexLock lock(shared_->mu);
  if (shared_->finished) return;
  shared_->finished = true;
  Finish(grpc::Status::CANCELLED);
}

void WatchStream::OnDone() {
  annotateHappensAfter(this);  // after the constructor; see there
  {
    MutexLock lock(shared_->mu);
    shared_->reactor = nullptr;
  }
  bus_.unsubscribe(subscription_);
  streams_.remove(this);
  annotateHappensBefore(&streams_);  // before the set is destroyed; see ~WatchStreamSet()
  delete this;
}

}  // namespace wsvisor::service
