// specFromProto() turns a requested spec into the core's; the core validates the rest.

#include "service/api/proto_conversions.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <variant>

#include "supervisor/core/spec_validation.h"

namespace wsvisor::service {
namespace {

v1::EndpointSpec minimalSpec() {
  v1::EndpointSpec spec;
  spec.set_id("echo-1");
  spec.set_url("ws://echo.example.com/ws");
  return spec;
}

// The field named by the conversion error, or "(converted)".
std::string conversionErrorField(const v1::EndpointSpec& spec) {
  const auto converted = specFromProto(spec);
  if (const auto* error = std::get_if<core::FieldError>(&converted)) return error->field;
  return "(converted)";
}

TEST(SpecFromProtoTest, DurationIsConvertedToNanoseconds) {
  v1::EndpointSpec spec = minimalSpec();
  spec.mutable_heartbeat()->mutable_interval()->set_seconds(1);
  spec.mutable_heartbeat()->mutable_interval()->set_nanos(500'000'000);
  const auto converted = specFromProto(spec);
  ASSERT_TRUE(std::holds_alternative<core::EndpointSpec>(converted));
  EXPECT_EQ(std::get<core::EndpointSpec>(converted).heartbeat.interval,
            std::chrono::milliseconds(1500));
}

TEST(SpecFromProtoTest, UnsetDurationStaysUnset) {
  const auto converted = specFromProto(minimalSpec());
  ASSERT_TRUE(std::holds_alternative<core::EndpointSpec>(converted));
  EXPECT_EQ(std::get<core::EndpointSpec>(converted).heartbeat.interval, core::Duration::zero());
}

TEST(SpecFromProtoTest, HealthSemanticsFieldsSurviveTheStoreRoundTrip) {
  v1::EndpointSpec spec = minimalSpec();
  spec.mutable_heartbeat()->mutable_unhealthy_interval()->set_nanos(250'000'000);
  spec.mutable_flapping()->set_threshold(3);
  spec.mutable_flapping()->mutable_window()->set_seconds(30);
  spec.mutable_flapping()->mutable_quiet_period()->set_seconds(10);
  auto converted = specFromProto(spec);
  ASSERT_TRUE(std::holds_alternative<core::EndpointSpec>(converted));
  core::EndpointSpec core_spec = std::get<core::EndpointSpec>(converted);
  core::applyDefaults(core_spec);
  EXPECT_EQ(core_spec.heartbeat.unhealthy_interval, std::chrono::milliseconds(250));
  const ProtoSpecCodec codec;
  std::string error;
  const auto decoded = codec.decode(codec.encode(core_spec), error);
  ASSERT_TRUE(decoded.has_value()) << error;
  EXPECT_EQ(*decoded, core_spec);
}

// An older wsvisor stored text that is not UTF-8, which a proto3 parser refuses: the codec still
// reads it, bytes unchanged, so that validation can name the field.
TEST(SpecFromProtoTest, StoredTextThatIsNotUtf8IsReadAsItIs) {
  core::EndpointSpec spec;
  spec.id = "old";
  spec.url = "ws://example.com/";
  spec.labels["team"] = "r\xC3(d";
  spec.headers.push_back({"X-Name", "\xFF"});
  spec.heartbeat.mode = core::HeartbeatMode::kText;
  spec.heartbeat.payload = "p\xE2\x82";
  core::applyDefaults(spec);
  const ProtoSpecCodec codec;
  std::string error;
  const auto decoded = codec.decode(codec.encode(spec), error);
  ASSERT_TRUE(decoded.has_value()) << error;
  EXPECT_EQ(*decoded, spec);
  EXPECT_FALSE(codec.decode("\xFF\xFF\xFF not a spec", error));
}

TEST(SpecFromProtoTest, NoneModeStoresNoDurationsAndDisabledFlappingNoSettings) {
  v1::EndpointSpec spec = minimalSpec();
  spec.mutable_heartbeat()->set_mode(v1::HEARTBEAT_MODE_NONE);
  spec.mutable_flapping()->set_disabled(true);
  auto converted = specFromProto(spec);
  ASSERT_TRUE(std::holds_alternative<core::EndpointSpec>(converted));
  core::EndpointSpec core_spec = std::get<core::EndpointSpec>(converted);
  EXPECT_EQ(core_spec.heartbeat.mode, core::HeartbeatMode::kNone);
  core::applyDefaults(core_spec);
  v1::EndpointSpec shown;
  specToProto(core_spec, &shown, SecretHeaders::kShown);
  EXPECT_EQ(shown.heartbeat().mode(), v1::HEARTBEAT_MODE_NONE);
  EXPECT_FALSE(shown.heartbeat().has_interval());
  EXPECT_FALSE(shown.heartbeat().has_timeout());
  EXPECT_FALSE(shown.heartbeat().has_unhealthy_interval());
  EXPECT_TRUE(shown.flapping().disabled());
  EXPECT_FALSE(shown.flapping().has_window());
  // What the API shows can be sent back as it is.
  auto again = specFromProto(shown);
  ASSERT_TRUE(std::holds_alternative<core::EndpointSpec>(again));
  EXPECT_FALSE(core::validateSpec(std::get<core::EndpointSpec>(again)).has_value());
}

TEST(StatusToProtoTest, FlappingWithItsUnderlyingHealthAndReason) {
  core::EndpointStatus status;
  status.health = core::Health::kFlapping;
  status.underlying_health = core::Health::kUnhealthy;
  status.transition_reason = "6 changes within 2m";
  v1::EndpointStatus proto;
  statusToProto(status, &proto);
  EXPECT_EQ(proto.health(), v1::HEALTH_FLAPPING);
  EXPECT_EQ(proto.underlying_health(), v1::HEALTH_UNHEALTHY);
  EXPECT_EQ(proto.transition_reason(), "6 changes within 2m");
}

TEST(StatusFromProtoTest, ABroadcastStatusReadsBackAsItWasPublished) {
  core::EndpointStatus status;
  status.health = core::Health::kFlapping;
  status.underlying_health = core::Health::kUnhealthy;
  status.phase = core::ConnectionPhase::kBackingOff;
  status.last_rtt = std::chrono::microseconds(1234);
  status.smoothed_rtt = std::chrono::microseconds(1500);
  status.consecutive_failures = 3;
  status.last_failure =
      core::Failure::make(core::FailureReason::kHandshakeRejected, "HTTP 403", 403);
  status.last_failure->at = core::MonoClock::now() - std::chrono::seconds(2);
  status.last_transition = core::MonoClock::now() - std::chrono::seconds(1);
  status.reconnect_attempts = 4;
  status.next_attempt = core::MonoClock::now() + std::chrono::seconds(3);
  status.heartbeats_sent = 99;
  status.transition_reason = "6 changes within 2m";
  status.supervised_by = "replica-2";
  v1::EndpointStatus proto;
  statusToProto(status, &proto);
  EXPECT_EQ(proto.supervised_by(), "replica-2");
  const core::EndpointStatus back = statusFromProto(proto);
  EXPECT_EQ(back.health, status.health);
  EXPECT_EQ(back.underlying_health, status.underlying_health);
  EXPECT_EQ(back.phase, status.phase);
  EXPECT_EQ(back.last_rtt, status.last_rtt);
  EXPECT_EQ(back.smoothed_rtt, status.smoothed_rtt);
  EXPECT_EQ(back.consecutive_failures, 3u);
  ASSERT_TRUE(back.last_failure);
  EXPECT_EQ(*back.last_failure, *status.last_failure);
  EXPECT_EQ(back.last_transition, status.last_transition);
  EXPECT_EQ(back.reconnect_attempts, 4u);
  EXPECT_EQ(back.next_attempt, status.next_attempt);
  EXPECT_EQ(back.heartbeats_sent, 99u);
  EXPECT_EQ(back.transition_reason, status.transition_reason);
  EXPECT_EQ(back.supervised_by, "replica-2");

  v1::EndpointStatus unknown;
  unknown.set_health(static_cast<v1::Health>(77));
  EXPECT_EQ(statusFromProto(unknown).health, core::Health::kUnknown);
  EXPECT_FALSE(statusFromProto(unknown).last_failure);
}

TEST(SpecFromProtoTest, ZeroDurationIsRefused) {
  v1::EndpointSpec spec = minimalSpec();
  spec.mutable_backoff()->mutable_max();
  EXPECT_EQ(conversionErrorField(spec), "spec.backoff.max");
}

// Seconds times 10^9 used to overflow int64 nanoseconds (undefined behaviour, in practice a
// wrapped and possibly valid-looking duration).
TEST(SpecFromProtoTest, DurationLongerThanNanosecondsCanHoldIsRefused) {
  v1::EndpointSpec spec = minimalSpec();
  spec.mutable_heartbeat()->mutable_interval()->set_seconds(20'000'000'000);
  EXPECT_EQ(conversionErrorField(spec), "spec.heartbeat.interval");
}

TEST(SpecFromProtoTest, LargestProtobufDurationIsRefused) {
  v1::EndpointSpec spec = minimalSpec();
  spec.mutable_connect_timeout()->set_seconds(315'576'000'000);
  spec.mutable_connect_timeout()->set_nanos(999'999'999);
  EXPECT_EQ(conversionErrorField(spec), "spec.connect_timeout");
}

TEST(SpecFromProtoTest, MostNegativeDurationIsRefused) {
  v1::EndpointSpec spec = minimalSpec();
  spec.mutable_backoff()->mutable_initial()->set_seconds(std::numeric_limits<int64_t>::min());
  EXPECT_EQ(conversionErrorField(spec), "spec.backoff.initial");
}

TEST(SpecFromProtoTest, NanosOutsideTheProtobufRangeAreRefused) {
  v1::EndpointSpec spec = minimalSpec();
  spec.mutable_backoff()->mutable_reset_after()->set_seconds(9'223'372'035);
  spec.mutable_backoff()->mutable_reset_after()->set_nanos(std::numeric_limits<int32_t>::max());
  EXPECT_EQ(conversionErrorField(spec), "spec.backoff.reset_after");
}

TEST(SpecFromProtoTest, LongestConvertibleDurationIsConvertedAndLeftToValidation) {
  v1::EndpointSpec spec = minimalSpec();
  spec.mutable_heartbeat()->mutable_timeout()->set_seconds(9'223'372'035);
  spec.mutable_heartbeat()->mutable_timeout()->set_nanos(999'999'999);
  const auto converted = specFromProto(spec);
  ASSERT_TRUE(std::holds_alternative<core::EndpointSpec>(converted));
  EXPECT_EQ(std::get<core::EndpointSpec>(converted).heartbeat.timeout,
            std::chrono::seconds(9'223'372'035) + std::chrono::nanoseconds(999'999'999));
}

}  // namespace
}  // namespace wsvisor::service
