#include "service/open_store.h"

#include "service/etcd/etcd_endpoint_store.h"
#include "supervisor/log.h"
#include "supervisor/sqlite_endpoint_store.h"

namespace wsvisor::service {

std::unique_ptr<EndpointStore> openEndpointStore(const ServerOptions& options, std::string& error) {
  if (options.store.kind == StoreLocation::Kind::kSqlite) {
    return SqliteEndpointStore::open(options.data_dir, error);
  }
  etcd::EtcdStoreOptions etcd_options;
  etcd_options.client.endpoints = options.store.etcd_endpoints;
  etcd_options.prefix = options.store.etcd_prefix;
  etcd_options.startup_timeout = options.store_connect_timeout;
  WSV_LOG(kInfo) << "connecting to the etcd store " << options.store.describe()
                 << " (waiting up to " << options.store_connect_timeout.count() << " ms)";
  return etcd::EtcdEndpointStore::open(etcd_options, error);
}

}  // namespace wsvisor::service
