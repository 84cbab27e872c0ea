#include "service/cluster/etcd/lease_keeper.h"

#include <algorithm>

namespace wsvisor::service::etcd {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kFirstRetryDelay{200};

}  // namespace

LeaseKeeper::LeaseKeeper(EtcdClient& client, EtcdLease lease, LostCallback on_lost)
    : client_(client), lease_(lease), on_lost_(std::move(on_lost)), thread_([this] { run(); }) {}

LeaseKeeper::~LeaseKeeper() { stop(); }

void LeaseKeeper::stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  wake_.notifyAll();
  canceller_.cancel();
  if (thread_.joinable()) thread_.join();
}

bool LeaseKeeper::lost() const {
  MutexLock lock(mu_);
  return lost_;
}

int64_t LeaseKeeper::renewals() const {
  MutexLock lock(mu_);
  return renewals_;
}

Clock::time_point LeaseKeeper::lastAcknowledgedSend() const {
  MutexLock lock(mu_);
  return last_ack_sent_;
}

bool LeaseKeeper::waitUntil(Clock::time_point until) {
  MutexLock lock(mu_);
  while (!stopping_ && wake_.waitUntil(lock, until)) {
  }
  return !stopping_;
}

void LeaseKeeper::run() {
  // The lease lives at least `ttl` after the last renewal etcd acknowledged; counted from when
  // that renewal (or the grant) was sent, which is no later than when etcd applied it.
  // Milliseconds, so that TTL/3 of a 1 s lease is 333 ms and not 0.
  std::chrono::milliseconds ttl = std::chrono::seconds(std::max<int64_t>(1, lease_.ttl_seconds));
  Clock::time_point safe_until = Clock::now() + ttl;
  Clock::time_point next = Clock::now() + ttl / 3;
  std::chrono::milliseconds retry_delay = kFirstRetryDelay;
  std::string last_error;
  // Ends on stop() or when the lease is lost; each turn waits for a future moment.
  for (;;) {
    if (!waitUntil(std::min(next, safe_until))) return;
    const Clock::time_point sent = Clock::now();
    if (sent >= safe_until) {
      std::string reason = "etcd lease " + std::to_string(lease_.id) +
                           ": no renewal acknowledged within its TTL of " +
                           std::to_string(ttl.count()) + " ms; it may have expired";
      if (!last_error.empty()) reason += " (last error: " + last_error + ")";
      {
        MutexLock lock(mu_);
        lost_ = true;
      }
      on_lost_(reason);
      return;
    }
    int64_t new_ttl = 0;
    // A renewal may take until the lease would expire, no longer: past that, it is lost anyway.
    // And at most a quarter of the TTL (at least 500 ms): a member that forwarded it to a leader
    // that just died holds it until etcd's own timeout, and waiting that long would leave no
    // time to retry on another member once a new leader is elected.
    const auto attempt_bound =
        std::max<std::chrono::milliseconds>(ttl / 4, std::chrono::milliseconds(500));
    const auto deadline =
        std::min({safe_until, sent + client_.options().call_timeout, sent + attempt_bound});
    if (auto error = client_.keepAliveOnce(lease_.id, deadline, new_ttl, &canceller_)) {
      if (error->code == grpc::StatusCode::CANCELLED && canceller_.cancelled()) return;
      last_error = error->message;
      next = Clock::now() + retry_delay;
      retry_delay = std::min(retry_delay * 2, ttl / 6);
      continue;
    }
    if (new_ttl <= 0) {
      {
        MutexLock lock(mu_);
        lost_ = true;
      }
      on_lost_("etcd lease " + std::to_string(lease_.id) +
               " no longer exists (it expired or was revoked)");
      return;
    }
    {
      MutexLock lock(mu_);
      ++renewals_;
      last_ack_sent_ = sent;
    }
    last_error.clear();
    retry_delay = kFirstRetryDelay;
    ttl = std::chrono::seconds(new_ttl);
    safe_until = sent + ttl;
    next = Clock::now() + ttl / 3;
  }
}

}  // namespace wsvisor::service::etcd
