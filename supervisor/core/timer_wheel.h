#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "supervisor/core/time.h"

namespace wsvisor::core {

// The deadlines of every session on one io thread, in slots of a fixed width (a timing wheel).
// Each deadline fires at the first slot boundary at or after it, so sessions whose deadlines fall
// in the same slot are served together: their pings leave in one burst and their pongs come back
// in one. Arming, re-arming and disarming are O(1) and allocate nothing: an Entry, owned by its
// session, is linked into its slot's list. The wheel itself reads no clock; its owner runs
// `runDue(now)` at `nextDue()`.
//
// A slot holds the entries of every revolution that map to it; an entry due more than one
// revolution away simply stays when its slot runs earlier.
//
// Single-threaded.
class TimerWheel {
  struct Link {
    Link* prev = this;
    Link* next = this;
  };

 public:
  // One armed deadline of the session with `key`. Unlinks itself when destroyed, so a destroyed
  // session's deadline never fires.
  class Entry : private Link {
   public:
    explicit Entry(uint64_t key) : key_(key) {}
    ~Entry();
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;

    bool armed() const { return wheel_ != nullptr; }
    // The deadline it is armed to report; nullopt while disarmed (also once it has fired).
    std::optional<MonoTime> armedFor() const {
      return armed() ? std::optional<MonoTime>(deadline_) : std::nullopt;
    }

   private:
    friend class TimerWheel;
    const uint64_t key_;
    MonoTime deadline_{};  // what firing reports
    int64_t slot_ = 0;     // the slot boundary it fires at, in slots since the clock's epoch
    TimerWheel* wheel_ = nullptr;
  };

  // Nothing is due before `start`: the first runDue() runs the slot boundaries from `start` on.
  TimerWheel(Duration slot_width, size_t slots, MonoTime start);
  ~TimerWheel();
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // Arms `entry` (moving it if armed) to fire at the first slot boundary at or after `expiry`,
  // reporting `deadline`. An expiry at or before the last boundary run fires at the next
  // runDue(), not during the one running now.
  void arm(Entry& entry, MonoTime expiry, MonoTime deadline);
  void disarm(Entry& entry);
  // The slot boundary an armed `entry` fires at; for an overdue one, the last boundary run.
  MonoTime firesAt(const Entry& entry) const;

  // Fires every entry due by `now`, slot by slot in time order, each in the order it was armed:
  // the entry is disarmed, then `fire(key, deadline)` is called. `fire` may arm, disarm or destroy
  // any entry; one disarmed or re-armed before its turn does not fire.
  template <typename Fire>
  void runDue(MonoTime now, Fire&& fire);

  // When runDue() next has something to do (possibly a spurious wake-up for an entry a revolution
  // or more away; at the latest one revolution from the last run); nullopt when nothing is armed.
  std::optional<MonoTime> nextDue() const;

  size_t armedCount() const { return armed_; }

 private:
  static void unlink(Link& link);
  static void linkBefore(Link& position, Link& link);
  // Moves the entries of `list` whose slot boundary is at or before `due_slot` to the end of `out`.
  static void takeDue(Link& list, int64_t due_slot, Link& out);
  int64_t slotAtOrAfter(MonoTime t) const;
  int64_t slotAtOrBefore(MonoTime t) const;
  Link& slotList(int64_t slot) { return slots_[static_cast<size_t>(slot) % slots_.size()]; }

  const Duration width_;
  std::vector<Link> slots_;
  Link overdue_;      // armed for a boundary already run: due at the next runDue()
  int64_t last_run_;  // the last slot boundary whose entries have run
  size_t armed_ = 0;
};

template <typename Fire>
void TimerWheel::runDue(MonoTime now, Fire&& fire) {
  Link due;
  takeDue(overdue_, std::numeric_limits<int64_t>::max(), due);
  const int64_t now_slot = slotAtOrBefore(now);
  // After a gap longer than a revolution every slot is visited once.
  const int64_t first = now_slot - last_run_ > static_cast<int64_t>(slots_.size())
                            ? now_slot - static_cast<int64_t>(slots_.size()) + 1
                            : last_run_ + 1;
  for (int64_t s = first; s <= now_slot; ++s) takeDue(slotList(s), now_slot, due);
  if (now_slot > last_run_) last_run_ = now_slot;
  while (due.next != &due) {
    auto* entry = static_cast<Entry*>(due.next);
    disarm(*entry);
    fire(entry->key_, entry->deadline_);
  }
}

}  // namespace wsvisor::core
