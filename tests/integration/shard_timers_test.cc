// ShardTimers on a real io_context and the real clock (the wheel's own rules are tested on
// simulated time in tests/unit/core/timer_wheel_test.cc): the one Asio timer follows the wheel,
// nothing fires early or after being disarmed, and an expiry already past runs only after the
// socket input that arrived with it, which the deferred heartbeat verdict relies on.
#include "supervisor/shard_timers.h"

#include <gtest/gtest.h>

#include <array>
#include <asio/io_context.hpp>
#include <asio/local/connect_pair.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <string>
#include <vector>

namespace wsvisor {
namespace {

using core::MonoClock;
using core::MonoTime;
using std::chrono::milliseconds;

// Every wait below ends by itself: the io_context runs out of work once nothing is armed. This
// bounds a broken timer that would otherwise never stop.
constexpr auto kRunLimit = std::chrono::seconds(10);

struct Firing {
  uint64_t key;
  MonoTime deadline;
  MonoTime at;
};

TEST(ShardTimersTest, EntriesFireInDeadlineOrderNeverEarlyAndOnlyWhileArmed) {
  asio::io_context io;
  std::vector<Firing> fired;
  ShardTimers timers(io, [&](uint64_t key, MonoTime deadline) {
    fired.push_back({key, deadline, MonoClock::now()});
  });
  core::TimerWheel::Entry late(1), early(2), disarmed(3);
  const MonoTime now = MonoClock::now();
  timers.arm(late, now + milliseconds(60), now + milliseconds(60));
  timers.arm(disarmed, now + milliseconds(10), now + milliseconds(10));
  // Earlier than the slot the Asio timer waits for: the timer must be brought forward.
  timers.arm(early, now + milliseconds(30), now + milliseconds(30));
  timers.disarm(disarmed);

  io.run_for(kRunLimit);  // returns once nothing is armed

  ASSERT_EQ(fired.size(), 2u);
  EXPECT_EQ(fired[0].key, 2u);
  EXPECT_EQ(fired[0].deadline, now + milliseconds(30));
  EXPECT_EQ(fired[1].key, 1u);
  EXPECT_EQ(fired[1].deadline, now + milliseconds(60));
  for (const Firing& f : fired) EXPECT_GE(f.at, f.deadline) << "key " << f.key << " fired early";
  EXPECT_LT(MonoClock::now() - now, kRunLimit);
}

TEST(ShardTimersTest, AnExpiryAlreadyPastRunsAfterTheSocketInputThatArrivedWithIt) {
  asio::io_context io;
  asio::local::stream_protocol::socket writer(io), reader(io);
  asio::local::connect_pair(writer, reader);
  std::vector<std::string> order;
  std::array<char, 1> byte{};
  asio::async_read(reader, asio::buffer(byte), [&](const std::error_code& ec, size_t) {
    order.push_back(ec ? "error" : "read");
  });

  core::TimerWheel::Entry entry(7);
  bool deferred = false;
  ShardTimers* timers_ptr = nullptr;
  ShardTimers timers(io, [&](uint64_t key, MonoTime deadline) {
    ASSERT_EQ(key, 7u);
    if (!deferred) {
      // As a heartbeat verdict put off: the answer arrives now, the verdict is re-armed in the
      // past. The read completion must run first.
      deferred = true;
      asio::write(writer, asio::buffer("x", 1));
      timers_ptr->arm(entry, MonoTime{}, deadline);
      order.push_back("deferred");
      return;
    }
    order.push_back("verdict");
  });
  timers_ptr = &timers;
  const MonoTime now = MonoClock::now();
  timers.arm(entry, now + milliseconds(20), now + milliseconds(20));

  io.run_for(kRunLimit);

  EXPECT_EQ(order, (std::vector<std::string>{"deferred", "read", "verdict"}));
}

}  // namespace
}  // namespace wsvisor
