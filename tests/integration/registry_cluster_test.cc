// The Registry in cluster mode against a real upstream: it holds every stored endpoint, dials
// only those it is told it owns, follows changes other replicas made, and stops a connection
// before setSupervised(false) returns. Every wait is bounded.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "service/api/proto_conversions.h"
#include "supervisor/clustered_registry.h"
#include "supervisor/core/spec_validation.h"
#include "supervisor/probe_runner.h"
#include "support/test_upstream.h"
#include "support/wait.h"

namespace wsvisor {
namespace {

using std::chrono::seconds;
using testing::TestUpstream;
using testing::waitUntil;

class RegistryClusterTest : public ::testing::Test {
 protected:
  RegistryClusterTest() {
    RegistryOptions options;
    registry_ = std::make_unique<ClusteredRegistry>(options, bus_, metrics_, nullptr, &codec_);
  }
  ~RegistryClusterTest() override { registry_->shutdown(std::chrono::milliseconds(500)); }

  StoredEndpoint record(const std::string& id, uint64_t generation, const std::string& label) {
    core::EndpointSpec spec;
    spec.id = id;
    spec.url = upstream_.url("/" + id);
    spec.labels["version"] = label;
    core::applyDefaults(spec);  // the registry stores specs with their defaults filled in
    return StoredEndpoint{id, codec_.encode(spec), EndpointOwner::kApi, generation};
  }

  TestUpstream upstream_;
  HealthBus bus_;
  Metrics metrics_{MetricsOptions{}};
  service::ProtoSpecCodec codec_;
  std::unique_ptr<ClusteredRegistry> registry_;
};

TEST_F(RegistryClusterTest, HoldsEverythingAndDialsOnlyWhatItOwns) {
  registry_->syncStored({record("a", 1, "one"), record("b", 1, "one")});
  EXPECT_EQ(registry_->ids(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(registry_->supervisedIds().empty());
  ASSERT_TRUE(registry_->get("a"));
  EXPECT_FALSE(registry_->get("a")->supervised_here);

  ASSERT_TRUE(registry_->setSupervised("a", true, core::Duration::zero()));
  EXPECT_TRUE(waitUntil([&] { return upstream_.openConnections() == 1; }, seconds(5)));
  EXPECT_EQ(registry_->supervisedIds(), std::vector<std::string>{"a"});
  EXPECT_TRUE(registry_->get("a")->supervised_here);
  EXPECT_FALSE(registry_->setSupervised("missing", true, core::Duration::zero()));

  // Stopping returns once the session is stopped and its close sent.
  ASSERT_TRUE(registry_->setSupervised("a", false, core::Duration::zero()));
  EXPECT_TRUE(waitUntil([&] { return upstream_.openConnections() == 0; }, seconds(5)));
  EXPECT_FALSE(registry_->setSupervised("a", false, core::Duration::zero()));
  EXPECT_EQ(upstream_.connectionsAccepted(), 1u);
}

TEST_F(RegistryClusterTest, FollowsChangesInGenerationOrder) {
  registry_->syncStored({record("a", 1, "one"), record("b", 1, "one")});
  registry_->applyStoredPut(record("a", 2, "two"));
  EXPECT_EQ(registry_->get("a")->generation, 2u);
  EXPECT_EQ(registry_->get("a")->spec->labels.at("version"), "two");
  // An echo of an older write changes nothing.
  registry_->applyStoredPut(record("a", 1, "one"));
  EXPECT_EQ(registry_->get("a")->spec->labels.at("version"), "two");
  // A record that cannot be decoded is skipped, not fatal.
  registry_->applyStoredPut(StoredEndpoint{"c", "not a spec", EndpointOwner::kApi, 1});
  EXPECT_FALSE(registry_->get("c"));

  registry_->applyStoredPut(record("c", 1, "one"));
  registry_->applyStoredRemove("b");
  EXPECT_EQ(registry_->ids(), (std::vector<std::string>{"a", "c"}));

  // A full read replaces the view, supervised endpoints included.
  ASSERT_TRUE(registry_->setSupervised("c", true, core::Duration::zero()));
  EXPECT_TRUE(waitUntil([&] { return upstream_.openConnections() == 1; }, seconds(5)));
  registry_->syncStored({record("a", 2, "two")});
  EXPECT_EQ(registry_->ids(), std::vector<std::string>{"a"});
  EXPECT_TRUE(waitUntil([&] { return upstream_.openConnections() == 0; }, seconds(5)));
}

TEST_F(RegistryClusterTest, HoldsARecordThatFailsValidationUnsupervisedUntilAValidOneArrives) {
  core::EndpointSpec invalid;
  invalid.id = "old";
  invalid.url = upstream_.url("/old");
  invalid.backoff.max = std::chrono::hours(2);  // validation refuses more than 1 h
  core::applyDefaults(invalid);
  registry_->syncStored({record("a", 1, "one"),
                         StoredEndpoint{"old", codec_.encode(invalid), EndpointOwner::kApi, 1}});
  ASSERT_TRUE(registry_->get("old"));
  EXPECT_EQ(registry_->get("old")->status.phase, core::ConnectionPhase::kStoredSpecInvalid);
  EXPECT_EQ(registry_->get("old")->status.transition_reason.rfind(
                "stored spec is invalid: spec.backoff.max: ", 0),
            0u);
  EXPECT_FALSE(registry_->setSupervised("old", true, core::Duration::zero()));
  // Another replica's report does not hide why.
  registry_->applyRemoteStatus("old", std::nullopt);
  EXPECT_EQ(registry_->get("old")->status.phase, core::ConnectionPhase::kStoredSpecInvalid);

  registry_->applyStoredPut(record("old", 2, "fixed"));
  EXPECT_EQ(registry_->get("old")->generation, 2u);
  EXPECT_NE(registry_->get("old")->status.phase, core::ConnectionPhase::kStoredSpecInvalid);
  ASSERT_TRUE(registry_->setSupervised("old", true, core::Duration::zero()));
  EXPECT_TRUE(waitUntil([&] { return upstream_.openConnections() == 1; }, seconds(5)));
}

TEST_F(RegistryClusterTest, OnlyTheShareSupervisedHereIsBoundedByTheDescriptorBudget) {
  registry_->shutdown(std::chrono::milliseconds(0));
  RegistryOptions options;
  options.max_endpoints = 10;
  options.max_connections = 2;
  registry_ = std::make_unique<ClusteredRegistry>(options, bus_, metrics_, nullptr, &codec_);
  // The cluster holds more endpoints than this replica has descriptors for...
  registry_->syncStored({record("a", 1, "one"), record("b", 1, "one"), record("c", 1, "one")});
  EXPECT_EQ(registry_->size(), 3u);
  // ...but it supervises no more than its budget.
  EXPECT_TRUE(registry_->setSupervised("a", true, core::Duration::zero()));
  EXPECT_TRUE(registry_->setSupervised("b", true, core::Duration::zero()));
  EXPECT_FALSE(registry_->hasRoomToSupervise());
  EXPECT_FALSE(registry_->setSupervised("c", true, core::Duration::zero()));
  EXPECT_EQ(registry_->connectionsInUse(), 2u);
  EXPECT_TRUE(waitUntil([&] { return upstream_.openConnections() == 2; }, seconds(5)));
  // A probe needs a descriptor too.
  core::EndpointSpec probe;
  probe.url = upstream_.url("/probe");
  ProbeRunner probes(*registry_);
  auto refused = probes.probe(probe, 1, [](const core::ProbeResult&) {});
  ASSERT_TRUE(std::holds_alternative<RegistryError>(refused));
  EXPECT_EQ(std::get<RegistryError>(refused).code, RegistryError::Code::kResourceExhausted);
  // Room again once one is handed over.
  ASSERT_TRUE(registry_->setSupervised("a", false, core::Duration::zero()));
  EXPECT_TRUE(registry_->setSupervised("c", true, core::Duration::zero()));
}

TEST_F(RegistryClusterTest, EveryEndpointIsOnTheBusWhoeverSupervisesIt) {
  registry_->syncStored({record("a", 1, "one"), record("b", 1, "one")});
  auto watch = bus_.subscribe(WatchFilter{}, 64, [] {});
  std::vector<core::HealthEvent> events;
  auto drain = [&] {
    events.clear();
    while (auto event = watch->next()) events.push_back(std::move(*event));
    return events.size();
  };
  ASSERT_EQ(drain(), 3u);  // a, b, the marker
  EXPECT_EQ(events[0].status.health, core::Health::kUnknown);
  EXPECT_EQ(events[0].status.transition_reason, "awaiting the report of its owner");
  auto supervisedHere = [&] {
    const auto counts = bus_.countByHealth();
    size_t total = 0;
    for (size_t n : counts) total += n;
    return total;
  };
  EXPECT_EQ(supervisedHere(), 0u);

  // The owner's report becomes this replica's view: Get, watch and history.
  core::EndpointStatus reported;
  reported.health = core::Health::kHealthy;
  reported.underlying_health = core::Health::kHealthy;
  reported.phase = core::ConnectionPhase::kOpen;
  reported.transition_reason = "2 heartbeats answered";
  registry_->applyRemoteStatus("a", reported);
  EXPECT_EQ(registry_->get("a")->status.health, core::Health::kHealthy);
  ASSERT_EQ(drain(), 1u);
  EXPECT_EQ(events[0].endpoint_id, "a");
  EXPECT_EQ(events[0].status.transition_reason, "2 heartbeats answered");
  ASSERT_EQ(bus_.history("a")->transitions.size(), 1u);

  // Owned here: reports of other replicas no longer apply, and it counts in the metrics.
  ASSERT_TRUE(registry_->setSupervised("a", true, core::Duration::zero()));
  EXPECT_TRUE(waitUntil([&] { return upstream_.openConnections() == 1; }, seconds(5)));
  EXPECT_EQ(supervisedHere(), 1u);
  registry_->applyRemoteStatus("a", std::nullopt);
  EXPECT_NE(registry_->get("a")->status.transition_reason, "no replica reports it");
  drain();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0].status.transition_reason, "supervised by this replica");

  // Handed over: the status says so until the next owner reports.
  ASSERT_TRUE(registry_->setSupervised("a", false, core::Duration::zero(), "leaving the cluster"));
  EXPECT_EQ(supervisedHere(), 0u);
  EXPECT_EQ(registry_->get("a")->status.transition_reason, "handed over: leaving the cluster");
  EXPECT_EQ(registry_->get("a")->status.health, core::Health::kUnknown);
  registry_->applyRemoteStatus("a", std::nullopt);
  EXPECT_EQ(registry_->get("a")->status.transition_reason, "no replica reports it");

  // The guard's stop of everything: one call, every connection closed when it returns.
  ASSERT_TRUE(registry_->setSupervised("a", true, core::Duration::zero()));
  ASSERT_TRUE(registry_->setSupervised("b", true, core::Duration::zero()));
  EXPECT_TRUE(waitUntil([&] { return upstream_.openConnections() == 2; }, seconds(5)));
  EXPECT_EQ(registry_->stopSupervisingAll("the cluster lease is lost"), 2u);
  EXPECT_EQ(supervisedHere(), 0u);
  EXPECT_TRUE(registry_->supervisedIds().empty());
  EXPECT_EQ(registry_->get("b")->status.transition_reason,
            "handed over: the cluster lease is lost");
  EXPECT_TRUE(waitUntil([&] { return upstream_.openConnections() == 0; }, seconds(5)));
  EXPECT_EQ(registry_->stopSupervisingAll("again"), 0u);

  // Removed from the store: unregistered on the bus.
  drain();
  registry_->applyStoredRemove("a");
  ASSERT_EQ(drain(), 1u);
  EXPECT_EQ(events[0].type, core::HealthEvent::Type::kUnregistered);
  EXPECT_FALSE(bus_.state("a"));
  bus_.unsubscribe(watch);
}

}  // namespace
}  // namespace wsvisor
