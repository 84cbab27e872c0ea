// After an endpoint is unregistered nothing about it is logged, counted or published, although its
// session runs on its io thread until the posted IoShard::remove arrives. Deterministic: the io
// thread is held while a connection event is queued ahead of the remove, so that the event is
// handled after unregisterEndpoint() has returned and before the session is removed.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>

#include "service/api/proto_conversions.h"
#include "supervisor/registry.h"
#include "support/wait.h"

namespace wsvisor {
namespace {

using std::chrono::seconds;
using testing::waitUntil;

// A loopback port that completes TCP connects but never answers the WebSocket handshake: the
// endpoints connecting to it stay CONNECTING for as long as the test runs.
class SilentPort {
 public:
  SilentPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&address), length) == 0 &&
        ::listen(fd_, 512) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
      port_ = ntohs(address.sin_port);
    }
  }
  ~SilentPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  SilentPort(const SilentPort&) = delete;
  SilentPort& operator=(const SilentPort&) = delete;
  std::string url(const std::string& path) const {
    return "ws://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

double transitionsCounted(const Metrics& metrics) {
  double total = 0;
  for (const auto& family : metrics.registry()->Collect()) {
    if (family.name != "wsvisor_health_transitions_total") continue;
    for (const auto& metric : family.metric) total += metric.counter.value;
  }
  return total;
}

class UnregisterChurnTest : public ::testing::Test {
 protected:
  UnregisterChurnTest() {
    RegistryOptions options;
    options.io_threads = 2;
    registry_ = std::make_unique<Registry>(options, bus_, metrics_, nullptr, &codec_);
  }
  ~UnregisterChurnTest() override { registry_->shutdown(std::chrono::milliseconds(0)); }

  core::EndpointSpec spec(const std::string& id) {
    core::EndpointSpec spec;
    spec.id = id;
    spec.url = port_.url("/" + id);
    spec.connect_timeout = std::chrono::minutes(5);  // stays CONNECTING: no real failure
    return spec;
  }

  // Waits until every io thread has handled what was queued on it for `id` before this call.
  void drain(const std::string& id) {
    std::promise<void> done;
    auto drained = done.get_future();
    registry_->runOnIoThreadForTest(id, [&done] { done.set_value(); });
    ASSERT_EQ(drained.wait_for(seconds(5)), std::future_status::ready);
  }

  static core::Failure refused() {
    return core::Failure::make(core::FailureReason::kConnectionRefused, "refused (injected)");
  }

  SilentPort port_;
  HealthBus bus_;
  Metrics metrics_{MetricsOptions{}};
  service::ProtoSpecCodec codec_;
  std::unique_ptr<Registry> registry_;
};

TEST_F(UnregisterChurnTest, TransitionsCountedEqualTransitionsWatchersSaw) {
  auto watcher = bus_.subscribe(WatchFilter{}, 100000, [] {});
  constexpr int kRounds = 100;
  int expected = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::string kept = "kept-" + std::to_string(round);
    const std::string gone = "gone-" + std::to_string(round);
    ASSERT_TRUE(std::holds_alternative<Registry::RegisterResult>(
        registry_->registerEndpoint(spec(kept), EndpointOwner::kApi)));
    ASSERT_TRUE(std::holds_alternative<Registry::RegisterResult>(
        registry_->registerEndpoint(spec(gone), EndpointOwner::kApi)));

    // Hold the io thread of `gone`, queue a failure (UNKNOWN -> UNHEALTHY) for it, unregister it,
    // then let the thread run: the failure is handled after the unregistration, before the remove.
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::promise<void> holding;
    registry_->runOnIoThreadForTest(gone, [released, &holding] {
      holding.set_value();
      released.wait();
    });
    holding.get_future().wait();
    ASSERT_TRUE(registry_->failConnectAttemptForTest(gone, refused()));
    ASSERT_FALSE(registry_->unregisterEndpoint(gone, EndpointOwner::kApi));
    release.set_value();

    // The same failure on an endpoint that stays registered is a transition like any other.
    ASSERT_TRUE(registry_->failConnectAttemptForTest(kept, refused()));
    ++expected;
    drain(kept);
    ASSERT_FALSE(registry_->unregisterEndpoint(kept, EndpointOwner::kApi));
  }
  // Anything still queued on the io threads has run once a late marker has.
  for (int round = 0; round < 2; ++round) {
    const std::string marker = "marker-" + std::to_string(round);
    ASSERT_TRUE(std::holds_alternative<Registry::RegisterResult>(
        registry_->registerEndpoint(spec(marker), EndpointOwner::kApi)));
    drain(marker);
  }

  int seen = 0;
  int seen_of_gone = 0;
  while (auto event = watcher->next()) {
    if (event->type != core::HealthEvent::Type::kChanged || !event->previous_health ||
        *event->previous_health == event->status.health) {
      continue;
    }
    ++seen;
    if (event->endpoint_id.rfind("gone-", 0) == 0) ++seen_of_gone;
  }
  EXPECT_EQ(seen_of_gone, 0);
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(transitionsCounted(metrics_), static_cast<double>(seen));
}

}  // namespace
}  // namespace wsvisor
