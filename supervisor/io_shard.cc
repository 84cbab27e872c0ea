#include "supervisor/io_shard.h"

#include <asio/post.hpp>
#include <utility>

#include "supervisor/log.h"

namespace wsvisor {

IoShard::IoShard(size_t index, HealthBus& bus, Metrics& metrics)
    : index_(index),
      work_(asio::make_work_guard(io_)),
      jitter_(std::random_device{}() ^ (static_cast<uint64_t>(index) << 32)),
      transport_(io_,
                 [this](uint64_t key, uint64_t attempt, const ConnectionRef& ref,
                        const core::SessionEvent& event) { dispatch(key, attempt, ref, event); }),
      shutdown_timer_(io_),
      timers_(io_,
              [this](uint64_t key, core::MonoTime deadline) {
                timerFired(key, deadline);  // an endpoint's or a probe's
              }),
      context_{io_, transport_, bus, metrics, metrics.addShardCounters(), jitter_, timers_},
      thread_([this] {
        try {
          io_.run();
        } catch (const std::exception& e) {
          // websocketpp reports some internal errors by throwing; an io thread that dies silently
          // would freeze every endpoint on it.
          WSV_LOG(kError) << "io thread " << index_ << " stopped: " << e.what();
          std::abort();
        }
      }) {}

IoShard::~IoShard() {
  if (thread_.joinable()) shutdown(std::chrono::milliseconds(0));
}

void IoShard::add(uint64_t key, uint64_t incarnation,
                  std::shared_ptr<const core::EndpointSpec> spec, std::shared_ptr<LiveStats> live,
                  core::Duration first_attempt_after) {
  asio::post(io_, [this, key, incarnation, spec = std::move(spec), live = std::move(live),
                   first_attempt_after] {
    auto endpoint = std::make_unique<SupervisedEndpoint>(key, incarnation, spec, live, context_);
    SupervisedEndpoint& ref = *endpoint;
    endpoints_[key] = std::move(endpoint);
    ref.start(first_attempt_after);
  });
}

void IoShard::update(uint64_t key, std::shared_ptr<const core::EndpointSpec> spec) {
  asio::post(io_, [this, key, spec = std::move(spec)] {
    auto it = endpoints_.find(key);
    if (it != endpoints_.end()) it->second->updateSpec(spec);
  });
}

void IoShard::remove(uint64_t key, std::function<void()> stopped) {
  asio::post(io_, [this, key, stopped = std::move(stopped)] {
    auto it = endpoints_.find(key);
    if (it != endpoints_.end()) {
      it->second->stop(/*shutting_down=*/false);
      endpoints_.erase(it);
    }
    if (stopped) stopped();
  });
}

void IoShard::failConnectAttemptForTest(uint64_t key, core::Failure failure) {
  asio::post(io_, [this, key, failure = std::move(failure)] {
    auto it = endpoints_.find(key);
    if (it != endpoints_.end()) it->second->handleForTest(core::event::ConnectFailed{failure});
  });
}

void IoShard::runForTest(std::function<void()> work) { asio::post(io_, std::move(work)); }

template <typename Call>
bool IoShard::withProbe(uint64_t key, Call&& call) {
  auto it = probes_.find(key);
  if (it == probes_.end()) return false;
  ProbeRun& run = *it->second;
  const bool was_finished = run.finished();
  call(run);
  // Destroyed on the next loop turn, not here: the transport may call back into the probe from
  // inside one of its calls (an immediate connect failure), so this may be a nested call.
  if (!was_finished && run.finished()) {
    asio::post(io_, [this, key] { probes_.erase(key); });
  }
  return true;
}

uint64_t IoShard::startProbe(std::shared_ptr<const core::EndpointSpec> spec, uint32_t heartbeats,
                             ProbeRun::Done done) {
  const uint64_t key = kProbeKeyBit | ++next_probe_;
  asio::post(io_, [this, key, spec = std::move(spec), heartbeats, done = std::move(done)] {
    auto probe = std::make_unique<ProbeRun>(key, spec, heartbeats, done, context_);
    probes_[key] = std::move(probe);
    withProbe(key, [](ProbeRun& run) { run.start(); });
  });
  return key;
}

void IoShard::cancelProbe(uint64_t key) {
  asio::post(io_, [this, key] {
    withProbe(key, [](ProbeRun& run) { run.cancel(/*shutting_down=*/false); });
  });
}

void IoShard::timerFired(uint64_t key, core::MonoTime deadline) {
  if (isProbeKey(key)) {
    withProbe(key, [deadline](ProbeRun& run) { run.onTimer(deadline); });
    return;
  }
  auto it = endpoints_.find(key);
  if (it != endpoints_.end()) it->second->onTimer(deadline);
}

void IoShard::dispatch(uint64_t key, uint64_t attempt, const ConnectionRef& ref,
                       const core::SessionEvent& event) {
  if (isProbeKey(key)) {
    const bool found =
        withProbe(key, [&](ProbeRun& run) { run.onTransportEvent(attempt, ref, event); });
    if (!found && std::holds_alternative<core::event::Connected>(event)) {
      transport_.close(ref, core::kCloseNormal, "probe ended");
    }
    return;
  }
  auto it = endpoints_.find(key);
  if (it != endpoints_.end()) {
    it->second->onTransportEvent(attempt, ref, event);
  } else if (std::holds_alternative<core::event::Connected>(event)) {
    transport_.close(ref, core::kCloseNormal, "endpoint unregistered");
  }
}

void IoShard::awaitConnectionsClosed(std::chrono::steady_clock::time_point deadline,
                                     std::promise<size_t>* finished) {
  // Polls on the io thread, without blocking it, so that websocketpp can finish the closing
  // handshakes meanwhile.
  if (transport_.liveConnections() == 0 || std::chrono::steady_clock::now() >= deadline) {
    finished->set_value(transport_.liveConnections());
    return;
  }
  shutdown_timer_.expires_after(std::chrono::milliseconds(5));
  shutdown_timer_.async_wait([this, deadline, finished](const std::error_code&) {
    awaitConnectionsClosed(deadline, finished);
  });
}

size_t IoShard::shutdown(std::chrono::milliseconds grace) {
  if (!thread_.joinable()) return 0;
  std::promise<size_t> finished;
  auto result = finished.get_future();
  asio::post(io_, [this, grace, &finished] {
    for (auto& [key, endpoint] : endpoints_) endpoint->stop(/*shutting_down=*/true);
    endpoints_.clear();
    for (auto& [key, probe] : probes_) probe->cancel(/*shutting_down=*/true);
    probes_.clear();
    awaitConnectionsClosed(std::chrono::steady_clock::now() + grace, &finished);
  });
  const size_t still_open = result.get();
  work_.reset();
  io_.stop();
  thread_.join();
  return still_open;
}

}  // namespace wsvisor
