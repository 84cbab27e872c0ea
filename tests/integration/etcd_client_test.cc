// The etcd client against real etcd clusters (Debian's etcd-server, three members on loopback):
// reads and writes, compare-and-swap conflicts, leases that expire or are kept alive, watches
// that deliver every change in order and resume when their member dies.
#include "service/cluster/etcd/etcd_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

#include "service/cluster/etcd/lease_keeper.h"
#include "service/cluster/etcd/prefix_watch.h"
#include "support/closed_port.h"
#include "support/etcd_test_cluster.h"
#include "support/wait.h"

namespace wsvisor::service::etcd {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::ClosedPort;
using testing::EtcdTestCluster;
using testing::waitUntil;

// Fails the test with the client's error message when `call` returns one.
#define ASSERT_ETCD_OK(call)                             \
  do {                                                   \
    const std::optional<EtcdError> etcd_error_ = (call); \
    ASSERT_FALSE(etcd_error_) << etcd_error_->message;   \
  } while (false)

// Bounds on waits for what etcd does by itself (elections, lease expiry); generous for a loaded
// two-core machine.
constexpr milliseconds kEtcdWait{15000};

EtcdClientOptions optionsFor(const std::vector<std::string>& endpoints) {
  EtcdClientOptions options;
  options.endpoints = endpoints;
  options.call_timeout = milliseconds(5000);
  options.connect_timeout = milliseconds(1000);
  return options;
}

// Records what a PrefixWatch delivers.
class WatchRecorder {
 public:
  PrefixWatch::Callbacks callbacks() {
    PrefixWatch::Callbacks callbacks;
    callbacks.on_events = [this](const std::vector<EtcdEvent>& events, int64_t) {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& event : events) events_.push_back(event);
    };
    callbacks.on_compacted = [this](int64_t revision) {
      std::lock_guard<std::mutex> lock(mu_);
      compacted_at_ = revision;
    };
    callbacks.on_interrupted = [this](const std::string& problem) {
      std::lock_guard<std::mutex> lock(mu_);
      interruptions_.push_back(problem);
    };
    return callbacks;
  }
  std::vector<EtcdEvent> events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  size_t eventCount() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_.size();
  }
  int64_t compactedAt() const {
    std::lock_guard<std::mutex> lock(mu_);
    return compacted_at_;
  }
  std::vector<std::string> interruptions() const {
    std::lock_guard<std::mutex> lock(mu_);
    return interruptions_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<EtcdEvent> events_;
  int64_t compacted_at_ = 0;
  std::vector<std::string> interruptions_;
};

// The shared three-member cluster, for the tests that leave it as they found it.
class EtcdClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = &EtcdTestCluster::shared();
    ASSERT_TRUE(cluster_->ok()) << cluster_->error();
    client_ = std::make_unique<EtcdClient>(optionsFor(cluster_->endpoints()));
    // Keys of each test under a prefix of their own.
    prefix_ = std::string("/test/") +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + "/";
  }

  EtcdTestCluster* cluster_ = nullptr;
  std::unique_ptr<EtcdClient> client_;
  std::string prefix_;
};

TEST_F(EtcdClientTest, PutThenGetOneKeyAndAPrefixInKeyOrder) {
  int64_t first_revision = 0;
  ASSERT_ETCD_OK(client_->put(prefix_ + "b", "two", 0, &first_revision));
  ASSERT_ETCD_OK(client_->put(prefix_ + "a", std::string("o\0ne", 4)));  // binary-safe
  ASSERT_ETCD_OK(client_->put(prefix_ + "c", "three"));
  ASSERT_ETCD_OK(client_->put(prefix_ + "c", "three again"));
  ASSERT_ETCD_OK(client_->put(prefix_.substr(0, prefix_.size() - 1) + "x", "outside the prefix"));

  std::optional<EtcdKeyValue> one;
  ASSERT_ETCD_OK(client_->get(prefix_ + "b", one));
  ASSERT_TRUE(one);
  EXPECT_EQ(one->value, "two");
  EXPECT_EQ(one->mod_revision, first_revision);
  EXPECT_EQ(one->create_revision, first_revision);
  EXPECT_EQ(one->version, 1);

  std::optional<EtcdKeyValue> missing;
  ASSERT_ETCD_OK(client_->get(prefix_ + "nothing", missing));
  EXPECT_FALSE(missing);

  EtcdRange all;
  ASSERT_ETCD_OK(client_->getPrefix(prefix_, all));
  ASSERT_EQ(all.kvs.size(), 3u);
  EXPECT_EQ(all.kvs[0].key, prefix_ + "a");
  EXPECT_EQ(all.kvs[0].value, std::string("o\0ne", 4));
  EXPECT_EQ(all.kvs[2].value, "three again");
  EXPECT_EQ(all.kvs[2].version, 2);
  EXPECT_GT(all.revision, first_revision);

  // A limit gives a page and says that more follow.
  EtcdRange page;
  ASSERT_ETCD_OK(client_->range(prefix_, prefixRangeEnd(prefix_), 2, 0, page));
  EXPECT_EQ(page.kvs.size(), 2u);
  EXPECT_TRUE(page.more);

  int64_t deleted = 0;
  ASSERT_ETCD_OK(client_->removePrefix(prefix_, &deleted));
  EXPECT_EQ(deleted, 3);
}

TEST_F(EtcdClientTest, PrefixRangeEndFollowsEtcd) {
  EXPECT_EQ(prefixRangeEnd("/a/"), "/a0");
  EXPECT_EQ(prefixRangeEnd("a\xff"), "b");
  EXPECT_EQ(prefixRangeEnd("\xff\xff"), std::string(1, '\0'));
}

TEST_F(EtcdClientTest, CreateIfAbsentLetsExactlyOneOfTwoWritersWin) {
  const std::string key = prefix_ + "owner";
  EtcdSwap first;
  ASSERT_ETCD_OK(client_->createIfAbsent(key, "replica-a", 0, first));
  EXPECT_TRUE(first.succeeded);
  EtcdSwap second;
  ASSERT_ETCD_OK(client_->createIfAbsent(key, "replica-b", 0, second));
  EXPECT_FALSE(second.succeeded);
  ASSERT_TRUE(second.current);
  EXPECT_EQ(second.current->value, "replica-a");

  // Racing writers on a fresh key, each with its own client: one wins, every other one is told.
  const std::string raced = prefix_ + "raced";
  constexpr int kWriters = 8;
  std::atomic<int> winners{0};
  std::atomic<int> losers{0};
  std::vector<std::thread> writers;
  for (int i = 0; i < kWriters; ++i) {
    writers.emplace_back([&, i] {
      EtcdClient own(optionsFor(cluster_->endpoints()));
      EtcdSwap outcome;
      if (own.createIfAbsent(raced, "writer-" + std::to_string(i), 0, outcome)) return;
      (outcome.succeeded ? winners : losers)++;
    });
  }
  for (auto& writer : writers) writer.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_EQ(losers.load(), kWriters - 1);
}

TEST_F(EtcdClientTest, UpdateAndDeleteIfModRevisionRefuseAStaleRevision) {
  const std::string key = prefix_ + "k";
  int64_t created_at = 0;
  ASSERT_ETCD_OK(client_->put(key, "v1", 0, &created_at));

  EtcdSwap updated;
  ASSERT_ETCD_OK(client_->updateIfModRevision(key, "v2", created_at, 0, updated));
  ASSERT_TRUE(updated.succeeded);
  EXPECT_GT(updated.revision, created_at);

  // Someone who read v1 tries to write over v2: refused, and told what is there now.
  EtcdSwap stale;
  ASSERT_ETCD_OK(client_->updateIfModRevision(key, "v1-based", created_at, 0, stale));
  EXPECT_FALSE(stale.succeeded);
  ASSERT_TRUE(stale.current);
  EXPECT_EQ(stale.current->value, "v2");
  EXPECT_EQ(stale.current->mod_revision, updated.revision);

  EtcdSwap stale_delete;
  ASSERT_ETCD_OK(client_->removeIfModRevision(key, created_at, stale_delete));
  EXPECT_FALSE(stale_delete.succeeded);
  EtcdSwap removed;
  ASSERT_ETCD_OK(client_->removeIfModRevision(key, updated.revision, removed));
  EXPECT_TRUE(removed.succeeded);
  std::optional<EtcdKeyValue> gone;
  ASSERT_ETCD_OK(client_->get(key, gone));
  EXPECT_FALSE(gone);

  // Updating a key that does not exist is a conflict too (its mod revision is 0).
  EtcdSwap absent;
  ASSERT_ETCD_OK(client_->updateIfModRevision(key, "v3", updated.revision, 0, absent));
  EXPECT_FALSE(absent.succeeded);
  EXPECT_FALSE(absent.current);
}

TEST_F(EtcdClientTest, AnErrorNamesTheMemberAndEtcdsStatus) {
  // etcd refuses transactions of more than 128 operations (--max-txn-ops).
  etcdserverpb::TxnRequest request;
  for (int i = 0; i < 129; ++i) {
    auto* put = request.add_success()->mutable_request_put();
    put->set_key(prefix_ + std::to_string(i));
    put->set_value("v");
  }
  etcdserverpb::TxnResponse response;
  const auto error = client_->txn(request, response, true);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(error->message.find("etcd 127.0.0.1:"), std::string::npos) << error->message;
  EXPECT_NE(error->message.find("Txn: INVALID_ARGUMENT"), std::string::npos) << error->message;
  EXPECT_NE(error->message.find("too many operations"), std::string::npos) << error->message;
}

TEST_F(EtcdClientTest, UnreachableEndpointsFailWithinTheCallTimeoutNamingEachOne) {
  ClosedPort first;
  ClosedPort second;
  EtcdClientOptions options = optionsFor({first.endpoint(), second.endpoint()});
  options.call_timeout = milliseconds(1500);
  options.connect_timeout = milliseconds(500);
  EtcdClient unreachable(options);
  const auto started = std::chrono::steady_clock::now();
  std::optional<EtcdKeyValue> out;
  const auto error = unreachable.get("/k", out);
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(error);
  EXPECT_EQ(error->code, grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(error->message.find(first.endpoint()), std::string::npos) << error->message;
  EXPECT_NE(error->message.find(second.endpoint()), std::string::npos) << error->message;
  EXPECT_LT(took, seconds(5));
}

TEST_F(EtcdClientTest, ALeaseThatIsNotKeptAliveExpiresAndTakesItsKeysWithIt) {
  EtcdLease lease;
  ASSERT_ETCD_OK(client_->grantLease(1, lease));
  EXPECT_GE(lease.ttl_seconds, 1);
  ASSERT_ETCD_OK(client_->put(prefix_ + "member", "alive", lease.id));
  std::optional<EtcdKeyValue> key;
  ASSERT_ETCD_OK(client_->get(prefix_ + "member", key));
  ASSERT_TRUE(key);
  EXPECT_EQ(key->lease, lease.id);

  EXPECT_TRUE(waitUntil(
      [&] {
        std::optional<EtcdKeyValue> now;
        return !client_->get(prefix_ + "member", now) && !now;
      },
      kEtcdWait));
  int64_t ttl = 0;
  ASSERT_ETCD_OK(client_->leaseTimeToLive(lease.id, ttl));
  EXPECT_EQ(ttl, -1);
}

TEST_F(EtcdClientTest, AKeptLeaseOutlivesItsTtlAndRevokingItDeletesItsKeys) {
  EtcdLease lease;
  ASSERT_ETCD_OK(client_->grantLease(1, lease));
  ASSERT_ETCD_OK(client_->put(prefix_ + "member", "alive", lease.id));
  std::atomic<bool> lost{false};
  LeaseKeeper keeper(*client_, lease, [&](const std::string&) { lost = true; });

  // Renewed every TTL/3: after six renewals the lease has lived twice its TTL.
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(waitUntil([&] { return keeper.renewals() >= 6 || lost; }, kEtcdWait));
  ASSERT_FALSE(lost);
  EXPECT_GE(std::chrono::steady_clock::now() - started,
            seconds(2 * lease.ttl_seconds) - milliseconds(500));
  std::optional<EtcdKeyValue> key;
  ASSERT_ETCD_OK(client_->get(prefix_ + "member", key));
  EXPECT_TRUE(key) << "the key of a kept lease disappeared";

  keeper.stop();
  EXPECT_FALSE(lost) << "stopping is not a loss";
  ASSERT_ETCD_OK(client_->revokeLease(lease.id));
  std::optional<EtcdKeyValue> after;
  ASSERT_ETCD_OK(client_->get(prefix_ + "member", after));
  EXPECT_FALSE(after) << "revoke is synchronous: the key is gone when it returns";
}

TEST_F(EtcdClientTest, TheKeeperReportsALeaseRevokedBySomeoneElse) {
  EtcdLease lease;
  ASSERT_ETCD_OK(client_->grantLease(5, lease));
  std::mutex mu;
  std::string reason;
  LeaseKeeper keeper(*client_, lease, [&](const std::string& why) {
    std::lock_guard<std::mutex> lock(mu);
    reason = why;
  });
  EtcdClient other(optionsFor(cluster_->endpoints()));
  ASSERT_ETCD_OK(other.revokeLease(lease.id));
  // The next renewal (within TTL/3) learns that the lease is gone.
  ASSERT_TRUE(waitUntil([&] { return keeper.lost(); }, kEtcdWait));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_NE(reason.find("no longer exists"), std::string::npos) << reason;
  EXPECT_NE(reason.find(std::to_string(lease.id)), std::string::npos) << reason;
}

TEST_F(EtcdClientTest, AWatchDeliversPutsAndDeletesInRevisionOrder) {
  std::optional<EtcdKeyValue> unused;
  int64_t now = 0;
  ASSERT_ETCD_OK(client_->get(prefix_, unused, &now));
  WatchRecorder recorder;
  PrefixWatch watch(*client_, prefix_, now + 1, recorder.callbacks());

  ASSERT_ETCD_OK(client_->put(prefix_ + "a", "1"));
  ASSERT_ETCD_OK(client_->put(prefix_ + "b", "2"));
  ASSERT_ETCD_OK(client_->put("/elsewhere/" + prefix_, "not watched"));
  ASSERT_ETCD_OK(client_->remove(prefix_ + "a"));
  // Two changes in one transaction share one revision.
  etcdserverpb::TxnRequest txn;
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(prefix_ + "c");
  put->set_value("3");
  txn.add_success()->mutable_request_delete_range()->set_key(prefix_ + "b");
  etcdserverpb::TxnResponse txn_response;
  ASSERT_ETCD_OK(client_->txn(txn, txn_response, true));

  ASSERT_TRUE(waitUntil([&] { return recorder.eventCount() >= 5; }, kEtcdWait))
      << recorder.eventCount() << " events";
  const auto events = recorder.events();
  ASSERT_EQ(events.size(), 5u);
  const std::vector<std::pair<EtcdEvent::Type, std::string>> expected = {
      {EtcdEvent::Type::kPut, "a"},
      {EtcdEvent::Type::kPut, "b"},
      {EtcdEvent::Type::kDelete, "a"},
      {EtcdEvent::Type::kPut, "c"},
      {EtcdEvent::Type::kDelete, "b"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(events[i].type, expected[i].first) << i;
    EXPECT_EQ(events[i].kv.key, prefix_ + expected[i].second) << i;
    if (i > 0 && i != 4) {
      EXPECT_GT(events[i].kv.mod_revision, events[i - 1].kv.mod_revision) << i;
    }
  }
  EXPECT_EQ(events[0].kv.value, "1");
  EXPECT_EQ(events[3].kv.mod_revision, events[4].kv.mod_revision);
  EXPECT_EQ(events[4].kv.mod_revision, txn_response.header().revision());
  EXPECT_TRUE(recorder.interruptions().empty());
}

TEST_F(EtcdClientTest, AWatchFromACompactedRevisionReportsCompactionAndStops) {
  int64_t first = 0;
  ASSERT_ETCD_OK(client_->put(prefix_ + "k", "1", 0, &first));
  int64_t last = 0;
  ASSERT_ETCD_OK(client_->put(prefix_ + "k", "2", 0, &last));
  ASSERT_ETCD_OK(client_->compact(last));

  WatchRecorder recorder;
  PrefixWatch watch(*client_, prefix_, first, recorder.callbacks());
  ASSERT_TRUE(waitUntil([&] { return recorder.compactedAt() != 0; }, kEtcdWait));
  EXPECT_EQ(recorder.compactedAt(), last);
  EXPECT_EQ(recorder.eventCount(), 0u) << "events from before a compaction would be incomplete";
}

// Kills members: a cluster of its own.
TEST(EtcdClientFailoverTest, CallsAndAWatchMoveToAnotherMemberWhenTheirsIsKilled) {
  EtcdTestCluster cluster(3);
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  // Member 0 first: calls and the watch start there.
  EtcdClient client(optionsFor(cluster.endpoints()));
  const std::string prefix = "/failover/";
  std::optional<EtcdKeyValue> unused;
  int64_t now = 0;
  ASSERT_ETCD_OK(client.get(prefix, unused, &now));
  WatchRecorder recorder;
  PrefixWatch watch(client, prefix, now + 1, recorder.callbacks());
  ASSERT_TRUE(watch.waitUntilCreated(kEtcdWait));
  ASSERT_ETCD_OK(client.put(prefix + "1", "before"));
  ASSERT_TRUE(waitUntil([&] { return recorder.eventCount() == 1; }, kEtcdWait));

  ASSERT_TRUE(cluster.kill(0)) << cluster.error();
  // Writes go on through the other two members (a quorum), with no error seen by the caller.
  ASSERT_ETCD_OK(client.put(prefix + "2", "during"));
  ASSERT_ETCD_OK(client.put(prefix + "3", "during"));
  ASSERT_ETCD_OK(client.remove(prefix + "1"));

  ASSERT_TRUE(waitUntil([&] { return recorder.eventCount() >= 4; }, kEtcdWait))
      << recorder.eventCount() << " events";
  const auto events = recorder.events();
  ASSERT_EQ(events.size(), 4u) << "an event was repeated";
  EXPECT_EQ(events[1].kv.key, prefix + "2");
  EXPECT_EQ(events[2].kv.key, prefix + "3");
  EXPECT_EQ(events[3].type, EtcdEvent::Type::kDelete);
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_GT(events[i].kv.mod_revision, events[i - 1].kv.mod_revision);
  }
  EXPECT_GE(watch.resumptions(), 1);
  const auto interruptions = recorder.interruptions();
  ASSERT_FALSE(interruptions.empty());
  EXPECT_NE(interruptions.front().find(cluster.endpoints()[0]), std::string::npos)
      << interruptions.front();

  // The member comes back with everything it missed.
  ASSERT_TRUE(cluster.restart(0)) << cluster.error();
  EtcdClient only_member_0(optionsFor({cluster.endpoints()[0]}));
  EtcdRange seen;
  ASSERT_ETCD_OK(only_member_0.getPrefix(prefix, seen));
  ASSERT_EQ(seen.kvs.size(), 2u);
  EXPECT_EQ(seen.kvs[0].key, prefix + "2");
}

// Loses its only member: a cluster of its own.
TEST(EtcdLeaseLossTest, TheKeeperReportsLossWhenNoRenewalSucceedsForATtl) {
  EtcdTestCluster cluster(1);
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  EtcdClientOptions options = optionsFor(cluster.endpoints());
  options.call_timeout = milliseconds(1000);
  options.connect_timeout = milliseconds(300);
  EtcdClient client(options);
  EtcdLease lease;
  ASSERT_ETCD_OK(client.grantLease(2, lease));
  std::mutex mu;
  std::string reason;
  LeaseKeeper keeper(client, lease, [&](const std::string& why) {
    std::lock_guard<std::mutex> lock(mu);
    reason = why;
  });
  ASSERT_TRUE(cluster.kill(0)) << cluster.error();
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_TRUE(waitUntil([&] { return keeper.lost(); }, kEtcdWait));
  // No later than a TTL after the last renewal, which was before the kill.
  EXPECT_LE(std::chrono::steady_clock::now() - killed,
            seconds(lease.ttl_seconds) + milliseconds(1500));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_NE(reason.find("no renewal acknowledged"), std::string::npos) << reason;
  EXPECT_NE(reason.find(cluster.endpoints()[0]), std::string::npos) << reason;
}

}  // namespace
}  // namespace wsvisor::service::etcd
