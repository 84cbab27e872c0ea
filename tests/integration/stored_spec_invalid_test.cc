// A store holding specs that today's validation refuses (written by an older, more lenient
// wsvisor) does not stop the start: every other endpoint is supervised, each refused one is held
// unsupervised with a status naming the field, logged and counted, its record left as it is, and
// UpdateEndpoint fixes it or UnregisterEndpoint removes it. Through the real gRPC API and
// /metrics of an in-process wsvisor.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "service/api/proto_conversions.h"
#include "supervisor/core/endpoint_spec.h"
#include "supervisor/store/sqlite_endpoint_store.h"
#include "support/test_upstream.h"
#include "support/wait.h"
#include "support/wsvisor_harness.h"

namespace wsvisor::testing {
namespace {

using std::chrono::milliseconds;

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/wsvisor-stored-invalid-XXXXXX";
    path_ = mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The body of GET http://127.0.0.1:<port><path>, or "" on failure.
std::string httpGet(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    const std::string request =
        "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t n = 0;
      while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
    }
  }
  ::close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// The value of the sample line starting with `series` ("name" or "name{labels}"), or -1.
double sample(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

// Captures what is written to stderr (the log) between construction and text().
class StderrCapture {
 public:
  StderrCapture() {
    std::fflush(stderr);
    saved_ = ::dup(2);
    file_ = std::tmpfile();
    ::dup2(::fileno(file_), 2);
  }
  ~StderrCapture() { restore(); }
  std::string text() {
    restore();
    std::rewind(file_);
    std::string out;
    char buffer[4096];
    size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof(buffer), file_)) > 0) out.append(buffer, n);
    return out;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
  }
  int saved_ = -1;
  std::FILE* file_ = nullptr;
};

// One spec of each kind that validation refuses today, and the field it names.
struct Refused {
  const char* id;
  const char* field;
};
const std::vector<Refused> kRefused = {
    {"bad-utf8", "spec.labels[team]"},
    {"bad-regex", "spec.heartbeat.expect"},
    {"bad-duration", "spec.backoff.max"},
    {"bad-header", "spec.headers[0].value"},
};

std::map<std::string, StoredEndpoint> readStore(const std::string& dir) {
  std::string error;
  auto store = SqliteEndpointStore::open(dir, error);
  EXPECT_TRUE(store) << error;
  std::map<std::string, StoredEndpoint> out;
  if (!store) return out;
  std::vector<StoredEndpoint> all;
  EXPECT_FALSE(store->loadAll(all));
  for (const StoredEndpoint& record : all) out[record.id] = record;
  store->close();
  return out;
}

class StoredSpecInvalidTest : public ::testing::Test {
 protected:
  // Writes the store as an older wsvisor would have: the specs are encoded as they are, without
  // today's validation.
  void SetUp() override {
    std::string error;
    auto store = SqliteEndpointStore::open(data_.path(), error);
    ASSERT_TRUE(store) << error;
    auto base = [&](const std::string& id) {
      core::EndpointSpec spec;
      spec.id = id;
      spec.url = upstream_.url("/" + id);
      spec.heartbeat.interval = milliseconds(200);
      spec.heartbeat.timeout = milliseconds(200);
      spec.backoff.initial = milliseconds(50);
      spec.backoff.max = milliseconds(500);
      return spec;
    };
    std::vector<core::EndpointSpec> specs;
    specs.push_back(base("good"));
    core::EndpointSpec utf8 = base("bad-utf8");
    utf8.labels["team"] = "r\xC3(d";  // a lead byte without its continuation
    specs.push_back(utf8);
    core::EndpointSpec regex = base("bad-regex");
    regex.heartbeat.mode = core::HeartbeatMode::kText;
    regex.heartbeat.payload = "ping";
    regex.heartbeat.expect = "(?:a*){24000}";  // counted repetitions over the size limit
    specs.push_back(regex);
    core::EndpointSpec duration = base("bad-duration");
    duration.backoff.max = std::chrono::hours(2);  // above the 1 h maximum
    specs.push_back(duration);
    core::EndpointSpec header = base("bad-header");
    header.headers.push_back({"X-Token", "a\r\nInjected: yes"});
    specs.push_back(header);
    for (core::EndpointSpec& spec : specs) {
      core::applyDefaults(spec);
      StoredEndpoint record{spec.id, codec_.encode(spec), EndpointOwner::kApi, 3};
      ASSERT_FALSE(store->put(record));
      written_[spec.id] = record;
    }
    store->close();
  }

  service::ServerOptions options() const {
    service::ServerOptions options;
    options.data_dir = data_.path();
    options.metrics_listen = "127.0.0.1:0";
    return options;
  }

  double invalidGauge(InProcessWsvisor& wsvisor) {
    return sample(httpGet(wsvisor.server().metricsPort(), "/metrics"),
                  "wsvisor_endpoints_stored_spec_invalid");
  }

  TempDir data_;
  TestUpstream upstream_;
  service::ProtoSpecCodec codec_;
  std::map<std::string, StoredEndpoint> written_;
};

TEST_F(StoredSpecInvalidTest, StartsEverythingElseAndReportsEachRefusedSpec) {
  std::string log;
  {
    StderrCapture capture;
    InProcessWsvisor wsvisor(options());
    log = capture.text();

    v1::ListEndpointsResponse list;
    ASSERT_TRUE(wsvisor.listEndpoints({}, &list).ok());
    ASSERT_EQ(list.endpoints_size(), 5);
    for (const Refused& refused : kRefused) {
      SCOPED_TRACE(refused.id);
      v1::Endpoint endpoint;
      ASSERT_TRUE(wsvisor.getEndpoint(refused.id, &endpoint).ok());
      EXPECT_EQ(endpoint.status().phase(), v1::CONNECTION_PHASE_STORED_SPEC_INVALID);
      EXPECT_EQ(endpoint.status().health(), v1::HEALTH_UNKNOWN);
      EXPECT_EQ(endpoint.status().transition_reason().rfind(
                    std::string("stored spec is invalid: ") + refused.field + ": ", 0),
                0u)
          << endpoint.status().transition_reason();
      EXPECT_EQ(endpoint.generation(), 3u);
      EXPECT_EQ(endpoint.spec().id(), refused.id);
      // The log names the endpoint and the field.
      bool logged = false;
      std::istringstream lines(log);
      for (std::string line; std::getline(lines, line);) {
        logged = logged ||
                 (line.find(std::string("endpoint ") + refused.id + " ") != std::string::npos &&
                  line.find(refused.field) != std::string::npos);
      }
      EXPECT_TRUE(logged) << log;
    }
    // The one valid endpoint is supervised as usual.
    EXPECT_TRUE(waitUntil(
        [&] {
          v1::Endpoint good;
          return wsvisor.getEndpoint("good", &good).ok() &&
                 good.status().health() == v1::HEALTH_HEALTHY;
        },
        milliseconds(5000)));
    for (const auto& request : upstream_.handshakeRequests()) {
      EXPECT_EQ(request.at(":path"), "/good");  // no refused spec is ever dialled
    }
    EXPECT_EQ(invalidGauge(wsvisor), 4.0);
  }
  // A start changes no stored record.
  auto stored = readStore(data_.path());
  ASSERT_EQ(stored.size(), written_.size());
  for (const auto& [id, record] : written_) {
    EXPECT_EQ(stored[id].encoded_spec, record.encoded_spec) << id;
    EXPECT_EQ(stored[id].generation, record.generation) << id;
  }
}

TEST_F(StoredSpecInvalidTest, UpdateFixesAndUnregisterRemoves) {
  {
    InProcessWsvisor wsvisor(options());
    // UpdateEndpoint with a valid spec starts supervising it.
    v1::EndpointSpec fixed = fastSpec("bad-duration", upstream_.url("/bad-duration"));
    v1::UpdateEndpointRequest request;
    *request.mutable_spec() = fixed;
    request.set_expected_generation(3);
    v1::UpdateEndpointResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ASSERT_TRUE(wsvisor.stub().UpdateEndpoint(&context, request, &response).ok());
    EXPECT_EQ(response.endpoint().generation(), 4u);
    EXPECT_TRUE(waitUntil(
        [&] {
          v1::Endpoint endpoint;
          return wsvisor.getEndpoint("bad-duration", &endpoint).ok() &&
                 endpoint.status().health() == v1::HEALTH_HEALTHY;
        },
        milliseconds(5000)));
    // UnregisterEndpoint removes one.
    ASSERT_TRUE(wsvisor.unregisterEndpoint("bad-regex").ok());
    v1::Endpoint gone;
    EXPECT_EQ(wsvisor.getEndpoint("bad-regex", &gone).error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(invalidGauge(wsvisor), 2.0);
    // RegisterEndpoint does not silently replace one.
    EXPECT_EQ(wsvisor.registerEndpoint(fastSpec("bad-header", upstream_.url("/h"))).error_code(),
              grpc::StatusCode::ALREADY_EXISTS);
  }
  auto stored = readStore(data_.path());
  EXPECT_EQ(stored.count("bad-regex"), 0u);
  ASSERT_EQ(stored.count("bad-duration"), 1u);
  EXPECT_EQ(stored["bad-duration"].generation, 4u);
  for (const char* id : {"bad-utf8", "bad-header"}) {
    EXPECT_EQ(stored[id].encoded_spec, written_[id].encoded_spec) << id;
  }
  // A restart restores the fixed one like any other.
  InProcessWsvisor again(options());
  v1::Endpoint endpoint;
  ASSERT_TRUE(again.getEndpoint("bad-duration", &endpoint).ok());
  EXPECT_NE(endpoint.status().phase(), v1::CONNECTION_PHASE_STORED_SPEC_INVALID);
  EXPECT_EQ(invalidGauge(again), 2.0);
}

}  // namespace
}  // namespace wsvisor::testing
