#pragma once

#include <cstdint>

#include "supervisor/core/endpoint_spec.h"
#include "supervisor/core/jitter_source.h"
#include "supervisor/core/time.h"

namespace wsvisor::core {

// Delays between connection attempts, after gRPC's connection-backoff spec
// (doc/connection-backoff.md in grpc/grpc):
//
//   retry 1 waits initial                      ± jitter × initial
//   retry n waits min(initial × multiplierⁿ⁻¹, max) ± jitter × that
//
// With the defaults (1 s, ×1.6, ±20 %, cap 120 s) the un-jittered delays are 1, 1.6, 2.56, 4.1,
// 6.55, 10.5, 16.8, 26.8, 42.9, 68.7, 110, 120, 120… seconds. `reset()` starts again from
// `initial`; the Session calls it once a connection has stayed HEALTHY for `reset_after`.
class BackoffSchedule {
 public:
  explicit BackoffSchedule(const BackoffPolicy& policy) : policy_(policy) {}

  // The delay before the next attempt; each call advances the schedule by one step.
  Duration nextDelay(JitterSource& jitter);
  void reset() { retries_ = 0; }
  void setPolicy(const BackoffPolicy& policy) { policy_ = policy; }

  // Retries handed out since the last reset.
  uint32_t retries() const { return retries_; }

 private:
  BackoffPolicy policy_;
  uint32_t retries_ = 0;
};

}  // namespace wsvisor::core
