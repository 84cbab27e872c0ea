// validateSpec() names the field of the first problem in an EndpointSpec as received (zero means
// unset), and applyDefaults() fills the unset fields afterwards.
#include "supervisor/core/spec_validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <limits>
#include <string>

#include "supervisor/core/endpoint_spec.h"

namespace wsvisor::core {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::HasSubstr;

constexpr const char* kValid = "(valid)";

// The smallest spec a caller can register.
EndpointSpec minimalSpec() {
  EndpointSpec spec;
  spec.id = "echo-1";
  spec.url = "ws://echo.example.com/ws";
  return spec;
}

// The field named by the first error, or "(valid)" when the spec is accepted.
std::string firstErrorField(const EndpointSpec& spec) {
  const auto error = validateSpec(spec);
  return error ? error->field : kValid;
}

std::string firstErrorMessage(const EndpointSpec& spec) {
  const auto error = validateSpec(spec);
  return error ? error->message : kValid;
}

// Valid specs.

TEST(SpecValidationTest, MinimalSpecIsValid) { EXPECT_EQ(firstErrorField(minimalSpec()), kValid); }

TEST(SpecValidationTest, FullyPopulatedSpecIsValid) {
  EndpointSpec spec = minimalSpec();
  spec.url = "wss://feed.example.com:8443/stream?v=2";
  spec.labels = {{"env", "prod"}, {"app.kubernetes.io/name", "feed"}};
  spec.headers = {{"Authorization", "Bearer abc.def"}, {"X-Trace", ""}};
  spec.subprotocols = {"v2.feed.example.com", "v1.feed.example.com"};
  spec.heartbeat.mode = HeartbeatMode::kText;
  spec.heartbeat.interval = seconds(5);
  spec.heartbeat.timeout = seconds(2);
  spec.heartbeat.unhealthy_threshold = 3;
  spec.heartbeat.healthy_threshold = 2;
  spec.heartbeat.payload = R"({"op":"ping"})";
  spec.heartbeat.expect = R"(\{"op":"pong".*\})";
  spec.backoff.initial = milliseconds(500);
  spec.backoff.multiplier = 2.0;
  spec.backoff.jitter = 0.5;
  spec.backoff.max = minutes(5);
  spec.backoff.reset_after = seconds(30);
  spec.connect_timeout = seconds(5);
  spec.tls.ca_file = "/etc/wsvisor/ca.pem";
  spec.tls.server_name = "feed.example.com";
  spec.tls.client_cert_file = "/etc/wsvisor/client.pem";
  spec.tls.client_key_file = "/etc/wsvisor/client.key";
  spec.max_message_bytes = 4 * 1024 * 1024;
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, SpecAtEveryLowerLimitIsValid) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.interval = milliseconds(10);
  spec.heartbeat.timeout = milliseconds(10);
  spec.heartbeat.unhealthy_threshold = 1;
  spec.heartbeat.healthy_threshold = 1;
  spec.backoff.initial = milliseconds(10);
  spec.backoff.max = milliseconds(10);
  spec.backoff.multiplier = 1.0;
  spec.backoff.reset_after = milliseconds(10);
  spec.connect_timeout = milliseconds(100);
  spec.max_message_bytes = 125;
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, SpecAtEveryUpperLimitIsValid) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.interval = hours(1);
  spec.heartbeat.timeout = hours(1);
  spec.heartbeat.unhealthy_threshold = 100;
  spec.heartbeat.healthy_threshold = 100;
  spec.backoff.initial = hours(1);
  spec.backoff.max = hours(1);
  spec.backoff.multiplier = 10.0;
  spec.backoff.jitter = 1.0;
  spec.backoff.reset_after = hours(1);
  spec.connect_timeout = minutes(5);
  spec.max_message_bytes = 64ull * 1024 * 1024;
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, FirstProblemIsReported) {
  EndpointSpec spec = minimalSpec();
  spec.id = "Bad Id";
  spec.url = "http://example.com/";
  EXPECT_EQ(firstErrorField(spec), "spec.id");
}

TEST(SpecValidationTest, FieldErrorToStringJoinsFieldAndMessage) {
  EXPECT_EQ((FieldError{"spec.id", "is required"}.toString()), "spec.id: is required");
}

// spec.id

TEST(SpecValidationTest, EmptyIdIsRequired) {
  EndpointSpec spec = minimalSpec();
  spec.id = "";
  EXPECT_EQ(firstErrorField(spec), "spec.id");
  EXPECT_THAT(firstErrorMessage(spec), HasSubstr("required"));
}

TEST(SpecValidationTest, IdWithSpacesIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.id = "echo 1";
  EXPECT_EQ(firstErrorField(spec), "spec.id");
}

TEST(SpecValidationTest, IdWithUpperCaseIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.id = "Echo";
  EXPECT_EQ(firstErrorField(spec), "spec.id");
}

TEST(SpecValidationTest, IdWithSlashIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.id = "a/b";
  EXPECT_EQ(firstErrorField(spec), "spec.id");
}

TEST(SpecValidationTest, IdWithNonAsciiIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.id = "\xc3\xa9";  // é
  EXPECT_EQ(firstErrorField(spec), "spec.id");
}

TEST(SpecValidationTest, IdMayUseLowerCaseDigitsDotsUnderscoresAndDashes) {
  EndpointSpec spec = minimalSpec();
  spec.id = "a.b_c-0123456789";
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, IdOf128CharactersIsValid) {
  EndpointSpec spec = minimalSpec();
  spec.id = std::string(128, 'a');
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, IdOf129CharactersIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.id = std::string(129, 'a');
  EXPECT_EQ(firstErrorField(spec), "spec.id");
  EXPECT_THAT(firstErrorMessage(spec), HasSubstr("128"));
}

TEST(SpecValidationTest, ValidateEndpointIdNamesTheGivenField) {
  const auto error = validateEndpointId("", "ids[3]");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "ids[3]");
}

TEST(SpecValidationTest, ValidateEndpointIdAcceptsAValidId) {
  EXPECT_EQ(validateEndpointId("echo-1", "id"), std::nullopt);
}

// spec.url

TEST(SpecValidationTest, EmptyUrlIsRequired) {
  EndpointSpec spec = minimalSpec();
  spec.url = "";
  EXPECT_EQ(firstErrorField(spec), "spec.url");
  EXPECT_THAT(firstErrorMessage(spec), HasSubstr("required"));
}

TEST(SpecValidationTest, HttpUrlIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.url = "http://echo.example.com/ws";
  EXPECT_EQ(firstErrorField(spec), "spec.url");
}

TEST(SpecValidationTest, UrlErrorCarriesTheParserMessage) {
  EndpointSpec spec = minimalSpec();
  spec.url = "ws://echo.example.com:0/";
  EXPECT_EQ(firstErrorField(spec), "spec.url");
  EXPECT_THAT(firstErrorMessage(spec), HasSubstr("1-65535"));
}

TEST(SpecValidationTest, UrlOf2048BytesIsValid) {
  EndpointSpec spec = minimalSpec();
  spec.url = "ws://h/";
  spec.url += std::string(2048 - spec.url.size(), 'p');
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, UrlLongerThan2048BytesIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.url = "ws://h/";
  spec.url += std::string(2049 - spec.url.size(), 'p');
  EXPECT_EQ(firstErrorField(spec), "spec.url");
  EXPECT_THAT(firstErrorMessage(spec), HasSubstr("2048"));
}

// spec.labels

TEST(SpecValidationTest, SixtyFourLabelsAreValid) {
  EndpointSpec spec = minimalSpec();
  for (int i = 0; i < 64; ++i) spec.labels["k" + std::to_string(i)] = "v";
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, SixtyFiveLabelsAreRejected) {
  EndpointSpec spec = minimalSpec();
  for (int i = 0; i < 65; ++i) spec.labels["k" + std::to_string(i)] = "v";
  EXPECT_EQ(firstErrorField(spec), "spec.labels");
}

TEST(SpecValidationTest, EmptyLabelKeyIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.labels[""] = "v";
  EXPECT_EQ(firstErrorField(spec), "spec.labels");
}

TEST(SpecValidationTest, LabelKeyWithSpaceIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.labels["my key"] = "v";
  EXPECT_EQ(firstErrorField(spec), "spec.labels");
}

TEST(SpecValidationTest, LabelKeyWithEqualsSignIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.labels["a=b"] = "v";
  EXPECT_EQ(firstErrorField(spec), "spec.labels");
}

TEST(SpecValidationTest, LabelKeyOf63CharactersIsValid) {
  EndpointSpec spec = minimalSpec();
  spec.labels[std::string(63, 'k')] = "v";
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, LabelKeyOf64CharactersIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.labels[std::string(64, 'k')] = "v";
  EXPECT_EQ(firstErrorField(spec), "spec.labels");
}

TEST(SpecValidationTest, EmptyLabelValueIsValid) {
  EndpointSpec spec = minimalSpec();
  spec.labels["canary"] = "";
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, LabelValueOf256BytesIsValid) {
  EndpointSpec spec = minimalSpec();
  spec.labels["env"] = std::string(256, 'v');
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, LabelValueOf257BytesNamesTheLabel) {
  EndpointSpec spec = minimalSpec();
  spec.labels["env"] = std::string(257, 'v');
  EXPECT_EQ(firstErrorField(spec), "spec.labels[env]");
}

TEST(SpecValidationTest, LabelValueWithNewlineNamesTheLabel) {
  EndpointSpec spec = minimalSpec();
  spec.labels["env"] = "prod\nX";
  EXPECT_EQ(firstErrorField(spec), "spec.labels[env]");
}

// spec.headers

TEST(SpecValidationTest, HeaderValueWithCarriageReturnIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.headers = {{"X-Token", "abc\rX-Evil: 1"}};
  EXPECT_EQ(firstErrorField(spec), "spec.headers[0].value");
}

TEST(SpecValidationTest, HeaderValueWithLineFeedIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.headers = {{"X-Token", "abc\nX-Evil: 1"}};
  EXPECT_EQ(firstErrorField(spec), "spec.headers[0].value");
}

TEST(SpecValidationTest, HeaderValueWithNulIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.headers = {{"X-Token", std::string("abc\0def", 7)}};
  EXPECT_EQ(firstErrorField(spec), "spec.headers[0].value");
}

TEST(SpecValidationTest, HeaderErrorNamesTheIndexOfTheBadHeader) {
  EndpointSpec spec = minimalSpec();
  spec.headers = {{"X-A", "ok"}, {"X-B", "ok"}, {"X-C", "bad\r\n"}};
  EXPECT_EQ(firstErrorField(spec), "spec.headers[2].value");
}

TEST(SpecValidationTest, HeaderValueOf8192BytesIsValid) {
  EndpointSpec spec = minimalSpec();
  spec.headers = {{"X-Big", std::string(8192, 'v')}};
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, HeaderValueOf8193BytesIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.headers = {{"X-Big", std::string(8193, 'v')}};
  EXPECT_EQ(firstErrorField(spec), "spec.headers[0].value");
}

TEST(SpecValidationTest, EmptyHeaderNameIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.headers = {{"", "v"}};
  EXPECT_EQ(firstErrorField(spec), "spec.headers[0].name");
}

TEST(SpecValidationTest, HeaderNameWithColonIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.headers = {{"X-Token:", "v"}};
  EXPECT_EQ(firstErrorField(spec), "spec.headers[0].name");
}

TEST(SpecValidationTest, HeaderNameWithSpaceIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.headers = {{"X Token", "v"}};
  EXPECT_EQ(firstErrorField(spec), "spec.headers[0].name");
}

TEST(SpecValidationTest, HeaderNameOf256CharactersIsValid) {
  EndpointSpec spec = minimalSpec();
  spec.headers = {{std::string(256, 'x'), "v"}};
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, HeaderNameOf257CharactersIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.headers = {{std::string(257, 'x'), "v"}};
  EXPECT_EQ(firstErrorField(spec), "spec.headers[0].name");
}

TEST(SpecValidationTest, HandshakeHeaderIsReservedWhateverItsCase) {
  for (const char* name : {"Host", "upgrade", "CONNECTION", "Sec-WebSocket-Key",
                           "sec-websocket-version", "Sec-WebSocket-Protocol",
                           "Sec-WebSocket-Extensions", "Content-Length", "Transfer-Encoding"}) {
    EndpointSpec spec = minimalSpec();
    spec.headers = {{"X-Ok", "v"}, {name, "v"}};
    EXPECT_EQ(firstErrorField(spec), "spec.headers[1].name") << name;
  }
}

TEST(SpecValidationTest, SixtyFourHeadersAreValid) {
  EndpointSpec spec = minimalSpec();
  for (int i = 0; i < 64; ++i) spec.headers.push_back({"X-H" + std::to_string(i), "v"});
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, SixtyFiveHeadersAreRejected) {
  EndpointSpec spec = minimalSpec();
  for (int i = 0; i < 65; ++i) spec.headers.push_back({"X-H" + std::to_string(i), "v"});
  EXPECT_EQ(firstErrorField(spec), "spec.headers");
}

// spec.subprotocols

TEST(SpecValidationTest, DuplicateSubprotocolNamesTheSecondCopy) {
  EndpointSpec spec = minimalSpec();
  spec.subprotocols = {"v1", "v2", "v1"};
  EXPECT_EQ(firstErrorField(spec), "spec.subprotocols[2]");
}

TEST(SpecValidationTest, EmptySubprotocolIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.subprotocols = {""};
  EXPECT_EQ(firstErrorField(spec), "spec.subprotocols[0]");
}

TEST(SpecValidationTest, SubprotocolWithCommaIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.subprotocols = {"v1", "v2,v3"};
  EXPECT_EQ(firstErrorField(spec), "spec.subprotocols[1]");
}

TEST(SpecValidationTest, SubprotocolOf257CharactersIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.subprotocols = {std::string(257, 'p')};
  EXPECT_EQ(firstErrorField(spec), "spec.subprotocols[0]");
}

TEST(SpecValidationTest, SixteenSubprotocolsAreValid) {
  EndpointSpec spec = minimalSpec();
  for (int i = 0; i < 16; ++i) spec.subprotocols.push_back("p" + std::to_string(i));
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, SeventeenSubprotocolsAreRejected) {
  EndpointSpec spec = minimalSpec();
  for (int i = 0; i < 17; ++i) spec.subprotocols.push_back("p" + std::to_string(i));
  EXPECT_EQ(firstErrorField(spec), "spec.subprotocols");
}

// spec.heartbeat

TEST(SpecValidationTest, HeartbeatIntervalBelow10msIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.interval = milliseconds(9);
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.interval");
}

TEST(SpecValidationTest, HeartbeatIntervalAboveOneHourIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.interval = hours(1) + milliseconds(1);
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.interval");
}

TEST(SpecValidationTest, NegativeHeartbeatIntervalIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.interval = -seconds(1);
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.interval");
}

TEST(SpecValidationTest, OutOfRangeErrorStatesTheRange) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.interval = hours(2);
  EXPECT_THAT(firstErrorMessage(spec), HasSubstr("between 10ms and 3600s, got 7200s"));
}

TEST(SpecValidationTest, HeartbeatTimeoutBelow10msIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.timeout = milliseconds(5);
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.timeout");
}

TEST(SpecValidationTest, HeartbeatTimeoutAboveOneHourIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.timeout = hours(2);
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.timeout");
}

TEST(SpecValidationTest, UnhealthyThresholdAbove100IsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.unhealthy_threshold = 101;
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.unhealthy_threshold");
}

TEST(SpecValidationTest, HealthyThresholdAbove100IsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.healthy_threshold = 101;
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.healthy_threshold");
}

TEST(SpecValidationTest, PayloadInPingModeIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kPing;
  spec.heartbeat.payload = "hello";
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.payload");
}

TEST(SpecValidationTest, PayloadInPassiveModeIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kPassive;
  spec.heartbeat.payload = "hello";
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.payload");
}

TEST(SpecValidationTest, ExpectInPingModeIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.expect = "pong";
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.expect");
}

TEST(SpecValidationTest, ExpectInPassiveModeIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kPassive;
  spec.heartbeat.expect = "pong";
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.expect");
}

TEST(SpecValidationTest, TextModeWithoutPayloadIsValid) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kText;
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, TextPayloadOf4096BytesIsValid) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kText;
  spec.heartbeat.payload = std::string(4096, 'p');
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, TextPayloadOf4097BytesIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kText;
  spec.heartbeat.payload = std::string(4097, 'p');
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.payload");
}

TEST(SpecValidationTest, TextExpectOf1024BytesIsValid) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kText;
  spec.heartbeat.expect = std::string(1024, 'e');
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, TextExpectOf1025BytesIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kText;
  spec.heartbeat.expect = std::string(1025, 'e');
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.expect");
}

TEST(SpecValidationTest, InvalidExpectRegexIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kText;
  spec.heartbeat.expect = "(pong";
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.expect");
  EXPECT_THAT(firstErrorMessage(spec), HasSubstr("regular expression"));
}

// The reply matcher runs in polynomial time, which rules out back-references.
TEST(SpecValidationTest, ExpectWithABackReferenceIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kText;
  spec.heartbeat.expect = R"((po)\1ng)";
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.expect");
}

// spec.backoff

TEST(SpecValidationTest, BackoffInitialBelow10msIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.initial = milliseconds(9);
  EXPECT_EQ(firstErrorField(spec), "spec.backoff.initial");
}

TEST(SpecValidationTest, BackoffInitialAboveOneHourIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.initial = hours(2);
  EXPECT_EQ(firstErrorField(spec), "spec.backoff.initial");
}

TEST(SpecValidationTest, BackoffMaxAboveOneHourIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.max = hours(2);
  EXPECT_EQ(firstErrorField(spec), "spec.backoff.max");
}

TEST(SpecValidationTest, BackoffMaxBelowInitialIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.initial = seconds(5);
  spec.backoff.max = seconds(4);
  EXPECT_EQ(firstErrorField(spec), "spec.backoff.max");
}

TEST(SpecValidationTest, BackoffMaxBelowTheDefaultInitialIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.max = milliseconds(500);
  EXPECT_EQ(firstErrorField(spec), "spec.backoff.max");
}

TEST(SpecValidationTest, BackoffInitialAboveTheDefaultMaxIsValid) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.initial = minutes(5);
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, BackoffMultiplierBelowOneIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.multiplier = 0.5;
  EXPECT_EQ(firstErrorField(spec), "spec.backoff.multiplier");
}

TEST(SpecValidationTest, BackoffMultiplierAboveTenIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.multiplier = 10.5;
  EXPECT_EQ(firstErrorField(spec), "spec.backoff.multiplier");
}

TEST(SpecValidationTest, NegativeBackoffMultiplierIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.multiplier = -1.6;
  EXPECT_EQ(firstErrorField(spec), "spec.backoff.multiplier");
}

TEST(SpecValidationTest, NanBackoffMultiplierIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.multiplier = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(firstErrorField(spec), "spec.backoff.multiplier");
}

TEST(SpecValidationTest, InfiniteBackoffMultiplierIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.multiplier = std::numeric_limits<double>::infinity();
  EXPECT_EQ(firstErrorField(spec), "spec.backoff.multiplier");
}

TEST(SpecValidationTest, BackoffJitterAboveOneIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.jitter = 1.5;
  EXPECT_EQ(firstErrorField(spec), "spec.backoff.jitter");
}

TEST(SpecValidationTest, NegativeBackoffJitterIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.jitter = -0.1;
  EXPECT_EQ(firstErrorField(spec), "spec.backoff.jitter");
}

TEST(SpecValidationTest, NanBackoffJitterIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.jitter = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(firstErrorField(spec), "spec.backoff.jitter");
}

TEST(SpecValidationTest, JitterTogetherWithNoJitterIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.jitter_enabled = false;
  spec.backoff.jitter = 0.2;
  EXPECT_EQ(firstErrorField(spec), "spec.backoff.jitter");
}

TEST(SpecValidationTest, NoJitterAloneIsValid) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.jitter_enabled = false;
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, NegativeResetAfterIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.reset_after = -seconds(1);
  EXPECT_EQ(firstErrorField(spec), "spec.backoff.reset_after");
}

TEST(SpecValidationTest, ResetAfterBelow10msIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.reset_after = milliseconds(9);
  EXPECT_EQ(firstErrorField(spec), "spec.backoff.reset_after");
}

TEST(SpecValidationTest, ResetAfterAboveOneHourIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.reset_after = hours(1) + seconds(1);
  EXPECT_EQ(firstErrorField(spec), "spec.backoff.reset_after");
}

// spec.connect_timeout

TEST(SpecValidationTest, ConnectTimeoutBelow100msIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.connect_timeout = milliseconds(99);
  EXPECT_EQ(firstErrorField(spec), "spec.connect_timeout");
}

TEST(SpecValidationTest, ConnectTimeoutAboveFiveMinutesIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.connect_timeout = minutes(5) + milliseconds(1);
  EXPECT_EQ(firstErrorField(spec), "spec.connect_timeout");
}

// spec.max_message_bytes

TEST(SpecValidationTest, MaxMessageBytesBelow125IsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.max_message_bytes = 124;
  EXPECT_EQ(firstErrorField(spec), "spec.max_message_bytes");
}

TEST(SpecValidationTest, MaxMessageBytesAbove64MiBIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.max_message_bytes = 64ull * 1024 * 1024 + 1;
  EXPECT_EQ(firstErrorField(spec), "spec.max_message_bytes");
}

// spec.tls

TEST(SpecValidationTest, TlsOptionsOnWsUrlAreRejected) {
  EndpointSpec spec = minimalSpec();
  spec.tls.ca_file = "/etc/ca.pem";
  EXPECT_EQ(firstErrorField(spec), "spec.tls");
}

TEST(SpecValidationTest, InsecureSkipVerifyOnWsUrlIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.tls.insecure_skip_verify = true;
  EXPECT_EQ(firstErrorField(spec), "spec.tls");
}

TEST(SpecValidationTest, InsecureSkipVerifyOnWssUrlIsValid) {
  EndpointSpec spec = minimalSpec();
  spec.url = "wss://echo.example.com/";
  spec.tls.insecure_skip_verify = true;
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, ClientCertWithoutKeyNamesTheKey) {
  EndpointSpec spec = minimalSpec();
  spec.url = "wss://echo.example.com/";
  spec.tls.client_cert_file = "/etc/client.pem";
  EXPECT_EQ(firstErrorField(spec), "spec.tls.client_key_file");
}

TEST(SpecValidationTest, ClientKeyWithoutCertNamesTheCert) {
  EndpointSpec spec = minimalSpec();
  spec.url = "wss://echo.example.com/";
  spec.tls.client_key_file = "/etc/client.key";
  EXPECT_EQ(firstErrorField(spec), "spec.tls.client_cert_file");
}

TEST(SpecValidationTest, CaFileWithControlCharacterIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.url = "wss://echo.example.com/";
  spec.tls.ca_file = "/etc/ca.pem\n";
  EXPECT_EQ(firstErrorField(spec), "spec.tls.ca_file");
}

TEST(SpecValidationTest, CaFileLongerThan4096BytesIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.url = "wss://echo.example.com/";
  spec.tls.ca_file = "/" + std::string(4096, 'd');
  EXPECT_EQ(firstErrorField(spec), "spec.tls.ca_file");
}

TEST(SpecValidationTest, ServerNameWithSpaceIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.url = "wss://echo.example.com/";
  spec.tls.server_name = "echo example.com";
  EXPECT_EQ(firstErrorField(spec), "spec.tls.server_name");
}

TEST(SpecValidationTest, ServerNameLongerThan253CharactersIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.url = "wss://echo.example.com/";
  spec.tls.server_name = std::string(254, 'a');
  EXPECT_EQ(firstErrorField(spec), "spec.tls.server_name");
}

// Text fields must be UTF-8, as proto3 strings are: specs are stored as serialized EndpointSpec
// messages, and one with other bytes (possible from the config file) could not be read back.

TEST(SpecValidationTest, UrlPathInUtf8IsValid) {
  EndpointSpec spec = minimalSpec();
  spec.url = "ws://echo.example.com/caf\xC3\xA9";
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, UrlPathInLatin1IsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.url = "ws://echo.example.com/caf\xE9";
  EXPECT_EQ(firstErrorField(spec), "spec.url");
  EXPECT_EQ(firstErrorMessage(spec), "must be UTF-8");
}

TEST(SpecValidationTest, LabelValueNotInUtf8NamesTheLabel) {
  EndpointSpec spec = minimalSpec();
  spec.labels["env"] = "Z\xFCrich";
  EXPECT_EQ(firstErrorField(spec), "spec.labels[env]");
}

TEST(SpecValidationTest, HeaderValueNotInUtf8IsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.headers = {{"X-Name", "M\xFCller"}};
  EXPECT_EQ(firstErrorField(spec), "spec.headers[0].value");
}

TEST(SpecValidationTest, TextPayloadNotInUtf8IsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kText;
  spec.heartbeat.payload = "\xFF";
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.payload");
}

TEST(SpecValidationTest, TextExpectNotInUtf8IsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kText;
  spec.heartbeat.expect = "pong\x80";
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.expect");
}

TEST(SpecValidationTest, CaFileNotInUtf8IsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.url = "wss://echo.example.com/";
  spec.tls.ca_file = "/etc/ca-\xE9.pem";
  EXPECT_EQ(firstErrorField(spec), "spec.tls.ca_file");
}

TEST(SpecValidationTest, Utf8OfEveryLengthIsValid) {
  EndpointSpec spec = minimalSpec();
  // U+00E9, U+20AC, U+1F600 and the last code point, U+10FFFF.
  spec.labels["text"] = "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF";
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(SpecValidationTest, Utf8SurrogateIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.labels["text"] = "\xED\xA0\x80";  // U+D800
  EXPECT_EQ(firstErrorField(spec), "spec.labels[text]");
}

TEST(SpecValidationTest, OverlongUtf8IsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.labels["text"] = "\xC0\xAF";  // '/' in two bytes
  EXPECT_EQ(firstErrorField(spec), "spec.labels[text]");
}

TEST(SpecValidationTest, Utf8AboveTheLastCodePointIsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.labels["text"] = "\xF4\x90\x80\x80";  // U+110000
  EXPECT_EQ(firstErrorField(spec), "spec.labels[text]");
}

TEST(SpecValidationTest, TruncatedUtf8IsRejected) {
  EndpointSpec spec = minimalSpec();
  spec.labels["text"] = "\xE2\x82";
  EXPECT_EQ(firstErrorField(spec), "spec.labels[text]");
}

// applyDefaults()

TEST(ApplyDefaultsTest, EmptySpecGetsEveryDefault) {
  EndpointSpec spec = minimalSpec();
  applyDefaults(spec);
  EXPECT_EQ(spec.heartbeat.mode, HeartbeatMode::kPing);
  EXPECT_EQ(spec.heartbeat.interval, seconds(10));
  EXPECT_EQ(spec.heartbeat.timeout, seconds(10));
  EXPECT_EQ(spec.heartbeat.unhealthy_threshold, 1u);
  EXPECT_EQ(spec.heartbeat.healthy_threshold, 1u);
  EXPECT_EQ(spec.heartbeat.payload, "");
  EXPECT_EQ(spec.heartbeat.expect, "");
  EXPECT_EQ(spec.backoff.initial, seconds(1));
  EXPECT_EQ(spec.backoff.multiplier, 1.6);
  EXPECT_EQ(spec.backoff.jitter, 0.2);
  EXPECT_TRUE(spec.backoff.jitter_enabled);
  EXPECT_EQ(spec.backoff.max, seconds(120));
  EXPECT_EQ(spec.backoff.reset_after, seconds(10));
  EXPECT_EQ(spec.connect_timeout, seconds(20));
  EXPECT_EQ(spec.max_message_bytes, 1024u * 1024u);
}

TEST(ApplyDefaultsTest, PingTimeoutDefaultsToTheInterval) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kPing;
  spec.heartbeat.interval = seconds(3);
  applyDefaults(spec);
  EXPECT_EQ(spec.heartbeat.timeout, seconds(3));
}

TEST(ApplyDefaultsTest, TextTimeoutDefaultsToTheInterval) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kText;
  spec.heartbeat.interval = seconds(3);
  applyDefaults(spec);
  EXPECT_EQ(spec.heartbeat.timeout, seconds(3));
}

TEST(ApplyDefaultsTest, PassiveTimeoutDefaultsToTwiceTheInterval) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kPassive;
  spec.heartbeat.interval = seconds(3);
  applyDefaults(spec);
  EXPECT_EQ(spec.heartbeat.timeout, seconds(6));
}

TEST(ApplyDefaultsTest, PassiveTimeoutDefaultsToTwiceTheDefaultInterval) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kPassive;
  applyDefaults(spec);
  EXPECT_EQ(spec.heartbeat.interval, seconds(10));
  EXPECT_EQ(spec.heartbeat.timeout, seconds(20));
}

// The filled spec is stored, and validated again when wsvisor restarts: a default beyond the
// limits would keep it from starting.
TEST(ApplyDefaultsTest, PassiveTimeoutDefaultIsAtMostTheLongestTimeout) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kPassive;
  spec.heartbeat.interval = hours(1);
  ASSERT_EQ(firstErrorField(spec), kValid);
  applyDefaults(spec);
  EXPECT_EQ(spec.heartbeat.timeout, hours(1));
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(ApplyDefaultsTest, PassiveTimeoutDefaultIsTwiceAHalfHourInterval) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kPassive;
  spec.heartbeat.interval = minutes(30);
  applyDefaults(spec);
  EXPECT_EQ(spec.heartbeat.timeout, hours(1));
  EXPECT_EQ(firstErrorField(spec), kValid);
}

TEST(ApplyDefaultsTest, ExplicitTimeoutIsKept) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kPassive;
  spec.heartbeat.interval = seconds(3);
  spec.heartbeat.timeout = seconds(1);
  applyDefaults(spec);
  EXPECT_EQ(spec.heartbeat.timeout, seconds(1));
}

TEST(ApplyDefaultsTest, TextPayloadDefaultsToHeartbeat) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kText;
  applyDefaults(spec);
  EXPECT_EQ(spec.heartbeat.payload, "heartbeat");
  EXPECT_EQ(spec.heartbeat.expect, "");
}

TEST(ApplyDefaultsTest, ExplicitTextPayloadIsKept) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kText;
  spec.heartbeat.payload = "ping";
  applyDefaults(spec);
  EXPECT_EQ(spec.heartbeat.payload, "ping");
}

TEST(ApplyDefaultsTest, PingAndPassiveModesGetNoPayload) {
  for (HeartbeatMode mode : {HeartbeatMode::kPing, HeartbeatMode::kPassive}) {
    EndpointSpec spec = minimalSpec();
    spec.heartbeat.mode = mode;
    applyDefaults(spec);
    EXPECT_EQ(spec.heartbeat.payload, "") << static_cast<int>(mode);
  }
}

TEST(ApplyDefaultsTest, NoJitterLeavesJitterAtZero) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.jitter_enabled = false;
  applyDefaults(spec);
  EXPECT_FALSE(spec.backoff.jitter_enabled);
  EXPECT_EQ(spec.backoff.jitter, 0.0);
}

TEST(ApplyDefaultsTest, BackoffMaxDefaultIsRaisedToALargerInitial) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.initial = minutes(5);
  applyDefaults(spec);
  EXPECT_EQ(spec.backoff.max, minutes(5));
}

TEST(ApplyDefaultsTest, ExplicitResetAfterIsKept) {
  EndpointSpec spec = minimalSpec();
  spec.backoff.reset_after = milliseconds(10);
  applyDefaults(spec);
  EXPECT_EQ(spec.backoff.reset_after, milliseconds(10));
}

TEST(ApplyDefaultsTest, ExplicitValuesAreKept) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kText;
  spec.heartbeat.interval = seconds(5);
  spec.heartbeat.timeout = seconds(2);
  spec.heartbeat.unhealthy_threshold = 3;
  spec.heartbeat.healthy_threshold = 2;
  spec.heartbeat.payload = "ping";
  spec.heartbeat.expect = "pong";
  spec.backoff.initial = milliseconds(500);
  spec.backoff.multiplier = 2.0;
  spec.backoff.jitter = 0.5;
  spec.backoff.max = seconds(30);
  spec.backoff.reset_after = seconds(60);
  spec.connect_timeout = seconds(5);
  spec.max_message_bytes = 4096;
  spec.heartbeat.unhealthy_interval = seconds(1);
  spec.flapping.threshold = 3;
  spec.flapping.window = seconds(30);
  spec.flapping.quiet_period = seconds(20);
  const EndpointSpec before = spec;
  applyDefaults(spec);
  EXPECT_EQ(spec, before);
}

TEST(ApplyDefaultsTest, IsIdempotent) {
  for (HeartbeatMode mode : {HeartbeatMode::kPing, HeartbeatMode::kText, HeartbeatMode::kPassive,
                             HeartbeatMode::kNone}) {
    EndpointSpec once = minimalSpec();
    once.heartbeat.mode = mode;
    once.backoff.jitter_enabled = mode != HeartbeatMode::kText;
    applyDefaults(once);
    EndpointSpec twice = once;
    applyDefaults(twice);
    EXPECT_EQ(twice, once) << static_cast<int>(mode);
  }
}

TEST(ApplyDefaultsTest, DefaultedMinimalSpecStillValidates) {
  EndpointSpec spec = minimalSpec();
  applyDefaults(spec);
  EXPECT_EQ(firstErrorField(spec), kValid);
}

}  // namespace
}  // namespace wsvisor::core

namespace wsvisor::core {
namespace {

// Health semantics: NONE mode, unhealthy_interval, flap policy.

TEST(HealthSemanticsValidationTest, NoneModeTakesNoHeartbeatSettings) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kNone;
  EXPECT_EQ(firstErrorField(spec), kValid);
  spec.heartbeat.unhealthy_threshold = 1;  // what a stored spec carries: sent back, accepted
  spec.heartbeat.healthy_threshold = 1;
  EXPECT_EQ(firstErrorField(spec), kValid);
  spec.heartbeat.interval = seconds(1);
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.interval");
  EXPECT_EQ(firstErrorMessage(spec), "must be unset in NONE mode");
  spec.heartbeat.interval = Duration::zero();
  spec.heartbeat.timeout = seconds(1);
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.timeout");
  spec.heartbeat.timeout = Duration::zero();
  spec.heartbeat.healthy_threshold = 2;
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.healthy_threshold");
  EXPECT_EQ(firstErrorMessage(spec), "must be unset or 1 in NONE mode");
  spec.heartbeat.healthy_threshold = 0;
  spec.heartbeat.payload = "x";
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.payload");
}

TEST(HealthSemanticsValidationTest, NoneModeDefaultsLeaveTheDurationsUnset) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.mode = HeartbeatMode::kNone;
  applyDefaults(spec);
  EXPECT_EQ(spec.heartbeat.interval, Duration::zero());
  EXPECT_EQ(spec.heartbeat.timeout, Duration::zero());
  EXPECT_EQ(spec.heartbeat.unhealthy_interval, Duration::zero());
  EXPECT_EQ(firstErrorField(spec), kValid);  // the stored form validates again on restart
}

TEST(HealthSemanticsValidationTest, UnhealthyIntervalRangeAndModes) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.unhealthy_interval = milliseconds(10);
  EXPECT_EQ(firstErrorField(spec), kValid);
  spec.heartbeat.unhealthy_interval = milliseconds(9);
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.unhealthy_interval");
  spec.heartbeat.unhealthy_interval = hours(1) + milliseconds(1);
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.unhealthy_interval");
  spec.heartbeat.unhealthy_interval = seconds(1);
  spec.heartbeat.mode = HeartbeatMode::kPassive;
  EXPECT_EQ(firstErrorField(spec), "spec.heartbeat.unhealthy_interval");
  EXPECT_THAT(firstErrorMessage(spec), HasSubstr("only used in PING and TEXT"));
}

TEST(HealthSemanticsValidationTest, UnhealthyIntervalDefaultsToTheInterval) {
  EndpointSpec spec = minimalSpec();
  spec.heartbeat.interval = seconds(3);
  applyDefaults(spec);
  EXPECT_EQ(spec.heartbeat.unhealthy_interval, seconds(3));
  EndpointSpec passive = minimalSpec();
  passive.heartbeat.mode = HeartbeatMode::kPassive;
  applyDefaults(passive);
  EXPECT_EQ(passive.heartbeat.unhealthy_interval, Duration::zero());
}

TEST(HealthSemanticsValidationTest, FlapPolicyLimits) {
  EndpointSpec spec = minimalSpec();
  spec.flapping.threshold = 1000;
  spec.flapping.window = hours(24);
  spec.flapping.quiet_period = milliseconds(10);
  EXPECT_EQ(firstErrorField(spec), kValid);
  spec.flapping.threshold = 1001;
  EXPECT_EQ(firstErrorField(spec), "spec.flapping.threshold");
  spec.flapping.threshold = 0;
  spec.flapping.window = hours(24) + milliseconds(1);
  EXPECT_EQ(firstErrorField(spec), "spec.flapping.window");
  spec.flapping.window = Duration::zero();
  spec.flapping.quiet_period = milliseconds(9);
  EXPECT_EQ(firstErrorField(spec), "spec.flapping.quiet_period");
}

TEST(HealthSemanticsValidationTest, DisabledFlapDetectionTakesNoSettings) {
  EndpointSpec spec = minimalSpec();
  spec.flapping.enabled = false;
  EXPECT_EQ(firstErrorField(spec), kValid);
  applyDefaults(spec);
  EXPECT_EQ(spec.flapping, FlapPolicy::off());  // nothing filled in
  spec.flapping.threshold = 3;
  EXPECT_EQ(firstErrorField(spec), "spec.flapping");
}

TEST(HealthSemanticsValidationTest, FlapDefaults) {
  EndpointSpec spec = minimalSpec();
  applyDefaults(spec);
  EXPECT_TRUE(spec.flapping.enabled);
  EXPECT_EQ(spec.flapping.threshold, 5u);
  EXPECT_EQ(spec.flapping.window, minutes(2));
  EXPECT_EQ(spec.flapping.quiet_period, minutes(1));
}

TEST(ValidUtf8Test, ReplacesEachByteThatStartsNoSequence) {
  EXPECT_EQ(validUtf8("plain"), "plain");
  EXPECT_EQ(validUtf8("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(validUtf8("r\xC3(d"), "r\xEF\xBF\xBD(d");
  EXPECT_EQ(validUtf8("\xFF\xFE"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(validUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
}

TEST(ValidUtf8Test, ASpecMadeDisplayableKeepsEverythingElse) {
  EndpointSpec spec;
  spec.id = "a";
  spec.url = "ws://example.com/";
  spec.labels["team"] = "\xFF";
  spec.headers.push_back({"X-A", "b\xFF"});
  const EndpointSpec shown = withValidUtf8(spec);
  EXPECT_EQ(shown.labels.at("team"), "\xEF\xBF\xBD");
  EXPECT_EQ(shown.headers.at(0).value, "b\xEF\xBF\xBD");
  EXPECT_EQ(shown.url, spec.url);
  ASSERT_TRUE(validateSpec(spec));
  EXPECT_EQ(validateSpec(spec)->field, "spec.labels[team]");
}

}  // namespace
}  // namespace wsvisor::core
