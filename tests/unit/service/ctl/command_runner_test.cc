// Running wsvisorctl commands against a fake Supervisor served in-process over real gRPC.
#include "service/ctl/command_runner.h"

#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "service/ctl/command_line.h"
#include "service/ctl/stream_interrupter.h"

namespace wsvisor::ctl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

v1::Endpoint makeEndpoint(const std::string& id) {
  v1::Endpoint endpoint;
  endpoint.mutable_spec()->set_id(id);
  endpoint.mutable_spec()->set_url("ws://127.0.0.1:9001/" + id);
  endpoint.mutable_status()->set_health(v1::HEALTH_HEALTHY);
  endpoint.mutable_status()->set_phase(v1::CONNECTION_PHASE_OPEN);
  return endpoint;
}

// A unary call that never answers: it ends when the client cancels it or its deadline passes.
class NeverAnswered final : public grpc::ServerUnaryReactor {
 public:
  void OnCancel() override { Finish(grpc::Status::CANCELLED); }
  void OnDone() override { delete this; }
};

// A watch stream: writes `events` in order, then either ends with `end` or, with
// `until_cancelled`, stays open until the client cancels it.
class WatchWriter final : public grpc::ServerWriteReactor<v1::HealthEvent> {
 public:
  WatchWriter(std::vector<v1::HealthEvent> events, bool until_cancelled, grpc::Status end)
      : events_(std::move(events)), until_cancelled_(until_cancelled), end_(std::move(end)) {
    writeNext();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return;  // cancelled: OnCancel finishes
    writeNext();
  }
  void OnCancel() override { finishOnce(grpc::Status::CANCELLED); }
  void OnDone() override { delete this; }

 private:
  void writeNext() {
    if (next_ < events_.size()) {
      StartWrite(&events_[next_++]);
    } else if (!until_cancelled_) {
      finishOnce(end_);
    }
  }
  void finishOnce(const grpc::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  std::vector<v1::HealthEvent> events_;
  size_t next_ = 0;
  const bool until_cancelled_;
  const grpc::Status end_;
  std::mutex mu_;
  bool finished_ = false;  // guarded by mu_
};

// Answers like the real service would for the cases under test, and records what it was sent.
// The calls that wait for the client to give up use the callback API, which reports a cancel
// (OnCancel); the others are synchronous.
using FakeSupervisorBase =
    v1::Supervisor::WithCallbackMethod_GetEndpoint<v1::Supervisor::WithCallbackMethod_ProbeEndpoint<
        v1::Supervisor::WithCallbackMethod_WatchHealth<v1::Supervisor::Service>>>;

class FakeSupervisor final : public FakeSupervisorBase {
 public:
  static constexpr int kPageSize = 2;

  // Handlers run on gRPC's threads; tests read the records after the call has returned.
  std::mutex mutex;
  std::vector<v1::RegisterEndpointRequest> register_requests;  // guarded by mutex
  std::vector<v1::UpdateEndpointRequest> update_requests;      // guarded by mutex
  std::vector<v1::ListEndpointsRequest> list_requests;         // guarded by mutex
  std::vector<v1::ProbeEndpointRequest> probe_requests;        // guarded by mutex
  std::vector<bool> probe_deadlines;  // guarded by mutex: whether each probe call had one

  std::vector<v1::Endpoint> endpoints;  // what ListEndpoints pages through
  bool repeat_page_token = false;       // a broken server that returns the same token forever
  bool fail_second_page = false;

  // What WatchHealth sends: those after since_revision, which must be at least
  // kOldestResumable when set.
  std::vector<v1::HealthEvent> events;
  static constexpr uint64_t kOldestResumable = 3;

  // What GetEndpointHistory answers for "a"; other ids are not registered.
  v1::GetEndpointHistoryResponse history;
  bool watch_until_cancelled = false;  // then keep the stream open until the client cancels
  grpc::Status watch_end_status = grpc::Status::OK;

  // What registering "taken" answers, whatever the spec.
  static constexpr char kTaken[] =
      "endpoint 'taken' is already registered with a different spec; use UpdateEndpoint or "
      "unregister it first. Differences: spec.heartbeat.interval: stored 5s, requested 10s "
      "(default)";

  // Supervisor::Service
  grpc::Status RegisterEndpoint(grpc::ServerContext*, const v1::RegisterEndpointRequest* request,
                                v1::RegisterEndpointResponse* response) override {
    {
      std::lock_guard<std::mutex> lock(mutex);
      register_requests.push_back(*request);
    }
    if (request->spec().url().rfind("ws", 0) != 0) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "spec.url: must start with ws:// or wss://"};
    }
    if (request->spec().id() == "taken") return {grpc::StatusCode::ALREADY_EXISTS, kTaken};
    *response->mutable_endpoint() = makeEndpoint(request->spec().id());
    response->set_created(request->spec().id() != "existing");
    return grpc::Status::OK;
  }

  // Every endpoint is at kGeneration with makeEndpoint's URL; a new URL means a new connection.
  static constexpr uint64_t kGeneration = 4;
  grpc::Status UpdateEndpoint(grpc::ServerContext*, const v1::UpdateEndpointRequest* request,
                              v1::UpdateEndpointResponse* response) override {
    {
      std::lock_guard<std::mutex> lock(mutex);
      update_requests.push_back(*request);
    }
    const std::string& id = request->spec().id();
    if (request->expected_generation() != 0 && request->expected_generation() != kGeneration) {
      return {grpc::StatusCode::ABORTED, "endpoint \"" + id + "\" is at generation " +
                                             std::to_string(kGeneration) + ", not " +
                                             std::to_string(request->expected_generation())};
    }
    const v1::Endpoint current = makeEndpoint(id);
    v1::Endpoint* updated = response->mutable_endpoint();
    *updated = current;
    *updated->mutable_spec() = request->spec();
    updated->set_owner(v1::OWNER_API);
    updated->set_generation(kGeneration + 1);
    response->set_reconnected(request->spec().url() != current.spec().url());
    return grpc::Status::OK;
  }

  grpc::Status UnregisterEndpoint(grpc::ServerContext*,
                                  const v1::UnregisterEndpointRequest* request,
                                  v1::UnregisterEndpointResponse*) override {
    if (request->id() != "a") {
      return {grpc::StatusCode::NOT_FOUND, "endpoint \"" + request->id() + "\" is not registered"};
    }
    return grpc::Status::OK;
  }

  grpc::ServerUnaryReactor* GetEndpoint(grpc::CallbackServerContext* context,
                                        const v1::GetEndpointRequest* request,
                                        v1::GetEndpointResponse* response) override {
    if (request->id() == "slow") return new NeverAnswered;  // the client's deadline ends it
    *response->mutable_endpoint() = makeEndpoint(request->id());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::Status GetEndpointHistory(grpc::ServerContext*,
                                  const v1::GetEndpointHistoryRequest* request,
                                  v1::GetEndpointHistoryResponse* response) override {
    if (request->id() != "a") {
      return {grpc::StatusCode::NOT_FOUND, "endpoint '" + request->id() + "' is not registered"};
    }
    *response = history;
    return grpc::Status::OK;
  }

  grpc::Status ListEndpoints(grpc::ServerContext*, const v1::ListEndpointsRequest* request,
                             v1::ListEndpointsResponse* response) override {
    {
      std::lock_guard<std::mutex> lock(mutex);
      list_requests.push_back(*request);
    }
    const size_t start =
        request->page_token().empty() || repeat_page_token ? 0 : std::stoul(request->page_token());
    if (fail_second_page && start > 0) {
      return {grpc::StatusCode::UNAVAILABLE, "store is down"};
    }
    const size_t end = std::min(endpoints.size(), start + kPageSize);
    for (size_t i = start; i < end; ++i) *response->add_endpoints() = endpoints[i];
    if (repeat_page_token) {
      response->set_next_page_token("same");
    } else if (end < endpoints.size()) {
      response->set_next_page_token(std::to_string(end));
    }
    return grpc::Status::OK;
  }

  // ws://ok/: two answered heartbeats; ws://refused/: nothing listens; ws://slow/: never
  // answers (the client's deadline ends the call).
  grpc::ServerUnaryReactor* ProbeEndpoint(grpc::CallbackServerContext* context,
                                          const v1::ProbeEndpointRequest* request,
                                          v1::ProbeEndpointResponse* response) override {
    {
      std::lock_guard<std::mutex> lock(mutex);
      probe_requests.push_back(*request);
      probe_deadlines.push_back(context->deadline() !=
                                std::chrono::system_clock::time_point::max());
    }
    const std::string& url = request->spec().url();
    if (url == "ws://slow/") return new NeverAnswered;
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(answerProbe(url, response));
    return reactor;
  }

  static grpc::Status answerProbe(const std::string& url, v1::ProbeEndpointResponse* response) {
    if (url == "ws://ok/") {
      response->set_success(true);
      response->mutable_connect_time()->set_nanos(1500000);
      response->add_rtts()->set_nanos(300000);
      response->add_rtts()->set_nanos(500000);
      response->set_heartbeats_sent(2);
      response->mutable_duration()->set_seconds(1);
      return grpc::Status::OK;
    }
    if (url == "ws://refused/") {
      response->mutable_failure()->set_reason(v1::FAILURE_REASON_CONNECTION_REFUSED);
      response->mutable_failure()->set_detail("connection refused");
      response->mutable_duration()->set_nanos(2000000);
      return grpc::Status::OK;
    }
    return {grpc::StatusCode::INVALID_ARGUMENT, "spec.url: must start with ws:// or wss://"};
  }

  grpc::ServerWriteReactor<v1::HealthEvent>* WatchHealth(
      grpc::CallbackServerContext*, const v1::WatchHealthRequest* request) override {
    if (request->since_revision() != 0 && request->since_revision() < kOldestResumable) {
      return new WatchWriter(
          {}, false,
          {grpc::StatusCode::OUT_OF_RANGE,
           "since_revision " + std::to_string(request->since_revision()) + " is too old"});
    }
    std::vector<v1::HealthEvent> sent;
    for (const v1::HealthEvent& event : events) {
      if (event.revision() > request->since_revision()) sent.push_back(event);
    }
    return new WatchWriter(std::move(sent), watch_until_cancelled, watch_end_status);
  }
};

// An output buffer that calls `on_flush` with the number of flushes so far; `watch` flushes
// once per event, so this is how a test acts after the n-th printed event.
class FlushObservingBuffer : public std::stringbuf {
 public:
  explicit FlushObservingBuffer(std::function<void(int)> on_flush)
      : on_flush_(std::move(on_flush)) {}

 protected:
  int sync() override {
    on_flush_(++flushes_);
    return std::stringbuf::sync();
  }

 private:
  std::function<void(int)> on_flush_;
  int flushes_ = 0;
};

v1::HealthEvent makeEvent(v1::HealthEvent::Type type, uint64_t revision, const std::string& id) {
  v1::HealthEvent event;
  event.set_type(type);
  event.set_revision(revision);
  event.set_endpoint_id(id);
  event.mutable_status()->set_health(v1::HEALTH_HEALTHY);
  event.mutable_status()->set_phase(v1::CONNECTION_PHASE_OPEN);
  return event;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> result;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) result.push_back(line);
  return result;
}

class CommandRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Supervisor::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }

  void TearDown() override { server_->Shutdown(); }

  int run(const std::vector<std::string>& args, std::ostream& out,
          StreamInterrupter* interrupter = nullptr) {
    std::string error;
    const std::optional<CtlCommand> command = parseCommandLine(args, "", error);
    EXPECT_TRUE(command.has_value()) << error;
    if (!command) return -1;
    return runCommand(*command, *stub_, out, err_, interrupter);
  }
  int run(const std::vector<std::string>& args) { return run(args, out_); }

  FakeSupervisor service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Supervisor::Stub> stub_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(CommandRunnerTest, RegisterSaysWhetherItCreatedTheEndpoint) {
  EXPECT_EQ(run({"register", "new-1", "ws://h:1/"}), kExitSuccess);
  EXPECT_EQ(run({"register", "existing", "ws://h:1/"}), kExitSuccess);
  EXPECT_EQ(out_.str(), "registered new-1\nalready registered existing (identical spec)\n");
  EXPECT_THAT(err_.str(), IsEmpty());
}

TEST_F(CommandRunnerTest, RegisterSendsFlagsGivenAsZero) {
  EXPECT_EQ(run({"register", "a", "ws://h:1/", "--interval", "0s"}), kExitSuccess);
  std::lock_guard<std::mutex> lock(service_.mutex);
  ASSERT_EQ(service_.register_requests.size(), 1u);
  const v1::EndpointSpec& sent = service_.register_requests[0].spec();
  EXPECT_TRUE(sent.heartbeat().has_interval());  // set, if zero: the server will judge it
  EXPECT_FALSE(sent.heartbeat().has_timeout());
  EXPECT_FALSE(sent.has_tls());
}

TEST_F(CommandRunnerTest, RegisterAsJsonPrintsTheResponse) {
  EXPECT_EQ(run({"register", "a", "ws://h:1/", "-o", "json"}), kExitSuccess);
  EXPECT_THAT(out_.str(), StartsWith(R"({"endpoint":{"spec":{"id":"a",)"));
  EXPECT_THAT(out_.str(), HasSubstr(R"("created":true})"));
  EXPECT_EQ(lines(out_.str()).size(), 1u);
}

TEST_F(CommandRunnerTest, RpcErrorPrintsCodeNameAndServerMessage) {
  EXPECT_EQ(run({"register", "a", "http://h/"}), kExitCallFailed);
  EXPECT_EQ(err_.str(),
            "wsvisorctl: INVALID_ARGUMENT: spec.url: must start with ws:// or wss://\n");
  EXPECT_THAT(out_.str(), IsEmpty());
}

TEST_F(CommandRunnerTest, AlreadyExistsGivesTheUpdateCommandThatWouldApplyTheSpec) {
  EXPECT_EQ(run({"register", "taken", "ws://h:1/?a=b&c=d", "--label", "team=red"}),
            kExitCallFailed);
  EXPECT_THAT(
      lines(err_.str()),
      ElementsAre(std::string("wsvisorctl: ALREADY_EXISTS: ") + FakeSupervisor::kTaken,
                  "wsvisorctl: each flag left out of register asks for its default, not for the "
                  "stored value; to keep the stored spec, nothing needs doing",
                  "wsvisorctl: to replace the stored spec with the one asked for: wsvisorctl "
                  "update taken 'ws://h:1/?a=b&c=d' --label team=red"));
  EXPECT_THAT(out_.str(), IsEmpty());

  // The suggestion runs as it is printed: the same spec, sent as an update.
  EXPECT_EQ(run({"update", "taken", "ws://h:1/?a=b&c=d", "--label", "team=red"}), kExitSuccess);
  std::lock_guard<std::mutex> lock(service_.mutex);
  ASSERT_EQ(service_.update_requests.size(), 1u);
  EXPECT_EQ(service_.update_requests[0].spec().SerializeAsString(),
            service_.register_requests[0].spec().SerializeAsString());
}

TEST_F(CommandRunnerTest, AlreadyExistsShowsNoSecretHeaderValue) {
  EXPECT_EQ(run({"register", "taken", "ws://h:1/", "--header", "Authorization=Bearer abc"}),
            kExitCallFailed);
  const std::vector<std::string> errors = lines(err_.str());
  ASSERT_EQ(errors.size(), 3u) << err_.str();
  EXPECT_EQ(errors[2],
            "wsvisorctl: to replace the stored spec with the one asked for: wsvisorctl update "
            "taken ws://h:1/ --header 'Authorization=<redacted>' (put the header's value in "
            "place of <redacted>: wsvisorctl prints no secret)");
  EXPECT_THAT(err_.str(), Not(HasSubstr("abc")));
}

TEST_F(CommandRunnerTest, UpdateSaysTheNewGenerationAndWhetherItReconnected) {
  EXPECT_EQ(run({"update", "a", "ws://127.0.0.1:9001/a", "--interval", "5s"}), kExitSuccess);
  EXPECT_EQ(run({"update", "b", "ws://elsewhere:1/", "--expected-generation", "4"}), kExitSuccess);
  EXPECT_EQ(out_.str(),
            "updated a (generation 5, applied to the live connection)\n"
            "updated b (generation 5, reconnected)\n");
  EXPECT_THAT(err_.str(), IsEmpty());

  std::lock_guard<std::mutex> lock(service_.mutex);
  ASSERT_EQ(service_.update_requests.size(), 2u);
  EXPECT_EQ(service_.update_requests[0].spec().heartbeat().interval().seconds(), 5);
  EXPECT_EQ(service_.update_requests[0].expected_generation(), 0u);
  EXPECT_EQ(service_.update_requests[1].spec().id(), "b");
  EXPECT_EQ(service_.update_requests[1].expected_generation(), 4u);
  EXPECT_TRUE(service_.register_requests.empty());
}

TEST_F(CommandRunnerTest, UpdateAsJsonPrintsTheResponse) {
  EXPECT_EQ(run({"update", "a", "ws://elsewhere:1/", "-o", "json"}), kExitSuccess);
  EXPECT_EQ(out_.str(), R"({"endpoint":{"spec":{"id":"a","url":"ws://elsewhere:1/"},)"
                        R"("status":{"health":"HEALTH_HEALTHY","phase":"CONNECTION_PHASE_OPEN"},)"
                        R"("owner":"OWNER_API","generation":"5"},"reconnected":true})"
                        "\n");
}

TEST_F(CommandRunnerTest, UpdateWithAStaleGenerationIsAborted) {
  EXPECT_EQ(run({"update", "a", "ws://h:1/", "--expected-generation", "3"}), kExitCallFailed);
  EXPECT_EQ(err_.str(), "wsvisorctl: ABORTED: endpoint \"a\" is at generation 4, not 3\n");
  EXPECT_THAT(out_.str(), IsEmpty());
}

TEST_F(CommandRunnerTest, Unregister) {
  EXPECT_EQ(run({"unregister", "a"}), kExitSuccess);
  EXPECT_EQ(out_.str(), "unregistered a\n");
  EXPECT_EQ(run({"unregister", "b"}), kExitCallFailed);
  EXPECT_EQ(err_.str(), "wsvisorctl: NOT_FOUND: endpoint \"b\" is not registered\n");
}

TEST_F(CommandRunnerTest, GetPrintsATableOrTheEndpointAsJson) {
  EXPECT_EQ(run({"get", "a"}), kExitSuccess);
  EXPECT_THAT(lines(out_.str()),
              ElementsAre(StartsWith("ID  HEALTH   PHASE  RTT  FAILURES  OWNER  GENERATION  URL"),
                          StartsWith("a   healthy  open   -    0         -      -           "
                                     "ws://127.0.0.1:9001/a")));
  std::ostringstream json;
  EXPECT_EQ(run({"get", "a", "--output", "json"}, json), kExitSuccess);
  EXPECT_EQ(json.str(), R"({"spec":{"id":"a","url":"ws://127.0.0.1:9001/a"},)"
                        R"("status":{"health":"HEALTH_HEALTHY","phase":"CONNECTION_PHASE_OPEN"}})"
                        "\n");
}

TEST_F(CommandRunnerTest, EachCallHasADeadline) {
  EXPECT_EQ(run({"get", "slow", "--request-timeout", "50ms"}), kExitCallFailed);
  EXPECT_THAT(err_.str(), StartsWith("wsvisorctl: DEADLINE_EXCEEDED"));
}

TEST_F(CommandRunnerTest, ProbePrintsEveryStepAndSucceeds) {
  EXPECT_EQ(run({"probe", "ws://ok/", "--heartbeats", "2", "--interval", "100ms"}), kExitSuccess);
  EXPECT_EQ(out_.str(),
            "connected in 1.5ms\n"
            "heartbeat 1: rtt 300us\n"
            "heartbeat 2: rtt 500us\n"
            "OK: 2 heartbeats answered in 1s (rtt min 300us, avg 400us, max 500us)\n");
  EXPECT_THAT(err_.str(), IsEmpty());
  std::lock_guard<std::mutex> lock(service_.mutex);
  ASSERT_EQ(service_.probe_requests.size(), 1u);
  EXPECT_EQ(service_.probe_requests[0].heartbeats(), 2u);
  EXPECT_EQ(service_.probe_requests[0].spec().heartbeat().interval().nanos(), 100000000);
  EXPECT_TRUE(service_.probe_requests[0].spec().id().empty());
  EXPECT_TRUE(service_.register_requests.empty());
}

TEST_F(CommandRunnerTest, ProbeThatFailsHasItsOwnExitStatus) {
  EXPECT_EQ(run({"probe", "ws://refused/"}), kExitProbeFailed);
  EXPECT_EQ(out_.str(), "FAILED: connection_refused: connection refused\n");
  EXPECT_THAT(err_.str(), IsEmpty());
}

TEST_F(CommandRunnerTest, ProbeAsJsonPrintsTheResponse) {
  EXPECT_EQ(run({"probe", "ws://refused/", "-o", "json"}), kExitProbeFailed);
  EXPECT_EQ(out_.str(), R"({"failure":{"reason":"FAILURE_REASON_CONNECTION_REFUSED",)"
                        R"("detail":"connection refused"},"duration":"0.002s"})"
                        "\n");
  std::ostringstream json;
  EXPECT_EQ(run({"probe", "ws://ok/", "-o", "json"}, json), kExitSuccess);
  EXPECT_THAT(json.str(), StartsWith(R"({"success":true,)"));
}

TEST_F(CommandRunnerTest, ProbeCallErrorsAreCallFailures) {
  EXPECT_EQ(run({"probe", "http://h/"}), kExitCallFailed);
  EXPECT_EQ(err_.str(),
            "wsvisorctl: INVALID_ARGUMENT: spec.url: must start with ws:// or wss://\n");
  EXPECT_THAT(out_.str(), IsEmpty());
}

TEST_F(CommandRunnerTest, ProbeHasADeadlineOnlyWhenAskedFor) {
  EXPECT_EQ(run({"probe", "ws://ok/"}), kExitSuccess);
  EXPECT_EQ(run({"probe", "ws://slow/", "--request-timeout", "50ms"}), kExitCallFailed);
  EXPECT_THAT(err_.str(), StartsWith("wsvisorctl: DEADLINE_EXCEEDED"));
  std::lock_guard<std::mutex> lock(service_.mutex);
  EXPECT_THAT(service_.probe_deadlines, ElementsAre(false, true));
}

TEST_F(CommandRunnerTest, ListFollowsPageTokensToTheEnd) {
  for (const char* id : {"a", "b", "c", "d", "e"}) service_.endpoints.push_back(makeEndpoint(id));
  EXPECT_EQ(run({"list", "-o", "json", "--selector", "env=prod"}), kExitSuccess);
  const std::vector<std::string> printed = lines(out_.str());
  ASSERT_EQ(printed.size(), 5u);
  EXPECT_THAT(printed[0], StartsWith(R"({"spec":{"id":"a")"));
  EXPECT_THAT(printed[4], StartsWith(R"({"spec":{"id":"e")"));

  std::lock_guard<std::mutex> lock(service_.mutex);
  ASSERT_EQ(service_.list_requests.size(), 3u);
  EXPECT_EQ(service_.list_requests[0].page_token(), "");
  EXPECT_EQ(service_.list_requests[1].page_token(), "2");
  EXPECT_EQ(service_.list_requests[2].page_token(), "4");
  for (const auto& request : service_.list_requests) {
    EXPECT_EQ(request.label_selector(), "env=prod");
  }
}

TEST_F(CommandRunnerTest, ListTableHasOneRowPerEndpoint) {
  for (const char* id : {"a", "b", "c"}) service_.endpoints.push_back(makeEndpoint(id));
  EXPECT_EQ(run({"list"}), kExitSuccess);
  EXPECT_THAT(lines(out_.str()),
              ElementsAre(StartsWith("ID"), StartsWith("a "), StartsWith("b "), StartsWith("c ")));
}

TEST_F(CommandRunnerTest, ListPrintsNothingWhenAPageFails) {
  for (const char* id : {"a", "b", "c"}) service_.endpoints.push_back(makeEndpoint(id));
  service_.fail_second_page = true;
  EXPECT_EQ(run({"list"}), kExitCallFailed);
  EXPECT_THAT(out_.str(), IsEmpty());
  EXPECT_EQ(err_.str(), "wsvisorctl: UNAVAILABLE: store is down\n");
}

TEST_F(CommandRunnerTest, ListStopsWhenTheServerRepeatsAPageToken) {
  service_.endpoints.push_back(makeEndpoint("a"));
  service_.repeat_page_token = true;
  EXPECT_EQ(run({"list"}), kExitCallFailed);
  EXPECT_THAT(err_.str(), HasSubstr("page token \"same\" twice"));
}

TEST_F(CommandRunnerTest, WatchPrintsEveryEventUntilTheStreamEnds) {
  service_.events = {makeEvent(v1::HealthEvent::TYPE_SNAPSHOT, 3, "a"),
                     makeEvent(v1::HealthEvent::TYPE_SNAPSHOT_COMPLETE, 3, ""),
                     makeEvent(v1::HealthEvent::TYPE_UNREGISTERED, 4, "a")};
  EXPECT_EQ(run({"watch"}), kExitSuccess);
  EXPECT_THAT(
      lines(out_.str()),
      ElementsAre(
          "TIME                      REVISION  EVENT         ID  HEALTH              PHASE        "
          "LAST FAILURE",
          "-                         #3        snapshot      a   healthy             open         "
          "-",
          "(snapshot complete at #3; changes follow)",
          "-                         #4        unregistered  a   healthy             open         "
          "-"));
}

TEST_F(CommandRunnerTest, WatchPrintsTheSnapshotEvenWhenTheStreamEndsBeforeItsMarker) {
  service_.events = {makeEvent(v1::HealthEvent::TYPE_SNAPSHOT, 3, "a")};
  service_.watch_end_status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down");
  EXPECT_EQ(run({"watch"}), kExitCallFailed);
  EXPECT_THAT(lines(out_.str()),
              ElementsAre(StartsWith("TIME"), StartsWith("-                         #3")));
}

TEST_F(CommandRunnerTest, WatchAsJsonPrintsOneEventPerLine) {
  service_.events = {makeEvent(v1::HealthEvent::TYPE_REGISTERED, 5, "a")};
  EXPECT_EQ(run({"watch", "-o", "json"}), kExitSuccess);
  EXPECT_EQ(out_.str(), R"({"type":"TYPE_REGISTERED","revision":"5","endpointId":"a",)"
                        R"("status":{"health":"HEALTH_HEALTHY","phase":"CONNECTION_PHASE_OPEN"}})"
                        "\n");
}

TEST_F(CommandRunnerTest, WatchReportsAStreamThatEndsWithAnError) {
  service_.events = {makeEvent(v1::HealthEvent::TYPE_SNAPSHOT, 1, "a")};
  service_.watch_end_status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down");
  EXPECT_EQ(run({"watch"}), kExitCallFailed);
  EXPECT_EQ(lines(out_.str()).size(), 2u);  // the header and the one row
  EXPECT_EQ(err_.str(), "wsvisorctl: UNAVAILABLE: server shutting down\n");
}

TEST_F(CommandRunnerTest, InterruptedWatchFlushesWhatItGotAndSucceeds) {
  service_.events = {makeEvent(v1::HealthEvent::TYPE_SNAPSHOT, 1, "a"),
                     makeEvent(v1::HealthEvent::TYPE_SNAPSHOT_COMPLETE, 1, "")};
  service_.watch_until_cancelled = true;
  StreamInterrupter interrupter;
  FlushObservingBuffer buffer([&interrupter](int flushes) {
    if (flushes == 2) interrupter.interruptForTest();  // as if Ctrl-C after the 2nd event
  });
  std::ostream out(&buffer);
  EXPECT_EQ(run({"watch"}, out, &interrupter), kExitSuccess);
  EXPECT_EQ(lines(buffer.str()).size(), 3u);  // the header, the row and the marker
  EXPECT_THAT(err_.str(), IsEmpty());
  EXPECT_TRUE(interrupter.interrupted());
}

TEST_F(CommandRunnerTest, InterruptionBeforeTheWatchStartsCancelsItAtOnce) {
  service_.watch_until_cancelled = true;
  StreamInterrupter interrupter;
  interrupter.interruptForTest();
  EXPECT_EQ(run({"watch"}, out_, &interrupter), kExitSuccess);
  EXPECT_THAT(err_.str(), IsEmpty());
}

TEST_F(CommandRunnerTest, WatchSinceSendsTheRevisionAndPrintsWhatIsReplayed) {
  service_.events = {makeEvent(v1::HealthEvent::TYPE_CHANGED, 4, "a"),
                     makeEvent(v1::HealthEvent::TYPE_CHANGED, 5, "a"),
                     makeEvent(v1::HealthEvent::TYPE_SNAPSHOT_COMPLETE, 5, "")};
  EXPECT_EQ(run({"watch", "--since", "4"}), kExitSuccess);
  EXPECT_THAT(
      lines(out_.str()),
      ElementsAre(
          "TIME                      REVISION  EVENT         ID  HEALTH              PHASE        "
          "LAST FAILURE",
          "-                         #5        changed       a   unknown->healthy    open         "
          "-",
          "(replay complete at #5; live changes follow)"));
}

TEST_F(CommandRunnerTest, WatchSinceATooOldRevisionFails) {
  EXPECT_EQ(run({"watch", "--since", "2"}), kExitCallFailed);
  EXPECT_EQ(err_.str(), "wsvisorctl: OUT_OF_RANGE: since_revision 2 is too old\n");
  EXPECT_THAT(out_.str(), IsEmpty());
}

v1::HealthTransition makeTransition(v1::Health from, v1::Health to, uint64_t revision) {
  v1::HealthTransition transition;
  transition.mutable_time()->set_seconds(1714564800);
  transition.set_previous_health(from);
  transition.set_health(to);
  transition.set_revision(revision);
  return transition;
}

TEST_F(CommandRunnerTest, HistoryPrintsATableOrTheResponseAsJson) {
  v1::HealthTransition down = makeTransition(v1::HEALTH_HEALTHY, v1::HEALTH_UNHEALTHY, 12);
  down.set_reason("heartbeat failed");
  down.mutable_failure()->set_reason(v1::FAILURE_REASON_PONG_TIMEOUT);
  down.mutable_failure()->set_detail("no pong within 1s");
  down.mutable_smoothed_rtt()->set_nanos(2'000'000);
  *service_.history.add_transitions() = down;
  service_.history.set_dropped(1);

  EXPECT_EQ(run({"history", "a"}), kExitSuccess);
  EXPECT_THAT(lines(out_.str()),
              ElementsAre("TIME                      CHANGE              RTT  REVISION  REASON"
                          "            FAILURE",
                          "2024-05-01T12:00:00.000Z  healthy->unhealthy  2ms  12        heartbeat "
                          "failed  pong_timeout: no pong within 1s",
                          "(1 older transition no longer kept)"));
  std::ostringstream json;
  EXPECT_EQ(run({"history", "a", "-o", "json"}, json), kExitSuccess);
  EXPECT_THAT(json.str(), StartsWith(R"({"transitions":[{"time":"2024-05-01T12:00:00Z",)"));
  EXPECT_THAT(json.str(), HasSubstr(R"("revision":"12")"));
  EXPECT_THAT(json.str(), HasSubstr(R"("dropped":"1"})"));
  EXPECT_EQ(lines(json.str()).size(), 1u);
}

TEST_F(CommandRunnerTest, HistoryOfAnUnknownEndpointIsNotFound) {
  EXPECT_EQ(run({"history", "b"}), kExitCallFailed);
  EXPECT_EQ(err_.str(), "wsvisorctl: NOT_FOUND: endpoint 'b' is not registered\n");
  EXPECT_THAT(out_.str(), IsEmpty());
}

// `list` against 127.0.0.1:1, where nothing listens, with the address from `args` or `env`.
std::vector<std::string> unreachableErrors(const std::vector<std::string>& args,
                                           const std::string& env) {
  const auto channel = grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials());
  const auto stub = v1::Supervisor::NewStub(channel);
  std::string error;
  const std::optional<CtlCommand> command = parseCommandLine(args, env, error);
  EXPECT_TRUE(command.has_value()) << error;
  if (!command) return {};
  std::ostringstream out, err;
  EXPECT_EQ(runCommand(*command, *stub, out, err, nullptr, channel.get()), kExitCallFailed);
  EXPECT_THAT(out.str(), IsEmpty());
  return lines(err.str());
}

TEST_F(CommandRunnerTest, ServerThatIsNotThereIsUnavailableAndTheErrorSaysWhereItLooked) {
  const auto from_flag = unreachableErrors({"list", "--server", "127.0.0.1:1"}, "");
  ASSERT_EQ(from_flag.size(), 2u);
  EXPECT_THAT(from_flag[0], StartsWith("wsvisorctl: UNAVAILABLE: cannot reach wsvisor at "
                                       "127.0.0.1:1: "));
  EXPECT_EQ(from_flag[1],
            "wsvisorctl: is wsvisor running there? Check the address given with --server "
            "(without it, wsvisorctl uses $WSVISOR_SERVER, else 127.0.0.1:50051); if wsvisor "
            "serves TLS, add --tls or --tls-ca FILE");

  const auto from_environment = unreachableErrors({"list"}, "127.0.0.1:1");
  ASSERT_EQ(from_environment.size(), 2u);
  EXPECT_EQ(from_environment[1],
            "wsvisorctl: is wsvisor running there? The address comes from $WSVISOR_SERVER; "
            "--server HOST:PORT overrides it; if wsvisor serves TLS, add --tls or --tls-ca FILE");

  // The default address (the channel still points at port 1, where nothing listens).
  const auto by_default = unreachableErrors({"list", "--tls"}, "");
  ASSERT_EQ(by_default.size(), 2u);
  EXPECT_THAT(by_default[0], StartsWith("wsvisorctl: UNAVAILABLE: cannot reach wsvisor at "
                                        "127.0.0.1:50051: "));
  EXPECT_EQ(by_default[1],
            "wsvisorctl: is wsvisor running? 127.0.0.1:50051 is the default address; give "
            "another with --server HOST:PORT or $WSVISOR_SERVER; if wsvisor serves plaintext, "
            "leave out the --tls flags");
}

TEST_F(CommandRunnerTest, UnavailableFromAServerThatAnsweredIsReportedAsItIs) {
  // Over TCP, as wsvisorctl talks: the channel is connected, and "store is down" is the
  // server's own answer, not a failure to reach it.
  FakeSupervisor tcp_service;
  for (const char* id : {"a", "b", "c"}) tcp_service.endpoints.push_back(makeEndpoint(id));
  tcp_service.fail_second_page = true;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&tcp_service);
  const std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  const auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  const auto stub = v1::Supervisor::NewStub(channel);
  std::string error;
  const std::optional<CtlCommand> command = parseCommandLine({"list"}, address, error);
  ASSERT_TRUE(command.has_value()) << error;
  EXPECT_EQ(runCommand(*command, *stub, out_, err_, nullptr, channel.get()), kExitCallFailed);
  EXPECT_EQ(err_.str(), "wsvisorctl: UNAVAILABLE: store is down\n");
  EXPECT_THAT(out_.str(), IsEmpty());
  server->Shutdown();
}

}  // namespace
}  // namespace wsvisor::ctl
