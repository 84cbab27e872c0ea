// TimerWheel on simulated time: when entries fire, what re-arming, disarming and destroying do,
// deadlines more than a revolution away, and entries armed while the wheel runs.
#include "supervisor/core/timer_wheel.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <utility>
#include <vector>

namespace wsvisor::core {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr Duration kSlot = milliseconds(10);
constexpr size_t kSlots = 8;  // one revolution: 80 ms
// On a slot boundary, as steady_clock times are not in general.
const MonoTime t0 = MonoTime{} + std::chrono::hours(1);

using Fired = std::vector<std::pair<uint64_t, MonoTime>>;

// Runs the wheel at `now` and returns what fired.
Fired run(TimerWheel& wheel, MonoTime now) {
  Fired fired;
  wheel.runDue(now, [&](uint64_t key, MonoTime deadline) { fired.emplace_back(key, deadline); });
  return fired;
}

TEST(TimerWheelTest, AnEntryFiresAtTheFirstSlotBoundaryAtOrAfterItsExpiry) {
  TimerWheel wheel(kSlot, kSlots, t0);
  TimerWheel::Entry a(1), b(2);
  wheel.arm(a, t0 + milliseconds(13), t0 + milliseconds(13));
  wheel.arm(b, t0 + milliseconds(20), t0 + milliseconds(20));  // on a boundary: that one
  EXPECT_EQ(wheel.firesAt(a), t0 + milliseconds(20));
  EXPECT_EQ(wheel.firesAt(b), t0 + milliseconds(20));
  EXPECT_EQ(wheel.nextDue(), t0 + milliseconds(20));
  EXPECT_EQ(wheel.armedCount(), 2u);
  EXPECT_EQ(a.armedFor(), t0 + milliseconds(13));

  EXPECT_TRUE(run(wheel, t0 + milliseconds(19)).empty());
  const Fired fired = run(wheel, t0 + milliseconds(20));
  EXPECT_EQ(fired, (Fired{{1, t0 + milliseconds(13)}, {2, t0 + milliseconds(20)}}));
  EXPECT_FALSE(a.armed());
  EXPECT_FALSE(b.armed());
  EXPECT_EQ(a.armedFor(), std::nullopt);
  EXPECT_EQ(wheel.armedCount(), 0u);
  EXPECT_EQ(wheel.nextDue(), std::nullopt);
  EXPECT_TRUE(run(wheel, t0 + milliseconds(100)).empty());  // fired once only
}

TEST(TimerWheelTest, FiringReportsTheDeadlineArmedWithAndSlotsRunInTimeOrder) {
  TimerWheel wheel(kSlot, kSlots, t0);
  TimerWheel::Entry late(1), early(2);
  wheel.arm(late, t0 + milliseconds(35), t0 + milliseconds(31));
  wheel.arm(early, t0 + milliseconds(5), t0 + milliseconds(4));
  // A run that comes late runs every slot it passed, the earlier first.
  EXPECT_EQ(run(wheel, t0 + milliseconds(47)),
            (Fired{{2, t0 + milliseconds(4)}, {1, t0 + milliseconds(31)}}));
}

TEST(TimerWheelTest, ReArmingMovesAnEntryAndDisarmingOrDestroyingRemovesIt) {
  TimerWheel wheel(kSlot, kSlots, t0);
  TimerWheel::Entry moved(1), disarmed(2);
  auto destroyed = std::make_unique<TimerWheel::Entry>(3);
  wheel.arm(moved, t0 + milliseconds(10), t0 + milliseconds(10));
  wheel.arm(moved, t0 + milliseconds(30), t0 + milliseconds(30));
  wheel.arm(disarmed, t0 + milliseconds(10), t0 + milliseconds(10));
  wheel.disarm(disarmed);
  wheel.disarm(disarmed);  // no-op
  wheel.arm(*destroyed, t0 + milliseconds(10), t0 + milliseconds(10));
  destroyed.reset();
  EXPECT_EQ(wheel.armedCount(), 1u);
  EXPECT_EQ(wheel.nextDue(), t0 + milliseconds(30));

  EXPECT_TRUE(run(wheel, t0 + milliseconds(20)).empty());
  EXPECT_EQ(run(wheel, t0 + milliseconds(30)), (Fired{{1, t0 + milliseconds(30)}}));
}

TEST(TimerWheelTest, AnEntryMoreThanARevolutionAwayWaitsForItsRevolution) {
  TimerWheel wheel(kSlot, kSlots, t0);
  TimerWheel::Entry far(1), near(2);
  // Same slot of the wheel (2 and 2 + 3 × 8), three revolutions apart.
  wheel.arm(far, t0 + milliseconds(260), t0 + milliseconds(260));
  wheel.arm(near, t0 + milliseconds(20), t0 + milliseconds(20));
  EXPECT_EQ(run(wheel, t0 + milliseconds(20)), (Fired{{2, t0 + milliseconds(20)}}));
  EXPECT_TRUE(far.armed());
  // nextDue never lies beyond one revolution; a wake-up before the entry's time runs nothing.
  const std::optional<MonoTime> next = wheel.nextDue();
  ASSERT_TRUE(next.has_value());
  EXPECT_LE(*next, t0 + milliseconds(20) + kSlot * static_cast<int64_t>(kSlots));
  for (MonoTime now = *next; now < t0 + milliseconds(260); now += kSlot) {
    EXPECT_TRUE(run(wheel, now).empty()) << (now - t0).count();
  }
  EXPECT_EQ(run(wheel, t0 + milliseconds(260)), (Fired{{1, t0 + milliseconds(260)}}));
}

TEST(TimerWheelTest, AfterAGapLongerThanARevolutionEverythingDueFires) {
  TimerWheel wheel(kSlot, kSlots, t0);
  std::vector<std::unique_ptr<TimerWheel::Entry>> entries;
  for (uint64_t i = 0; i < 20; ++i) {
    entries.push_back(std::make_unique<TimerWheel::Entry>(i));
    wheel.arm(*entries.back(), t0 + milliseconds(10 * (i + 1)), t0 + milliseconds(10 * (i + 1)));
  }
  // 200 ms: two and a half revolutions in one run; the last entry (200 ms) is due, none later.
  TimerWheel::Entry later(99);
  wheel.arm(later, t0 + milliseconds(210), t0 + milliseconds(210));
  const Fired fired = run(wheel, t0 + milliseconds(200));
  EXPECT_EQ(fired.size(), 20u);
  EXPECT_TRUE(later.armed());
  EXPECT_EQ(run(wheel, t0 + milliseconds(210)), (Fired{{99, t0 + milliseconds(210)}}));
}

TEST(TimerWheelTest, AnExpiryAlreadyRunFiresAtTheNextRunNotTheCurrentOne) {
  TimerWheel wheel(kSlot, kSlots, t0);
  TimerWheel::Entry a(1), b(2);
  wheel.arm(a, t0 + milliseconds(10), t0 + milliseconds(10));
  Fired fired;
  wheel.runDue(t0 + milliseconds(12), [&](uint64_t key, MonoTime deadline) {
    fired.emplace_back(key, deadline);
    // Re-armed in the past, as for a verdict put off by one loop pass.
    wheel.arm(a, MonoTime{}, deadline);
  });
  EXPECT_EQ(fired, (Fired{{1, t0 + milliseconds(10)}}));
  ASSERT_TRUE(a.armed());
  EXPECT_EQ(wheel.firesAt(a), t0 + milliseconds(10));  // due now: the last boundary run
  EXPECT_EQ(wheel.nextDue(), t0 + milliseconds(10));
  // Also before the wheel's first run: an expiry before its start is due at once.
  TimerWheel fresh(kSlot, kSlots, t0 + seconds(1));
  fresh.arm(b, t0, t0);
  EXPECT_EQ(run(fresh, t0 + seconds(1)), (Fired{{2, t0}}));

  EXPECT_EQ(run(wheel, t0 + milliseconds(12)), (Fired{{1, t0 + milliseconds(10)}}));
  EXPECT_FALSE(a.armed());
}

TEST(TimerWheelTest, AnEntryArmedDuringARunForABoundaryThatRunIsCoveredFiresAtTheNextRun) {
  TimerWheel wheel(kSlot, kSlots, t0);
  TimerWheel::Entry trigger(1), inside(2), on_now(3);
  wheel.arm(trigger, t0 + milliseconds(10), t0 + milliseconds(10));
  Fired fired;
  // The run covers the boundaries 10, 20 and 30 ms at once. Deadlines a callback arms for 25 and
  // 30 ms are already due: they must fire at the next run, not a revolution later.
  wheel.runDue(t0 + milliseconds(35), [&](uint64_t key, MonoTime deadline) {
    fired.emplace_back(key, deadline);
    wheel.arm(inside, t0 + milliseconds(25), t0 + milliseconds(25));
    wheel.arm(on_now, t0 + milliseconds(30), t0 + milliseconds(30));
  });
  EXPECT_EQ(fired, (Fired{{1, t0 + milliseconds(10)}}));
  EXPECT_EQ(wheel.firesAt(inside), t0 + milliseconds(30));
  EXPECT_EQ(wheel.nextDue(), t0 + milliseconds(30));
  EXPECT_EQ(run(wheel, t0 + milliseconds(36)),
            (Fired{{2, t0 + milliseconds(25)}, {3, t0 + milliseconds(30)}}));
}

TEST(TimerWheelTest, AStartBetweenBoundariesRunsFromTheNextBoundary) {
  const MonoTime start = t0 + milliseconds(4);
  TimerWheel wheel(kSlot, kSlots, start);
  TimerWheel::Entry before(1), at_start(2), next(3);
  wheel.arm(before, t0, t0);          // before the start: due at once
  wheel.arm(at_start, start, start);  // fires at the boundary after the start
  wheel.arm(next, t0 + milliseconds(10), t0 + milliseconds(10));
  EXPECT_EQ(wheel.nextDue(), t0);
  EXPECT_EQ(run(wheel, start), (Fired{{1, t0}}));
  EXPECT_EQ(wheel.nextDue(), t0 + milliseconds(10));
  EXPECT_EQ(run(wheel, t0 + milliseconds(10)), (Fired{{2, start}, {3, t0 + milliseconds(10)}}));
}

TEST(TimerWheelTest, AnEntryDisarmedOrDestroyedByAnEarlierCallbackDoesNotFire) {
  TimerWheel wheel(kSlot, kSlots, t0);
  TimerWheel::Entry first(1), disarmed(2), moved(4);
  auto destroyed = std::make_unique<TimerWheel::Entry>(3);
  for (TimerWheel::Entry* e : {&first, &disarmed, destroyed.get(), &moved}) {
    wheel.arm(*e, t0 + milliseconds(10), t0 + milliseconds(10));
  }
  const Fired fired = [&] {
    Fired f;
    wheel.runDue(t0 + milliseconds(10), [&](uint64_t key, MonoTime deadline) {
      f.emplace_back(key, deadline);
      if (key == 1) {
        wheel.disarm(disarmed);
        destroyed.reset();
        wheel.arm(moved, t0 + milliseconds(50), t0 + milliseconds(50));
      }
    });
    return f;
  }();
  EXPECT_EQ(fired, (Fired{{1, t0 + milliseconds(10)}}));
  EXPECT_EQ(wheel.armedCount(), 1u);
  EXPECT_EQ(run(wheel, t0 + milliseconds(50)), (Fired{{4, t0 + milliseconds(50)}}));
}

TEST(TimerWheelTest, EntriesMayOutliveTheWheel) {
  TimerWheel::Entry survivor(1);
  {
    TimerWheel wheel(kSlot, kSlots, t0);
    wheel.arm(survivor, t0 + milliseconds(10), t0 + milliseconds(10));
  }
  EXPECT_FALSE(survivor.armed());
}

}  // namespace
}  // namespace wsvisor::core
