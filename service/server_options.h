#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "service/api/watch_limits.h"
#include "service/store/store_url.h"
#include "supervisor/log.h"

namespace wsvisor::service {

// Everything `wsvisor` can be told on its command line, with the documented defaults.
struct ServerOptions {
  std::string listen = "0.0.0.0:50051";
  // Plaintext address serving only grpc.health.v1.Health, for probes that cannot do TLS or send
  // tokens (kubelet's gRPC probes). Empty: health is served on --listen only.
  std::string health_listen;
  std::string tls_cert_file;  // with tls_key_file: the gRPC listener speaks TLS
  std::string tls_key_file;
  std::string client_ca_file;   // clients must present a certificate signed by this CA
  std::string auth_token_file;  // bearer tokens ("NAME ACCESS TOKEN" lines); empty: no tokens
  std::string metrics_listen = "0.0.0.0:9464";
  bool metrics_per_endpoint = true;
  std::vector<std::string> metrics_endpoint_labels;
  std::string data_dir = "./wsvisor-data";
  StoreLocation store;  // --store: SQLite in data_dir unless etcd://...
  // How long start-up waits for the store to answer (etcd: a leader and a quorum).
  std::chrono::milliseconds store_connect_timeout{30000};
  // TLS to etcd: --store-ca turns it on; --store-cert and --store-key (both or neither, only with
  // --store-ca) add a client certificate; --store-server-name overrides the name checked.
  std::string store_ca_file;
  std::string store_cert_file;
  std::string store_key_file;
  std::string store_server_name;
  // --import-from-data-dir: copy the SQLite registry of this data dir into the etcd store, then
  // exit (see service/store_import.h). Empty: serve as usual.
  std::string import_from_data_dir;
  // Cluster mode (with an etcd store): this replica's member id, unique among live replicas
  // (empty: the host name), and the TTL of its etcd lease, whole seconds from 2 s to 60 s.
  std::string member_id;
  std::chrono::seconds member_ttl{5};
  std::string config_file;  // empty: no declarative endpoints
  double restore_dials_per_second = 2000;
  size_t threads = 1;
  LogLevel log_level = LogLevel::kInfo;
  size_t max_endpoints = 100000;
  // Connections (endpoints and probes) this process holds at most: lowers the open-files budget
  // (FdBudget::max_endpoints). 0: the open-files budget alone.
  size_t max_connections = 0;
  std::chrono::milliseconds shutdown_grace{10000};
  size_t history_size = 64;        // health transitions kept per endpoint; 0: none
  size_t replay_log_size = 16384;  // published events kept for resuming watches; 0: none
  // WatchHealth streams open at once; more are refused with RESOURCE_EXHAUSTED.
  size_t max_watch_streams = WatchLimits::kDefaultMaxStreams;
  // Bytes of events one WatchHealth stream may have yet to read before it is coalesced, and, when
  // even coalesced they are more, the stream ends with RESOURCE_EXHAUSTED (see WatchCursor).
  size_t watch_stream_bytes = WatchLimits::kDefaultStreamBytes;
};

// Parses `wsvisor` flags (`--name=value` or `--name value`). Returns nullopt with `error` set on a
// bad flag, or with `help_requested` set for --help.
std::optional<ServerOptions> parseServerOptions(const std::vector<std::string>& args,
                                                std::string& error, bool& help_requested);
std::string serverUsage();

}  // namespace wsvisor::service
