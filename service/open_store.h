#pragma once

#include <memory>
#include <string>

#include "service/server_options.h"
#include "supervisor/endpoint_store.h"

namespace wsvisor::service {

// Opens the store that --store names: SQLite in --data-dir, or etcd (waiting up to
// --store-connect-timeout for it to answer). Returns nullptr with `error` set when it cannot be
// used; start-up then fails rather than run with an empty registry.
std::unique_ptr<EndpointStore> openEndpointStore(const ServerOptions& options, std::string& error);

}  // namespace wsvisor::service
