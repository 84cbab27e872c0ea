#pragma once

#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>
#include <grpcpp/support/status.h>

#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "service/api/status_code_name.h"
#include "service/ctl/text_table.h"
#include "wsvisor/v1/supervisor.pb.h"

namespace wsvisor::ctl {

using WallTime = std::chrono::system_clock::time_point;

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

// How long ago something happened, short and rounded down as kubectl writes ages: "350ms",
// "45s", "3m12s", "42m", "3h5m", "26h", "2d3h", "12d". A negative age (the server's clock is
// ahead of ours) is "0s".
std::string formatAge(std::chrono::nanoseconds age);

// Whether the endpoint's last failure explains its state now, rather than being history:
// nothing has succeeded since (consecutive failures), and it explains the connection phase. Any
// failure explains a redial (connecting, backing off); on an open connection only a failed
// heartbeat does (pong_timeout, reply_mismatch, silence), since every other reason ended or
// prevented a connection: a connection_refused next to "open" is from before it opened.
bool failureIsCurrent(const v1::EndpointStatus& status);

// The LAST FAILURE cell of `list`, `get` and `watch`: describeFailure() when the failure is
// current (see failureIsCurrent()), else the same after its age at `now`, as history:
// "3m12s ago: connection_refused: connection refused" ("earlier: ..." when the server sent no
// time). "-" when there was no failure.
std::string lastFailureCell(const v1::EndpointStatus& status, WallTime now);

// Which command's endpoint table to print. `list` is scanned for trouble across many endpoints;
// `get` looks at one, often before an `update`, so it also shows the generation to pass as
// --expected-generation.
enum class EndpointTable { kList, kGet };

// The `get` and `list` table: ID, HEALTH, PHASE, RTT (smoothed), FAILURES (consecutive), OWNER,
// GENERATION (`get` only), SUPERVISED BY (only when some endpoint names the cluster replica that
// supervises it; "-" for one that no replica supervises), URL, LAST FAILURE (see
// lastFailureCell(); ages are taken at `now`).
// The free-text failure comes last so that a long detail does not push the other columns apart.
// An owner or generation that the server did not send (one older than both) shows as "-".
// Prints the header alone when `endpoints` is empty.
void printEndpointTable(const std::vector<v1::Endpoint>& endpoints, EndpointTable table,
                        WallTime now, std::ostream& out);

// The `history` table, oldest first: TIME, CHANGE ("healthy->unhealthy"), RTT (smoothed, at
// that moment), REVISION, REASON, FAILURE (the failure behind a change to a down state). The free
// texts come last, as in the endpoint table. When older transitions were dropped, a line after
// the table says how many.
void printHistoryTable(const v1::GetEndpointHistoryResponse& history, std::ostream& out);

// `watch` for people: a table with the header TIME, REVISION, EVENT, ID, HEALTH, PHASE, LAST
// FAILURE, one row per event, e.g.
//   2024-05-01T12:00:00.123Z  #42  changed       echo-1  healthy->unhealthy  backing_off
//   pong_timeout: no pong within 1s
// (all on one line). HEALTH shows "previous->now" when a change changed it; LAST FAILURE is
// lastFailureCell() at the moment the event is printed; a coalesced event ends in
// "  (coalesced)". SNAPSHOT_COMPLETE is not a row but a line of its own:
//   (snapshot complete at #42; changes follow)
// or, for a resumed watch, "(replay complete at #42; live changes follow)".
//
// The rows before that marker (the snapshot, or the replayed changes) arrive at once and are
// held until it comes, so that they are printed as one table with its columns fitted; from then
// on each row is printed as it comes, in the same columns (see TextTable::printNewRows()). EVENT,
// HEALTH and PHASE are wide enough for their usual words from the start.
class WatchTable {
 public:
  explicit WatchTable(bool resuming);

  // Prints what `event` completes to `out`: nothing while rows are held, else its row, or the
  // held rows and the marker.
  void add(const v1::HealthEvent& event, WallTime now, std::ostream& out);

  // Prints the rows still held, if any: the stream ended before its marker.
  void finish(std::ostream& out);

 private:
  const bool resuming_;
  bool marker_seen_ = false;
  bool rows_held_ = false;
  TextTable table_;
};

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
