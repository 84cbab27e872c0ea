#pragma once

#include <chrono>

namespace wsvisor::core {

// The core never reads a clock: every event carries `now` from an injected clock. Times are
// monotonic; conversion to wall-clock time happens at the API boundary.
using MonoClock = std::chrono::steady_clock;
using MonoTime = MonoClock::time_point;
using Duration = std::chrono::nanoseconds;

}  // namespace wsvisor::core
