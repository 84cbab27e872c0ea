#include "service/store/open_store.h"

#include "service/cluster/etcd/etcd_endpoint_store.h"
#include "supervisor/log.h"
#include "supervisor/store/sqlite_endpoint_store.h"

namespace wsvisor::service {

std::unique_ptr<EndpointStore> openEndpointStore(const StoreOptions& options, std::string& error) {
  if (options.location.kind == StoreLocation::Kind::kSqlite) {
    return SqliteEndpointStore::open(options.data_dir, error);
  }
  etcd::EtcdStoreOptions etcd_options;
  if (options.etcd_credentials) {
    etcd_options.client.credentials = options.etcd_credentials;
    etcd_options.client.tls_server_name = options.etcd_server_name;
  }
  etcd_options.client.endpoints = options.location.etcd_endpoints;
  etcd_options.prefix = options.location.etcd_prefix;
  etcd_options.startup_timeout = options.connect_timeout;
  WSV_LOG(kInfo) << "connecting to the etcd store " << options.location.describe()
                 << (options.etcd_credentials ? " over TLS" : "") << " (waiting up to "
                 << options.connect_timeout.count() << " ms)";
  return etcd::EtcdEndpointStore::open(etcd_options, error);
}

}  // namespace wsvisor::service
