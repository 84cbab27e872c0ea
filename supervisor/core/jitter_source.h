#pragma once

namespace wsvisor::core {

// Randomness for backoff jitter, injected so that tests choose the draws. The runtime gives each
// io thread its own generator, so no lock is taken.
class JitterSource {
 public:
  virtual ~JitterSource() = default;
  // A value drawn uniformly from [-1, 1].
  virtual double nextSigned() = 0;
};

}  // namespace wsvisor::core
