// The Registry in cluster mode against a real upstream: it holds every stored endpoint, dials
// only those it is told it owns, follows changes other replicas made, and stops a connection
// before setSupervised(false) returns. Every wait is bounded.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "service/proto_conversions.h"
#include "supervisor/core/spec_validation.h"
#include "supervisor/registry.h"
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
    options.clustered = true;
    registry_ = std::make_unique<Registry>(options, bus_, metrics_, nullptr, &codec_);
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
  std::unique_ptr<Registry> registry_;
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

}  // namespace
}  // namespace wsvisor
