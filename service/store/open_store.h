#pragma once

#include <grpcpp/security/credentials.h>

#include <chrono>
#include <memory>
#include <string>

#include "service/store/store_url.h"
#include "supervisor/store/endpoint_store.h"

namespace wsvisor::service {

// What opening the registry's store needs, as the process's flags give it.
struct StoreOptions {
  StoreLocation location;  // --store: SQLite in data_dir unless etcd://...
  std::string data_dir;    // --data-dir: where SQLite keeps wsvisor.db
  // How long opening waits for the store to answer (etcd: a leader and a quorum).
  std::chrono::milliseconds connect_timeout{30000};
  // etcd over TLS (--store-ca, --store-cert, --store-key, read by the process; see
  // service/server_credentials.h): null for plaintext. `etcd_server_name` (--store-server-name)
  // overrides the name etcd's certificate must carry.
  std::shared_ptr<grpc::ChannelCredentials> etcd_credentials;
  std::string etcd_server_name;
};

// Opens the store that `options` names: SQLite in its data dir, or etcd (waiting up to
// connect_timeout for it to answer). Returns nullptr with `error` set when it cannot be used;
// start-up then fails rather than run with an empty registry.
std::unique_ptr<EndpointStore> openEndpointStore(const StoreOptions& options, std::string& error);

}  // namespace wsvisor::service
