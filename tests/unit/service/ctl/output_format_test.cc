// How endpoints, watch events and errors are printed for people and for programs.
#include "service/ctl/output_format.h"

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <sstream>
#include <string>
#include <vector>

namespace wsvisor::ctl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

template <typename Message>
Message fromText(const std::string& text) {
  Message message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

// 2024-05-01T12:00:00Z
constexpr int64_t kMay1Noon = 1714564800;

// The moment the tests print at: 2024-05-01T12:05:00Z.
const WallTime kNow = WallTime(std::chrono::seconds(kMay1Noon + 300));

// A table line split at its column gaps (two or more spaces).
std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> result;
  size_t at = 0;
  while (at < line.size()) {
    const size_t gap = line.find("  ", at);
    result.push_back(line.substr(at, gap - at));
    if (gap == std::string::npos) break;
    at = line.find_first_not_of(' ', gap);
  }
  return result;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> result;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) result.push_back(line);
  return result;
}

// What `watch` prints for `events` (rows still held are printed at the end).
std::vector<std::string> watchOutput(const std::vector<v1::HealthEvent>& events,
                                     bool resuming = false) {
  WatchTable table(resuming);
  std::ostringstream out;
  for (const v1::HealthEvent& event : events) table.add(event, kNow, out);
  table.finish(out);
  return lines(out.str());
}

// The cells of the one row `watch` prints for `event`.
std::vector<std::string> watchRow(const v1::HealthEvent& event) {
  const std::vector<std::string> printed = watchOutput({event});
  EXPECT_EQ(printed.size(), 2u) << "a header and one row";
  return printed.size() == 2 ? cells(printed[1]) : std::vector<std::string>{};
}

TEST(OutputFormatTest, EnumsPrintAsShortLowerCaseWords) {
  EXPECT_EQ(healthWord(v1::HEALTH_HEALTHY), "healthy");
  EXPECT_EQ(healthWord(v1::HEALTH_UNKNOWN), "unknown");
  EXPECT_EQ(phaseWord(v1::CONNECTION_PHASE_BACKING_OFF), "backing_off");
  EXPECT_EQ(failureReasonWord(v1::FAILURE_REASON_PONG_TIMEOUT), "pong_timeout");
  EXPECT_EQ(failureReasonWord(v1::FAILURE_REASON_CONNECTION_REFUSED), "connection_refused");
  EXPECT_EQ(eventTypeWord(v1::HealthEvent::TYPE_SNAPSHOT_COMPLETE), "snapshot_complete");
  EXPECT_EQ(ownerWord(v1::OWNER_API), "api");
  EXPECT_EQ(ownerWord(v1::OWNER_CONFIG_FILE), "config-file");
}

TEST(OutputFormatTest, EnumValuesFromANewerServerPrintAsNumbers) {
  EXPECT_EQ(failureReasonWord(static_cast<v1::FailureReason>(42)), "reason_42");
  EXPECT_EQ(healthWord(static_cast<v1::Health>(7)), "health_7");
  EXPECT_EQ(ownerWord(static_cast<v1::Owner>(9)), "owner_9");
}

TEST(OutputFormatTest, DescribeFailure) {
  EXPECT_EQ(describeFailure(fromText<v1::Failure>(
                R"(reason: FAILURE_REASON_PONG_TIMEOUT detail: "no pong within 1s")")),
            "pong_timeout: no pong within 1s");
  EXPECT_EQ(describeFailure(
                fromText<v1::Failure>(R"(reason: FAILURE_REASON_CLOSED_BY_PEER close_code: 1006)")),
            "closed_by_peer (close 1006)");
  EXPECT_EQ(
      describeFailure(fromText<v1::Failure>(
          R"(reason: FAILURE_REASON_HANDSHAKE_REJECTED http_status: 403 detail: "HTTP 403")")),
      "handshake_rejected (http 403): HTTP 403");
}

TEST(OutputFormatTest, ProbeReportOfAFailureAfterSomeHeartbeats) {
  const auto response = fromText<v1::ProbeEndpointResponse>(R"(
    connect_time { nanos: 2000000 }
    rtts { nanos: 250000 }
    heartbeats_sent: 2
    failure { reason: FAILURE_REASON_PONG_TIMEOUT detail: "no pong within 1000ms" }
    duration { seconds: 11 }
  )");
  EXPECT_EQ(formatProbeReport(response, v1::HEARTBEAT_MODE_PING),
            "connected in 2ms\n"
            "heartbeat 1: rtt 250us\n"
            "FAILED: pong_timeout: no pong within 1000ms\n");
}

TEST(OutputFormatTest, ProbeReportOfAFailedConnectionIsOneLine) {
  const auto response = fromText<v1::ProbeEndpointResponse>(R"(
    failure { reason: FAILURE_REASON_HANDSHAKE_REJECTED http_status: 403 detail: "HTTP 403" }
  )");
  EXPECT_EQ(formatProbeReport(response, v1::HEARTBEAT_MODE_UNSPECIFIED),
            "FAILED: handshake_rejected (http 403): HTTP 403\n");
}

TEST(OutputFormatTest, ProbeReportWithoutRoundTrips) {
  const auto passive = fromText<v1::ProbeEndpointResponse>(
      R"(success: true connect_time { nanos: 1000000 } duration { seconds: 2 })");
  EXPECT_EQ(formatProbeReport(passive, v1::HEARTBEAT_MODE_PASSIVE),
            "connected in 1ms\n"
            "OK: the upstream's messages arrived in time; probe took 2s\n");
  const auto none = fromText<v1::ProbeEndpointResponse>(
      R"(success: true connect_time { nanos: 1000000 } duration { nanos: 1000000 })");
  EXPECT_EQ(formatProbeReport(none, v1::HEARTBEAT_MODE_NONE),
            "connected in 1ms\nOK: connected; probe took 1ms\n");
  const auto one = fromText<v1::ProbeEndpointResponse>(
      R"(success: true rtts { nanos: 1000 } duration { nanos: 5000000 })");
  EXPECT_EQ(formatProbeReport(one, v1::HEARTBEAT_MODE_TEXT),
            "heartbeat 1: rtt 1us\n"
            "OK: 1 heartbeat answered in 5ms (rtt min 1us, avg 1us, max 1us)\n");
}

TEST(OutputFormatTest, TimestampsAreUtcWithMilliseconds) {
  google::protobuf::Timestamp time;
  time.set_seconds(kMay1Noon);
  time.set_nanos(123'456'789);
  EXPECT_EQ(formatTimestamp(time), "2024-05-01T12:00:00.123Z");
  EXPECT_EQ(formatTimestamp(google::protobuf::Timestamp()), "-");
}

std::vector<v1::Endpoint> twoEndpoints() {
  return {
      fromText<v1::Endpoint>(R"(
        spec { id: "echo-1" url: "ws://127.0.0.1:9001/" }
        status {
          health: HEALTH_HEALTHY
          phase: CONNECTION_PHASE_OPEN
          smoothed_rtt { nanos: 1234567 }
        }
        owner: OWNER_API
        generation: 12)"),
      fromText<v1::Endpoint>(R"(
        spec { id: "feed" url: "wss://feed.example/v1" }
        status {
          health: HEALTH_UNHEALTHY
          phase: CONNECTION_PHASE_BACKING_OFF
          consecutive_failures: 3
          last_failure { reason: FAILURE_REASON_CLOSED_BY_PEER close_code: 1001 detail: "going away" }
        }
        owner: OWNER_CONFIG_FILE
        generation: 1)"),
  };
}

TEST(OutputFormatTest, ListTableShowsTheOwner) {
  std::ostringstream out;
  printEndpointTable(twoEndpoints(), EndpointTable::kList, kNow, out);
  EXPECT_EQ(
      out.str(),
      "ID      HEALTH     PHASE        RTT      FAILURES  OWNER        URL                    "
      "LAST FAILURE\n"
      "echo-1  healthy    open         1.235ms  0         api          ws://127.0.0.1:9001/   "
      "-\n"
      "feed    unhealthy  backing_off  -        3         config-file  wss://feed.example/v1  "
      "closed_by_peer (close 1001): going away\n");
}

TEST(OutputFormatTest, GetTableAlsoShowsTheGeneration) {
  std::ostringstream out;
  printEndpointTable({twoEndpoints()[0]}, EndpointTable::kGet, kNow, out);
  EXPECT_EQ(out.str(),
            "ID      HEALTH   PHASE  RTT      FAILURES  OWNER  GENERATION  URL                   "
            "LAST FAILURE\n"
            "echo-1  healthy  open   1.235ms  0         api    12          ws://127.0.0.1:9001/  "
            "-\n");
}

TEST(OutputFormatTest, OwnerAndGenerationAnOlderServerDidNotSendAreDashes) {
  v1::Endpoint endpoint = twoEndpoints()[0];
  endpoint.clear_owner();
  endpoint.clear_generation();
  std::ostringstream out;
  printEndpointTable({endpoint}, EndpointTable::kGet, kNow, out);
  EXPECT_THAT(out.str(), HasSubstr("  0         -      -           ws://"));
}

TEST(OutputFormatTest, ClusterTablesNameTheSupervisingReplica) {
  std::vector<v1::Endpoint> endpoints = twoEndpoints();
  endpoints[0].mutable_status()->set_supervised_by("replica-2");
  std::ostringstream list;
  printEndpointTable(endpoints, EndpointTable::kList, kNow, list);
  EXPECT_EQ(
      list.str(),
      "ID      HEALTH     PHASE        RTT      FAILURES  OWNER        SUPERVISED BY  URL      "
      "              LAST FAILURE\n"
      "echo-1  healthy    open         1.235ms  0         api          replica-2      "
      "ws://127.0.0.1:9001/   -\n"
      "feed    unhealthy  backing_off  -        3         config-file  -              "
      "wss://feed.example/v1  closed_by_peer (close 1001): going away\n");
  std::ostringstream get;
  printEndpointTable({endpoints[0]}, EndpointTable::kGet, kNow, get);
  EXPECT_EQ(get.str(),
            "ID      HEALTH   PHASE  RTT      FAILURES  OWNER  GENERATION  SUPERVISED BY  URL      "
            "             LAST FAILURE\n"
            "echo-1  healthy  open   1.235ms  0         api    12          replica-2      "
            "ws://127.0.0.1:9001/  -\n");
}

TEST(OutputFormatTest, EmptyEndpointTableIsTheHeader) {
  std::ostringstream list;
  printEndpointTable({}, EndpointTable::kList, kNow, list);
  EXPECT_EQ(list.str(), "ID  HEALTH  PHASE  RTT  FAILURES  OWNER  URL  LAST FAILURE\n");
  std::ostringstream get;
  printEndpointTable({}, EndpointTable::kGet, kNow, get);
  EXPECT_EQ(get.str(), "ID  HEALTH  PHASE  RTT  FAILURES  OWNER  GENERATION  URL  LAST FAILURE\n");
}

TEST(OutputFormatTest, HistoryTableShowsEachTransitionOldestFirst) {
  const auto history = fromText<v1::GetEndpointHistoryResponse>(R"(
      transitions {
        time { seconds: 1714564800 } previous_health: HEALTH_UNKNOWN health: HEALTH_HEALTHY
        revision: 1714564799000002
      }
      transitions {
        time { seconds: 1714564805 nanos: 250000000 }
        previous_health: HEALTH_HEALTHY health: HEALTH_UNHEALTHY
        reason: "heartbeat failed: pong_timeout"
        failure { reason: FAILURE_REASON_CLOSED_BY_PEER close_code: 1006 detail: "reset" }
        last_rtt { nanos: 3000000 } smoothed_rtt { nanos: 1500000 }
        revision: 1714564799000007
      }
      dropped: 3)");
  std::ostringstream out;
  printHistoryTable(history, out);
  EXPECT_EQ(out.str(),
            "TIME                      CHANGE              RTT    REVISION          REASON"
            "                          FAILURE\n"
            "2024-05-01T12:00:00.000Z  unknown->healthy    -      1714564799000002  -"
            "                               -\n"
            "2024-05-01T12:00:05.250Z  healthy->unhealthy  1.5ms  1714564799000007  heartbeat "
            "failed: pong_timeout  closed_by_peer (close 1006): reset\n"
            "(3 older transitions no longer kept)\n");
}

TEST(OutputFormatTest, EmptyHistoryTableIsTheHeader) {
  std::ostringstream out;
  printHistoryTable({}, out);
  EXPECT_EQ(out.str(), "TIME  CHANGE  RTT  REVISION  REASON  FAILURE\n");
}

TEST(OutputFormatTest, ListTableShowsAPastFailureWithItsAge) {
  // Open and healthy again; connection_refused was the reason it had to redial, 3m12s ago.
  const auto endpoint = fromText<v1::Endpoint>(R"(
      spec { id: "prices" url: "ws://127.0.0.1:8080/" }
      status {
        health: HEALTH_HEALTHY phase: CONNECTION_PHASE_OPEN
        last_failure {
          reason: FAILURE_REASON_CONNECTION_REFUSED detail: "connection refused"
          time { seconds: 1714564908 }
        }
      }
      owner: OWNER_API)");
  std::ostringstream out;
  printEndpointTable({endpoint}, EndpointTable::kList, kNow, out);
  EXPECT_EQ(cells(lines(out.str())[1]).back(), "3m12s ago: connection_refused: connection refused");
}

TEST(OutputFormatTest, AgesAreShortAndRoundedDown) {
  using std::chrono::hours;
  using std::chrono::milliseconds;
  using std::chrono::minutes;
  using std::chrono::seconds;
  EXPECT_EQ(formatAge(milliseconds(-5)), "0s");
  EXPECT_EQ(formatAge(milliseconds(0)), "0s");
  EXPECT_EQ(formatAge(milliseconds(350)), "350ms");
  EXPECT_EQ(formatAge(seconds(45)), "45s");
  EXPECT_EQ(formatAge(seconds(119)), "119s");
  EXPECT_EQ(formatAge(seconds(192)), "3m12s");
  EXPECT_EQ(formatAge(minutes(5)), "5m");
  EXPECT_EQ(formatAge(minutes(42) + seconds(59)), "42m");
  EXPECT_EQ(formatAge(hours(3) + minutes(5)), "3h5m");
  EXPECT_EQ(formatAge(hours(26) + minutes(30)), "26h");
  EXPECT_EQ(formatAge(hours(51)), "2d3h");
  EXPECT_EQ(formatAge(hours(24 * 12 + 5)), "12d");
}

TEST(OutputFormatTest, AFailureIsCurrentOnlyWhileItExplainsThePhase) {
  auto status = [](const std::string& text) { return fromText<v1::EndpointStatus>(text); };
  // Redialling after it: current.
  EXPECT_TRUE(failureIsCurrent(status(R"(
      phase: CONNECTION_PHASE_BACKING_OFF consecutive_failures: 2
      last_failure { reason: FAILURE_REASON_CONNECTION_REFUSED })")));
  EXPECT_TRUE(failureIsCurrent(status(R"(
      phase: CONNECTION_PHASE_CONNECTING consecutive_failures: 1
      last_failure { reason: FAILURE_REASON_CLOSED_BY_PEER })")));
  // A heartbeat that failed on the open connection, nothing answered since: current.
  for (const char* reason :
       {"FAILURE_REASON_PONG_TIMEOUT", "FAILURE_REASON_REPLY_MISMATCH", "FAILURE_REASON_SILENCE"}) {
    EXPECT_TRUE(
        failureIsCurrent(status(std::string("phase: CONNECTION_PHASE_OPEN consecutive_failures: 1 "
                                            "last_failure { reason: ") +
                                reason + " }")))
        << reason;
  }
  // Open, first heartbeat not answered yet: the refused connect is from before it opened.
  EXPECT_FALSE(failureIsCurrent(status(R"(
      health: HEALTH_UNHEALTHY phase: CONNECTION_PHASE_OPEN consecutive_failures: 3
      last_failure { reason: FAILURE_REASON_CONNECTION_REFUSED })")));
  // Something succeeded since.
  EXPECT_FALSE(failureIsCurrent(status(R"(
      phase: CONNECTION_PHASE_OPEN last_failure { reason: FAILURE_REASON_PONG_TIMEOUT })")));
  // No connection any more (unregistered), or no failure at all.
  EXPECT_FALSE(failureIsCurrent(status(R"(
      consecutive_failures: 1 last_failure { reason: FAILURE_REASON_PONG_TIMEOUT })")));
  EXPECT_FALSE(failureIsCurrent(status("phase: CONNECTION_PHASE_BACKING_OFF")));
}

TEST(OutputFormatTest, LastFailureCell) {
  auto cell = [](const std::string& text) {
    return lastFailureCell(fromText<v1::EndpointStatus>(text), kNow);
  };
  EXPECT_EQ(cell("phase: CONNECTION_PHASE_OPEN"), "-");
  EXPECT_EQ(cell(R"(phase: CONNECTION_PHASE_BACKING_OFF consecutive_failures: 1
                    last_failure { reason: FAILURE_REASON_DNS detail: "no such host"
                                   time { seconds: 1714564899 } })"),
            "dns: no such host");
  EXPECT_EQ(cell(R"(phase: CONNECTION_PHASE_OPEN
                    last_failure { reason: FAILURE_REASON_DNS detail: "no such host"
                                   time { seconds: 1714565099 nanos: 500000000 } })"),
            "500ms ago: dns: no such host");
  // A server that sends no time: past all the same.
  EXPECT_EQ(cell(R"(phase: CONNECTION_PHASE_OPEN last_failure { reason: FAILURE_REASON_DNS })"),
            "earlier: dns");
  // Not supervised because its stored spec is invalid: why, and nothing else.
  EXPECT_EQ(cell(R"(phase: CONNECTION_PHASE_STORED_SPEC_INVALID
                    transition_reason: "stored spec is invalid: spec.url: is required")"),
            "stored spec is invalid: spec.url: is required");
  EXPECT_EQ(phaseWord(v1::CONNECTION_PHASE_STORED_SPEC_INVALID), "stored_spec_invalid");
}

TEST(OutputFormatTest, WatchPrintsAHeaderAndFitsTheSnapshotIntoColumns) {
  std::vector<v1::HealthEvent> events = {
      fromText<v1::HealthEvent>(R"(
          type: TYPE_SNAPSHOT revision: 7 endpoint_id: "a" time { seconds: 1714564800 }
          status { health: HEALTH_HEALTHY phase: CONNECTION_PHASE_OPEN })"),
      fromText<v1::HealthEvent>(R"(
          type: TYPE_SNAPSHOT revision: 8 endpoint_id: "prices-eu" time { seconds: 1714564801 }
          status { health: HEALTH_UNKNOWN phase: CONNECTION_PHASE_CONNECTING })"),
      fromText<v1::HealthEvent>("type: TYPE_SNAPSHOT_COMPLETE revision: 8"),
      fromText<v1::HealthEvent>(R"(
          type: TYPE_CHANGED revision: 9 endpoint_id: "prices-eu" time { seconds: 1714564802 }
          previous_health: HEALTH_UNKNOWN
          status { health: HEALTH_HEALTHY phase: CONNECTION_PHASE_OPEN })"),
      fromText<v1::HealthEvent>(R"(
          type: TYPE_CHANGED revision: 10 endpoint_id: "a" time { seconds: 1714564803 }
          previous_health: HEALTH_HEALTHY
          status {
            health: HEALTH_FLAPPING underlying_health: HEALTH_UNHEALTHY
            phase: CONNECTION_PHASE_BACKING_OFF consecutive_failures: 1
            last_failure { reason: FAILURE_REASON_PONG_TIMEOUT }
          })"),
  };
  // EVENT, HEALTH and PHASE have room for their usual words from the start; ID is fitted to the
  // snapshot. A later row keeps the columns, and a cell that is too wide widens its column.
  EXPECT_THAT(watchOutput(events),
              ElementsAre("TIME                      REVISION  EVENT         ID         "
                          "HEALTH              PHASE        LAST FAILURE",
                          "2024-05-01T12:00:00.000Z  #7        snapshot      a          "
                          "healthy             open         -",
                          "2024-05-01T12:00:01.000Z  #8        snapshot      prices-eu  "
                          "unknown             connecting   -",
                          "(snapshot complete at #8; changes follow)",
                          "2024-05-01T12:00:02.000Z  #9        changed       prices-eu  "
                          "unknown->healthy    open         -",
                          "2024-05-01T12:00:03.000Z  #10       changed       a          "
                          "healthy->flapping(unhealthy)  backing_off  pong_timeout"));
}

TEST(OutputFormatTest, WatchOfNothingIsTheHeaderAndTheMarker) {
  constexpr const char* kHeader =
      "TIME                      REVISION  EVENT         ID  HEALTH              PHASE        "
      "LAST FAILURE";
  EXPECT_THAT(watchOutput({fromText<v1::HealthEvent>("type: TYPE_SNAPSHOT_COMPLETE revision: 9")}),
              ElementsAre(kHeader, "(snapshot complete at #9; changes follow)"));
  // A resumed watch replays changes before its marker.
  EXPECT_THAT(
      watchOutput({fromText<v1::HealthEvent>("type: TYPE_SNAPSHOT_COMPLETE revision: 9")}, true),
      ElementsAre(kHeader, "(replay complete at #9; live changes follow)"));
}

TEST(OutputFormatTest, WatchOfNothingLeavesRoomForTheTimeAndRevisionOfLaterRows) {
  // Only the ID of a later row can be wider than the header has room for.
  EXPECT_THAT(
      watchOutput(
          {fromText<v1::HealthEvent>("type: TYPE_SNAPSHOT_COMPLETE revision: 1796593588842282"),
           fromText<v1::HealthEvent>(R"(
                       type: TYPE_REGISTERED revision: 1796593588842283 endpoint_id: "ab"
                       time { seconds: 1714564800 }
                       status { health: HEALTH_UNKNOWN phase: CONNECTION_PHASE_CONNECTING })")}),
      ElementsAre("TIME                      REVISION           EVENT         ID  HEALTH        "
                  "      PHASE        LAST FAILURE",
                  "(snapshot complete at #1796593588842282; changes follow)",
                  "2024-05-01T12:00:00.000Z  #1796593588842283  registered    ab  unknown       "
                  "      connecting   -"));
}

TEST(OutputFormatTest, WatchPrintsNothingBeforeItsFirstEvent) {
  WatchTable table(false);
  std::ostringstream out;
  table.finish(out);
  EXPECT_EQ(out.str(), "");
}

TEST(OutputFormatTest, WatchLineForAChange) {
  const auto event = fromText<v1::HealthEvent>(R"(
      type: TYPE_CHANGED
      revision: 42
      endpoint_id: "echo-1"
      previous_health: HEALTH_HEALTHY
      time { seconds: 1714564800 nanos: 5000000 }
      status {
        health: HEALTH_UNHEALTHY
        phase: CONNECTION_PHASE_BACKING_OFF
        consecutive_failures: 1
        last_failure { reason: FAILURE_REASON_PONG_TIMEOUT detail: "no pong within 1s" }
      })");
  EXPECT_THAT(watchRow(event),
              ElementsAre("2024-05-01T12:00:00.005Z", "#42", "changed", "echo-1",
                          "healthy->unhealthy", "backing_off", "pong_timeout: no pong within 1s"));
}

TEST(OutputFormatTest, WatchLineShowsOneHealthWhenItDidNotChange) {
  const auto event = fromText<v1::HealthEvent>(R"(
      type: TYPE_CHANGED revision: 43 endpoint_id: "a" previous_health: HEALTH_UNHEALTHY
      status { health: HEALTH_UNHEALTHY phase: CONNECTION_PHASE_CONNECTING })");
  EXPECT_THAT(watchRow(event),
              ElementsAre("-", "#43", "changed", "a", "unhealthy", "connecting", "-"));
}

TEST(OutputFormatTest, WatchLineShowsAFailureThatIsHistoryAsPast) {
  // Healthy again and no failure since: the old failure is shown with its age, as history.
  const auto recovered = fromText<v1::HealthEvent>(R"(
      type: TYPE_CHANGED revision: 44 endpoint_id: "a" previous_health: HEALTH_UNHEALTHY
      status {
        health: HEALTH_HEALTHY phase: CONNECTION_PHASE_OPEN
        last_failure { reason: FAILURE_REASON_PONG_TIMEOUT time { seconds: 1714564920 } }
      })");
  EXPECT_THAT(watchRow(recovered), ElementsAre("-", "#44", "changed", "a", "unhealthy->healthy",
                                               "open", "3m ago: pong_timeout"));

  // Still healthy, but a heartbeat just failed (below the unhealthy threshold): that is news.
  const auto missed = fromText<v1::HealthEvent>(R"(
      type: TYPE_CHANGED revision: 45 endpoint_id: "a" previous_health: HEALTH_HEALTHY
      status {
        health: HEALTH_HEALTHY phase: CONNECTION_PHASE_OPEN consecutive_failures: 1
        last_failure { reason: FAILURE_REASON_PONG_TIMEOUT time { seconds: 1714564799 } }
      })");
  EXPECT_THAT(watchRow(missed),
              ElementsAre("-", "#45", "changed", "a", "healthy", "open", "pong_timeout"));

  // Connected again but not healthy yet: the refused connects before are not why it is open.
  const auto reopened = fromText<v1::HealthEvent>(R"(
      type: TYPE_CHANGED revision: 46 endpoint_id: "prices" previous_health: HEALTH_UNHEALTHY
      status {
        health: HEALTH_UNHEALTHY phase: CONNECTION_PHASE_OPEN consecutive_failures: 4
        last_failure {
          reason: FAILURE_REASON_CONNECTION_REFUSED detail: "connection refused"
          time { seconds: 1714565098 }
        }
      })");
  EXPECT_THAT(watchRow(reopened), ElementsAre("-", "#46", "changed", "prices", "unhealthy", "open",
                                              "2s ago: connection_refused: connection refused"));
}

TEST(OutputFormatTest, WatchLineOfAFlappingEndpointShowsTheHealthOfTheMoment) {
  const auto down = fromText<v1::HealthEvent>(R"(
      type: TYPE_CHANGED revision: 46 endpoint_id: "a" previous_health: HEALTH_HEALTHY
      status {
        health: HEALTH_FLAPPING underlying_health: HEALTH_UNHEALTHY
        phase: CONNECTION_PHASE_BACKING_OFF consecutive_failures: 1
        last_failure { reason: FAILURE_REASON_PONG_TIMEOUT }
      })");
  EXPECT_THAT(watchRow(down),
              ElementsAre("-", "#46", "changed", "a", "healthy->flapping(unhealthy)", "backing_off",
                          "pong_timeout"));
  // Up again while still FLAPPING: the failure before is history.
  const auto up = fromText<v1::HealthEvent>(R"(
      type: TYPE_CHANGED revision: 47 endpoint_id: "a" previous_health: HEALTH_FLAPPING
      status {
        health: HEALTH_FLAPPING underlying_health: HEALTH_HEALTHY phase: CONNECTION_PHASE_OPEN
        last_failure { reason: FAILURE_REASON_PONG_TIMEOUT time { seconds: 1714565090 } }
      })");
  EXPECT_THAT(watchRow(up), ElementsAre("-", "#47", "changed", "a", "flapping(healthy)", "open",
                                        "10s ago: pong_timeout"));
}

TEST(OutputFormatTest, WatchLineMarksCoalescedEvents) {
  const auto event = fromText<v1::HealthEvent>(R"(
      type: TYPE_SNAPSHOT revision: 7 endpoint_id: "a" coalesced: true
      status { health: HEALTH_UNKNOWN phase: CONNECTION_PHASE_CONNECTING })");
  EXPECT_THAT(watchRow(event),
              ElementsAre("-", "#7", "snapshot", "a", "unknown", "connecting", "-", "(coalesced)"));
}

TEST(OutputFormatTest, NoConnectionPhaseIsADash) {
  const auto event = fromText<v1::HealthEvent>(R"(
      type: TYPE_UNREGISTERED revision: 8 endpoint_id: "a" status { health: HEALTH_HEALTHY })");
  EXPECT_THAT(watchRow(event), ElementsAre("-", "#8", "unregistered", "a", "healthy", "-", "-"));
}

TEST(OutputFormatTest, JsonIsProtobufJsonOnOneLine) {
  const auto endpoint = fromText<v1::Endpoint>(R"(
      spec { id: "a" url: "ws://h" heartbeat { interval { seconds: 10 } } }
      status { health: HEALTH_HEALTHY consecutive_failures: 2 })");
  std::string error;
  EXPECT_EQ(toJsonLine(endpoint, error),
            R"({"spec":{"id":"a","url":"ws://h","heartbeat":{"interval":"10s"}},)"
            R"("status":{"health":"HEALTH_HEALTHY","consecutiveFailures":2}})");
}

TEST(OutputFormatTest, StatusNames) {
  EXPECT_EQ(statusCodeName(grpc::StatusCode::INVALID_ARGUMENT), "INVALID_ARGUMENT");
  EXPECT_EQ(statusCodeName(grpc::StatusCode::DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
  EXPECT_EQ(statusCodeName(static_cast<grpc::StatusCode>(99)), "CODE_99");
  EXPECT_EQ(describeStatus(grpc::Status(grpc::StatusCode::NOT_FOUND, "endpoint \"a\"")),
            "NOT_FOUND: endpoint \"a\"");
  EXPECT_EQ(describeStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "")), "UNAVAILABLE");
}

}  // namespace
}  // namespace wsvisor::ctl
