#include "service/ctl/output_format.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string_view>
#include <utility>

#include "service/api/duration_text.h"
#include "service/ctl/text_table.h"

namespace wsvisor::ctl {

using service::formatDuration;
using service::parseDuration;
using service::toProtoDuration;

namespace {

constexpr std::string_view kNone = "-";

// "HEALTH_HEALTHY" without "HEALTH_", lower-cased; `fallback` + number when `name` is empty
// (the value is not in this build's copy of the enum).
std::string enumWord(const std::string& name, std::string_view prefix, std::string_view fallback,
                     int value) {
  if (name.empty()) return std::string(fallback) + std::to_string(value);
  std::string_view word = name;
  if (word.substr(0, prefix.size()) == prefix) word.remove_prefix(prefix.size());
  std::string lower(word);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

// An endpoint with no connection phase (one just unregistered) shows "-", not "unspecified".
std::string phaseCell(v1::ConnectionPhase phase) {
  return phase == v1::CONNECTION_PHASE_UNSPECIFIED ? std::string(kNone) : phaseWord(phase);
}

std::string smoothedRtt(const v1::EndpointStatus& status) {
  return status.has_smoothed_rtt() ? formatDuration(status.smoothed_rtt()) : std::string(kNone);
}

std::string ownerCell(v1::Owner owner) {
  return owner == v1::OWNER_UNSPECIFIED ? std::string(kNone) : ownerWord(owner);
}

std::string generationCell(uint64_t generation) {
  return generation == 0 ? std::string(kNone) : std::to_string(generation);
}

WallTime toWallTime(const google::protobuf::Timestamp& time) {
  return WallTime(std::chrono::duration_cast<WallTime::duration>(
      std::chrono::seconds(time.seconds()) + std::chrono::nanoseconds(time.nanos())));
}

// "healthy", or "unhealthy->healthy" for a change that changed the health.
std::string watchHealthCell(const v1::HealthEvent& event) {
  const v1::EndpointStatus& status = event.status();
  std::string cell;
  if (event.type() == v1::HealthEvent::TYPE_CHANGED && event.previous_health() != status.health()) {
    cell = healthWord(event.previous_health()) + "->";
  }
  return cell + healthCell(status);
}

}  // namespace

std::string healthWord(v1::Health health) {
  return enumWord(v1::Health_Name(health), "HEALTH_", "health_", health);
}

// "flapping(unhealthy)": while flapping, whether the endpoint is up or down right now.
std::string healthCell(const v1::EndpointStatus& status) {
  std::string cell = healthWord(status.health());
  if (status.health() == v1::HEALTH_FLAPPING) {
    cell += "(" + healthWord(status.underlying_health()) + ")";
  }
  return cell;
}

std::string phaseWord(v1::ConnectionPhase phase) {
  return enumWord(v1::ConnectionPhase_Name(phase), "CONNECTION_PHASE_", "phase_", phase);
}

std::string failureReasonWord(v1::FailureReason reason) {
  return enumWord(v1::FailureReason_Name(reason), "FAILURE_REASON_", "reason_", reason);
}

std::string eventTypeWord(v1::HealthEvent::Type type) {
  return enumWord(v1::HealthEvent::Type_Name(type), "TYPE_", "type_", type);
}

std::string ownerWord(v1::Owner owner) {
  const std::string& name = v1::Owner_Name(owner);
  std::string word = enumWord(name, "OWNER_", "owner_", owner);
  if (name.empty()) return word;  // "owner_9", like the other unknown values
  for (char& c : word) {
    if (c == '_') c = '-';
  }
  return word;
}

std::string describeFailure(const v1::Failure& failure) {
  std::string text = failureReasonWord(failure.reason());
  if (failure.close_code() != 0) text += " (close " + std::to_string(failure.close_code()) + ")";
  if (failure.http_status() != 0) text += " (http " + std::to_string(failure.http_status()) + ")";
  if (!failure.detail().empty()) text += ": " + failure.detail();
  return text;
}

std::string formatProbeReport(const v1::ProbeEndpointResponse& response, v1::HeartbeatMode mode) {
  std::string report;
  if (response.has_connect_time()) {
    report += "connected in " + formatDuration(response.connect_time()) + "\n";
  }
  std::chrono::nanoseconds min = std::chrono::nanoseconds::max();
  std::chrono::nanoseconds max{0};
  std::chrono::nanoseconds sum{0};
  for (int i = 0; i < response.rtts_size(); ++i) {
    const google::protobuf::Duration& rtt = response.rtts(i);
    report += "heartbeat " + std::to_string(i + 1) + ": rtt " + formatDuration(rtt) + "\n";
    const auto nanos = std::chrono::seconds(rtt.seconds()) + std::chrono::nanoseconds(rtt.nanos());
    min = std::min(min, nanos);
    max = std::max(max, nanos);
    sum += nanos;
  }
  if (!response.success()) {
    return report + "FAILED: " + describeFailure(response.failure()) + "\n";
  }
  const std::string took = formatDuration(response.duration());
  switch (mode) {
    case v1::HEARTBEAT_MODE_PASSIVE:
      return report + "OK: the upstream's messages arrived in time; probe took " + took + "\n";
    case v1::HEARTBEAT_MODE_NONE:
      return report + "OK: connected; probe took " + took + "\n";
    default:
      break;
  }
  report += "OK: " + std::to_string(response.rtts_size()) + " heartbeat" +
            (response.rtts_size() == 1 ? "" : "s") + " answered in " + took;
  if (response.rtts_size() > 0) {
    report += " (rtt min " + formatDuration(toProtoDuration(min)) + ", avg " +
              formatDuration(toProtoDuration(sum / response.rtts_size())) + ", max " +
              formatDuration(toProtoDuration(max)) + ")";
  }
  return report + "\n";
}

std::string formatAge(std::chrono::nanoseconds age) {
  using std::chrono::duration_cast;
  if (age < std::chrono::seconds(1)) {
    const auto ms = duration_cast<std::chrono::milliseconds>(age).count();
    return ms <= 0 ? "0s" : std::to_string(ms) + "ms";
  }
  const int64_t seconds = duration_cast<std::chrono::seconds>(age).count();
  const int64_t minutes = seconds / 60;
  const int64_t hours = minutes / 60;
  const int64_t days = hours / 24;
  // A larger unit and, while it is still small, the next smaller one.
  auto two = [](int64_t big, const char* big_unit, int64_t small, const char* small_unit) {
    std::string text = std::to_string(big) + big_unit;
    if (small != 0) text += std::to_string(small) + small_unit;
    return text;
  };
  if (minutes < 2) return std::to_string(seconds) + "s";
  if (minutes < 10) return two(minutes, "m", seconds % 60, "s");
  if (hours < 3) return std::to_string(minutes) + "m";
  if (hours < 8) return two(hours, "h", minutes % 60, "m");
  if (hours < 48) return std::to_string(hours) + "h";
  if (days < 8) return two(days, "d", hours % 24, "h");
  return std::to_string(days) + "d";
}

bool failureIsCurrent(const v1::EndpointStatus& status) {
  if (!status.has_last_failure() || status.consecutive_failures() == 0) return false;
  switch (status.phase()) {
    case v1::CONNECTION_PHASE_CONNECTING:
    case v1::CONNECTION_PHASE_BACKING_OFF:
      return true;
    case v1::CONNECTION_PHASE_OPEN:
      switch (status.last_failure().reason()) {
        case v1::FAILURE_REASON_PONG_TIMEOUT:
        case v1::FAILURE_REASON_REPLY_MISMATCH:
        case v1::FAILURE_REASON_SILENCE:
          return true;
        default:
          return false;
      }
    default:
      // No connection (an unregistered endpoint's last state): nothing left to explain.
      return false;
  }
}

std::string lastFailureCell(const v1::EndpointStatus& status, WallTime now) {
  // Not supervised: what is wrong with its stored spec is all there is to say.
  if (status.phase() == v1::CONNECTION_PHASE_STORED_SPEC_INVALID) return status.transition_reason();
  if (!status.has_last_failure()) return std::string(kNone);
  const v1::Failure& failure = status.last_failure();
  const std::string text = describeFailure(failure);
  if (failureIsCurrent(status)) return text;
  if (!failure.has_time() || (failure.time().seconds() == 0 && failure.time().nanos() == 0)) {
    return "earlier: " + text;
  }
  return formatAge(now - toWallTime(failure.time())) + " ago: " + text;
}

std::string formatTimestamp(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0 && time.nanos() == 0) return std::string(kNone);
  const std::time_t seconds = static_cast<std::time_t>(time.seconds());
  std::tm utc{};
  if (gmtime_r(&seconds, &utc) == nullptr) return std::string(kNone);
  char text[64];
  const size_t length = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  char millis[8];
  std::snprintf(millis, sizeof millis, ".%03dZ", time.nanos() / 1'000'000);
  return std::string(text, length) + millis;
}

void printEndpointTable(const std::vector<v1::Endpoint>& endpoints, EndpointTable table,
                        WallTime now, std::ostream& out) {
  const bool with_generation = table == EndpointTable::kGet;
  // Only a cluster names the replica that supervises an endpoint: a single wsvisor's table keeps
  // its columns, and a cluster's shows "-" where no replica supervises one.
  const bool with_supervisor = std::any_of(
      endpoints.begin(), endpoints.end(),
      [](const v1::Endpoint& endpoint) { return !endpoint.status().supervised_by().empty(); });
  std::vector<std::string> header = {"ID", "HEALTH", "PHASE", "RTT", "FAILURES", "OWNER"};
  if (with_generation) header.push_back("GENERATION");
  if (with_supervisor) header.push_back("SUPERVISED BY");
  header.insert(header.end(), {"URL", "LAST FAILURE"});
  TextTable text(std::move(header));
  for (const v1::Endpoint& endpoint : endpoints) {
    const v1::EndpointStatus& status = endpoint.status();
    std::vector<std::string> row = {endpoint.spec().id(),
                                    healthCell(status),
                                    phaseCell(status.phase()),
                                    smoothedRtt(status),
                                    std::to_string(status.consecutive_failures()),
                                    ownerCell(endpoint.owner())};
    if (with_generation) row.push_back(generationCell(endpoint.generation()));
    if (with_supervisor) {
      row.push_back(status.supervised_by().empty() ? std::string(kNone) : status.supervised_by());
    }
    row.insert(row.end(), {endpoint.spec().url(), lastFailureCell(status, now)});
    text.addRow(std::move(row));
  }
  text.print(out);
}

void printHistoryTable(const v1::GetEndpointHistoryResponse& history, std::ostream& out) {
  TextTable text({"TIME", "CHANGE", "RTT", "REVISION", "REASON", "FAILURE"});
  for (const v1::HealthTransition& transition : history.transitions()) {
    text.addRow(
        {formatTimestamp(transition.time()),
         healthWord(transition.previous_health()) + "->" + healthWord(transition.health()),
         transition.has_smoothed_rtt() ? formatDuration(transition.smoothed_rtt())
                                       : std::string(kNone),
         std::to_string(transition.revision()),
         transition.reason().empty() ? std::string(kNone) : transition.reason(),
         transition.has_failure() ? describeFailure(transition.failure()) : std::string(kNone)});
  }
  text.print(out);
  if (history.dropped() > 0) {
    out << "(" << history.dropped() << " older transition" << (history.dropped() == 1 ? "" : "s")
        << " no longer kept)\n";
  }
}

WatchTable::WatchTable(bool resuming)
    : resuming_(resuming),
      table_({"TIME", "REVISION", "EVENT", "ID", "HEALTH", "PHASE", "LAST FAILURE"}) {
  // Room for the longest usual words, so that later rows rarely shift: a time as
  // formatTimestamp() writes it, "unregistered", "unhealthy->healthy", "backing_off".
  table_.reserveWidth(0, std::string_view("2024-05-01T12:00:00.000Z").size());
  table_.reserveWidth(2, 12);
  table_.reserveWidth(4, 18);
  table_.reserveWidth(5, 11);
}

void WatchTable::add(const v1::HealthEvent& event, WallTime now, std::ostream& out) {
  const std::string revision = "#" + std::to_string(event.revision());
  if (event.type() == v1::HealthEvent::TYPE_SNAPSHOT_COMPLETE) {
    // Later revisions are higher by one per change: they have as many digits for a long time.
    table_.reserveWidth(1, revision.size());
    table_.printNewRows(out);  // the header at least
    marker_seen_ = true;
    rows_held_ = false;
    out << (resuming_ ? "(replay complete at " : "(snapshot complete at ") << revision
        << (resuming_ ? "; live changes follow)\n" : "; changes follow)\n");
    return;
  }
  std::string failure = lastFailureCell(event.status(), now);
  if (event.coalesced()) failure += "  (coalesced)";
  table_.addRow({formatTimestamp(event.time()), revision, eventTypeWord(event.type()),
                 event.endpoint_id(), watchHealthCell(event), phaseCell(event.status().phase()),
                 std::move(failure)});
  if (marker_seen_) {
    table_.printNewRows(out);
  } else {
    rows_held_ = true;
  }
}

void WatchTable::finish(std::ostream& out) {
  if (rows_held_) table_.printNewRows(out);
  rows_held_ = false;
}

std::optional<std::string> toJsonLine(const google::protobuf::Message& message,
                                      std::string& error) {
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json);
  if (!status.ok()) {
    error = "cannot print " + message.GetTypeName() + " as JSON: " + status.ToString();
    return std::nullopt;
  }
  return json;
}

std::string describeStatus(const grpc::Status& status) {
  std::string text = statusCodeName(status.error_code());
  if (!status.error_message().empty()) text += ": " + status.error_message();
  return text;
}

}  // namespace wsvisor::ctl
