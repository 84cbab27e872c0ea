#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "supervisor/core/endpoint_spec.h"
#include "supervisor/core/endpoint_status.h"
#include "supervisor/core/jitter_source.h"
#include "supervisor/core/session.h"
#include "supervisor/core/session_event.h"
#include "supervisor/core/spec_validation.h"
#include "supervisor/core/time.h"

namespace wsvisor::core {

// ProbeEndpointRequest.heartbeats, as the API documents it.
namespace defaults {
inline constexpr uint32_t kProbeHeartbeats = 3;
}  // namespace defaults
namespace limits {
inline constexpr uint32_t kMaxProbeHeartbeats = 100;
}  // namespace limits

// The id a probe runs under when the caller gave none.
inline constexpr const char* kProbeId = "probe";

// Checks a probe request as received and fills it in: the spec as validateSpec() checks it,
// except that an empty id becomes kProbeId, then applyDefaults(); `heartbeats` 0 becomes the
// default, and beyond 1..kMaxProbeHeartbeats is refused (field "heartbeats").
std::optional<FieldError> prepareProbe(EndpointSpec& spec, uint32_t& heartbeats);

// The longest a probe of `spec` (defaults applied) can take: connect_timeout + heartbeats x
// (interval + timeout). Probe keeps to it by construction; the API promises it.
Duration probeTimeLimit(const EndpointSpec& spec, uint32_t heartbeats);

struct ProbeResult {
  enum class Outcome {
    kSucceeded,  // the connection opened and `heartbeats` heartbeats succeeded in a row
    kFailed,     // the first failure ended it: `failure`
    kCancelled,  // the caller gave up (cancel, deadline)
    kShutDown,   // wsvisor is shutting down
  };
  Outcome outcome = Outcome::kCancelled;
  std::optional<Failure> failure;
  std::optional<Duration> connect_time;  // from the start to the open connection
  std::vector<Duration> rtts;            // of every answered heartbeat (PING, TEXT), in order
  uint64_t heartbeats_sent = 0;
  Duration duration{0};  // from the start to the end (the moment the close is requested)
};

// One probe: the Session of a spec, run for one connection until `heartbeats` heartbeats have
// succeeded (NONE: until the connection opens) or until the first failure (connection failure,
// heartbeat failure, or the peer closing). It never redials: the Session's backoff is entered at
// most once, and everything after the end is ignored. Pure, like Session: events and time in,
// actions out.
//
// The probe checks the upstream, not the thresholds: the Session runs with both thresholds at 1
// and without unhealthy_interval, so heartbeats follow `interval` and the first failure closes.
// Schedule, with connect timeout C, interval I, timeout T and N heartbeats: the first heartbeat
// goes out on open, each next one I after the previous send (or on the answer, if that is later),
// and each is answered within T or fails; so the probe ends by C + N x (I + T) at the latest.
// Example, C = 20 s, I = T = 10 s, N = 3, answers after 1 ms: open at 5 ms, pings at 5 ms, 10.005
// s and 20.005 s, success at 20.006 s; if the second ping is never answered, failure at 20.005 s.
//
// The actions returned are a Session's, restricted to the connection: close, abandon_connection,
// send_ping, send_text and connect. Once finished() they hold at most the final close (code
// 1000) or abandon.
class Probe {
 public:
  // `spec` has its defaults applied; `heartbeats` is at least 1. `jitter` must outlive the probe.
  Probe(const EndpointSpec& spec, uint32_t heartbeats, JitterSource& jitter);

  // Starts the connection attempt: the probe's clock starts here.
  SessionActions start(MonoTime now);
  SessionActions onEvent(const SessionEvent& event, MonoTime now);
  // Ends an unfinished probe: closes the connection (1001 when shutting down, else 1000) or
  // drops the attempt in progress. No-op once finished.
  SessionActions cancel(bool shutting_down, MonoTime now);

  // The next moment a TimerFired has work to do; nullopt once finished.
  std::optional<MonoTime> nextDeadline() const;
  // As Session::heartbeatFailsAt(); false once finished.
  bool heartbeatFailsAt(MonoTime now) const;

  bool finished() const { return finished_; }
  // Complete once finished(); before that, what has been seen so far.
  const ProbeResult& result() const { return result_; }
  const std::string& pingPayload() const { return session_.pingPayload(); }
  const HeartbeatPolicy& heartbeatPolicy() const { return session_.heartbeatPolicy(); }

 private:
  SessionActions digest(SessionActions actions, MonoTime now);
  void finish(ProbeResult::Outcome outcome, MonoTime now);

  const uint32_t wanted_;
  Session session_;
  MonoTime started_at_{};
  uint32_t successes_ = 0;
  bool finished_ = false;
  ProbeResult result_;
};

}  // namespace wsvisor::core
