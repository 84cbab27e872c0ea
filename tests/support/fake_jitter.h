#pragma once

#include "supervisor/core/jitter_source.h"

namespace wsvisor::testing {

// A JitterSource that returns the value the test chose (0 by default: no jitter) and counts how
// often it was asked, so a test can also assert that no draw happened. Not thread-safe; a test
// owns it and must keep it alive as long as any schedule or session that holds a reference.
class FixedJitter : public core::JitterSource {
 public:
  FixedJitter() = default;
  explicit FixedJitter(double value) : value_(value) {}

  // JitterSource
  double nextSigned() override {
    ++draws_;
    return value_;
  }

  void set(double value) { value_ = value; }
  int draws() const { return draws_; }

 private:
  double value_ = 0.0;
  int draws_ = 0;
};

}  // namespace wsvisor::testing
