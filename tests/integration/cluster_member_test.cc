// Two cluster members (each its own registry, health bus and etcd store, as two replicas have)
// against a real etcd cluster and one upstream: they split the endpoints, each bus reports every
// endpoint with its owner's health, and the survivor takes over when a member leaves. Runs under
// ThreadSanitizer with the other etcd tests: the members' watches, reconcilers and io threads all
// meet in the registries and buses. Every wait is bounded.
#include "service/cluster/cluster_member.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "service/api/proto_conversions.h"
#include "support/etcd_test_cluster.h"
#include "support/test_upstream.h"
#include "support/wait.h"

namespace wsvisor::service {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::EtcdTestCluster;
using testing::TestUpstream;
using testing::waitUntil;

constexpr int kEndpoints = 6;
// Generous: under ThreadSanitizer every etcd call and heartbeat is several times slower.
constexpr auto kWait = seconds(30);

std::string idFor(int i) { return "ep-" + std::to_string(i); }

// One replica: what Server builds in cluster mode, without the gRPC front.
class Replica {
 public:
  Replica(const std::vector<std::string>& etcd, const std::string& prefix,
          const std::string& member_id) {
    etcd::EtcdStoreOptions store_options;
    store_options.client.endpoints = etcd;
    store_options.prefix = prefix;
    store_options.startup_timeout = seconds(10);
    std::string error;
    store_ = etcd::EtcdEndpointStore::open(store_options, error);
    EXPECT_TRUE(store_) << error;
    if (!store_) return;
    store_->setShared(true);
    RegistryOptions options;
    registry_ = std::make_unique<ClusteredRegistry>(options, bus_, metrics_, store_.get(), &codec_);
    ClusterOptions cluster;
    cluster.member_id = member_id;
    cluster.ttl = seconds(2);
    cluster.join_timeout = seconds(10);
    member_ = std::make_unique<ClusterMember>(*store_, *registry_, bus_, cluster);
    EXPECT_TRUE(member_->start(error)) << error;
  }
  ~Replica() { leave(); }

  // Stops its connections, then its membership, as a replica shutting down does.
  void leave() {
    if (member_) member_->stop();
    if (registry_) registry_->shutdown(milliseconds(500));
  }

  bool ok() const { return member_ != nullptr; }
  ClusteredRegistry& registry() { return *registry_; }
  HealthBus& bus() { return bus_; }

  // Whether this replica's bus has every endpoint HEALTHY (`here`: supervised by this replica).
  bool seesAllHealthy(bool require_here = false) const {
    for (int i = 0; i < kEndpoints; ++i) {
      auto state = bus_.state(idFor(i));
      if (!state || state->latest->status.health != core::Health::kHealthy) return false;
      if (require_here && !state->supervised_here) return false;
    }
    return true;
  }
  size_t healthyHere() const {
    return bus_.countByHealth()[static_cast<size_t>(core::Health::kHealthy)];
  }

 private:
  HealthBus bus_;
  Metrics metrics_{MetricsOptions{}};
  ProtoSpecCodec codec_;
  std::unique_ptr<etcd::EtcdEndpointStore> store_;
  std::unique_ptr<ClusteredRegistry> registry_;
  std::unique_ptr<ClusterMember> member_;
};

TEST(ClusterMemberTest, EveryReplicaReportsEveryEndpointAndTheSurvivorTakesOver) {
  EtcdTestCluster& etcd = EtcdTestCluster::shared();
  ASSERT_TRUE(etcd.ok()) << etcd.error();
  TestUpstream upstream;
  const std::string prefix = "/cluster-member-test";
  Replica a(etcd.endpoints(), prefix, "member-a");
  Replica b(etcd.endpoints(), prefix, "member-b");
  ASSERT_TRUE(a.ok() && b.ok());

  for (int i = 0; i < kEndpoints; ++i) {
    core::EndpointSpec spec;
    spec.id = idFor(i);
    spec.url = upstream.url("/" + spec.id);
    spec.heartbeat.interval = milliseconds(200);
    auto registered = (i % 2 ? a : b).registry().registerEndpoint(spec, EndpointOwner::kApi);
    ASSERT_TRUE(std::holds_alternative<Registry::RegisterResult>(registered));
  }
  // One connection per endpoint, split between the two; each bus reports all of them HEALTHY.
  EXPECT_TRUE(waitUntil(
      [&] {
        return a.seesAllHealthy() && b.seesAllHealthy() && upstream.openConnections() == kEndpoints;
      },
      kWait));
  EXPECT_EQ(a.registry().connectionsInUse() + b.registry().connectionsInUse(), kEndpoints);
  EXPECT_EQ(a.healthyHere() + b.healthyHere(), kEndpoints) << "each counted once, by its owner";
  // An endpoint the other replica supervises has its owner's health and history here.
  for (int i = 0; i < kEndpoints; ++i) {
    auto state = a.bus().state(idFor(i));
    ASSERT_TRUE(state);
    if (state->supervised_here) continue;
    auto history = a.bus().history(idFor(i));
    ASSERT_TRUE(history);
    ASSERT_FALSE(history->transitions.empty());
    EXPECT_EQ(history->transitions.back().health, core::Health::kHealthy);
  }

  // A leaves: B supervises everything, and its bus says so.
  a.leave();
  EXPECT_TRUE(waitUntil(
      [&] {
        return b.seesAllHealthy(/*require_here=*/true) && upstream.openConnections() == kEndpoints;
      },
      kWait));
  EXPECT_EQ(b.registry().connectionsInUse(), kEndpoints);
  EXPECT_EQ(b.healthyHere(), kEndpoints);
  for (const std::string& id : b.registry().ids())
    b.registry().unregisterEndpoint(id, EndpointOwner::kApi);
}

}  // namespace
}  // namespace wsvisor::service
