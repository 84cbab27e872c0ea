#pragma once

#include <grpcpp/grpcpp.h>
#include <prometheus/exposer.h>

#include <memory>
#include <optional>
#include <string>

#include "service/api/api_access.h"
#include "service/api/proto_conversions.h"
#include "service/api/supervisor_service.h"
#include "service/cluster/cluster_member.h"
#include "service/server_options.h"
#include "service/store/open_store.h"
#include "supervisor/clustered_registry.h"
#include "supervisor/config_reconciler.h"
#include "supervisor/fd_budget.h"
#include "supervisor/health_bus.h"
#include "supervisor/metrics.h"
#include "supervisor/mutex.h"
#include "supervisor/probe_runner.h"
#include "supervisor/registry.h"
#include "supervisor/scrape_collectors.h"
#include "supervisor/store/endpoint_store.h"

namespace wsvisor::service {

// The store that --store, --data-dir and the --store-* flags name, with the etcd TLS credentials
// read from their files. Returns nullopt with `error` naming the flag and file that is unusable.
std::optional<StoreOptions> storeOptionsFrom(const ServerOptions& options, std::string& error);

// The whole wsvisor process minus main(): registry, io threads, gRPC server with health and
// reflection. Integration tests run it in-process on port 0.
class Server {
 public:
  // `allocated_bytes` feeds wsvisor_heap_allocated_bytes: main() gives the allocator's figure
  // (service/allocator_settings.h); without one, that family is not exported.
  explicit Server(ServerOptions options, AllocatedBytesReader allocated_bytes = {});
  ~Server();

  // Opens the store (--store), restores its endpoints, applies the config file, binds and starts
  // serving. Returns false with `error` set when any of that fails (nothing is served then).
  bool start(std::string& error);
  // Re-reads the --config file and applies it as a diff. A bad file changes nothing; the outcome
  // is logged and counted (wsvisor_config_reloads_total). Returns false on a bad file.
  bool reloadConfig();
  // Re-reads --auth-token-file (on SIGHUP): tokens can be rotated without a restart. A bad file
  // keeps the tokens in force. Returns false on a bad file; true when there is none.
  bool reloadAuthTokens();
  // The bound gRPC port (useful with --listen 127.0.0.1:0).
  int grpcPort() const { return grpc_port_; }
  // The bound metrics port, 0 when metrics are off (--metrics-listen "").
  int metricsPort() const { return metrics_port_; }
  // The bound --health-listen port, 0 when there is none.
  int healthPort() const { return health_port_; }
  const FdBudget& fdBudget() const { return fd_budget_; }
  Registry& registry() { return *registry_; }

  // Graceful shutdown: health NOT_SERVING, new calls refused, watch streams ended, upstream
  // connections closed with 1001 within the grace period, gRPC server stopped.
  void shutdown();
  // Blocks until shutdown() has finished.
  void wait();

 private:
  // Undoes a start() that failed after the registry existed.
  void abortStart();
  bool startMetricsExposer(std::string& error);
  bool startGrpcServers(std::string& error);
  // Health of the whole server and of wsvisor.v1.Supervisor, on every listener.
  void setServing(bool serving);

  ServerOptions options_;
  FdBudget fd_budget_;
  HealthBus bus_;
  ProtoSpecCodec codec_;
  std::unique_ptr<EndpointStore> store_;  // --store: SQLite or etcd
  std::unique_ptr<Metrics> metrics_;
  std::shared_ptr<HealthStateCollector> health_state_collector_;
  std::shared_ptr<ProcessCollector> process_collector_;
  AllocatedBytesReader allocated_bytes_;
  std::shared_ptr<HeapCollector> heap_collector_;  // with allocated_bytes_ only
  std::unique_ptr<prometheus::Exposer> exposer_;
  int metrics_port_ = 0;
  std::unique_ptr<Registry> registry_;  // a ClusteredRegistry with an etcd store
  std::unique_ptr<ProbeRunner> probes_;
  std::unique_ptr<ConfigReconciler> config_;
  std::unique_ptr<ClusterMember> cluster_;  // with an etcd store
  std::unique_ptr<ApiAccess> api_access_;   // null without --auth-token-file
  std::unique_ptr<SupervisorService> service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int grpc_port_ = 0;
  std::unique_ptr<grpc::Server> health_server_;  // --health-listen: health only, plaintext
  int health_port_ = 0;
  Mutex mu_;
  CondVar stopped_cv_;
  bool stopped_ WSV_GUARDED_BY(mu_) = false;
  bool stopping_ WSV_GUARDED_BY(mu_) = false;
};

}  // namespace wsvisor::service
