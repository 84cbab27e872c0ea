// The etcd endpoint store against a real etcd cluster: first the EndpointStore contract, run
// against the SQLite store and the etcd store alike so both behave the same, then what only the
// etcd store has (key layout, transactions and pages within etcd's limits, start-up without etcd,
// the loss of a member).
#include "service/cluster/etcd/etcd_endpoint_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "supervisor/store/sqlite_endpoint_store.h"
#include "support/closed_port.h"
#include "support/etcd_test_cluster.h"
#include "wsvisor/store/v1/stored_endpoint.pb.h"

namespace wsvisor::service::etcd {
namespace {

using std::chrono::milliseconds;
using testing::ClosedPort;
using testing::EtcdTestCluster;

std::string testName() { return ::testing::UnitTest::GetInstance()->current_test_info()->name(); }

// A prefix of the current test's own: "/store-test/<suite>-<test>", '/' in names replaced.
std::string testPrefix() {
  std::string name =
      std::string(::testing::UnitTest::GetInstance()->current_test_info()->test_suite_name()) +
      "-" + testName();
  for (char& c : name) {
    if (c == '/') c = '-';
  }
  return "/store-test/" + name;
}

EtcdStoreOptions storeOptions(const std::vector<std::string>& endpoints,
                              const std::string& prefix) {
  EtcdStoreOptions options;
  options.client.endpoints = endpoints;
  options.prefix = prefix;
  options.startup_timeout = milliseconds(10000);
  return options;
}

std::unique_ptr<EtcdEndpointStore> openEtcd(const std::vector<std::string>& endpoints,
                                            const std::string& prefix) {
  std::string error;
  auto store = EtcdEndpointStore::open(storeOptions(endpoints, prefix), error);
  EXPECT_TRUE(store) << error;
  return store;
}

std::vector<StoredEndpoint> loadAll(EndpointStore& store) {
  std::vector<StoredEndpoint> all;
  const auto error = store.loadAll(all);
  EXPECT_FALSE(error) << *error;
  return all;
}

std::vector<std::string> idsOf(const std::vector<StoredEndpoint>& endpoints) {
  std::vector<std::string> ids;
  for (const auto& endpoint : endpoints) ids.push_back(endpoint.id);
  return ids;
}

std::string idFor(int i) {
  char id[16];
  std::snprintf(id, sizeof(id), "ep-%04d", i);
  return id;
}

// ----- the EndpointStore contract, for both stores

// Each test opens its store on one place (a data directory, an etcd prefix) and may open it again.
class EndpointStoreContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      char pattern[] = "/tmp/wsvisor-store-contract-XXXXXX";
      dir_ = mkdtemp(pattern);
    } else {
      cluster_ = &EtcdTestCluster::shared();
      ASSERT_TRUE(cluster_->ok()) << cluster_->error();
      prefix_ = testPrefix();
    }
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
    if (!prefix_.empty() && cluster_->ok()) {
      EtcdClientOptions options;
      options.endpoints = cluster_->endpoints();
      EtcdClient(options).removePrefix(prefix_ + "/");
    }
  }

  std::unique_ptr<EndpointStore> open() {
    if (GetParam() == "sqlite") {
      std::string error;
      auto store = SqliteEndpointStore::open(dir_, error);
      EXPECT_TRUE(store) << error;
      return store;
    }
    return openEtcd(cluster_->endpoints(), prefix_);
  }

  std::string dir_;
  std::string prefix_;
  EtcdTestCluster* cluster_ = nullptr;
};

TEST_P(EndpointStoreContractTest, WhatIsPutIsThereAfterReopening) {
  {
    auto store = open();
    ASSERT_TRUE(store);
    ASSERT_FALSE(store->put({"b", "spec-b", EndpointOwner::kConfigFile, 3}));
    ASSERT_FALSE(store->put({"a", std::string("\x00\x01spec-a", 8), EndpointOwner::kApi, 1}));
    store->close();
  }
  auto store = open();
  ASSERT_TRUE(store);
  const auto all = loadAll(*store);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, "a");                                         // in id order
  EXPECT_EQ(all[0].encoded_spec, std::string("\x00\x01spec-a", 8));  // binary-safe
  EXPECT_EQ(all[0].owner, EndpointOwner::kApi);
  EXPECT_EQ(all[0].generation, 1u);
  EXPECT_EQ(all[1].id, "b");
  EXPECT_EQ(all[1].owner, EndpointOwner::kConfigFile);
  EXPECT_EQ(all[1].generation, 3u);
}

TEST_P(EndpointStoreContractTest, PutReplacesAndRemoveDeletes) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_FALSE(store->put({"a", "v1", EndpointOwner::kApi, 1}));
  ASSERT_FALSE(store->put({"a", "v2", EndpointOwner::kApi, 2}));
  ASSERT_FALSE(store->put({"b", "v1", EndpointOwner::kApi, 1}));
  ASSERT_FALSE(store->remove("b"));
  ASSERT_FALSE(store->remove("never-stored"));  // removing what is not there is no error
  const auto all = loadAll(*store);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].encoded_spec, "v2");
  EXPECT_EQ(all[0].generation, 2u);
}

TEST_P(EndpointStoreContractTest, ABatchAppliesItsPutsThenItsRemoves) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_FALSE(store->applyBatch({{"a", "a1", EndpointOwner::kApi, 1},
                                  {"b", "b1", EndpointOwner::kApi, 1},
                                  {"c", "c1", EndpointOwner::kApi, 1}},
                                 {}));
  // The last put of an id wins; a remove of an id wins over a put of it in the same batch.
  ASSERT_FALSE(store->applyBatch({{"d", "d1", EndpointOwner::kConfigFile, 1},
                                  {"a", "a2", EndpointOwner::kApi, 2},
                                  {"e", "e1", EndpointOwner::kApi, 1},
                                  {"d", "d2", EndpointOwner::kConfigFile, 2}},
                                 {"b", "e"}));
  const auto all = loadAll(*store);
  ASSERT_EQ(idsOf(all), (std::vector<std::string>{"a", "c", "d"}));
  EXPECT_EQ(all[0].encoded_spec, "a2");
  EXPECT_EQ(all[2].encoded_spec, "d2");
  EXPECT_EQ(all[2].generation, 2u);
}

TEST_P(EndpointStoreContractTest, ABatchOfAThousandEndpointsIsAppliedWhole) {
  auto store = open();
  ASSERT_TRUE(store);
  // More than etcd takes in one transaction (128 operations): several, for the etcd store.
  std::vector<StoredEndpoint> puts;
  for (int i = 0; i < 1000; ++i) {
    puts.push_back({idFor(i), "spec-" + std::to_string(i), EndpointOwner::kConfigFile, 1});
  }
  ASSERT_FALSE(store->applyBatch(puts, {}));
  std::vector<StoredEndpoint> updates;
  std::vector<std::string> removes;
  for (int i = 0; i < 300; ++i) {
    updates.push_back({idFor(i), "spec-v2", EndpointOwner::kConfigFile, 2});
    removes.push_back(idFor(999 - i));
  }
  ASSERT_FALSE(store->applyBatch(updates, removes));
  store->close();

  auto reopened = open();
  ASSERT_TRUE(reopened);
  const auto all = loadAll(*reopened);
  ASSERT_EQ(all.size(), 700u);
  for (int i = 0; i < 700; ++i) {
    ASSERT_EQ(all[static_cast<size_t>(i)].id, idFor(i));
    EXPECT_EQ(all[static_cast<size_t>(i)].encoded_spec,
              i < 300 ? std::string("spec-v2") : "spec-" + std::to_string(i));
  }
}

TEST_P(EndpointStoreContractTest, WritesAfterCloseFailCleanly) {
  auto store = open();
  ASSERT_TRUE(store);
  store->close();
  EXPECT_TRUE(store->put({"a", "v", EndpointOwner::kApi, 1}).has_value());
  EXPECT_TRUE(store->remove("a").has_value());
  EXPECT_TRUE(store->applyBatch({{"a", "v", EndpointOwner::kApi, 1}}, {}).has_value());
  std::vector<StoredEndpoint> all;
  EXPECT_TRUE(store->loadAll(all).has_value());
}

INSTANTIATE_TEST_SUITE_P(Stores, EndpointStoreContractTest, ::testing::Values("sqlite", "etcd"),
                         [](const auto& info) { return info.param; });

// ----- the etcd store only

class EtcdEndpointStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = &EtcdTestCluster::shared();
    ASSERT_TRUE(cluster_->ok()) << cluster_->error();
    prefix_ = testPrefix();
    EtcdClientOptions options;
    options.endpoints = cluster_->endpoints();
    client_ = std::make_unique<EtcdClient>(options);
  }
  void TearDown() override {
    if (client_) client_->removePrefix(prefix_ + "/");
  }

  EtcdTestCluster* cluster_ = nullptr;
  std::string prefix_;
  std::unique_ptr<EtcdClient> client_;
};

TEST_F(EtcdEndpointStoreTest, AnEndpointIsOneKeyHoldingAStoredEndpointMessage) {
  auto store = openEtcd(cluster_->endpoints(), prefix_);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->describe(), cluster_->storeUrl(prefix_));
  ASSERT_FALSE(store->put({"prices", "encoded-spec", EndpointOwner::kConfigFile, 7}));
  EXPECT_EQ(store->endpointKey("prices"), prefix_ + "/endpoints/prices");

  std::optional<EtcdKeyValue> kv;
  ASSERT_FALSE(client_->get(prefix_ + "/endpoints/prices", kv));
  ASSERT_TRUE(kv);
  store::v1::StoredEndpoint record;
  ASSERT_TRUE(record.ParseFromString(kv->value));
  EXPECT_EQ(record.id(), "prices");
  EXPECT_EQ(record.spec(), "encoded-spec");
  EXPECT_EQ(record.owner(), v1::OWNER_CONFIG_FILE);
  EXPECT_EQ(record.generation(), 7u);
}

TEST_F(EtcdEndpointStoreTest, OnlyKeysUnderItsOwnEndpointsPrefixAreLoaded) {
  auto store = openEtcd(cluster_->endpoints(), prefix_);
  auto neighbour = openEtcd(cluster_->endpoints(), prefix_ + "-neighbour");
  ASSERT_TRUE(store && neighbour);
  ASSERT_FALSE(store->put({"mine", "s", EndpointOwner::kApi, 1}));
  ASSERT_FALSE(neighbour->put({"theirs", "s", EndpointOwner::kApi, 1}));
  ASSERT_FALSE(client_->put(prefix_ + "/endpointsX", "not an endpoint key"));
  ASSERT_FALSE(client_->put(prefix_ + "/members/r1", "not an endpoint key"));
  EXPECT_EQ(idsOf(loadAll(*store)), std::vector<std::string>{"mine"});
  EXPECT_EQ(idsOf(loadAll(*neighbour)), std::vector<std::string>{"theirs"});
  client_->removePrefix(prefix_ + "-neighbour/");
}

TEST_F(EtcdEndpointStoreTest, LoadingPagesThroughAPrefixLargerThanAPageAtOneRevision) {
  auto store = openEtcd(cluster_->endpoints(), prefix_);
  ASSERT_TRUE(store);
  std::vector<StoredEndpoint> puts;
  for (int i = 0; i < 50; ++i) puts.push_back({idFor(i), "s", EndpointOwner::kApi, 1});
  ASSERT_FALSE(store->applyBatch(puts, {}));
  store->setLimitsForTest(EtcdEndpointStore::kMaxOpsPerTxn, EtcdEndpointStore::kMaxTxnBytes, 7);

  std::vector<StoredEndpoint> all;
  int64_t revision = 0;
  ASSERT_FALSE(store->loadAllAt(all, revision));
  ASSERT_EQ(all.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(all[static_cast<size_t>(i)].id, idFor(i));
  // The snapshot's revision is the store's revision when the first page was read.
  std::optional<EtcdKeyValue> unused;
  int64_t now = 0;
  ASSERT_FALSE(client_->get(prefix_, unused, &now));
  EXPECT_EQ(revision, now);
}

TEST_F(EtcdEndpointStoreTest, BatchesAreSplitToStayUnderEtcdsRequestSizeLimit) {
  auto store = openEtcd(cluster_->endpoints(), prefix_);
  ASSERT_TRUE(store);
  // 200 endpoints of 16 KiB: 128 of them would be 2 MiB, over etcd's 1.5 MiB per request.
  const std::string big(16 * 1024, 's');
  std::vector<StoredEndpoint> puts;
  for (int i = 0; i < 200; ++i) puts.push_back({idFor(i), big, EndpointOwner::kApi, 1});
  const auto error = store->applyBatch(puts, {});
  ASSERT_FALSE(error) << *error;
  const auto all = loadAll(*store);
  ASSERT_EQ(all.size(), 200u);
  EXPECT_EQ(all[199].encoded_spec, big);
}

TEST_F(EtcdEndpointStoreTest, AFailedTransactionOfASplitBatchSaysWhatWasWritten) {
  auto store = openEtcd(cluster_->endpoints(), prefix_);
  ASSERT_TRUE(store);
  store->setLimitsForTest(1, EtcdEndpointStore::kMaxTxnBytes, EtcdEndpointStore::kPageSize);
  // The second of three transactions is larger than etcd accepts.
  const auto error =
      store->applyBatch({{"a", "small", EndpointOwner::kApi, 1},
                         {"b", std::string(3 * 1024 * 1024, 'x'), EndpointOwner::kApi, 1},
                         {"c", "small", EndpointOwner::kApi, 1}},
                        {});
  ASSERT_TRUE(error);
  EXPECT_NE(error->find("1 of 3 changes were written"), std::string::npos) << *error;
  EXPECT_EQ(idsOf(loadAll(*store)), std::vector<std::string>{"a"});
}

TEST_F(EtcdEndpointStoreTest, AValueThatIsNotAStoredEndpointIsAnErrorNotAnEmptyStore) {
  auto store = openEtcd(cluster_->endpoints(), prefix_);
  ASSERT_TRUE(store);
  ASSERT_FALSE(store->put({"good", "s", EndpointOwner::kApi, 1}));
  ASSERT_FALSE(client_->put(prefix_ + "/endpoints/bad", "\xff\xff\xff not protobuf"));
  std::vector<StoredEndpoint> all;
  auto error = store->loadAll(all);
  ASSERT_TRUE(error);
  EXPECT_NE(error->find(prefix_ + "/endpoints/bad"), std::string::npos) << *error;

  // A well-formed record under the wrong key is refused too.
  store::v1::StoredEndpoint record;
  record.set_id("someone-else");
  record.set_owner(v1::OWNER_API);
  ASSERT_FALSE(client_->put(prefix_ + "/endpoints/bad", record.SerializeAsString()));
  all.clear();
  error = store->loadAll(all);
  ASSERT_TRUE(error);
  EXPECT_NE(error->find("someone-else"), std::string::npos) << *error;
}

TEST(EtcdEndpointStoreStartupTest, OpeningFailsWithinItsTimeoutWhenEtcdIsUnreachable) {
  ClosedPort port;
  EtcdStoreOptions options = storeOptions({port.endpoint()}, "/wsvisor");
  options.startup_timeout = milliseconds(1000);
  const auto started = std::chrono::steady_clock::now();
  std::string error;
  EXPECT_FALSE(EtcdEndpointStore::open(options, error));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  EXPECT_NE(error.find("etcd://" + port.endpoint() + "/wsvisor"), std::string::npos) << error;
  EXPECT_NE(error.find("no answer within 1000 ms"), std::string::npos) << error;
}

// Kills a member: a cluster of its own.
TEST(EtcdEndpointStoreQuorumTest, AnAcknowledgedWriteSurvivesTheLossOfTheMemberThatTookIt) {
  EtcdTestCluster cluster(3);
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  auto store = openEtcd(cluster.endpoints(), "/quorum");
  ASSERT_TRUE(store);
  ASSERT_FALSE(store->put({"before", "s", EndpointOwner::kApi, 1}));
  // Member 0 took the write (calls stick to the first member while it answers).
  ASSERT_TRUE(cluster.kill(0)) << cluster.error();
  // The remaining two are a quorum: the write is there, and writes go on.
  ASSERT_FALSE(store->put({"after", "s", EndpointOwner::kApi, 1}));
  auto survivors = openEtcd({cluster.endpoints()[1], cluster.endpoints()[2]}, "/quorum");
  ASSERT_TRUE(survivors);
  EXPECT_EQ(idsOf(loadAll(*survivors)), (std::vector<std::string>{"after", "before"}));
}

}  // namespace
}  // namespace wsvisor::service::etcd
