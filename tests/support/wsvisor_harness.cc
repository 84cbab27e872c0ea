#include "support/wsvisor_harness.h"

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>

namespace wsvisor::testing {

namespace {

void setMillis(google::protobuf::Duration* d, int64_t ms) {
  d->set_seconds(ms / 1000);
  d->set_nanos(static_cast<int32_t>((ms % 1000) * 1000000));
}

std::unique_ptr<grpc::ClientContext> contextWithDeadline() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return context;
}

}  // namespace

InProcessWsvisor::InProcessWsvisor(service::ServerOptions options) {
  options.listen = "127.0.0.1:0";
  if (options.data_dir == service::ServerOptions{}.data_dir) {
    char pattern[] = "/tmp/wsvisor-test-XXXXXX";
    if (mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    owned_data_dir_ = pattern;
    options.data_dir = owned_data_dir_;
  }
  if (options.metrics_listen == service::ServerOptions{}.metrics_listen) {
    // Off unless a test asks: several servers run in one test process, and stopping civetweb
    // (the metrics HTTP server) can take up to 2 s, which adds up over a suite.
    options.metrics_listen = "";
  }
  server_ = std::make_unique<service::Server>(options);
  std::string error;
  if (!server_->start(error)) throw std::runtime_error("wsvisor did not start: " + error);
  channel_ = grpc::CreateChannel(address(), grpc::InsecureChannelCredentials());
  stub_ = v1::Supervisor::NewStub(channel_);
}

InProcessWsvisor::~InProcessWsvisor() {
  server_->shutdown();
  server_.reset();
  if (!owned_data_dir_.empty()) std::filesystem::remove_all(owned_data_dir_);
}

grpc::Status InProcessWsvisor::registerEndpoint(const v1::EndpointSpec& spec,
                                                v1::RegisterEndpointResponse* response) {
  v1::RegisterEndpointRequest request;
  *request.mutable_spec() = spec;
  v1::RegisterEndpointResponse ignored;
  auto context = contextWithDeadline();
  return stub_->RegisterEndpoint(context.get(), request, response ? response : &ignored);
}

grpc::Status InProcessWsvisor::unregisterEndpoint(const std::string& id) {
  v1::UnregisterEndpointRequest request;
  request.set_id(id);
  v1::UnregisterEndpointResponse response;
  auto context = contextWithDeadline();
  return stub_->UnregisterEndpoint(context.get(), request, &response);
}

grpc::Status InProcessWsvisor::getEndpoint(const std::string& id, v1::Endpoint* endpoint) {
  v1::GetEndpointRequest request;
  request.set_id(id);
  v1::GetEndpointResponse response;
  auto context = contextWithDeadline();
  grpc::Status status = stub_->GetEndpoint(context.get(), request, &response);
  if (status.ok() && endpoint) *endpoint = response.endpoint();
  return status;
}

grpc::Status InProcessWsvisor::listEndpoints(const v1::ListEndpointsRequest& request,
                                             v1::ListEndpointsResponse* response) {
  auto context = contextWithDeadline();
  return stub_->ListEndpoints(context.get(), request, response);
}

v1::EndpointSpec fastSpec(const std::string& id, const std::string& url) {
  v1::EndpointSpec spec;
  spec.set_id(id);
  spec.set_url(url);
  setMillis(spec.mutable_heartbeat()->mutable_interval(), 200);
  setMillis(spec.mutable_heartbeat()->mutable_timeout(), 200);
  setMillis(spec.mutable_backoff()->mutable_initial(), 50);
  setMillis(spec.mutable_backoff()->mutable_max(), 500);
  setMillis(spec.mutable_connect_timeout(), 2000);
  return spec;
}

HealthRecorder::HealthRecorder(v1::Supervisor::Stub& stub, const v1::WatchHealthRequest& request) {
  reader_ = std::thread([this, &stub, request] {
    auto reader = stub.WatchHealth(&context_, request);
    v1::HealthEvent event;
    while (reader->Read(&event)) {
      std::lock_guard<std::mutex> lock(mu_);
      received_.push_back({event, std::chrono::steady_clock::now()});
      cv_.notify_all();
    }
    grpc::Status status = reader->Finish();
    std::lock_guard<std::mutex> lock(mu_);
    final_status_ = status;
    cv_.notify_all();
  });
}

HealthRecorder::~HealthRecorder() {
  context_.TryCancel();
  reader_.join();
}

std::optional<HealthRecorder::Received> HealthRecorder::waitFor(
    const std::function<bool(const v1::HealthEvent&)>& predicate,
    std::chrono::milliseconds timeout) {
  return waitForAfter(std::chrono::steady_clock::time_point{}, predicate, timeout);
}

std::optional<HealthRecorder::Received> HealthRecorder::waitForAfter(
    std::chrono::steady_clock::time_point since,
    const std::function<bool(const v1::HealthEvent&)>& predicate,
    std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  std::optional<Received> found;
  cv_.wait_for(lock, timeout, [&] {
    for (const Received& r : received_) {
      if (r.at >= since && predicate(r.event)) {
        found = r;
        return true;
      }
    }
    return final_status_.has_value();
  });
  return found;
}

std::vector<HealthRecorder::Received> HealthRecorder::events() {
  std::lock_guard<std::mutex> lock(mu_);
  return received_;
}

std::optional<grpc::Status> HealthRecorder::finalStatus() {
  std::lock_guard<std::mutex> lock(mu_);
  return final_status_;
}

bool HealthRecorder::waitForEnd(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return final_status_.has_value(); });
}

std::function<bool(const v1::HealthEvent&)> healthIs(const std::string& id, v1::Health health) {
  return [id, health](const v1::HealthEvent& e) {
    return e.endpoint_id() == id && e.status().health() == health;
  };
}

std::function<bool(const v1::HealthEvent&)> failedWith(const std::string& id,
                                                       v1::FailureReason reason) {
  return [id, reason](const v1::HealthEvent& e) {
    return e.endpoint_id() == id && e.status().health() == v1::HEALTH_UNHEALTHY &&
           e.status().last_failure().reason() == reason;
  };
}

}  // namespace wsvisor::testing
