#include "supervisor/core/timer_wheel.h"

#include <algorithm>

namespace wsvisor::core {

TimerWheel::Entry::~Entry() {
  if (wheel_ != nullptr) wheel_->disarm(*this);
}

TimerWheel::TimerWheel(Duration slot_width, size_t slots, MonoTime start)
    // Each head is constructed in place and so points at itself: an empty list.
    : width_(slot_width), slots_(slots), last_run_(slotAtOrAfter(start) - 1) {}

TimerWheel::~TimerWheel() {
  // Entries may outlive the wheel; they must not reach back into it.
  auto release = [this](Link& list) {
    while (list.next != &list) disarm(*static_cast<Entry*>(list.next));
  };
  for (Link& head : slots_) release(head);
  release(overdue_);
}

void TimerWheel::arm(Entry& entry, MonoTime expiry, MonoTime deadline) {
  if (entry.wheel_ != nullptr) entry.wheel_->disarm(entry);
  entry.deadline_ = deadline;
  entry.slot_ = slotAtOrAfter(expiry);
  entry.wheel_ = this;
  ++armed_;
  linkBefore(entry.slot_ <= last_run_ ? overdue_ : slotList(entry.slot_), entry);
}

void TimerWheel::disarm(Entry& entry) {
  if (entry.wheel_ == nullptr) return;
  unlink(entry);
  entry.wheel_ = nullptr;
  --armed_;
}

MonoTime TimerWheel::firesAt(const Entry& entry) const {
  return MonoTime(width_ * std::max(entry.slot_, last_run_));
}

std::optional<MonoTime> TimerWheel::nextDue() const {
  if (armed_ == 0) return std::nullopt;
  if (overdue_.next != &overdue_) return MonoTime(width_ * last_run_);
  const auto count = static_cast<int64_t>(slots_.size());
  for (int64_t s = last_run_ + 1; s <= last_run_ + count; ++s) {
    const Link& head = slots_[static_cast<size_t>(s) % slots_.size()];
    if (head.next != &head) return MonoTime(width_ * s);
  }
  return std::nullopt;  // unreachable: every armed entry is in a slot or overdue
}

void TimerWheel::unlink(Link& link) {
  link.prev->next = link.next;
  link.next->prev = link.prev;
  link.prev = link.next = &link;
}

void TimerWheel::linkBefore(Link& position, Link& link) {
  link.prev = position.prev;
  link.next = &position;
  position.prev->next = &link;
  position.prev = &link;
}

void TimerWheel::takeDue(Link& list, int64_t due_slot, Link& out) {
  for (Link* link = list.next; link != &list;) {
    Link* next = link->next;
    if (static_cast<Entry*>(link)->slot_ <= due_slot) {
      unlink(*link);
      linkBefore(out, *link);
    }
    link = next;
  }
}

int64_t TimerWheel::slotAtOrAfter(MonoTime t) const {
  const Duration since = t.time_since_epoch();
  const int64_t slot = since / width_;
  return since % width_ == Duration::zero() ? slot : slot + 1;
}

int64_t TimerWheel::slotAtOrBefore(MonoTime t) const { return t.time_since_epoch() / width_; }

}  // namespace wsvisor::core
