#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include "supervisor/core/endpoint_spec.h"
#include "supervisor/core/time.h"

namespace wsvisor::core {

// Decides when an endpoint is FLAPPING: its health changed more than `threshold` times within
// `window`. Flapping lasts until no change has been recorded for `quiet_period`; then counting
// starts afresh.
//
// Example, threshold 5, window 2 min, quiet period 1 min: changes at 0, 10, 20, 30, 40 s are five
// within the window; the sixth at 50 s starts flapping. Changes at 70 and 100 s keep it going;
// with none after 100 s it ends at 160 s.
//
// Pure and bounded: it keeps the times of the last threshold + 1 changes, allocated at the first
// change, so an endpoint that never changes costs nothing.
class FlapDetector {
 public:
  explicit FlapDetector(const FlapPolicy& policy) : policy_(policy) {}

  // Records a change at `now`. True when this change starts flapping.
  bool recordChange(MonoTime now);
  // Ends flapping if the quiet period has passed at `now`. True when it ended.
  bool settle(MonoTime now);
  // A new policy applies to the changes already recorded; while flapping, the quiet period runs
  // from the last change by the new policy (settle() then ends it if that time has passed).
  // Returns true when flapping ended because detection was turned off.
  bool setPolicy(const FlapPolicy& policy);

  bool flapping() const { return quiet_until_.has_value(); }
  // While flapping: when it ends if nothing changes before.
  std::optional<MonoTime> quietDeadline() const { return quiet_until_; }
  const FlapPolicy& policy() const { return policy_; }

 private:
  void forget();

  FlapPolicy policy_;
  // Ring of the last threshold + 1 change times; `next_` is where the next one goes.
  std::vector<MonoTime> changes_;
  size_t next_ = 0;
  size_t count_ = 0;
  std::optional<MonoTime> quiet_until_;
  MonoTime last_change_{};
};

}  // namespace wsvisor::core
