#pragma once

#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>
#include <grpcpp/support/status.h>

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "service/api/status_code_name.h"
#include "wsvisor/v1/supervisor.pb.h"

namespace wsvisor::ctl {

enum class OutputFormat {
  kTable,  // for people: aligned columns, short words
  kJson,   // for programs: protobuf JSON, one message per line
};

// Enum values as short lower-case words, the proto name without its prefix: "healthy",
// "backing_off", "pong_timeout", "snapshot_complete". A value this build does not know (sent by
// a newer server) prints as its number, e.g. "reason_12", rather than as nothing.
std::string healthWord(v1::Health health);
// The health word; while flapping with the health of the moment: "flapping(unhealthy)".
std::string healthCell(const v1::EndpointStatus& status);
std::string phaseWord(v1::ConnectionPhase phase);
std::string failureReasonWord(v1::FailureReason reason);
std::string eventTypeWord(v1::HealthEvent::Type type);
// "api" or "config-file" (hyphenated, as the owner is usually spoken of: the config file).
std::string ownerWord(v1::Owner owner);

// One failure on one line: the reason, the close code or HTTP status when there is one, and the
// detail: "closed_by_peer (close 1006): connection reset", "handshake_rejected (http 403)".
std::string describeFailure(const v1::Failure& failure);

// RFC 3339 in UTC with milliseconds ("2024-05-01T12:00:00.123Z"); "-" when unset.
std::string formatTimestamp(const google::protobuf::Timestamp& time);

// Which command's endpoint table to print. `list` is scanned for trouble across many endpoints;
// `get` looks at one, often before an `update`, so it also shows the generation to pass as
// --expected-generation.
enum class EndpointTable { kList, kGet };

// The `get` and `list` table: ID, HEALTH, PHASE, RTT (smoothed), FAILURES (consecutive), OWNER,
// GENERATION (`get` only), URL, LAST FAILURE. The free-text failure comes last so that a long
// detail does not push the other columns apart. An owner or generation that the server did not
// send (one older than both) shows as "-". Prints the header alone when `endpoints` is empty.
void printEndpointTable(const std::vector<v1::Endpoint>& endpoints, EndpointTable table,
                        std::ostream& out);

// The `history` table, oldest first: TIME, CHANGE ("healthy->unhealthy"), RTT (smoothed, at
// that moment), REVISION, REASON, FAILURE (the failure behind a change to a down state). The free
// texts come last, as in the endpoint table. When older transitions were dropped, a line after
// the table says how many.
void printHistoryTable(const v1::GetEndpointHistoryResponse& history, std::ostream& out);

// One `watch` event as one line (no newline), e.g.
//   2024-05-01T12:00:00.123Z  #42  changed       echo-1  healthy->unhealthy  backing_off
//   pong_timeout: no pong within 1s
// (all on one line). SNAPSHOT_COMPLETE is a marker: "<time>  #<rev>  -- snapshot complete --".
// The last failure is shown only while it is news: the endpoint is not healthy or has failed
// since its last success; otherwise it is history and would read as if it had just happened.
std::string formatWatchLine(const v1::HealthEvent& event);

// A `probe` answer for people, one line per step, each ending in a newline:
//   connected in 1.269ms
//   heartbeat 1: rtt 312us
//   ...
//   OK: 3 heartbeats answered in 20.002s (rtt min 290us, avg 301us, max 312us)
// or, when the probe failed, a last line "FAILED: " + describeFailure(), e.g.
// "FAILED: connection_refused: connection refused". `mode` is the probe's heartbeat mode (PASSIVE
// and NONE answer nothing, so they have no RTTs).
std::string formatProbeReport(const v1::ProbeEndpointResponse& response, v1::HeartbeatMode mode);

// Protobuf JSON with the default options: one line, proto field names in lowerCamelCase,
// fields at their default value left out. Returns nullopt and sets `error` if the message
// cannot be printed (it has no Any fields, so this is not expected).
std::optional<std::string> toJsonLine(const google::protobuf::Message& message, std::string& error);

using service::statusCodeName;

// "<CODE_NAME>: <message>", or the code name alone when the message is empty.
std::string describeStatus(const grpc::Status& status);

}  // namespace wsvisor::ctl
