#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <random>
#include <thread>
#include <unordered_map>

#include "supervisor/core/endpoint_spec.h"
#include "supervisor/core/jitter_source.h"
#include "supervisor/health_bus.h"
#include "supervisor/live_stats.h"
#include "supervisor/metrics.h"
#include "supervisor/probe_run.h"
#include "supervisor/shard_context.h"
#include "supervisor/shard_timers.h"
#include "supervisor/supervised_endpoint.h"
#include "supervisor/websocket_transport.h"

namespace wsvisor {

// One io thread: an io_context run by exactly one thread, the websocketpp clients on it and the
// endpoints pinned to it. Other threads only post() to it; everything inside runs on that
// thread, so the heartbeat path takes no lock.
class IoShard {
 public:
  IoShard(size_t index, HealthBus& bus, Metrics& metrics);
  ~IoShard();
  IoShard(const IoShard&) = delete;
  IoShard& operator=(const IoShard&) = delete;

  // Starts supervising; the endpoint connects on the io thread.
  // `first_attempt_after` > 0 delays the first connection attempt (restart spreading).
  void add(uint64_t key, uint64_t incarnation, std::shared_ptr<const core::EndpointSpec> spec,
           std::shared_ptr<LiveStats> live, core::Duration first_attempt_after);
  // Applies a spec whose connection-defining fields are unchanged to the live session.
  void update(uint64_t key, std::shared_ptr<const core::EndpointSpec> spec);
  // Stops supervising: the connection is closed with 1000 and the endpoint destroyed. `stopped`,
  // if set, is called on the io thread once the session is stopped and its close sent (also when
  // `key` is unknown); never if the shard has shut down first.
  void remove(uint64_t key, std::function<void()> stopped = nullptr);
  // Runs one probe of `spec` (defaults applied) on the io thread. `done` is called exactly once,
  // on the io thread: when the probe ends, is cancelled, or the shard shuts down. Returns the key
  // to cancel it with; probe keys never collide with endpoint keys. Not after shutdown() has
  // begun: the probe would never run and `done` never be called (the registry sees to it).
  uint64_t startProbe(std::shared_ptr<const core::EndpointSpec> spec, uint32_t heartbeats,
                      ProbeRun::Done done);
  // Ends the probe if it still runs (its `done` reports kCancelled); no-op otherwise.
  void cancelProbe(uint64_t key);
  // Closes every connection with 1001 (going away), ends every probe (kShutDown), and waits until
  // websocketpp has finished the connections or `grace` has passed; then stops the thread.
  // Returns the connections still open.
  size_t shutdown(std::chrono::milliseconds grace);

  // Queues a ConnectFailed event with `failure` for the endpoint with `key`, handled as if its
  // connection attempt had reported it (SupervisedEndpoint::handleForTest).
  void failConnectAttemptForTest(uint64_t key, core::Failure failure);
  // Queues `work` on the io thread.
  void runForTest(std::function<void()> work);

  // Endpoints assigned to this shard (maintained by the registry, read for placement).
  std::atomic<size_t>& assigned() { return assigned_; }

 private:
  class Jitter : public core::JitterSource {
   public:
    explicit Jitter(uint64_t seed) : rng_(seed) {}
    double nextSigned() override { return dist_(rng_); }

   private:
    std::mt19937_64 rng_;
    std::uniform_real_distribution<double> dist_{-1.0, 1.0};
  };

  void awaitConnectionsClosed(std::chrono::steady_clock::time_point deadline,
                              std::promise<size_t>* finished);
  void dispatch(uint64_t key, uint64_t attempt, const ConnectionRef& ref,
                const core::SessionEvent& event);
  void timerFired(uint64_t key, core::MonoTime deadline);
  // Runs `call` on the probe with `key`, if it exists (false if not), and destroys the probe
  // once finished.
  template <typename Call>
  bool withProbe(uint64_t key, Call&& call);

  // Endpoint keys come from the registry and count up from 1; probe keys carry this bit.
  static constexpr uint64_t kProbeKeyBit = uint64_t{1} << 63;
  static bool isProbeKey(uint64_t key) { return (key & kProbeKeyBit) != 0; }

  const size_t index_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  Jitter jitter_;
  WebSocketTransport transport_;
  asio::steady_timer shutdown_timer_;
  ShardTimers timers_;  // outlives the endpoints and probes, whose deadlines it holds
  ShardContext context_;
  // Touched only on the io thread.
  std::unordered_map<uint64_t, std::unique_ptr<SupervisedEndpoint>> endpoints_;
  std::unordered_map<uint64_t, std::unique_ptr<ProbeRun>> probes_;
  std::atomic<uint64_t> next_probe_{0};  // any thread: startProbe()
  std::atomic<size_t> assigned_{0};
  std::thread thread_;
};

}  // namespace wsvisor
