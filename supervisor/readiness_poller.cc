#include "supervisor/readiness_poller.h"

#include <unistd.h>

#include <cerrno>
#include <utility>

namespace wsvisor {

namespace {

// Events taken per wake-up. More stay in the set, which then is still readable: Asio's next wait
// for it returns at once, after the handlers queued meanwhile have had their turn.
constexpr int kEventsPerWakeUp = 256;

uint64_t eventData(uint32_t slot, uint32_t generation) {
  return (static_cast<uint64_t>(generation) << 32) | slot;
}

}  // namespace

ReadinessPoller::ReadinessPoller(asio::io_context& io)
    : asio::io_context::service(io), events_(kEventsPerWakeUp) {
  const int fd = ::epoll_create1(EPOLL_CLOEXEC);
  // Without a set of its own every connection waits through Asio (add() says so).
  if (fd >= 0) epoll_.emplace(io, fd);
}

ReadinessPoller::~ReadinessPoller() = default;

uint32_t ReadinessPoller::add(int fd, Ready ready, void* target, std::shared_ptr<void> keep) {
  if (!epoll_) return kNoSlot;
  uint32_t slot = free_head_;
  if (slot != kNoSlot) {
    free_head_ = slots_[slot].next_free;
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& entry = slots_[slot];
  ++entry.generation;
  epoll_event event{};
  // Edge-triggered: reported once per arrival, so a socket whose bytes wait for a read that is
  // not asked for yet does not wake the thread again and again. Errors and hang-ups are always
  // reported; EPOLLRDHUP adds the peer's half-close.
  event.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
  event.data.u64 = eventData(slot, entry.generation);
  if (::epoll_ctl(epoll_->native_handle(), EPOLL_CTL_ADD, fd, &event) != 0) {
    entry.next_free = free_head_;
    free_head_ = slot;
    return kNoSlot;
  }
  entry.ready = ready;
  entry.target = target;
  entry.keep = std::move(keep);
  ++registered_;
  if (!waiting_) waitForEvents();
  return slot;
}

std::shared_ptr<void> ReadinessPoller::remove(uint32_t slot, int fd) {
  if (slot >= slots_.size() || slots_[slot].ready == nullptr) return nullptr;
  if (epoll_ && fd >= 0) {
    epoll_event unused{};  // kernels before 2.6.9 wanted one
    (void)::epoll_ctl(epoll_->native_handle(), EPOLL_CTL_DEL, fd, &unused);
  }
  std::shared_ptr<void> kept = releaseSlot(slot);
  // Nothing left to wait for: the pending wait would keep the io_context busy for nothing.
  if (registered_ == 0 && waiting_ && epoll_) epoll_->cancel();
  return kept;
}

std::shared_ptr<void> ReadinessPoller::releaseSlot(uint32_t slot) {
  Slot& entry = slots_[slot];
  entry.ready = nullptr;
  entry.target = nullptr;
  entry.next_free = free_head_;
  free_head_ = slot;
  --registered_;
  return std::move(entry.keep);
}

void ReadinessPoller::waitForEvents() {
  waiting_ = true;
  epoll_->async_wait(asio::posix::stream_descriptor::wait_read, [this](const std::error_code& ec) {
    waiting_ = false;
    if (!ec) onEvents();
    // A wait cancelled because the last socket left may find new ones registered meanwhile.
    if (!waiting_ && registered_ > 0 && epoll_ && (!ec || ec == asio::error::operation_aborted)) {
      waitForEvents();
    }
  });
}

void ReadinessPoller::onEvents() {
  int ready_count;
  do {
    ready_count = ::epoll_wait(epoll_->native_handle(), events_.data(), kEventsPerWakeUp, 0);
  } while (ready_count < 0 && errno == EINTR);
  for (int i = 0; i < ready_count; ++i) {
    const epoll_event& event = events_[static_cast<size_t>(i)];
    const uint64_t data = event.data.u64;
    const auto slot = static_cast<uint32_t>(data);
    const auto generation = static_cast<uint32_t>(data >> 32);
    // A callback may remove (and re-use) any slot, its own included: look each one up afresh.
    if (slot >= slots_.size()) continue;
    const Slot& entry = slots_[slot];
    if (entry.generation != generation || entry.ready == nullptr) continue;
    entry.ready(entry.target, event.events);
  }
}

void ReadinessPoller::shutdown() {
  // Closing the set cancels the wait; the connections held are released while Asio's reactor
  // still runs (it was created before this service, so it is shut down after it).
  epoll_.reset();
  std::vector<std::shared_ptr<void>> kept;
  for (uint32_t slot = 0; slot < slots_.size(); ++slot) {
    if (slots_[slot].ready != nullptr) kept.push_back(releaseSlot(slot));
  }
}

}  // namespace wsvisor
