#include "supervisor/core/flap_detector.h"

namespace wsvisor::core {

bool FlapDetector::recordChange(MonoTime now) {
  if (!policy_.enabled || policy_.threshold == 0) return false;
  last_change_ = now;
  if (quiet_until_) {
    quiet_until_ = now + policy_.quiet_period;
    return false;
  }
  const size_t kept = static_cast<size_t>(policy_.threshold) + 1;
  if (changes_.size() != kept) {
    changes_.assign(kept, MonoTime{});
    next_ = 0;
    count_ = 0;
  }
  changes_[next_] = now;
  next_ = (next_ + 1) % kept;
  if (count_ < kept) ++count_;
  // With the ring full, `next_` points at the oldest of the last threshold + 1 changes.
  if (count_ < kept || now - changes_[next_] > policy_.window) return false;
  quiet_until_ = now + policy_.quiet_period;
  return true;
}

bool FlapDetector::settle(MonoTime now) {
  if (!quiet_until_ || now < *quiet_until_) return false;
  forget();
  return true;
}

bool FlapDetector::setPolicy(const FlapPolicy& policy) {
  const bool was_flapping = flapping();
  if (policy.threshold != policy_.threshold) {
    // The ring is sized by the threshold: start counting afresh.
    changes_.clear();
    next_ = 0;
    count_ = 0;
  }
  policy_ = policy;
  if (!policy_.enabled) {
    forget();
    return was_flapping;
  }
  // Flapping ends a quiet period after the last change, by the quiet period in force now.
  if (quiet_until_) quiet_until_ = last_change_ + policy_.quiet_period;
  return false;
}

void FlapDetector::forget() {
  quiet_until_.reset();
  changes_.clear();
  changes_.shrink_to_fit();
  next_ = 0;
  count_ = 0;
}

}  // namespace wsvisor::core
