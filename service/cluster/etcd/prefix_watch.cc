#include "service/cluster/etcd/prefix_watch.h"

#include <algorithm>

namespace wsvisor::service::etcd {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{2000};

}  // namespace

PrefixWatch::PrefixWatch(EtcdClient& client, std::string prefix, int64_t start_revision,
                         Callbacks callbacks)
    : client_(client),
      prefix_(std::move(prefix)),
      callbacks_(std::move(callbacks)),
      next_revision_(std::max<int64_t>(1, start_revision)),
      thread_([this] { run(); }) {}

PrefixWatch::~PrefixWatch() { stop(); }

void PrefixWatch::stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
    // Read() on the stream returns false at once; the thread then finishes it.
    if (stream_ != nullptr) stream_->TryCancel();
  }
  changed_.notifyAll();
  if (thread_.joinable()) thread_.join();
}

bool PrefixWatch::waitUntilCreated(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  MutexLock lock(mu_);
  while (!created_ && changed_.waitUntil(lock, deadline)) {
  }
  return created_;
}

int64_t PrefixWatch::nextRevision() const {
  MutexLock lock(mu_);
  return next_revision_;
}

int64_t PrefixWatch::resumptions() const {
  MutexLock lock(mu_);
  return resumptions_;
}

bool PrefixWatch::waitFor(std::chrono::milliseconds delay) {
  const auto deadline = std::chrono::steady_clock::now() + delay;
  MutexLock lock(mu_);
  while (!stopping_ && changed_.waitUntil(lock, deadline)) {
  }
  return !stopping_;
}

void PrefixWatch::run() {
  auto backoff = kFirstBackoff;
  // Ends on stop() or compaction; every turn that fails waits a backoff first.
  for (;;) {
    size_t index = 0;
    // Short, so that stop() never waits long for this thread; the loop tries again.
    if (auto error =
            client_.connectedMember(Clock::now() + client_.options().connect_timeout, index)) {
      if (callbacks_.on_interrupted)
        callbacks_.on_interrupted("watch of " + prefix_ + ": " + error->message);
    } else {
      const auto opened = Clock::now();
      if (!watchOn(index)) return;
      // A stream that lived a while was a good one: start the backoff again.
      if (Clock::now() - opened > kMaxBackoff) backoff = kFirstBackoff;
      client_.channels().markFailed(index);
    }
    {
      MutexLock lock(mu_);
      ++resumptions_;
      created_ = false;
    }
    if (!waitFor(backoff)) return;
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

bool PrefixWatch::watchOn(size_t index) {
  const EtcdChannels::Member& member = client_.channels().member(index);
  grpc::ClientContext context;
  // etcd ends the stream with "no leader" when this member loses its leader.
  context.AddMetadata("hasleader", "true");
  int64_t from = 0;
  {
    MutexLock lock(mu_);
    if (stopping_) return false;
    stream_ = &context;
    from = next_revision_;
  }
  auto stream = member.watch->Watch(&context);
  etcdserverpb::WatchRequest request;
  auto* create = request.mutable_create_request();
  create->set_key(prefix_);
  create->set_range_end(prefixRangeEnd(prefix_));
  create->set_start_revision(from);
  // Quiet prefixes still move the resume revision forward, so a resume after a long quiet spell
  // does not start from history etcd may have compacted.
  create->set_progress_notify(true);

  std::string problem;
  bool compacted = false;
  int64_t compact_revision = 0;
  etcdserverpb::WatchResponse response;
  bool open = stream->Write(request);
  // Ends when the stream fails or is cancelled (stop()), or on compaction or cancellation.
  while (open && stream->Read(&response)) {
    if (response.compact_revision() > 0) {
      compacted = true;
      compact_revision = response.compact_revision();
      break;
    }
    if (response.canceled()) {
      problem = "etcd cancelled the watch: " + response.cancel_reason();
      break;
    }
    if (response.created()) {
      {
        MutexLock lock(mu_);
        created_ = true;
      }
      changed_.notifyAll();
      continue;
    }
    if (response.events_size() == 0) {
      // A progress notification: every change up to header.revision has been delivered.
      MutexLock lock(mu_);
      next_revision_ = std::max(next_revision_, response.header().revision() + 1);
      continue;
    }
    std::vector<EtcdEvent> events;
    events.reserve(static_cast<size_t>(response.events_size()));
    for (const auto& event : response.events()) {
      events.push_back(
          {event.type() == mvccpb::Event::DELETE ? EtcdEvent::Type::kDelete : EtcdEvent::Type::kPut,
           fromProto(event.kv())});
    }
    const int64_t last = events.back().kv.mod_revision;
    {
      MutexLock lock(mu_);
      next_revision_ = last + 1;
    }
    if (callbacks_.on_events) callbacks_.on_events(events, last);
  }
  // Leaving early leaves the stream open: cancel it, or Finish() would wait for the server.
  context.TryCancel();
  const grpc::Status status = stream->Finish();
  bool stopping = false;
  {
    MutexLock lock(mu_);
    stream_ = nullptr;
    stopping = stopping_;
  }
  if (compacted) {
    if (callbacks_.on_compacted) callbacks_.on_compacted(compact_revision);
    return false;
  }
  if (stopping) return false;
  if (problem.empty()) {
    problem = statusCodeName(status.error_code()) + ": " + status.error_message();
  }
  if (callbacks_.on_interrupted) {
    callbacks_.on_interrupted("watch of " + prefix_ + " on " + member.address + " ended (" +
                              problem + "); resuming from revision " +
                              std::to_string(nextRevision()));
  }
  return true;
}

}  // namespace wsvisor::service::etcd
