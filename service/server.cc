#include "service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <unistd.h>

#include <algorithm>

#include "service/api/grpc_metrics_interceptor.h"
#include "service/build_info.h"
#include "service/cluster/etcd/etcd_endpoint_store.h"
#include "service/config_file.h"
#include "service/server_credentials.h"
#include "service/store/open_store.h"
#include "supervisor/log.h"

namespace wsvisor::service {

namespace {

// File descriptors kept back from the endpoint budget: listeners, gRPC clients, the store,
// metrics scrapes, logs.
constexpr size_t kReservedFds = 100;

std::string hostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "wsvisor";
  return name;
}

// This replica's name in a cluster: --member-id, or the host name (a pod's name on Kubernetes).
std::string memberIdOf(const ServerOptions& options) {
  return options.member_id.empty() ? hostName() : options.member_id;
}

HealthBusOptions busOptions(const ServerOptions& options) {
  HealthBusOptions bus;
  bus.history_size = options.history_size;
  bus.replay_log_size = options.replay_log_size;
  // Statuses name their replica (EndpointStatus.supervised_by) only in cluster mode.
  if (options.store.kind == StoreLocation::Kind::kEtcd) bus.supervisor_name = memberIdOf(options);
  return bus;
}

}  // namespace

std::optional<StoreOptions> storeOptionsFrom(const ServerOptions& options, std::string& error) {
  StoreOptions store;
  store.location = options.store;
  store.data_dir = options.data_dir;
  store.connect_timeout = options.store_connect_timeout;
  if (!options.store_ca_file.empty()) {
    store.etcd_credentials = makeStoreCredentials(options, error);
    if (!store.etcd_credentials) return std::nullopt;
    store.etcd_server_name = options.store_server_name;
  }
  return store;
}

Server::Server(ServerOptions options, AllocatedBytesReader allocated_bytes)
    : options_(std::move(options)),
      bus_(busOptions(options_)),
      allocated_bytes_(std::move(allocated_bytes)) {}

Server::~Server() { shutdown(); }

bool Server::start(std::string& error) {
  setLogLevel(options_.log_level);
  fd_budget_ = FdBudget::raiseAndMeasure(kReservedFds);
  if (options_.max_connections != 0 && options_.max_connections < fd_budget_.max_endpoints) {
    WSV_LOG(kInfo) << "--max-connections " << options_.max_connections
                   << " lowers the connection budget from " << fd_budget_.max_endpoints;
    fd_budget_.max_endpoints = options_.max_connections;
  }
  RegistryOptions registry_options;
  registry_options.io_threads = options_.threads;
  registry_options.max_connections = fd_budget_.max_endpoints;

  MetricsOptions metrics_options;
  metrics_options.per_endpoint = options_.metrics_per_endpoint;
  metrics_options.copied_label_keys = options_.metrics_endpoint_labels;
  metrics_options.version = buildVersion();
  metrics_options.revision = buildRevision();
  metrics_ = std::make_unique<Metrics>(metrics_options);
  if (!startMetricsExposer(error)) return false;

  const std::optional<StoreOptions> store_options = storeOptionsFrom(options_, error);
  if (!store_options) return false;
  store_ = openEndpointStore(*store_options, error);
  if (!store_) return false;
  registry_options.restore_dials_per_second = options_.restore_dials_per_second;
  auto* etcd_store = dynamic_cast<etcd::EtcdEndpointStore*>(store_.get());
  // With etcd, every replica is a cluster member: it loads the endpoints and supervises those it
  // owns (ClusterMember); one replica alone owns them all.
  if (etcd_store) {
    // The cluster holds more endpoints than one replica has descriptors for: only the share a
    // replica supervises is bounded by its open-files budget (it claims no more).
    registry_options.max_endpoints = options_.max_endpoints;
    WSV_LOG(kInfo) << fd_budget_.describe() << ": this replica supervises at most "
                   << fd_budget_.max_endpoints << " endpoints; --max-endpoints "
                   << options_.max_endpoints << " bounds the endpoints of the whole cluster";
  } else {
    registry_options.max_endpoints = std::min(options_.max_endpoints, fd_budget_.max_endpoints);
    WSV_LOG(kInfo) << fd_budget_.describe() << "; --max-endpoints " << options_.max_endpoints
                   << ": accepting up to " << registry_options.max_endpoints << " endpoints";
  }
  metrics_->setMaxEndpoints(registry_options.max_endpoints);
  if (etcd_store) etcd_store->setShared(true);
  if (etcd_store) {
    auto clustered = std::make_unique<ClusteredRegistry>(registry_options, bus_, *metrics_,
                                                         store_.get(), &codec_);
    ClusteredRegistry& registry = *clustered;
    registry_ = std::move(clustered);
    ClusterOptions cluster_options;
    cluster_options.member_id = memberIdOf(options_);
    cluster_options.ttl = options_.member_ttl;
    cluster_options.dials_per_second = options_.restore_dials_per_second;
    cluster_options.join_timeout = std::max<std::chrono::milliseconds>(
        options_.store_connect_timeout, options_.member_ttl + std::chrono::seconds(5));
    cluster_ = std::make_unique<ClusterMember>(*etcd_store, registry, bus_, cluster_options);
    if (!cluster_->start(error)) {
      error = "cannot join the cluster at " + store_->describe() + ": " + error;
      abortStart();
      return false;
    }
  } else {
    registry_ =
        std::make_unique<Registry>(registry_options, bus_, *metrics_, store_.get(), &codec_);
    if (auto restore_error = registry_->restore()) {
      error = "cannot restore endpoints from " + store_->describe() + ": " + *restore_error;
      registry_->shutdown(std::chrono::milliseconds(0));
      return false;
    }
  }
  probes_ = std::make_unique<ProbeRunner>(*registry_);
  config_ = std::make_unique<ConfigReconciler>(*registry_);
  if (options_.config_file.empty()) {
    // Without a file nothing could ever change or remove endpoints a file once owned.
    if (const size_t adopted = config_->adoptAll(); adopted > 0) {
      WSV_LOG(kWarning) << adopted
                        << " stored endpoints were owned by a config file, but no --config was "
                           "given: they are now owned by the API and can be changed over it";
    }
  } else if (!reloadConfig()) {
    error = "the config file " + options_.config_file + " was not applied (see above)";
    abortStart();
    return false;
  }
  if (!options_.auth_token_file.empty()) {
    auto tokens = loadTokenFile(options_.auth_token_file);
    if (auto* problem = std::get_if<std::string>(&tokens)) {
      error = *problem;
      abortStart();
      return false;
    }
    api_access_ = std::make_unique<ApiAccess>(std::get<std::vector<ApiToken>>(std::move(tokens)));
  }
  WatchLimits watch_limits;
  watch_limits.max_streams = options_.max_watch_streams;
  watch_limits.stream_bytes = options_.watch_stream_bytes;
  metrics_->setMaxWatchStreams(watch_limits.max_streams);
  service_ = std::make_unique<SupervisorService>(*registry_, *probes_, bus_, api_access_.get(),
                                                 watch_limits, metrics_.get());
  if (!startGrpcServers(error)) {
    abortStart();
    return false;
  }
  setServing(true);
  // "(port N)" is what scripts read to find a port bound with ":0"; keep it as it is.
  WSV_LOG(kInfo) << "wsvisor serving gRPC on " << options_.listen << " (port " << grpc_port_
                 << ") with " << options_.threads << " io thread(s); "
                 << describeTransportSecurity(options_) << ", "
                 << (api_access_ ? std::to_string(api_access_->tokenCount()) + " bearer token(s)"
                                 : std::string("no bearer tokens"));
  if (api_access_ && options_.tls_cert_file.empty()) {
    WSV_LOG(kWarning) << "bearer tokens travel in plaintext: give --tls-cert and --tls-key "
                         "unless the network already encrypts (a service mesh)";
  }
  if (health_server_) {
    WSV_LOG(kInfo) << "serving grpc.health.v1.Health (plaintext, health only) on "
                   << options_.health_listen << " (port " << health_port_ << ")";
  }
  return true;
}

bool Server::startGrpcServers(std::string& error) {
  const auto credentials = makeServerCredentials(options_, error);
  if (!credentials) return false;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, credentials, &grpc_port_);
  builder.RegisterService(service_.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<GrpcMetricsInterceptorFactory>(*metrics_));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  grpc_server_ = builder.BuildAndStart();
  if (!grpc_server_ || grpc_port_ == 0) {
    error = "cannot listen for gRPC on " + options_.listen;
    grpc_server_.reset();  // nothing was served: shutdown() has nothing to stop
    return false;
  }
  if (options_.health_listen.empty()) return true;
  // A server of its own, so that nothing but health is reachable without TLS and tokens.
  grpc::ServerBuilder health_builder;
  health_builder.AddListeningPort(options_.health_listen, grpc::InsecureServerCredentials(),
                                  &health_port_);
  health_server_ = health_builder.BuildAndStart();
  if (!health_server_ || health_port_ == 0) {
    error = "cannot listen for gRPC health on " + options_.health_listen;
    grpc_server_->Shutdown(std::chrono::system_clock::now());
    grpc_server_.reset();
    health_server_.reset();
    return false;
  }
  return true;
}

void Server::setServing(bool serving) {
  for (grpc::Server* server : {grpc_server_.get(), health_server_.get()}) {
    if (server == nullptr) continue;
    // Overall ("") and per service, for probes that name the service (grpc_health_probe -service).
    server->GetHealthCheckService()->SetServingStatus(serving);
    server->GetHealthCheckService()->SetServingStatus(v1::Supervisor::service_full_name(), serving);
  }
}

bool Server::reloadAuthTokens() {
  if (!api_access_) return true;
  auto tokens = loadTokenFile(options_.auth_token_file);
  if (auto* problem = std::get_if<std::string>(&tokens)) {
    WSV_LOG(kError) << "bearer tokens not reloaded, the previous ones stay in force: " << *problem;
    return false;
  }
  api_access_->replaceTokens(std::get<std::vector<ApiToken>>(std::move(tokens)));
  WSV_LOG(kInfo) << "bearer tokens reloaded from " << options_.auth_token_file << ": "
                 << api_access_->tokenCount() << " token(s)";
  return true;
}

bool Server::reloadConfig() {
  if (options_.config_file.empty()) {
    WSV_LOG(kInfo) << "no --config file to reload";
    return true;
  }
  auto loaded = loadConfigFile(options_.config_file);
  std::string error;
  if (auto* specs = std::get_if<std::vector<core::EndpointSpec>>(&loaded)) {
    auto applied = config_->apply(std::move(*specs));
    if (auto* diff = std::get_if<ConfigReconciler::Diff>(&applied)) {
      metrics_->configReload(true);
      WSV_LOG(kInfo) << "config " << options_.config_file << " applied: " << diff->added
                     << " added, " << diff->updated << " updated, " << diff->removed << " removed, "
                     << diff->unchanged << " unchanged";
      return true;
    }
    error = std::get<std::string>(applied);
  } else {
    error = std::get<std::string>(loaded);
  }
  metrics_->configReload(false);
  WSV_LOG(kError) << "config not applied, running endpoints unchanged: " << error;
  return false;
}

bool Server::startMetricsExposer(std::string& error) {
  if (options_.metrics_listen.empty()) return true;
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(options_.metrics_listen, 2);
  } catch (const std::exception& e) {
    error = "cannot serve metrics on " + options_.metrics_listen + ": " + e.what();
    return false;
  }
  health_state_collector_ = std::make_shared<HealthStateCollector>(bus_);
  process_collector_ = std::make_shared<ProcessCollector>();
  if (allocated_bytes_) {
    // First: the heap is read before this scrape builds the other families.
    heap_collector_ = std::make_shared<HeapCollector>(allocated_bytes_);
    exposer_->RegisterCollectable(heap_collector_);
  }
  exposer_->RegisterCollectable(metrics_->registry());
  exposer_->RegisterCollectable(metrics_->shardCountersCollector());
  exposer_->RegisterCollectable(metrics_->endpointSeriesCollector());
  exposer_->RegisterCollectable(health_state_collector_);
  exposer_->RegisterCollectable(process_collector_);
  const auto ports = exposer_->GetListeningPorts();
  metrics_port_ = ports.empty() ? 0 : ports.front();
  WSV_LOG(kInfo) << "serving Prometheus metrics on " << options_.metrics_listen << " (port "
                 << metrics_port_ << ") at /metrics";
  return true;
}

void Server::abortStart() {
  if (cluster_) cluster_->stop();
  registry_->shutdown(std::chrono::milliseconds(0));
}

void Server::shutdown() {
  {
    MutexLock lock(mu_);
    if (stopping_ || !grpc_server_) return;
    stopping_ = true;
  }
  WSV_LOG(kInfo) << "shutting down: grace " << options_.shutdown_grace.count() << "ms";
  // Probes see NOT_SERVING first, so traffic drains before anything is refused.
  setServing(false);
  service_->beginShutdown();
  // The grace period bounds the whole shutdown: most of it for closing upstream connections,
  // then up to a quarter (at most 1 s) for unary calls in flight; watch streams are already
  // finished. gRPC's Shutdown() waits for its deadline whenever a client channel is connected.
  const auto grace = options_.shutdown_grace;
  const auto grpc_grace = std::min<std::chrono::milliseconds>(std::chrono::seconds(1), grace / 4);
  const auto upstream_grace =
      grace - grpc_grace -
      std::min<std::chrono::milliseconds>(std::chrono::milliseconds(100), grace / 10);
  metrics_->keepSeriesOnRelease();
  // Connections close before the cluster lease is revoked, so no other replica dials an
  // endpoint while this one still holds its connection.
  if (cluster_) cluster_->stop();
  registry_->shutdown(upstream_grace);
  grpc_server_->Shutdown(std::chrono::system_clock::now() + grpc_grace);
  if (health_server_) health_server_->Shutdown(std::chrono::system_clock::now());
  {
    MutexLock lock(mu_);
    stopped_ = true;
  }
  stopped_cv_.notifyAll();
  WSV_LOG(kInfo) << "shutdown complete";
}

void Server::wait() {
  MutexLock lock(mu_);
  while (!stopped_) stopped_cv_.wait(lock);
}

}  // namespace wsvisor::service
