#pragma once

// An in-process wsvisor on a free loopback port, a real gRPC stub talking to it over a socket,
// and a recorder for WatchHealth streams.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "service/server.h"
#include "wsvisor/v1/supervisor.grpc.pb.h"

namespace wsvisor::testing {

class InProcessWsvisor {
 public:
  // Listens on 127.0.0.1:0 (`options.listen` is overridden). Metrics are off unless
  // `options.metrics_listen` names an address other than the default, e.g. 127.0.0.1:0. The store
  // lives in a fresh temporary directory, removed afterwards, unless `options.data_dir` is set.
  explicit InProcessWsvisor(service::ServerOptions options = {});
  ~InProcessWsvisor();

  v1::Supervisor::Stub& stub() { return *stub_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  service::Server& server() { return *server_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_->grpcPort()); }

  grpc::Status registerEndpoint(const v1::EndpointSpec& spec,
                                v1::RegisterEndpointResponse* response = nullptr);
  grpc::Status unregisterEndpoint(const std::string& id);
  grpc::Status getEndpoint(const std::string& id, v1::Endpoint* endpoint);
  grpc::Status listEndpoints(const v1::ListEndpointsRequest& request,
                             v1::ListEndpointsResponse* response);

 private:
  std::string owned_data_dir_;
  std::unique_ptr<service::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Supervisor::Stub> stub_;
};

// A spec with short, test-friendly timings: interval and timeout 200 ms, backoff from 50 ms.
v1::EndpointSpec fastSpec(const std::string& id, const std::string& url);

// Runs one WatchHealth call on its own thread and records every event with the moment it arrived.
class HealthRecorder {
 public:
  struct Received {
    v1::HealthEvent event;
    std::chrono::steady_clock::time_point at;
  };

  HealthRecorder(v1::Supervisor::Stub& stub, const v1::WatchHealthRequest& request = {});
  ~HealthRecorder();  // cancels the call and joins

  // Waits until an event matching `predicate` has arrived (one that arrived earlier counts) and
  // returns the first such event.
  std::optional<Received> waitFor(const std::function<bool(const v1::HealthEvent&)>& predicate,
                                  std::chrono::milliseconds timeout);
  // As waitFor, but only events that arrive after `since`.
  std::optional<Received> waitForAfter(std::chrono::steady_clock::time_point since,
                                       const std::function<bool(const v1::HealthEvent&)>& predicate,
                                       std::chrono::milliseconds timeout);
  std::vector<Received> events();
  // The status the stream ended with, once it has ended.
  std::optional<grpc::Status> finalStatus();
  bool waitForEnd(std::chrono::milliseconds timeout);

 private:
  grpc::ClientContext context_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Received> received_;
  std::optional<grpc::Status> final_status_;
  std::thread reader_;
};

// Predicates for HealthRecorder.
std::function<bool(const v1::HealthEvent&)> healthIs(const std::string& id, v1::Health health);
std::function<bool(const v1::HealthEvent&)> failedWith(const std::string& id,
                                                       v1::FailureReason reason);

}  // namespace wsvisor::testing
