#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
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
  // Stops supervising: the connection is closed with 1000 and the endpoint destroyed.
  void remove(uint64_t key);
  // Closes every connection with 1001 (going away) and waits until websocketpp has finished
  // them or `grace` has passed; then stops the thread. Returns the connections still open.
  size_t shutdown(std::chrono::milliseconds grace);

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

  const size_t index_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  Jitter jitter_;
  WebSocketTransport transport_;
  asio::steady_timer shutdown_timer_;
  ShardContext context_;
  // Touched only on the io thread.
  std::unordered_map<uint64_t, std::unique_ptr<SupervisedEndpoint>> endpoints_;
  std::atomic<size_t> assigned_{0};
  std::thread thread_;
};

}  // namespace wsvisor
