// specDifferences() names every field in which a requested spec differs from the stored one, with
// both values as a user writes them, and never shows a secret header value.
#include "supervisor/core/spec_difference.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "supervisor/core/endpoint_spec.h"

namespace wsvisor::core {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// A spec as received (zero means unset), with the defaults filled in as the registry does.
EndpointSpec filled(EndpointSpec spec) {
  applyDefaults(spec);
  return spec;
}

EndpointSpec minimalSpec() {
  EndpointSpec spec;
  spec.id = "prices";
  spec.url = "ws://127.0.0.1:8080/feed";
  return spec;
}

// "field: stored X, requested Y" for each difference, as describeDifferences() writes one.
std::vector<std::string> described(const EndpointSpec& stored, const EndpointSpec& requested) {
  std::vector<std::string> lines;
  for (const FieldDifference& d : specDifferences(filled(stored), filled(requested))) {
    lines.push_back(describeDifferences({d}, 1));
  }
  return lines;
}

TEST(SpecDifferenceTest, IdenticalSpecsHaveNone) {
  EXPECT_THAT(specDifferences(filled(minimalSpec()), filled(minimalSpec())), IsEmpty());
  EXPECT_EQ(describeDifferences({}, 5), "");
}

TEST(SpecDifferenceTest, AnUnsetFieldEqualsItsDefault) {
  EndpointSpec explicit_defaults = minimalSpec();
  explicit_defaults.heartbeat.interval = seconds(10);
  explicit_defaults.heartbeat.timeout = seconds(10);
  explicit_defaults.backoff.multiplier = 1.6;
  explicit_defaults.connect_timeout = seconds(20);
  EXPECT_THAT(specDifferences(filled(minimalSpec()), filled(explicit_defaults)), IsEmpty());
}

TEST(SpecDifferenceTest, ALeftOutFlagShowsAsTheDefaultWasRequested) {
  // Registered with --interval 5s; registered again without it.
  EndpointSpec stored = minimalSpec();
  stored.heartbeat.interval = seconds(5);
  // The timeout and the unhealthy interval follow the interval on both sides: not listed.
  EXPECT_THAT(described(stored, minimalSpec()),
              ElementsAre("spec.heartbeat.interval: stored 5s, requested 10s (default)"));
  // The other way round the requested value is not a default.
  EXPECT_THAT(described(minimalSpec(), stored),
              ElementsAre("spec.heartbeat.interval: stored 10s, requested 5s"));
}

TEST(SpecDifferenceTest, ADerivedValueSetOnOneSideIsListed) {
  EndpointSpec stored = minimalSpec();
  stored.heartbeat.interval = seconds(5);
  stored.heartbeat.timeout = seconds(1);
  EXPECT_THAT(described(stored, minimalSpec()),
              ElementsAre("spec.heartbeat.interval: stored 5s, requested 10s (default)",
                          "spec.heartbeat.timeout: stored 1s, requested 10s (default)"));
  // The backoff cap follows the initial delay when that is above 120s.
  EndpointSpec slow = minimalSpec();
  slow.backoff.initial = minutes(5);
  EXPECT_THAT(described(slow, minimalSpec()),
              ElementsAre("spec.backoff.initial: stored 300s, requested 1s (default)"));
}

TEST(SpecDifferenceTest, ADefaultThatFollowsAnotherFieldIsStillADefault) {
  // The timeout defaults to the interval: both requested at 2s, only the timeout given before.
  EndpointSpec stored = minimalSpec();
  stored.heartbeat.interval = seconds(2);
  stored.heartbeat.timeout = milliseconds(500);
  EndpointSpec requested = minimalSpec();
  requested.heartbeat.interval = seconds(2);
  EXPECT_THAT(described(stored, requested),
              ElementsAre("spec.heartbeat.timeout: stored 500ms, requested 2s (default)"));
}

TEST(SpecDifferenceTest, FieldsAreNamedByTheirApiPathInTheApiOrder) {
  EndpointSpec stored = minimalSpec();
  EndpointSpec requested = minimalSpec();
  requested.url = "ws://127.0.0.1:8080/other";
  requested.subprotocols = {"chat", "json"};
  requested.heartbeat.mode = HeartbeatMode::kText;
  requested.heartbeat.unhealthy_threshold = 3;
  requested.heartbeat.expect = "ok.*";
  requested.backoff.initial = milliseconds(250);
  requested.backoff.multiplier = 2.5;
  requested.connect_timeout = minutes(1);
  requested.max_message_bytes = 4096;
  requested.flapping.threshold = 9;
  EXPECT_THAT(described(stored, requested),
              ElementsAre(R"(spec.url: stored "ws://127.0.0.1:8080/feed", requested )"
                          R"("ws://127.0.0.1:8080/other")",
                          R"(spec.subprotocols: stored unset, requested ["chat", "json"])",
                          "spec.heartbeat.mode: stored PING, requested TEXT",
                          "spec.heartbeat.unhealthy_threshold: stored 1, requested 3",
                          R"(spec.heartbeat.expect: stored unset, requested "ok.*")",
                          "spec.backoff.initial: stored 1s, requested 250ms",
                          "spec.backoff.multiplier: stored 1.6, requested 2.5",
                          "spec.connect_timeout: stored 20s, requested 60s",
                          "spec.max_message_bytes: stored 1048576, requested 4096",
                          "spec.flapping.threshold: stored 5, requested 9"));
}

TEST(SpecDifferenceTest, LabelsAreComparedOneKeyAtATime) {
  EndpointSpec stored = minimalSpec();
  stored.labels = {{"team", "red"}, {"tier", "1"}, {"empty", ""}};
  EndpointSpec requested = minimalSpec();
  requested.labels = {{"team", "blue"}, {"tier", "1"}, {"zone", "eu"}};
  EXPECT_THAT(described(stored, requested),
              ElementsAre(R"(spec.labels[empty]: stored "", requested unset)",
                          R"(spec.labels[team]: stored "red", requested "blue")",
                          R"(spec.labels[zone]: stored unset, requested "eu")"));
}

TEST(SpecDifferenceTest, SecretHeaderValuesAreNeverShown) {
  EndpointSpec stored = minimalSpec();
  stored.headers = {{"Authorization", "Bearer stored-token", false},
                    {"X-Custom", "stored-custom", true},
                    {"X-Trace", "abc", false}};
  EndpointSpec requested = minimalSpec();
  requested.headers = {{"Authorization", "Bearer new-token", false},
                       {"X-Custom", "new-custom", true},
                       {"X-Trace", "def", false},
                       {"Cookie", "session=requested-cookie", false}};
  const auto differences = specDifferences(filled(stored), filled(requested));
  const std::string text = describeDifferences(differences, differences.size());
  for (const char* secret :
       {"stored-token", "new-token", "stored-custom", "new-custom", "requested-cookie"}) {
    EXPECT_THAT(text, Not(HasSubstr(secret)));
  }
  EXPECT_THAT(described(stored, requested),
              ElementsAre("spec.headers[0].value: differs (a secret: values not shown)",
                          "spec.headers[1].value: differs (a secret: values not shown)",
                          R"(spec.headers[2].value: stored "abc", requested "def")",
                          R"(spec.headers[3]: stored unset, requested "Cookie: <redacted>")"));
  EXPECT_THAT(differences[0], AllOf(Field(&FieldDifference::secret, true),
                                    Field(&FieldDifference::stored, kRedactedValue),
                                    Field(&FieldDifference::requested, kRedactedValue)));
}

TEST(SpecDifferenceTest, AValueIsHiddenWhenEitherHeaderIsSecret) {
  // Marking a header secret hides both its old and its new value.
  EndpointSpec stored = minimalSpec();
  stored.headers = {{"X-Token", "visible-before", false}};
  EndpointSpec requested = minimalSpec();
  requested.headers = {{"X-Token", "hidden-now", true}};
  EXPECT_THAT(described(stored, requested),
              ElementsAre("spec.headers[0].value: differs (a secret: values not shown)",
                          "spec.headers[0].secret: stored false, requested true"));
  // A renamed header: names are no secret, the values stay hidden.
  requested.headers = {{"Authorization", "hidden-now", false}};
  EXPECT_THAT(described(stored, requested),
              ElementsAre(R"(spec.headers[0].name: stored "X-Token", requested "Authorization")",
                          "spec.headers[0].value: differs (a secret: values not shown)"));
}

TEST(SpecDifferenceTest, NoJitterAndDisabledFlappingHideTheFieldsTheyTurnOff) {
  EndpointSpec stored = minimalSpec();
  EndpointSpec requested = minimalSpec();
  requested.backoff.jitter_enabled = false;
  requested.flapping = FlapPolicy::off();
  EXPECT_THAT(described(stored, requested),
              ElementsAre("spec.backoff.no_jitter: stored false, requested true",
                          "spec.flapping.disabled: stored false, requested true"));
  EXPECT_THAT(described(requested, stored),
              ElementsAre("spec.backoff.no_jitter: stored true, requested false (default)",
                          "spec.flapping.disabled: stored true, requested false (default)"));
}

TEST(SpecDifferenceTest, TlsFieldsAndBooleans) {
  EndpointSpec stored = minimalSpec();
  stored.url = "wss://feed.example/ws";
  stored.tls.ca_file = "/etc/ca.pem";
  stored.tls.insecure_skip_verify = true;
  EndpointSpec requested = minimalSpec();
  requested.url = "wss://feed.example/ws";
  requested.tls.server_name = "feed.internal";
  EXPECT_THAT(described(stored, requested),
              ElementsAre(R"(spec.tls.ca_file: stored "/etc/ca.pem", requested unset)",
                          R"(spec.tls.server_name: stored unset, requested "feed.internal")",
                          "spec.tls.insecure_skip_verify: stored true, requested false "
                          "(default)"));
}

TEST(SpecDifferenceTest, NoneModeLeavesTheTimingsUnset) {
  EndpointSpec stored = minimalSpec();
  EndpointSpec requested = minimalSpec();
  requested.heartbeat.mode = HeartbeatMode::kNone;
  // The timings follow from the mode: unset in NONE, defaults in PING.
  EXPECT_THAT(described(stored, requested),
              ElementsAre("spec.heartbeat.mode: stored PING, requested NONE"));
  stored.heartbeat.interval = seconds(5);
  EXPECT_THAT(described(stored, requested),
              ElementsAre("spec.heartbeat.mode: stored PING, requested NONE",
                          "spec.heartbeat.interval: stored 5s, requested unset"));
}

TEST(SpecDifferenceTest, LongValuesAreCutAndQuotesEscaped) {
  EndpointSpec stored = minimalSpec();
  stored.heartbeat.mode = HeartbeatMode::kText;
  stored.heartbeat.payload = std::string(100, 'x');
  EndpointSpec requested = stored;
  requested.heartbeat.payload = "say \"hi\"";
  EXPECT_THAT(described(stored, requested),
              ElementsAre("spec.heartbeat.payload: stored \"" + std::string(64, 'x') +
                          "...\", requested \"say \\\"hi\\\"\""));
  // A multi-byte character is not split.
  requested.heartbeat.payload = std::string(63, 'y') + "\xc3\xa9" + "z";
  const auto differences = specDifferences(filled(stored), filled(requested));
  ASSERT_EQ(differences.size(), 1u);
  EXPECT_EQ(differences[0].requested, "\"" + std::string(63, 'y') + "...\"");
}

TEST(SpecDifferenceTest, DescriptionIsBounded) {
  EndpointSpec stored = minimalSpec();
  EndpointSpec requested = minimalSpec();
  for (int i = 0; i < 10; ++i) requested.labels["k" + std::to_string(i)] = "v";
  const auto differences = specDifferences(filled(stored), filled(requested));
  ASSERT_EQ(differences.size(), 10u);
  EXPECT_EQ(describeDifferences(differences, 2),
            R"(spec.labels[k0]: stored unset, requested "v"; )"
            R"(spec.labels[k1]: stored unset, requested "v"; and 8 more)");
  EXPECT_EQ(describeDifferences(differences, 10).find("more"), std::string::npos);
}

}  // namespace
}  // namespace wsvisor::core
