// The core state machine's cost per heartbeat, on a simulated clock: one cycle is
//   TimerFired → send_ping, then PongReceived(payload) → heartbeat succeeded,
// plus the two nextDeadline() calls the runtime makes to re-arm its timer after each event
// (SessionTimer::arm). No sockets, no clock reads: what is left is Session itself.
//
// "Time" per iteration is the cost of one cycle.
// BM_HeartbeatCycle            one session, hot in cache.
// BM_HeartbeatCycleManySessions/N   N sessions visited in turn, as an io thread with N endpoints
//                              visits them once per interval: the cache-cold figure.
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "supervisor/core/endpoint_spec.h"
#include "supervisor/core/session.h"

namespace {

using wsvisor::core::Duration;
using wsvisor::core::MonoTime;
using wsvisor::core::Session;
namespace event = wsvisor::core::event;

class FixedJitter : public wsvisor::core::JitterSource {
 public:
  double nextSigned() override { return 0.0; }
};

wsvisor::core::EndpointSpec benchSpec() {
  wsvisor::core::EndpointSpec spec;
  spec.id = "bench";
  spec.url = "ws://127.0.0.1:1/bench";
  spec.heartbeat.mode = wsvisor::core::HeartbeatMode::kPing;
  spec.heartbeat.interval = std::chrono::seconds(1);
  spec.heartbeat.timeout = std::chrono::seconds(1);
  wsvisor::core::applyDefaults(spec);
  return spec;
}

constexpr Duration kRtt = std::chrono::microseconds(80);

// A session that is OPEN and HEALTHY with a ping outstanding, and the time of that ping.
struct OpenSession {
  std::unique_ptr<Session> session;
  MonoTime now;
};

OpenSession openSession(const wsvisor::core::EndpointSpec& spec, FixedJitter& jitter,
                        MonoTime start) {
  OpenSession s{
      std::make_unique<Session>(spec.heartbeat, spec.backoff, spec.connect_timeout, jitter), start};
  s.session->onEvent(event::Start{}, s.now);
  s.now += std::chrono::milliseconds(1);
  s.session->onEvent(event::Connected{}, s.now);  // sends the first ping
  return s;
}

// One full cycle: the pong of the outstanding ping, then the timer at the next send time.
inline void cycle(Session& session, MonoTime& now) {
  now += kRtt;
  // websocketpp hands the pong payload over as a std::string; the transport passes a view.
  const std::string payload = session.pingPayload();
  auto pong = session.onEvent(event::PongReceived{payload}, now);
  benchmark::DoNotOptimize(pong);
  benchmark::DoNotOptimize(session.nextDeadline());
  // The first wake-up after `reset_after` (10 s) of health only resets the backoff schedule;
  // the runtime then re-arms for the send time, as here.
  for (int wakeups = 0;; ++wakeups) {
    now = *session.nextDeadline();
    auto ping = session.onEvent(event::TimerFired{}, now);
    benchmark::DoNotOptimize(ping);
    benchmark::DoNotOptimize(session.nextDeadline());
    if (ping.send_ping) break;
    if (wakeups == 2) std::abort();  // the cycle must really send
  }
}

void BM_HeartbeatCycle(benchmark::State& state) {
  FixedJitter jitter;
  const auto spec = benchSpec();
  OpenSession s = openSession(spec, jitter, MonoTime{} + std::chrono::hours(1));
  for (auto _ : state) cycle(*s.session, s.now);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HeartbeatCycle);

void BM_HeartbeatCycleManySessions(benchmark::State& state) {
  FixedJitter jitter;
  const auto spec = benchSpec();
  std::vector<OpenSession> sessions;
  const auto n = static_cast<size_t>(state.range(0));
  sessions.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    sessions.push_back(openSession(spec, jitter, MonoTime{} + std::chrono::hours(1)));
  }
  size_t next = 0;
  for (auto _ : state) {
    OpenSession& s = sessions[next];
    cycle(*s.session, s.now);
    if (++next == n) next = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HeartbeatCycleManySessions)->Arg(1000)->Arg(19000);

}  // namespace

BENCHMARK_MAIN();
