#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>

#include "service/api/api_access.h"
#include "service/api/probe_call.h"
#include "service/api/watch_stream.h"
#include "supervisor/health_bus.h"
#include "supervisor/metrics.h"
#include "supervisor/probe_runner.h"
#include "supervisor/registry.h"
#include "wsvisor/v1/supervisor.grpc.pb.h"

namespace wsvisor::service {

// wsvisor.v1.Supervisor on gRPC's callback API. Validates every request, answers with a precise
// status (INVALID_ARGUMENT names the field) and delegates to the Registry; a refused request
// changes nothing. Handlers never block: registry commands only post to io threads.
// With `access` set, every call first needs a bearer token allowed to do what it asks.
class SupervisorService final : public v1::Supervisor::CallbackService {
 public:
  // `metrics` (may be null) counts the WatchHealth streams refused or ended by `watch_limits`.
  SupervisorService(Registry& registry, ProbeRunner& probes, HealthBus& bus,
                    const ApiAccess* access = nullptr, WatchLimits watch_limits = {},
                    Metrics* metrics = nullptr);

  // Refuses new calls with UNAVAILABLE and ends every open watch with a final status.
  void beginShutdown();
  size_t openWatchStreams() const { return watch_streams_.size(); }

  // v1::Supervisor::CallbackService
  grpc::ServerUnaryReactor* RegisterEndpoint(grpc::CallbackServerContext* context,
                                             const v1::RegisterEndpointRequest* request,
                                             v1::RegisterEndpointResponse* response) override;
  grpc::ServerUnaryReactor* UpdateEndpoint(grpc::CallbackServerContext* context,
                                           const v1::UpdateEndpointRequest* request,
                                           v1::UpdateEndpointResponse* response) override;
  grpc::ServerUnaryReactor* UnregisterEndpoint(grpc::CallbackServerContext* context,
                                               const v1::UnregisterEndpointRequest* request,
                                               v1::UnregisterEndpointResponse* response) override;
  grpc::ServerUnaryReactor* GetEndpoint(grpc::CallbackServerContext* context,
                                        const v1::GetEndpointRequest* request,
                                        v1::GetEndpointResponse* response) override;
  grpc::ServerUnaryReactor* ListEndpoints(grpc::CallbackServerContext* context,
                                          const v1::ListEndpointsRequest* request,
                                          v1::ListEndpointsResponse* response) override;
  grpc::ServerWriteReactor<v1::HealthEvent>* WatchHealth(
      grpc::CallbackServerContext* context, const v1::WatchHealthRequest* request) override;
  grpc::ServerUnaryReactor* GetEndpointHistory(grpc::CallbackServerContext* context,
                                               const v1::GetEndpointHistoryRequest* request,
                                               v1::GetEndpointHistoryResponse* response) override;
  // Answers when the probe ends (see ProbeCall); the handler itself only starts it.
  grpc::ServerUnaryReactor* ProbeEndpoint(grpc::CallbackServerContext* context,
                                          const v1::ProbeEndpointRequest* request,
                                          v1::ProbeEndpointResponse* response) override;

 private:
  // OK, or UNAUTHENTICATED / PERMISSION_DENIED / UNAVAILABLE (shutting down).
  grpc::Status admit(const grpc::CallbackServerContext& context, Access needed,
                     std::string_view method) const;
  template <typename Handler>
  grpc::ServerUnaryReactor* answer(grpc::CallbackServerContext* context, Access needed,
                                   std::string_view method, Handler&& handler);

  grpc::Status doRegister(const v1::RegisterEndpointRequest& request,
                          v1::RegisterEndpointResponse* response);
  grpc::Status doUpdate(const v1::UpdateEndpointRequest& request,
                        v1::UpdateEndpointResponse* response);
  grpc::Status doUnregister(const v1::UnregisterEndpointRequest& request);
  grpc::Status doGet(const v1::GetEndpointRequest& request, v1::GetEndpointResponse* response);
  grpc::Status doList(const v1::ListEndpointsRequest& request, v1::ListEndpointsResponse* response);
  grpc::Status doHistory(const v1::GetEndpointHistoryRequest& request,
                         v1::GetEndpointHistoryResponse* response);
  // Starts the probe of `call`, which the probe's completion then finishes; or refuses it.
  grpc::Status doProbe(const v1::ProbeEndpointRequest& request, ProbeCall& call);

  Registry& registry_;
  ProbeRunner& probes_;
  HealthBus& bus_;
  const ApiAccess* access_;
  const WatchLimits watch_limits_;
  Metrics* const metrics_;
  WatchPump watch_pump_;  // before watch_streams_: streams post to it until they are done
  WatchStreamSet watch_streams_;
  std::atomic<bool> shutting_down_{false};
};

}  // namespace wsvisor::service
