#include "service/config_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace wsvisor::service {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::vector<core::EndpointSpec> parseOk(const std::string& text) {
  auto result = parseConfigText(text);
  if (auto* error = std::get_if<std::string>(&result)) {
    ADD_FAILURE() << *error;
    return {};
  }
  return std::get<std::vector<core::EndpointSpec>>(result);
}

std::string parseError(const std::string& text) {
  auto result = parseConfigText(text);
  if (auto* error = std::get_if<std::string>(&result)) return *error;
  ADD_FAILURE() << "parsed without error";
  return "";
}

TEST(ConfigFileTest, ReadsEveryField) {
  const auto specs = parseOk(R"(
endpoints:
  - id: prices
    url: wss://feed.example.com/ws
    labels: {team: red, env: prod}
    headers: [{name: Authorization, value: "Bearer x"}]
    subprotocols: [v2.prices]
    heartbeat: {mode: text, interval: 250ms, timeout: 1s, unhealthy_threshold: 3,
                healthy_threshold: 2, payload: ping, expect: "pong.*"}
    backoff: {initial: 500ms, multiplier: 2, jitter: 0.1, max: 1m, reset_after: 30s}
    connect_timeout: 5s
    max_message_bytes: 4096
    tls: {ca_file: /etc/ca.pem, server_name: feed.example.com, insecure_skip_verify: false}
    flapping: {threshold: 3, window: 30s, quiet_period: 10s}
  - id: plain
    url: ws://127.0.0.1:9000/
    heartbeat: {mode: none}
    flapping: {disabled: true}
  - id: recheck
    url: ws://127.0.0.1:9000/
    heartbeat: {unhealthy_interval: 500ms}
)");
  ASSERT_EQ(specs.size(), 3u);
  const core::EndpointSpec& s = specs[0];
  EXPECT_EQ(s.id, "prices");
  EXPECT_EQ(s.labels.at("env"), "prod");
  ASSERT_EQ(s.headers.size(), 1u);
  EXPECT_EQ(s.headers[0].value, "Bearer x");
  EXPECT_EQ(s.heartbeat.mode, core::HeartbeatMode::kText);
  EXPECT_EQ(s.heartbeat.interval, std::chrono::milliseconds(250));
  EXPECT_EQ(s.heartbeat.unhealthy_threshold, 3u);
  EXPECT_EQ(s.heartbeat.expect, "pong.*");
  EXPECT_EQ(s.backoff.max, std::chrono::minutes(1));
  EXPECT_DOUBLE_EQ(s.backoff.multiplier, 2.0);
  EXPECT_EQ(s.connect_timeout, std::chrono::seconds(5));
  EXPECT_EQ(s.max_message_bytes, 4096u);
  EXPECT_EQ(s.tls.server_name, "feed.example.com");
  EXPECT_EQ(s.flapping.threshold, 3u);
  EXPECT_EQ(s.flapping.window, std::chrono::seconds(30));
  EXPECT_EQ(s.flapping.quiet_period, std::chrono::seconds(10));
  EXPECT_TRUE(s.flapping.enabled);
  // Unset fields stay unset: defaults are applied after validation, as for the API.
  EXPECT_EQ(specs[1].heartbeat.interval, core::Duration::zero());
  EXPECT_EQ(specs[1].heartbeat.mode, core::HeartbeatMode::kNone);
  EXPECT_FALSE(specs[1].flapping.enabled);
  EXPECT_EQ(specs[2].heartbeat.unhealthy_interval, std::chrono::milliseconds(500));
}

TEST(ConfigFileTest, EmptyFileAndEmptyListMeanNoEndpoints) {
  EXPECT_TRUE(parseOk("").empty());
  EXPECT_TRUE(parseOk("endpoints: []\n").empty());
  EXPECT_TRUE(parseOk("# nothing yet\nendpoints:\n").empty());
}

TEST(ConfigFileTest, ErrorsNameThePlace) {
  EXPECT_THAT(
      parseError("endpoints:\n  - id: a\n    url: ws://h/\n    heartbeat: {interval: 10}\n"),
      StartsWith("endpoints[0].heartbeat.interval:"));
  EXPECT_THAT(parseError("endpoints:\n  - id: a\n    url: ws://h/\n    heartbeat: {mode: loud}\n"),
              StartsWith("endpoints[0].heartbeat.mode:"));
  EXPECT_THAT(parseError("endpoints:\n  - id: a\n    url: ws://h/\n    heartbeat: {intervl: 1s}\n"),
              StartsWith("endpoints[0].heartbeat.intervl: unknown key"));
  EXPECT_THAT(parseError("endpoints:\n  - url: ws://h/\n"), StartsWith("endpoints[0].id:"));
  EXPECT_THAT(parseError("endpoints:\n  - id: a\n    url: ws://h/\n    connect_timeout: 0s\n"),
              StartsWith("endpoints[0].connect_timeout: must be positive"));
  EXPECT_THAT(parseError("endpoints: {a: 1}\n"), HasSubstr("endpoints: must be a list"));
  EXPECT_THAT(parseError("endpointz: []\n"), HasSubstr("unknown key"));
  EXPECT_THAT(parseError("endpoints: [\n"), StartsWith("not valid YAML"));
}

TEST(ConfigFileTest, MissingFileIsAnError) {
  auto result = loadConfigFile("/nonexistent/wsvisor.yaml");
  ASSERT_TRUE(std::holds_alternative<std::string>(result));
  EXPECT_THAT(std::get<std::string>(result), HasSubstr("/nonexistent/wsvisor.yaml"));
}

}  // namespace
}  // namespace wsvisor::service
