// Durability and updates through the real gRPC API of an in-process wsvisor: restart on the same
// data dir, UpdateEndpoint in place or with a reconnect, compare-and-set, and config-file
// ownership.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "support/test_upstream.h"
#include "support/wait.h"
#include "support/wsvisor_harness.h"

namespace wsvisor::testing {
namespace {

using std::chrono::milliseconds;

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/wsvisor-lifecycle-XXXXXX";
    path_ = mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

service::ServerOptions withDataDir(const std::string& dir) {
  service::ServerOptions options;
  options.data_dir = dir;
  return options;
}

grpc::Status update(InProcessWsvisor& wsvisor, const v1::EndpointSpec& spec,
                    uint64_t expected_generation, v1::UpdateEndpointResponse* response) {
  v1::UpdateEndpointRequest request;
  *request.mutable_spec() = spec;
  request.set_expected_generation(expected_generation);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return wsvisor.stub().UpdateEndpoint(&context, request, response);
}

TEST(RegistryLifecycleTest, EndpointsSurviveARestartOnTheSameDataDir) {
  TempDir data;
  TestUpstream upstream;
  {
    InProcessWsvisor first(withDataDir(data.path()));
    for (const char* id : {"r1", "r2", "r3"}) {
      v1::EndpointSpec spec = fastSpec(id, upstream.url());
      (*spec.mutable_labels())["team"] = "red";
      ASSERT_TRUE(first.registerEndpoint(spec).ok());
    }
    ASSERT_TRUE(first.unregisterEndpoint("r2").ok());
  }
  InProcessWsvisor second(withDataDir(data.path()));
  v1::ListEndpointsResponse list;
  ASSERT_TRUE(second.listEndpoints({}, &list).ok());
  ASSERT_EQ(list.endpoints_size(), 2);
  EXPECT_EQ(list.endpoints(0).spec().id(), "r1");
  EXPECT_EQ(list.endpoints(1).spec().id(), "r3");
  EXPECT_EQ(list.endpoints(0).spec().labels().at("team"), "red");
  EXPECT_EQ(list.endpoints(0).spec().heartbeat().interval().nanos(), 200000000);
  EXPECT_EQ(list.endpoints(0).owner(), v1::OWNER_API);
  EXPECT_TRUE(waitUntil(
      [&] {
        v1::Endpoint e1, e3;
        return second.getEndpoint("r1", &e1).ok() && second.getEndpoint("r3", &e3).ok() &&
               e1.status().health() == v1::HEALTH_HEALTHY &&
               e3.status().health() == v1::HEALTH_HEALTHY;
      },
      milliseconds(3000)));
}

TEST(RegistryLifecycleTest, PolicyChangeAppliesToTheLiveConnection) {
  TestUpstream upstream;
  InProcessWsvisor wsvisor;
  v1::EndpointSpec spec = fastSpec("u", upstream.url());
  ASSERT_TRUE(wsvisor.registerEndpoint(spec).ok());
  ASSERT_TRUE(waitUntil([&] { return upstream.pingsReceived() >= 1; }, milliseconds(2000)));

  spec.mutable_heartbeat()->mutable_interval()->set_nanos(100000000);
  (*spec.mutable_labels())["tier"] = "gold";
  v1::UpdateEndpointResponse response;
  ASSERT_TRUE(update(wsvisor, spec, 1, &response).ok());
  EXPECT_FALSE(response.reconnected());
  EXPECT_EQ(response.endpoint().generation(), 2u);
  EXPECT_EQ(response.endpoint().spec().labels().at("tier"), "gold");
  const size_t pings_before = upstream.pingsReceived();
  // Ten pings at the new 100 ms interval arrive well within 2 s, on the one connection.
  EXPECT_TRUE(
      waitUntil([&] { return upstream.pingsReceived() >= pings_before + 10; }, milliseconds(2000)));
  EXPECT_EQ(upstream.connectionsAccepted(), 1u);
}

TEST(RegistryLifecycleTest, UrlChangeReconnectsAndStaleGenerationIsAborted) {
  TestUpstream upstream;
  InProcessWsvisor wsvisor;
  v1::EndpointSpec spec = fastSpec("u", upstream.url("/a"));
  ASSERT_TRUE(wsvisor.registerEndpoint(spec).ok());
  ASSERT_TRUE(waitUntil([&] { return upstream.openConnections() == 1; }, milliseconds(2000)));

  spec.set_url(upstream.url("/b"));
  v1::UpdateEndpointResponse response;
  ASSERT_TRUE(update(wsvisor, spec, 1, &response).ok());
  EXPECT_TRUE(response.reconnected());
  EXPECT_TRUE(waitUntil(
      [&] {
        const auto requests = upstream.handshakeRequests();
        return requests.size() == 2 && requests[1].at(":path") == "/b" &&
               upstream.openConnections() == 1;
      },
      milliseconds(2000)));

  spec.set_url(upstream.url("/c"));
  const grpc::Status stale = update(wsvisor, spec, 1, &response);
  EXPECT_EQ(stale.error_code(), grpc::StatusCode::ABORTED);
  v1::Endpoint kept;
  ASSERT_TRUE(wsvisor.getEndpoint("u", &kept).ok());
  EXPECT_EQ(kept.spec().url(), upstream.url("/b"));
  EXPECT_EQ(kept.generation(), 2u);

  spec.set_id("missing");
  EXPECT_EQ(update(wsvisor, spec, 0, &response).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST(RegistryLifecycleTest, ConfigFileEndpointsAreOwnedByTheFile) {
  TempDir dir;
  TestUpstream upstream;
  const std::string config = dir.path() + "/endpoints.yaml";
  std::ofstream(config) << "endpoints:\n"
                           "  - id: from-file\n"
                           "    url: "
                        << upstream.url() << "\n    heartbeat: {interval: 200ms}\n";
  service::ServerOptions options;
  options.config_file = config;
  InProcessWsvisor wsvisor(options);
  v1::Endpoint endpoint;
  ASSERT_TRUE(wsvisor.getEndpoint("from-file", &endpoint).ok());
  EXPECT_EQ(endpoint.owner(), v1::OWNER_CONFIG_FILE);
  const grpc::Status refused = wsvisor.unregisterEndpoint("from-file");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(refused.error_message().find("config file"), std::string::npos);

  // A bad file changes nothing.
  std::ofstream(config) << "endpoints:\n  - id: from-file\n    url: http://nope/\n";
  EXPECT_FALSE(wsvisor.server().reloadConfig());
  ASSERT_TRUE(wsvisor.getEndpoint("from-file", &endpoint).ok());
  EXPECT_EQ(endpoint.spec().url(), upstream.url());

  // A good one is applied as a diff.
  std::ofstream(config) << "endpoints:\n  - id: other\n    url: " << upstream.url() << "\n";
  EXPECT_TRUE(wsvisor.server().reloadConfig());
  EXPECT_EQ(wsvisor.getEndpoint("from-file", &endpoint).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(wsvisor.getEndpoint("other", &endpoint).ok());
  EXPECT_EQ(endpoint.owner(), v1::OWNER_CONFIG_FILE);
}

TEST(RegistryLifecycleTest, SecretHeadersAreSentButNeverShown) {
  TestUpstream upstream;
  InProcessWsvisor wsvisor;
  v1::EndpointSpec spec = fastSpec("secret", upstream.url());
  auto* auth = spec.add_headers();
  auth->set_name("Authorization");
  auth->set_value("Bearer s3cr3t");
  auto* marked = spec.add_headers();
  marked->set_name("X-Session");
  marked->set_value("abc");
  marked->set_secret(true);
  auto* plain = spec.add_headers();
  plain->set_name("X-Trace");
  plain->set_value("visible");
  v1::RegisterEndpointResponse registered;
  ASSERT_TRUE(wsvisor.registerEndpoint(spec, &registered).ok());
  EXPECT_EQ(registered.endpoint().spec().headers(0).value(), "<redacted>");
  EXPECT_EQ(registered.endpoint().spec().headers(1).value(), "<redacted>");
  EXPECT_EQ(registered.endpoint().spec().headers(2).value(), "visible");
  ASSERT_TRUE(waitUntil([&] { return !upstream.handshakeRequests().empty(); }, milliseconds(2000)));
  EXPECT_EQ(upstream.handshakeRequests()[0].at("authorization"), "Bearer s3cr3t");

  // Read back, change the interval, send it back: the placeholder keeps the stored secret.
  v1::Endpoint read;
  ASSERT_TRUE(wsvisor.getEndpoint("secret", &read).ok());
  EXPECT_EQ(read.spec().headers(0).value(), "<redacted>");
  v1::EndpointSpec changed = read.spec();
  changed.set_url(upstream.url("/again"));
  v1::UpdateEndpointResponse response;
  ASSERT_TRUE(update(wsvisor, changed, 0, &response).ok());
  ASSERT_TRUE(
      waitUntil([&] { return upstream.handshakeRequests().size() >= 2; }, milliseconds(2000)));
  EXPECT_EQ(upstream.handshakeRequests()[1].at("authorization"), "Bearer s3cr3t");
  EXPECT_EQ(upstream.handshakeRequests()[1].at("x-session"), "abc");
}

TEST(RegistryLifecycleTest, CorruptStoreStopsStartUp) {
  TempDir data;
  std::ofstream(data.path() + "/wsvisor.db", std::ios::binary) << std::string(4096, '\x7f');
  service::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.metrics_listen = "";
  options.data_dir = data.path();
  service::Server server(options);
  std::string error;
  EXPECT_FALSE(server.start(error));
  EXPECT_NE(error.find("wsvisor.db"), std::string::npos) << error;
}

}  // namespace
}  // namespace wsvisor::testing
