#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

namespace wsvisor {

// The last `bound` values pushed, oldest first. Storage grows on demand (doubling, never past
// `bound`), so a ring that is rarely pushed to stays small: thousands of them can exist per
// process while only the busy ones approach their bound. Once full, each push overwrites the
// oldest value.
//
// Not thread-safe; the owner locks.
template <typename T>
class BoundedRing {
 public:
  explicit BoundedRing(size_t bound) : bound_(bound) {}

  // Appends `value`. Returns true when that pushed a value out: the oldest one, or `value` itself
  // when the bound is 0.
  bool push(T value) {
    if (bound_ == 0) return true;
    if (items_.size() < bound_) {
      if (items_.size() == items_.capacity()) {
        items_.reserve(std::min(bound_, std::max<size_t>(kFirstAllocation, items_.size() * 2)));
      }
      items_.push_back(std::move(value));
      return false;
    }
    items_[oldest_] = std::move(value);
    oldest_ = (oldest_ + 1) % bound_;
    return true;
  }

  // The `i`-th oldest value; `i` < size().
  const T& operator[](size_t i) const { return items_[(oldest_ + i) % items_.size()]; }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  size_t bound() const { return bound_; }
  // Values the storage has room for without growing (memory accounting and tests).
  size_t allocated() const { return items_.capacity(); }

 private:
  // One: most rings (an endpoint's health history) only ever hold one value (UNKNOWN → HEALTHY).
  static constexpr size_t kFirstAllocation = 1;

  size_t bound_;
  std::vector<T> items_;
  size_t oldest_ = 0;  // index in items_ of the oldest value once the ring is full
};

}  // namespace wsvisor
