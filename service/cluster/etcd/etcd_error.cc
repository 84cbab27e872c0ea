#include "service/cluster/etcd/etcd_error.h"

namespace wsvisor::service::etcd {

EtcdError errorFrom(std::string_view address, std::string_view method, const grpc::Status& status) {
  std::string message = "etcd ";
  message.append(address).append(": ").append(method).append(": ");
  message.append(statusCodeName(status.error_code()));
  if (!status.error_message().empty()) message.append(": ").append(status.error_message());
  return {status.error_code(), std::move(message)};
}

}  // namespace wsvisor::service::etcd
