#pragma once

#include <string>
#include <variant>
#include <vector>

#include "supervisor/core/endpoint_spec.h"

namespace wsvisor::service {

// The declarative endpoint file given with --config (GitOps, a Kubernetes ConfigMap):
//
//   endpoints:
//     - id: prices                       # as EndpointSpec in the API, snake_case keys
//       url: wss://feed.example.com/ws
//       labels: {team: red, env: prod}
//       headers: [{name: Authorization, value: "Bearer …"}]
//       subprotocols: [v2.prices]
//       heartbeat: {mode: ping, interval: 10s, timeout: 10s, unhealthy_threshold: 1,
//                   healthy_threshold: 1}      # text mode also takes payload and expect
//       backoff: {initial: 1s, multiplier: 1.6, jitter: 0.2, max: 120s, reset_after: 10s}
//       connect_timeout: 20s
//       max_message_bytes: 1048576
//       tls: {ca_file: /etc/ssl/ca.pem, server_name: feed.example.com}
//
// Durations are written as in wsvisorctl ("250ms", "10s", "1m"). Unknown keys are errors, so a
// typo never silently falls back to a default. Field checks beyond the file's shape happen in
// core::validateSpec(), as for the API.
//
// Returns the specs, or a message naming the place of the first problem
// (e.g. "endpoints[2].heartbeat.interval: invalid duration ...").
std::variant<std::vector<core::EndpointSpec>, std::string> parseConfigText(const std::string& text);
std::variant<std::vector<core::EndpointSpec>, std::string> loadConfigFile(const std::string& path);

}  // namespace wsvisor::service
