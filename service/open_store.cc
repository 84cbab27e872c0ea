#include "service/open_store.h"

#include "service/etcd/etcd_endpoint_store.h"
#include "service/server_credentials.h"
#include "supervisor/log.h"
#include "supervisor/sqlite_endpoint_store.h"

namespace wsvisor::service {

std::unique_ptr<EndpointStore> openEndpointStore(const ServerOptions& options, std::string& error) {
  if (options.store.kind == StoreLocation::Kind::kSqlite) {
    return SqliteEndpointStore::open(options.data_dir, error);
  }
  etcd::EtcdStoreOptions etcd_options;
  if (!options.store_ca_file.empty()) {
    etcd_options.client.credentials = makeStoreCredentials(options, error);
    if (!etcd_options.client.credentials) return nullptr;
    etcd_options.client.tls_server_name = options.store_server_name;
  }
  etcd_options.client.endpoints = options.store.etcd_endpoints;
  etcd_options.prefix = options.store.etcd_prefix;
  etcd_options.startup_timeout = options.store_connect_timeout;
  WSV_LOG(kInfo) << "connecting to the etcd store " << options.store.describe()
                 << (options.store_ca_file.empty() ? "" : " over TLS") << " (waiting up to "
                 << options.store_connect_timeout.count() << " ms)";
  return etcd::EtcdEndpointStore::open(etcd_options, error);
}

}  // namespace wsvisor::service
