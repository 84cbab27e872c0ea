#pragma once

// Read readiness of one io thread's open plain connections, from an epoll set of the thread's
// own in which each socket is registered once, for the connection's whole open life.
//
// Why not Asio's wait: Asio 1.22 re-arms a socket in its epoll set (EPOLL_CTL_MOD) for every
// async_wait, and its reads first try the socket speculatively, which on a heartbeat connection
// (one small frame per heartbeat) returns EAGAIN every time: either way one system call per
// heartbeat more than the send and the recv it needs. Here a socket is added once
// (edge-triggered), Asio waits only for this set's own descriptor, and one epoll_wait hands out
// every socket that became readable since, however many.
//
// An io_context service, so that it outlives every connection of its io_context: connections
// kept by pending handlers are destroyed while the io_context shuts down, and still find it.
//
// Used from the io thread only.

#include <sys/epoll.h>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace wsvisor {

class ReadinessPoller : public asio::io_context::service {
 public:
  static inline asio::io_context::id id;

  // Called on the io thread each time bytes, an error or a hang-up arrive on a registered socket
  // (edge-triggered: once per arrival, not again for bytes already reported), with the epoll
  // events. Arrivals before one epoll_wait come as one call: bytes and the peer's FIN behind
  // them, for one, so a read that empties the socket of its bytes has not seen its end yet when
  // the events carry EPOLLRDHUP, EPOLLHUP or EPOLLERR.
  using Ready = void (*)(void* target, uint32_t events);
  static constexpr uint32_t kNoSlot = UINT32_MAX;

  explicit ReadinessPoller(asio::io_context& io);
  ~ReadinessPoller() override;

  // Registers socket `fd`: `ready(target)` is called as above until remove(). `keep` is held
  // meanwhile (the connection: its registration is what keeps it alive between reads, as a
  // pending Asio read would). Returns the registration's slot, or kNoSlot when epoll refused it
  // (the caller then waits through Asio).
  uint32_t add(int fd, Ready ready, void* target, std::shared_ptr<void> keep);
  // Ends the registration in `slot`: no further calls, and `fd` (still open) taken out of the
  // epoll set. Returns what the registration kept, for the caller to let go where that is safe
  // (it may be the connection's last owner). Safe from inside a `ready` call.
  std::shared_ptr<void> remove(uint32_t slot, int fd);

  // Sockets registered now.
  size_t registered() const { return registered_; }

 private:
  struct Slot {
    Ready ready = nullptr;
    void* target = nullptr;
    std::shared_ptr<void> keep;
    // Counts the slot's registrations: an event reported for an earlier one (in the same
    // epoll_wait batch as its removal) carries an older generation and is dropped.
    uint32_t generation = 0;
    uint32_t next_free = kNoSlot;
  };

  // asio::io_context::service: before the io_context destroys its pending handlers, so that the
  // connections they keep are released while Asio's reactor still runs.
  void shutdown() override;

  void waitForEvents();
  void onEvents();
  std::shared_ptr<void> releaseSlot(uint32_t slot);

  std::optional<asio::posix::stream_descriptor> epoll_;  // owns the epoll set's descriptor
  std::vector<Slot> slots_;
  uint32_t free_head_ = kNoSlot;
  size_t registered_ = 0;
  bool waiting_ = false;
  std::vector<epoll_event> events_;
};

}  // namespace wsvisor
