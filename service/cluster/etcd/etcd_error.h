#pragma once

#include <grpcpp/grpcpp.h>

#include <string>
#include <string_view>

#include "service/api/status_code_name.h"

namespace wsvisor::service::etcd {

// A failed etcd call. `message` names the etcd endpoint(s) that answered (or did not), the call,
// and the gRPC status, e.g.
//   "etcd 127.0.0.1:2379: Txn: INVALID_ARGUMENT: etcdserver: too many operations in txn request"
struct EtcdError {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string message;
};

// "etcd <address>: <method>: <CODE>: <etcd's message>".
EtcdError errorFrom(std::string_view address, std::string_view method, const grpc::Status& status);

}  // namespace wsvisor::service::etcd
