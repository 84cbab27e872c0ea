#include "supervisor/readiness_poller.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <asio/io_context.hpp>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>

namespace wsvisor {
namespace {

using std::chrono::milliseconds;

// Both ends of a connected stream socket pair: `ours` is registered, `peer` writes to it.
class SocketPair {
 public:
  SocketPair() {
    std::array<int, 2> fds{};
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds.data()), 0);
    ours_ = fds[0];
    peer_ = fds[1];
  }
  ~SocketPair() {
    if (ours_ >= 0) ::close(ours_);
    if (peer_ >= 0) ::close(peer_);
  }
  int ours() const { return ours_; }
  void send(const char* bytes) { ASSERT_GT(::write(peer_, bytes, std::strlen(bytes)), 0); }
  void hangUp() {
    ::close(peer_);
    peer_ = -1;
  }
  size_t drain() {
    std::array<char, 256> buffer{};
    const ssize_t n = ::recv(ours_, buffer.data(), buffer.size(), MSG_DONTWAIT);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }

 private:
  int ours_ = -1;
  int peer_ = -1;
};

// Counts the calls for one registration.
struct Calls {
  int count = 0;
  std::function<void()> also;
  uint32_t events = 0;
  static void onReady(void* target, uint32_t events) {
    auto* calls = static_cast<Calls*>(target);
    ++calls->count;
    calls->events = events;
    if (calls->also) calls->also();
  }
};

// Runs the io_context until `done` holds (bounded).
bool runIoUntil(asio::io_context& io, const std::function<bool()>& done) {
  const auto limit = std::chrono::steady_clock::now() + milliseconds(2000);
  while (!done() && std::chrono::steady_clock::now() < limit) {
    io.restart();
    io.run_one_for(milliseconds(20));
  }
  return done();
}

// Runs every handler that is ready now, the reactor's own check of the sockets included, without
// waiting for more.
void runIoReady(asio::io_context& io) {
  for (int i = 0; i < 4; ++i) {
    io.restart();
    io.poll();
  }
}

// An io_context with its ReadinessPoller, as one io thread has them.
class ReadinessPollerTest : public ::testing::Test {
 protected:
  uint32_t add(const SocketPair& sockets, Calls& calls, std::shared_ptr<void> keep = nullptr) {
    return poller_.add(sockets.ours(), &Calls::onReady, &calls, std::move(keep));
  }
  bool runUntil(const std::function<bool()>& done) { return runIoUntil(io_, done); }
  void runReady() { runIoReady(io_); }

  asio::io_context io_;
  ReadinessPoller& poller_ = asio::use_service<ReadinessPoller>(io_);
};

TEST_F(ReadinessPollerTest, ReportsEachArrivalOnceNotAgainForBytesAlreadyReported) {
  SocketPair sockets;
  Calls calls;
  const uint32_t slot = add(sockets, calls);
  ASSERT_NE(slot, ReadinessPoller::kNoSlot);
  EXPECT_EQ(poller_.registered(), 1u);

  sockets.send("ping");
  ASSERT_TRUE(runUntil([&] { return calls.count == 1; }));
  runReady();
  EXPECT_EQ(calls.count, 1) << "unread bytes already reported are not reported again";

  sockets.send("more");
  ASSERT_TRUE(runUntil([&] { return calls.count == 2; }));
  EXPECT_EQ(sockets.drain(), 8u);
  runReady();
  EXPECT_EQ(calls.count, 2);
  poller_.remove(slot, sockets.ours());
}

TEST_F(ReadinessPollerTest, BytesAlreadyWaitingWhenRegisteredAreReported) {
  SocketPair sockets;
  sockets.send("early");
  Calls calls;
  const uint32_t slot = add(sockets, calls);
  ASSERT_TRUE(runUntil([&] { return calls.count == 1; }));
  poller_.remove(slot, sockets.ours());
}

TEST_F(ReadinessPollerTest, HangUpIsReported) {
  SocketPair sockets;
  Calls calls;
  const uint32_t slot = add(sockets, calls);
  sockets.hangUp();
  ASSERT_TRUE(runUntil([&] { return calls.count == 1; }));
  EXPECT_NE(calls.events & EPOLLRDHUP, 0u);
  poller_.remove(slot, sockets.ours());
}

TEST_F(ReadinessPollerTest, RemoveStopsTheCallsAndHandsBackWhatWasKept) {
  SocketPair sockets;
  Calls calls;
  auto kept = std::make_shared<int>(7);
  const int* object = kept.get();
  std::weak_ptr<int> watch = kept;
  const uint32_t slot = add(sockets, calls, std::move(kept));
  EXPECT_FALSE(watch.expired()) << "the registration keeps its object";

  std::shared_ptr<void> handed_back = poller_.remove(slot, sockets.ours());
  EXPECT_EQ(handed_back.get(), object);
  handed_back.reset();
  EXPECT_TRUE(watch.expired()) << "the poller holds nothing more";
  EXPECT_EQ(poller_.remove(slot, sockets.ours()), nullptr) << "removed already";
  EXPECT_EQ(poller_.registered(), 0u);
  sockets.send("late");
  runReady();
  EXPECT_EQ(calls.count, 0);
}

TEST_F(ReadinessPollerTest,
       ARegistrationRemovedEarlierInTheSameBatchIsNotCalledNorItsSlotsNextUser) {
  SocketPair first;
  SocketPair second;
  SocketPair reusing;  // registered into the slot freed inside the batch; never readable
  Calls first_calls;
  Calls second_calls;
  Calls reusing_calls;
  const uint32_t first_slot = add(first, first_calls);
  const uint32_t second_slot = add(second, second_calls);
  uint32_t reusing_slot = ReadinessPoller::kNoSlot;
  // Whichever is called first removes the other and puts a new registration in its slot.
  first_calls.also = [&] {
    if (second_calls.count > 0) return;
    poller_.remove(second_slot, second.ours());
    reusing_slot = add(reusing, reusing_calls);
  };
  second_calls.also = [&] {
    if (first_calls.count > 0) return;
    poller_.remove(first_slot, first.ours());
    reusing_slot = add(reusing, reusing_calls);
  };
  // Both readable before the io_context runs: their events come in one epoll_wait.
  first.send("a");
  second.send("b");
  ASSERT_TRUE(runUntil([&] { return first_calls.count + second_calls.count >= 1; }));
  runReady();
  EXPECT_EQ(first_calls.count + second_calls.count, 1);
  EXPECT_EQ(reusing_calls.count, 0) << "an event of the slot's earlier registration";
  ASSERT_NE(reusing_slot, ReadinessPoller::kNoSlot);
  EXPECT_TRUE(reusing_slot == first_slot || reusing_slot == second_slot) << "the slot is re-used";
  EXPECT_EQ(poller_.registered(), 2u);
  poller_.remove(reusing_slot, reusing.ours());
  poller_.remove(first_calls.count == 1 ? first_slot : second_slot,
                 first_calls.count == 1 ? first.ours() : second.ours());
}

TEST_F(ReadinessPollerTest, TheIoContextRunsOutOfWorkOnceTheLastSocketIsRemoved) {
  SocketPair sockets;
  Calls calls;
  const uint32_t slot = add(sockets, calls);
  runReady();
  EXPECT_FALSE(io_.stopped()) << "waiting for the registered socket";
  poller_.remove(slot, sockets.ours());
  io_.restart();
  io_.run_for(milliseconds(2000));  // returns at once when nothing is left to wait for
  EXPECT_TRUE(io_.stopped());
}

TEST(ReadinessPollerLifetimeTest, DestroyingTheIoContextReleasesWhatRegistrationsKept) {
  SocketPair sockets;
  Calls calls;
  auto kept = std::make_shared<int>(7);
  std::weak_ptr<int> watch = kept;
  {
    asio::io_context io;
    auto& poller = asio::use_service<ReadinessPoller>(io);
    ASSERT_NE(poller.add(sockets.ours(), &Calls::onReady, &calls, std::move(kept)),
              ReadinessPoller::kNoSlot);
    runIoReady(io);
    EXPECT_FALSE(watch.expired());
  }
  EXPECT_TRUE(watch.expired());
}

TEST_F(ReadinessPollerTest, AClosedDescriptorIsRefused) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);
  ::close(fds[1]);
  Calls calls;
  EXPECT_EQ(poller_.add(fds[0], &Calls::onReady, &calls, nullptr), ReadinessPoller::kNoSlot);
  EXPECT_EQ(poller_.registered(), 0u);
  io_.restart();
  io_.run_for(milliseconds(2000));
  EXPECT_TRUE(io_.stopped()) << "a refused socket leaves nothing to wait for";
}

}  // namespace
}  // namespace wsvisor
