#include "service/server_options.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "supervisor/metrics.h"

namespace wsvisor::service {

namespace {

bool parseCount(const std::string& text, size_t min, size_t max, size_t& out) {
  size_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    return false;
  }
  out = value;
  return true;
}

// "10s", "500ms", "1m": the shutdown grace, the store's connect timeout.
bool parseMillis(const std::string& text, std::chrono::milliseconds& out) {
  size_t number_end = 0;
  while (number_end < text.size() && text[number_end] >= '0' && text[number_end] <= '9') {
    ++number_end;
  }
  size_t value = 0;
  if (number_end == 0 || !parseCount(text.substr(0, number_end), 0, 86400000, value)) return false;
  const std::string unit = text.substr(number_end);
  if (unit == "ms") {
    out = std::chrono::milliseconds(value);
  } else if (unit == "s") {
    out = std::chrono::seconds(value);
  } else if (unit == "m") {
    out = std::chrono::minutes(value);
  } else {
    return false;
  }
  return true;
}

// "16777216", "64KiB", "16MiB", "1GiB": the watch stream byte budget.
bool parseBytes(const std::string& text, size_t min, size_t max, size_t& out) {
  size_t number_end = 0;
  while (number_end < text.size() && text[number_end] >= '0' && text[number_end] <= '9') {
    ++number_end;
  }
  const std::string unit = text.substr(number_end);
  int shift = 0;
  if (unit == "KiB") {
    shift = 10;
  } else if (unit == "MiB") {
    shift = 20;
  } else if (unit == "GiB") {
    shift = 30;
  } else if (!unit.empty()) {
    return false;
  }
  size_t value = 0;
  if (number_end == 0 || !parseCount(text.substr(0, number_end), 0, max >> shift, value)) {
    return false;
  }
  value <<= shift;
  if (value < min) return false;
  out = value;
  return true;
}

}  // namespace

std::string serverUsage() {
  return R"(Usage: wsvisor [flags]

Supervises WebSocket connections to upstream endpoints registered over gRPC.

Flags:
  --listen ADDR            gRPC address (wsvisor.v1.Supervisor, grpc.health.v1.Health,
                           reflection). Default 0.0.0.0:50051.
  --health-listen ADDR     Extra plaintext address that serves only grpc.health.v1.Health, for
                           probes that cannot do TLS or send tokens (kubelet gRPC probes).
                           Default: none (health is always served on --listen too).
  --tls-cert FILE          PEM certificate chain: serve gRPC over TLS (with --tls-key). Both
                           files are re-read every minute, so rotation needs no restart.
  --tls-key FILE           PEM private key of --tls-cert (unencrypted).
  --client-ca FILE         PEM CA bundle: require client certificates signed by it (mutual
                           TLS). Needs --tls-cert.
  --auth-token-file FILE   Bearer tokens, one "NAME ACCESS TOKEN" line each (ACCESS: read or
                           write; tokens of 16+ characters; '#' starts a comment). Every
                           Supervisor call then needs 'authorization: Bearer <token>':
                           UNAUTHENTICATED without a valid one, PERMISSION_DENIED for a read
                           token that writes. Health and metrics stay open. Re-read on SIGHUP.
  --metrics-listen ADDR    Prometheus /metrics address (host:port). Default 0.0.0.0:9464.
  --metrics-per-endpoint B true or false: series labelled by endpoint (up, RTT histogram, last
                           transition). false leaves only aggregates. Default true.
  --metrics-endpoint-labels K1,K2
                           Endpoint label keys copied onto per-endpoint series (e.g. team,env);
                           characters other than [a-zA-Z0-9_] become '_'. Default none.
  --data-dir DIR           Directory of the durable endpoint store (SQLite, wsvisor.db). Every
                           acknowledged change is on disk before the RPC answers; endpoints are
                           restored from it on start. Default ./wsvisor-data.
  --store STORE            Where endpoints are stored: sqlite (in --data-dir; the default) or
                           etcd://HOST:PORT[,HOST:PORT...][/PREFIX], etcd's v3 API on those
                           members (port default 2379), keys under PREFIX (default /wsvisor).
                           Every acknowledged change is committed by a quorum of etcd members.
  --store-connect-timeout D
                           How long start-up waits for the store to answer (etcd: a reachable
                           member with a leader) before it fails (e.g. 5s, 1m). Default 30s.
  --store-ca FILE          PEM CA bundle that verifies the etcd members' certificates: talk to
                           etcd over TLS. Without it, etcd is spoken to in plaintext.
  --store-cert FILE        PEM client certificate for etcd's --client-cert-auth (with
                           --store-key; needs --store-ca).
  --store-key FILE         PEM private key of --store-cert (unencrypted).
  --store-server-name NAME Name the etcd certificates must carry instead of each endpoint's
                           host (needs --store-ca). Default: the host of each endpoint.
  --member-id ID           With an etcd store: this replica's id in the cluster (letters, digits,
                           '.', '_', '-'; at most 128). Must be unique among live replicas; a
                           replica refuses to start while another holds it. Default: host name.
  --member-ttl D           With an etcd store: TTL of this replica's etcd lease, whole seconds
                           from 2s to 60s. A replica that cannot renew it stops its connections
                           before it expires; survivors take over its endpoints after it
                           expires. Default 5s.
  --import-from-data-dir DIR
                           With an etcd store: copy every endpoint of the single-node registry
                           in DIR (DIR/wsvisor.db, as --data-dir) into etcd with its spec, owner
                           and generation, then exit: 0 when all were copied or already there.
                           Endpoints already in etcd are left as they are; run it once, before
                           the replicas start. Serves nothing.
  --config FILE            YAML file of endpoints to supervise (see docs/config.md). Applied on
                           start and on SIGHUP as a diff; its endpoints cannot be changed or
                           removed over the API. A bad file changes nothing. Default: none.
  --restore-dial-rate N    After a restart, restored endpoints make their first connection
                           attempts at no more than N per second, spread evenly. Default 2000.
  --threads N              io threads that run the WebSocket connections (1-64). Default 1:
                           one thread is cheapest per heartbeat until it is saturated.
  --max-endpoints N        Registrations beyond N are refused with RESOURCE_EXHAUSTED; the
                           open-files limit may lower it (logged at start-up). Default 100000.
  --max-connections N      Hold at most N upstream connections (endpoints and probes) in this
                           process, below what the open-files limit allows. In cluster mode the
                           replica claims no more; endpoints it is preferred for go to the next
                           replica with room. Default: the open-files budget.
  --shutdown-grace D       On SIGTERM/SIGINT, how long to wait for upstream connections to
                           close (e.g. 500ms, 10s). Default 10s.
  --history-size N         Health transitions kept in memory per endpoint for
                           GetEndpointHistory (0-1024; 0 keeps none). Default 64. Endpoints
                           whose health never changes cost nothing.
  --replay-log-size N      Changes kept in memory so that a WatchHealth stream can resume
                           from a revision (0-1048576; 0 keeps none). About 0.4 KiB per
                           change plus its labels: 6 MiB at the default 16384.
  --max-watch-streams N    WatchHealth streams open at once (1-100000); more are refused with
                           RESOURCE_EXHAUSTED and counted in
                           wsvisor_watch_streams_exhausted_total. Default 1000.
  --watch-stream-bytes SIZE
                           Events one WatchHealth stream may have queued (64KiB-1GiB; bytes, or
                           with KiB, MiB, GiB). A slow stream gets the latest state per endpoint
                           instead of every change; one whose latest state per endpoint still
                           exceeds SIZE is ended with RESOURCE_EXHAUSTED. Default 32MiB: one
                           event per endpoint for ~40,000 endpoints with a few labels.
  --log-level LEVEL        debug, info, warning or error. Default info.
  --help                   Print this help.
)";
}

std::optional<ServerOptions> parseServerOptions(const std::vector<std::string>& args,
                                                std::string& error, bool& help_requested) {
  ServerOptions options;
  help_requested = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    std::optional<std::string> value;
    if (name == "--help" || name == "-h") {
      help_requested = true;
      return std::nullopt;
    }
    if (name.rfind("--", 0) != 0) {
      error = "unexpected argument '" + name + "'";
      return std::nullopt;
    }
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      error = name + " needs a value";
      return std::nullopt;
    }
    const std::string& v = *value;
    if (name == "--listen") {
      options.listen = v;
    } else if (name == "--health-listen") {
      options.health_listen = v;
    } else if (name == "--tls-cert") {
      options.tls_cert_file = v;
    } else if (name == "--tls-key") {
      options.tls_key_file = v;
    } else if (name == "--client-ca") {
      options.client_ca_file = v;
    } else if (name == "--auth-token-file") {
      options.auth_token_file = v;
    } else if (name == "--metrics-listen") {
      options.metrics_listen = v;
    } else if (name == "--metrics-per-endpoint") {
      if (v != "true" && v != "false") {
        error = "--metrics-per-endpoint must be true or false, got '" + v + "'";
        return std::nullopt;
      }
      options.metrics_per_endpoint = v == "true";
    } else if (name == "--metrics-endpoint-labels") {
      options.metrics_endpoint_labels.clear();
      size_t start = 0;
      while (start <= v.size()) {
        const size_t comma = std::min(v.find(',', start), v.size());
        const std::string key = v.substr(start, comma - start);
        if (key.empty() || key.size() > 63) {
          error = "--metrics-endpoint-labels must be comma-separated label keys, got '" + v + "'";
          return std::nullopt;
        }
        options.metrics_endpoint_labels.push_back(key);
        start = comma + 1;
        if (comma == v.size()) break;
      }
      if (auto problem = checkCopiedLabelKeys(options.metrics_endpoint_labels)) {
        error = "--metrics-endpoint-labels: " + *problem;
        return std::nullopt;
      }
    } else if (name == "--data-dir") {
      options.data_dir = v;
    } else if (name == "--store") {
      std::string problem;
      auto location = parseStoreLocation(v, problem);
      if (!location) {
        error = "--store: " + problem;
        return std::nullopt;
      }
      options.store = std::move(*location);
    } else if (name == "--import-from-data-dir") {
      options.import_from_data_dir = v;
    } else if (name == "--store-ca") {
      options.store_ca_file = v;
    } else if (name == "--store-cert") {
      options.store_cert_file = v;
    } else if (name == "--store-key") {
      options.store_key_file = v;
    } else if (name == "--store-server-name") {
      options.store_server_name = v;
    } else if (name == "--store-connect-timeout") {
      if (!parseMillis(v, options.store_connect_timeout) ||
          options.store_connect_timeout.count() == 0) {
        error = "--store-connect-timeout must be a positive duration like 500ms, 10s or 1m, got '" +
                v + "'";
        return std::nullopt;
      }
    } else if (name == "--member-id") {
      const bool valid =
          !v.empty() && v.size() <= 128 && std::all_of(v.begin(), v.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
          });
      if (!valid) {
        error = "--member-id must be 1-128 letters, digits, '.', '_' or '-', got '" + v + "'";
        return std::nullopt;
      }
      options.member_id = v;
    } else if (name == "--member-ttl") {
      std::chrono::milliseconds ttl{0};
      if (!parseMillis(v, ttl) || ttl.count() % 1000 != 0 || ttl < std::chrono::seconds(2) ||
          ttl > std::chrono::seconds(60)) {
        error =
            "--member-ttl must be whole seconds from 2s to 60s (etcd leases count seconds), "
            "got '" +
            v + "'";
        return std::nullopt;
      }
      options.member_ttl = std::chrono::duration_cast<std::chrono::seconds>(ttl);
    } else if (name == "--config") {
      options.config_file = v;
    } else if (name == "--restore-dial-rate") {
      size_t rate = 0;
      if (!parseCount(v, 1, 1000000, rate)) {
        error = "--restore-dial-rate must be a number from 1 to 1000000, got '" + v + "'";
        return std::nullopt;
      }
      options.restore_dials_per_second = static_cast<double>(rate);
    } else if (name == "--threads") {
      if (!parseCount(v, 1, 64, options.threads)) {
        error = "--threads must be a number from 1 to 64, got '" + v + "'";
        return std::nullopt;
      }
    } else if (name == "--max-endpoints") {
      if (!parseCount(v, 1, 10000000, options.max_endpoints)) {
        error = "--max-endpoints must be a number from 1 to 10000000, got '" + v + "'";
        return std::nullopt;
      }
    } else if (name == "--max-connections") {
      if (!parseCount(v, 1, 10000000, options.max_connections)) {
        error = "--max-connections must be a number from 1 to 10000000, got '" + v + "'";
        return std::nullopt;
      }
    } else if (name == "--shutdown-grace") {
      if (!parseMillis(v, options.shutdown_grace)) {
        error = "--shutdown-grace must be a duration like 500ms, 10s or 1m, got '" + v + "'";
        return std::nullopt;
      }
    } else if (name == "--history-size") {
      if (!parseCount(v, 0, 1024, options.history_size)) {
        error = "--history-size must be a number from 0 to 1024, got '" + v + "'";
        return std::nullopt;
      }
    } else if (name == "--replay-log-size") {
      if (!parseCount(v, 0, 1048576, options.replay_log_size)) {
        error = "--replay-log-size must be a number from 0 to 1048576, got '" + v + "'";
        return std::nullopt;
      }
    } else if (name == "--max-watch-streams") {
      if (!parseCount(v, 1, 100000, options.max_watch_streams)) {
        error = "--max-watch-streams must be a number from 1 to 100000, got '" + v + "'";
        return std::nullopt;
      }
    } else if (name == "--watch-stream-bytes") {
      if (!parseBytes(v, size_t{64} << 10, size_t{1} << 30, options.watch_stream_bytes)) {
        error =
            "--watch-stream-bytes must be a size from 64KiB to 1GiB (bytes, or a whole number "
            "with KiB, MiB or GiB, e.g. 16MiB), got '" +
            v + "'";
        return std::nullopt;
      }
    } else if (name == "--log-level") {
      if (!parseLogLevel(v, options.log_level)) {
        error = "--log-level must be debug, info, warning or error, got '" + v + "'";
        return std::nullopt;
      }
    } else {
      error = "unknown flag " + name + " (see --help)";
      return std::nullopt;
    }
  }
  if (options.data_dir.empty()) {
    error = "--data-dir must not be empty";
    return std::nullopt;
  }
  if (options.listen.empty()) {
    error = "--listen must not be empty";
    return std::nullopt;
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    error = "--tls-cert and --tls-key go together: give both or neither";
    return std::nullopt;
  }
  if (!options.client_ca_file.empty() && options.tls_cert_file.empty()) {
    error = "--client-ca needs --tls-cert and --tls-key: client certificates are checked in TLS";
    return std::nullopt;
  }
  if (options.store_cert_file.empty() != options.store_key_file.empty()) {
    error = "--store-cert and --store-key go together: give both or neither";
    return std::nullopt;
  }
  if (options.store_ca_file.empty() &&
      (!options.store_cert_file.empty() || !options.store_server_name.empty())) {
    error = std::string(options.store_cert_file.empty() ? "--store-server-name" : "--store-cert") +
            " needs --store-ca: TLS to etcd is turned on by the CA that verifies it";
    return std::nullopt;
  }
  if (!options.store_ca_file.empty() && options.store.kind != StoreLocation::Kind::kEtcd) {
    error = "--store-ca needs --store etcd://...: only etcd is reached over the network";
    return std::nullopt;
  }
  if (!options.import_from_data_dir.empty() && options.store.kind != StoreLocation::Kind::kEtcd) {
    error =
        "--import-from-data-dir needs --store etcd://...: it copies a single-node registry "
        "into etcd";
    return std::nullopt;
  }
  if (!options.health_listen.empty() && options.health_listen == options.listen) {
    error = "--health-listen must differ from --listen";
    return std::nullopt;
  }
  return options;
}

}  // namespace wsvisor::service
