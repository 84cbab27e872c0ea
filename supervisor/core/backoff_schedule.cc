#include "supervisor/core/backoff_schedule.h"

#include <algorithm>
#include <cmath>

namespace wsvisor::core {

Duration BackoffSchedule::nextDelay(JitterSource& jitter) {
  const double initial_ns = static_cast<double>(policy_.initial.count());
  const double max_ns = static_cast<double>(policy_.max.count());
  // Grow in floating point and cap before converting, so a long outage cannot overflow.
  double base_ns = initial_ns * std::pow(policy_.multiplier, static_cast<double>(retries_));
  base_ns = std::min(base_ns, max_ns);
  if (retries_ < UINT32_MAX) ++retries_;
  double delay_ns = base_ns;
  if (policy_.jitter_enabled && policy_.jitter > 0) {
    delay_ns += policy_.jitter * base_ns * std::clamp(jitter.nextSigned(), -1.0, 1.0);
  }
  return Duration(static_cast<Duration::rep>(std::max(0.0, delay_ns)));
}

}  // namespace wsvisor::core
