// ProbeEndpoint against real upstreams: through a real gRPC socket to an in-process wsvisor, and
// against the Registry alone for its limits and shutdown. Every wait is bounded; nothing sleeps
// for a fixed time.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "supervisor/probe_runner.h"
#include "supervisor/registry.h"
#include "support/test_upstream.h"
#include "support/wait.h"
#include "support/wsvisor_harness.h"

namespace wsvisor::testing {
namespace {

using std::chrono::milliseconds;

void setMillis(google::protobuf::Duration* d, int64_t ms) {
  d->set_seconds(ms / 1000);
  d->set_nanos(static_cast<int32_t>((ms % 1000) * 1000000));
}

int64_t millisOf(const google::protobuf::Duration& d) {
  return d.seconds() * 1000 + d.nanos() / 1000000;
}

// Heartbeats every 50 ms, answers awaited for up to `timeout_ms`; connect timeout 2 s. No id.
v1::EndpointSpec probeSpec(const std::string& url, int64_t timeout_ms = 1000) {
  v1::EndpointSpec spec;
  spec.set_url(url);
  setMillis(spec.mutable_heartbeat()->mutable_interval(), 50);
  setMillis(spec.mutable_heartbeat()->mutable_timeout(), timeout_ms);
  setMillis(spec.mutable_connect_timeout(), 2000);
  return spec;
}

grpc::Status probe(v1::Supervisor::Stub& stub, const v1::EndpointSpec& spec, uint32_t heartbeats,
                   v1::ProbeEndpointResponse* response,
                   milliseconds deadline = milliseconds(10000)) {
  v1::ProbeEndpointRequest request;
  *request.mutable_spec() = spec;
  request.set_heartbeats(heartbeats);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + deadline);
  return stub.ProbeEndpoint(&context, request, response);
}

std::string closedPortUrl() {
  uint16_t port;
  {
    TestUpstream gone;
    port = gone.port();
  }
  return "ws://127.0.0.1:" + std::to_string(port) + "/";
}

class ProbeEndpointTest : public ::testing::Test {
 protected:
  // No endpoint, and no health event but the end of the (empty) snapshot.
  void expectNothingRegistered(HealthRecorder& watch) {
    v1::ListEndpointsResponse list;
    ASSERT_TRUE(wsvisor_.listEndpoints({}, &list).ok());
    EXPECT_EQ(list.endpoints_size(), 0);
    EXPECT_EQ(wsvisor_.server().registry().size(), 0u);
    EXPECT_TRUE(watch.waitFor(
        [](const v1::HealthEvent& e) {
          return e.type() == v1::HealthEvent::TYPE_SNAPSHOT_COMPLETE;
        },
        milliseconds(2000)));
    for (const auto& received : watch.events()) {
      EXPECT_EQ(received.event.type(), v1::HealthEvent::TYPE_SNAPSHOT_COMPLETE)
          << received.event.ShortDebugString();
    }
  }

  InProcessWsvisor wsvisor_;
  TestUpstream upstream_;
};

TEST_F(ProbeEndpointTest, HealthyUpstreamAnswersEveryHeartbeatAndRegistersNothing) {
  HealthRecorder watch(wsvisor_.stub());
  v1::ProbeEndpointResponse response;
  const grpc::Status status = probe(wsvisor_.stub(), probeSpec(upstream_.url()), 4, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.success());
  EXPECT_FALSE(response.has_failure());
  EXPECT_TRUE(response.has_connect_time());
  EXPECT_EQ(response.rtts_size(), 4);
  EXPECT_EQ(response.heartbeats_sent(), 4u);
  // Heartbeats go out 50 ms apart: the fourth one 150 ms after the first.
  EXPECT_GE(millisOf(response.duration()), 150);
  EXPECT_LE(millisOf(response.duration()), 2000 + 4 * (50 + 1000));
  std::printf("probe: connect %lld us, duration %lld ms\n",
              static_cast<long long>(response.connect_time().nanos() / 1000),
              static_cast<long long>(millisOf(response.duration())));
  EXPECT_EQ(upstream_.pingsReceived(), 4u);
  // The probe closes with 1000 as soon as it has its answer.
  EXPECT_TRUE(
      waitUntil([&] { return !upstream_.closeCodesReceived().empty(); }, milliseconds(2000)));
  EXPECT_EQ(upstream_.closeCodesReceived(), std::vector<int>{1000});
  EXPECT_TRUE(waitUntil([&] { return upstream_.tcpConnections() == 0; }, milliseconds(2000)));
  expectNothingRegistered(watch);
}

TEST_F(ProbeEndpointTest, DefaultIsThreeHeartbeats) {
  v1::ProbeEndpointResponse response;
  ASSERT_TRUE(probe(wsvisor_.stub(), probeSpec(upstream_.url()), 0, &response).ok());
  EXPECT_TRUE(response.success());
  EXPECT_EQ(response.rtts_size(), 3);
}

TEST_F(ProbeEndpointTest, ClosedPortFailsWithConnectionRefused) {
  HealthRecorder watch(wsvisor_.stub());
  v1::ProbeEndpointResponse response;
  ASSERT_TRUE(probe(wsvisor_.stub(), probeSpec(closedPortUrl()), 3, &response).ok());
  EXPECT_FALSE(response.success());
  EXPECT_EQ(response.failure().reason(), v1::FAILURE_REASON_CONNECTION_REFUSED);
  EXPECT_TRUE(response.failure().has_time());
  EXPECT_FALSE(response.has_connect_time());
  EXPECT_EQ(response.rtts_size(), 0);
  EXPECT_EQ(response.heartbeats_sent(), 0u);
  expectNothingRegistered(watch);
}

TEST_F(ProbeEndpointTest, RejectedHandshakeCarriesTheHttpStatus) {
  upstream_.setRejectHandshake(403);
  v1::ProbeEndpointResponse response;
  ASSERT_TRUE(probe(wsvisor_.stub(), probeSpec(upstream_.url()), 3, &response).ok());
  EXPECT_FALSE(response.success());
  EXPECT_EQ(response.failure().reason(), v1::FAILURE_REASON_HANDSHAKE_REJECTED);
  EXPECT_EQ(response.failure().http_status(), 403);
  // One attempt, never a redial.
  EXPECT_EQ(upstream_.handshakesRejected(), 1u);
}

TEST_F(ProbeEndpointTest, StalledUpstreamFailsWithPongTimeoutAndIsClosed) {
  upstream_.setAnswerPings(false);
  v1::ProbeEndpointResponse response;
  ASSERT_TRUE(probe(wsvisor_.stub(), probeSpec(upstream_.url(), 200), 3, &response).ok());
  EXPECT_FALSE(response.success());
  EXPECT_EQ(response.failure().reason(), v1::FAILURE_REASON_PONG_TIMEOUT);
  EXPECT_TRUE(response.has_connect_time());
  EXPECT_EQ(response.rtts_size(), 0);
  // The first ping times out 200 ms after it went out; the probe stops there.
  EXPECT_GE(millisOf(response.duration()), 200);
  EXPECT_LE(millisOf(response.duration()), 2000 + 3 * (50 + 200));
  EXPECT_TRUE(waitUntil([&] { return upstream_.tcpConnections() == 0; }, milliseconds(2000)));
  EXPECT_EQ(upstream_.connectionsAccepted(), 1u);
}

TEST_F(ProbeEndpointTest, TextProbeCountsEchoedPayloads) {
  v1::EndpointSpec spec = probeSpec(upstream_.url());
  spec.mutable_heartbeat()->set_mode(v1::HEARTBEAT_MODE_TEXT);
  spec.mutable_heartbeat()->set_payload("are-you-there");
  v1::ProbeEndpointResponse response;
  ASSERT_TRUE(probe(wsvisor_.stub(), spec, 2, &response).ok());
  EXPECT_TRUE(response.success()) << response.failure().ShortDebugString();
  EXPECT_EQ(response.rtts_size(), 2);
  EXPECT_EQ(upstream_.textsReceived(),
            (std::vector<std::string>{"are-you-there", "are-you-there"}));
}

TEST_F(ProbeEndpointTest, TextProbeWithAnUnmatchedReplyFailsWithReplyMismatch) {
  v1::EndpointSpec spec = probeSpec(upstream_.url(), 200);
  spec.mutable_heartbeat()->set_mode(v1::HEARTBEAT_MODE_TEXT);
  spec.mutable_heartbeat()->set_expect("pong");
  v1::ProbeEndpointResponse response;
  ASSERT_TRUE(probe(wsvisor_.stub(), spec, 2, &response).ok());
  EXPECT_FALSE(response.success());
  EXPECT_EQ(response.failure().reason(), v1::FAILURE_REASON_REPLY_MISMATCH);
}

TEST_F(ProbeEndpointTest, DeadlineAbortsTheProbeAndClosesItsConnection) {
  upstream_.setAnswerPings(false);
  v1::ProbeEndpointResponse response;
  // Without the deadline this probe would wait 10 s for its first pong.
  const grpc::Status status =
      probe(wsvisor_.stub(), probeSpec(upstream_.url(), 10000), 3, &response, milliseconds(300));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(waitUntil([&] { return upstream_.tcpConnections() == 0; }, milliseconds(3000)));
  EXPECT_EQ(upstream_.connectionsAccepted(), 1u);
  EXPECT_TRUE(waitUntil([&] { return wsvisor_.server().registry().shards().probesRunning() == 0; },
                        milliseconds(2000)));
}

TEST_F(ProbeEndpointTest, CancelledCallClosesTheConnectionWithNormalClosure) {
  upstream_.setAnswerPings(false);
  v1::ProbeEndpointRequest request;
  *request.mutable_spec() = probeSpec(upstream_.url(), 10000);
  grpc::ClientContext context;
  grpc::Status status;
  std::thread caller([&] {
    v1::ProbeEndpointResponse response;
    status = wsvisor_.stub().ProbeEndpoint(&context, request, &response);
  });
  const bool opened =
      waitUntil([&] { return upstream_.openConnections() == 1; }, milliseconds(3000));
  context.TryCancel();
  caller.join();
  ASSERT_TRUE(opened);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(waitUntil([&] { return upstream_.tcpConnections() == 0; }, milliseconds(3000)));
  EXPECT_EQ(upstream_.closeCodesReceived(), std::vector<int>{1000});
  // The server goes on serving probes.
  upstream_.setAnswerPings(true);
  v1::ProbeEndpointResponse response;
  ASSERT_TRUE(probe(wsvisor_.stub(), probeSpec(upstream_.url()), 1, &response).ok());
  EXPECT_TRUE(response.success());
}

TEST_F(ProbeEndpointTest, InvalidRequestsNameTheField) {
  v1::ProbeEndpointResponse response;
  grpc::Status status = probe(wsvisor_.stub(), probeSpec(upstream_.url()), 101, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "heartbeats: must be 1 to 100, got 101");

  status = probe(wsvisor_.stub(), probeSpec("http://127.0.0.1:1/"), 1, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind("spec.url:", 0), 0u) << status.error_message();

  v1::ProbeEndpointRequest no_spec;
  grpc::ClientContext context;
  status = wsvisor_.stub().ProbeEndpoint(&context, no_spec, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "spec: is required");
  EXPECT_EQ(upstream_.connectionsAccepted(), 0u);
}

TEST_F(ProbeEndpointTest, AnIdAndLabelsMayBeGivenAndStillNothingIsRegistered) {
  v1::EndpointSpec spec = probeSpec(upstream_.url());
  spec.set_id("my-endpoint");
  (*spec.mutable_labels())["team"] = "red";
  v1::ProbeEndpointResponse response;
  ASSERT_TRUE(probe(wsvisor_.stub(), spec, 1, &response).ok());
  EXPECT_TRUE(response.success());
  v1::Endpoint endpoint;
  EXPECT_EQ(wsvisor_.getEndpoint("my-endpoint", &endpoint).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST(ProbeEndpointShutdownTest, ShutdownEndsARunningProbeWithUnavailable) {
  TestUpstream upstream;
  upstream.setAnswerPings(false);
  auto wsvisor = std::make_unique<InProcessWsvisor>();
  grpc::Status status;
  std::thread caller([&] {
    v1::ProbeEndpointResponse response;
    status = probe(wsvisor->stub(), probeSpec(upstream.url(), 10000), 3, &response);
  });
  const bool opened =
      waitUntil([&] { return upstream.openConnections() == 1; }, milliseconds(3000));
  wsvisor->server().shutdown();
  caller.join();
  ASSERT_TRUE(opened);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(
      waitUntil([&] { return !upstream.closeCodesReceived().empty(); }, milliseconds(2000)));
  EXPECT_EQ(upstream.closeCodesReceived(), std::vector<int>{1001});
}

class TokenFile {
 public:
  explicit TokenFile(const std::string& lines) {
    char pattern[] = "/tmp/wsvisor-probe-tokens-XXXXXX";
    const int fd = mkstemp(pattern);
    if (fd >= 0) close(fd);
    path_ = pattern;
    std::ofstream(path_) << lines;
  }
  ~TokenFile() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ProbeEndpointAccessTest, NeedsWriteAccess) {
  TokenFile tokens(
      "reader read reader-token-0123456789\n"
      "writer write writer-token-0123456789\n");
  service::ServerOptions options;
  options.auth_token_file = tokens.path();
  InProcessWsvisor wsvisor(options);
  TestUpstream upstream;
  auto call = [&](const std::string& token) {
    v1::ProbeEndpointRequest request;
    *request.mutable_spec() = probeSpec(upstream.url());
    request.set_heartbeats(1);
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + token);
    v1::ProbeEndpointResponse response;
    return wsvisor.stub().ProbeEndpoint(&context, request, &response);
  };
  const grpc::Status refused = call("reader-token-0123456789");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(refused.error_message().find("ProbeEndpoint"), std::string::npos);
  EXPECT_EQ(upstream.connectionsAccepted(), 0u);
  EXPECT_TRUE(call("writer-token-0123456789").ok());
}

// The Registry alone: its limits, cancellation and shutdown, and that a probe publishes nothing.
class RegistryProbeTest : public ::testing::Test {
 protected:
  struct Outcome {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<core::ProbeResult> result;
    int calls = 0;
  };

  std::unique_ptr<Registry> makeRegistry(RegistryOptions options) {
    return std::make_unique<Registry>(options, bus_, metrics_, nullptr, nullptr);
  }
  static core::EndpointSpec stalledSpec(const std::string& url) {
    core::EndpointSpec spec;
    spec.url = url;
    spec.heartbeat.interval = std::chrono::seconds(10);
    return spec;
  }
  static ProbeRunner::Done recordInto(Outcome& outcome) {
    return [&outcome](const core::ProbeResult& result) {
      std::lock_guard<std::mutex> lock(outcome.mu);
      outcome.result = result;
      ++outcome.calls;
      outcome.cv.notify_all();
    };
  }
  static std::optional<core::ProbeResult> waitFor(Outcome& outcome) {
    std::unique_lock<std::mutex> lock(outcome.mu);
    outcome.cv.wait_for(lock, milliseconds(3000), [&] { return outcome.result.has_value(); });
    return outcome.result;
  }

  HealthBus bus_;
  Metrics metrics_{MetricsOptions{}};
  TestUpstream upstream_;
};

TEST_F(RegistryProbeTest, ProbesBeyondTheCapAreRefusedUntilOneEnds) {
  auto registry = makeRegistry({});
  ProbeRunner probes(*registry, /*max_probes=*/1);
  const uint64_t revision_before = bus_.revision();
  upstream_.setAnswerPings(false);
  Outcome first;
  auto started = probes.probe(stalledSpec(upstream_.url()), 3, recordInto(first));
  ASSERT_TRUE(std::holds_alternative<ProbeRunner::Ticket>(started));
  EXPECT_EQ(probes.running(), 1u);

  Outcome second;
  auto refused = probes.probe(stalledSpec(upstream_.url()), 3, recordInto(second));
  ASSERT_TRUE(std::holds_alternative<RegistryError>(refused));
  EXPECT_EQ(std::get<RegistryError>(refused).code, RegistryError::Code::kResourceExhausted);

  ASSERT_TRUE(waitUntil([&] { return upstream_.openConnections() == 1; }, milliseconds(3000)));
  probes.cancel(std::get<ProbeRunner::Ticket>(started));
  const auto result = waitFor(first);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->outcome, core::ProbeResult::Outcome::kCancelled);
  EXPECT_TRUE(waitUntil([&] { return upstream_.tcpConnections() == 0; }, milliseconds(3000)));
  EXPECT_EQ(probes.running(), 0u);
  // Cancelling again, after the end, does nothing.
  probes.cancel(std::get<ProbeRunner::Ticket>(started));

  upstream_.setAnswerPings(true);
  Outcome third;
  ASSERT_TRUE(std::holds_alternative<ProbeRunner::Ticket>(
      probes.probe(stalledSpec(upstream_.url()), 1, recordInto(third))));
  const auto succeeded = waitFor(third);
  ASSERT_TRUE(succeeded.has_value());
  EXPECT_EQ(succeeded->outcome, core::ProbeResult::Outcome::kSucceeded);
  EXPECT_EQ(first.calls, 1);
  // Nothing was ever published.
  EXPECT_EQ(bus_.revision(), revision_before);
  EXPECT_EQ(registry->size(), 0u);
}

TEST_F(RegistryProbeTest, NoProbeWhenEndpointsFillTheConnectionBudget) {
  RegistryOptions options;
  options.max_connections = 1;
  auto registry = makeRegistry(options);
  ProbeRunner probes(*registry);
  core::EndpointSpec endpoint = stalledSpec(upstream_.url());
  endpoint.id = "only";
  ASSERT_TRUE(std::holds_alternative<Registry::RegisterResult>(
      registry->registerEndpoint(endpoint, EndpointOwner::kApi)));
  Outcome outcome;
  auto refused = probes.probe(stalledSpec(upstream_.url()), 1, recordInto(outcome));
  ASSERT_TRUE(std::holds_alternative<RegistryError>(refused));
  EXPECT_EQ(std::get<RegistryError>(refused).code, RegistryError::Code::kResourceExhausted);
  EXPECT_NE(std::get<RegistryError>(refused).message.find("file descriptor"), std::string::npos);
}

TEST_F(RegistryProbeTest, NoRegistrationWhenRunningProbesFillTheConnectionBudget) {
  RegistryOptions options;
  options.max_connections = 1;
  auto registry = makeRegistry(options);
  ProbeRunner probes(*registry);
  upstream_.setAnswerPings(false);
  Outcome outcome;
  const auto started = probes.probe(stalledSpec(upstream_.url()), 3, recordInto(outcome));
  ASSERT_TRUE(std::holds_alternative<ProbeRunner::Ticket>(started));
  core::EndpointSpec endpoint = stalledSpec(upstream_.url());
  endpoint.id = "late";
  auto refused = registry->registerEndpoint(endpoint, EndpointOwner::kApi);
  ASSERT_TRUE(std::holds_alternative<RegistryError>(refused));
  EXPECT_EQ(std::get<RegistryError>(refused).code, RegistryError::Code::kResourceExhausted);
  EXPECT_NE(std::get<RegistryError>(refused).message.find("1 running probes"), std::string::npos);
  EXPECT_EQ(registry->size(), 0u);
  // Once the probe has ended, the descriptor is free again.
  probes.cancel(std::get<ProbeRunner::Ticket>(started));
  ASSERT_TRUE(waitFor(outcome).has_value());
  EXPECT_TRUE(std::holds_alternative<Registry::RegisterResult>(
      registry->registerEndpoint(endpoint, EndpointOwner::kApi)));
}

TEST_F(RegistryProbeTest, ShutdownEndsRunningProbesAndRefusesNewOnes) {
  auto registry = makeRegistry({});
  ProbeRunner probes(*registry);
  upstream_.setAnswerPings(false);
  Outcome outcome;
  ASSERT_TRUE(std::holds_alternative<ProbeRunner::Ticket>(
      probes.probe(stalledSpec(upstream_.url()), 3, recordInto(outcome))));
  ASSERT_TRUE(waitUntil([&] { return upstream_.openConnections() == 1; }, milliseconds(3000)));
  registry->shutdown(milliseconds(2000));
  const auto result = waitFor(outcome);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->outcome, core::ProbeResult::Outcome::kShutDown);
  EXPECT_EQ(outcome.calls, 1);
  EXPECT_TRUE(
      waitUntil([&] { return !upstream_.closeCodesReceived().empty(); }, milliseconds(2000)));
  EXPECT_EQ(upstream_.closeCodesReceived(), std::vector<int>{1001});

  Outcome late;
  auto refused = probes.probe(stalledSpec(upstream_.url()), 1, recordInto(late));
  ASSERT_TRUE(std::holds_alternative<RegistryError>(refused));
  EXPECT_EQ(std::get<RegistryError>(refused).code, RegistryError::Code::kUnavailable);
  registry.reset();
  EXPECT_EQ(late.calls, 0);
}

}  // namespace
}  // namespace wsvisor::testing
