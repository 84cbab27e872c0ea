#include "service/api/grpc_metrics_interceptor.h"

#include <array>
#include <chrono>

namespace wsvisor::service {

namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

const char* typeLabel(ServerRpcInfo::Type type) {
  switch (type) {
    case ServerRpcInfo::Type::UNARY:
      return "unary";
    case ServerRpcInfo::Type::CLIENT_STREAMING:
      return "client_stream";
    case ServerRpcInfo::Type::SERVER_STREAMING:
      return "server_stream";
    case ServerRpcInfo::Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unary";
}

// The names go-grpc-prometheus uses for grpc_code (codes.Code.String() in Go).
const char* codeLabel(grpc::StatusCode code) {
  static constexpr std::array<const char*, 17> kNames = {
      "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
      "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
      "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
      "DataLoss", "Unauthenticated"};
  const auto index = static_cast<size_t>(code);
  return index < kNames.size() ? kNames[index] : "Unknown";
}

class GrpcMetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  GrpcMetricsInterceptor(Metrics& metrics, Metrics::GrpcMethodSeries& series)
      : metrics_(metrics), series_(series) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      started_at_ = std::chrono::steady_clock::now();
      series_.started->Increment();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at_).count();
      metrics_.grpcHandled(series_, codeLabel(methods->GetSendStatus().error_code()), seconds);
    }
    methods->Proceed();
  }

 private:
  Metrics& metrics_;
  Metrics::GrpcMethodSeries& series_;
  std::chrono::steady_clock::time_point started_at_ = std::chrono::steady_clock::now();
};

}  // namespace

grpc::experimental::Interceptor* GrpcMetricsInterceptorFactory::CreateServerInterceptor(
    ServerRpcInfo* info) {
  return new GrpcMetricsInterceptor(metrics_,
                                    metrics_.grpcMethod(info->method(), typeLabel(info->type())));
}

}  // namespace wsvisor::service
