#pragma once

#include <optional>

#include "supervisor/core/time.h"

namespace wsvisor::core {

// Last and smoothed heartbeat round-trip time. Smoothing is TCP's SRTT (RFC 6298):
// srtt = 7/8 × srtt + 1/8 × sample, the first sample taken as it is.
class RttEstimator {
 public:
  void addSample(Duration rtt) {
    last_ = rtt;
    smoothed_ = smoothed_ ? (*smoothed_ * 7 + rtt) / 8 : rtt;
  }
  std::optional<Duration> last() const { return last_; }
  std::optional<Duration> smoothed() const { return smoothed_; }

 private:
  std::optional<Duration> last_;
  std::optional<Duration> smoothed_;
};

}  // namespace wsvisor::core
