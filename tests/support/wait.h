#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>

namespace wsvisor::testing {

// Polls `predicate` every few milliseconds until it returns true or `timeout` has passed, and
// returns the last answer. The predicate is always evaluated at least once and once more at (or
// just after) the deadline, so a condition that became true during the last sleep still counts.
//
// Use it where a test waits for something a real socket or process does (a pong arrives, a
// connection closes); never to test timing logic, which runs on a simulated clock. A negative
// check ("no pong within 300 ms") is the one place where waiting the whole timeout is the point.
inline bool waitUntil(const std::function<bool()>& predicate, std::chrono::milliseconds timeout) {
  constexpr std::chrono::milliseconds kPollInterval{5};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (predicate()) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(kPollInterval, deadline - now));
  }
}

}  // namespace wsvisor::testing
