#pragma once

#include <grpcpp/support/server_interceptor.h>

#include "supervisor/metrics.h"

namespace wsvisor::service {

// Records grpc_server_started_total, grpc_server_handled_total and grpc_server_handling_seconds
// for every RPC the server handles (ours, health and reflection), with the labels of
// go-grpc-prometheus (grpc_service, grpc_method, grpc_type, grpc_code).
class GrpcMetricsInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit GrpcMetricsInterceptorFactory(Metrics& metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  Metrics& metrics_;
};

}  // namespace wsvisor::service
