#pragma once

#include <cstdint>
#include <memory>

#include "supervisor/core/endpoint_spec.h"
#include "supervisor/core/session.h"
#include "supervisor/health_bus.h"
#include "supervisor/live_stats.h"
#include "supervisor/metrics.h"
#include "supervisor/session_connection.h"
#include "supervisor/session_timer.h"
#include "supervisor/shard_context.h"
#include "supervisor/websocket_transport.h"

namespace wsvisor {

// Runs one endpoint's Session on its io thread: feeds it events stamped with the monotonic
// clock, carries out its actions through the transport, keeps its single timer armed at the
// session's next deadline, and publishes its status when it changes.
//
// Lifetime: owned by its IoShard and destroyed on the io thread. Callbacks (timer, websocketpp)
// never hold a pointer to it; they carry the endpoint's key and the shard looks it up, so a
// callback that outlives the endpoint finds nothing and does nothing.
class SupervisedEndpoint {
 public:
  SupervisedEndpoint(uint64_t key, uint64_t incarnation,
                     std::shared_ptr<const core::EndpointSpec> spec,
                     std::shared_ptr<LiveStats> live, ShardContext& shard);
  ~SupervisedEndpoint();

  void start(core::Duration first_attempt_after);
  // Closes the connection and goes quiet. Publishes nothing: the registry has already announced
  // the unregistration (or the replacement) on the bus.
  void stop(bool shutting_down);
  // A new spec with the same connection-defining fields: new policies apply to the live session.
  void updateSpec(std::shared_ptr<const core::EndpointSpec> spec);
  // An event from the transport. Events of an abandoned connection attempt are dropped here.
  void onTransportEvent(uint64_t attempt, const ConnectionRef& ref,
                        const core::SessionEvent& event);
  // The timer armed for `deadline` expired (only the deadline armed last is ever delivered).
  void onTimer(core::MonoTime deadline);
  bool stopped() const { return session_.status().phase == core::ConnectionPhase::kStopped; }
  // Feeds `event` to the session as if the current connection attempt had reported it.
  void handleForTest(const core::SessionEvent& event);

 private:
  void handle(const core::SessionEvent& event);
  // Carries out the session's actions; then, while the registration is current, publishes the
  // status (if changed), logs a health transition and records the metrics.
  void apply(const core::SessionActions& actions, core::ConnectionPhase phase_before);
  // Whether the results of `actions` may be reported: publishes the status if it changed, and
  // returns false (for good) once the registration has ended.
  bool reports(const core::SessionActions& actions);
  void recordMetrics(const core::SessionActions& actions, core::ConnectionPhase phase_before);

  const uint64_t incarnation_;
  std::shared_ptr<const core::EndpointSpec> spec_;
  const std::shared_ptr<LiveStats> live_;
  ShardContext& shard_;
  std::shared_ptr<EndpointSeries> series_;  // null when per-endpoint metrics are off
  bool publishing_ = true;                  // false once stopped
  bool retired_ = false;                    // the registration ended (see reports())
  core::Session session_;
  SessionTimer timer_;
  SessionConnection connection_;  // abandons its connection when destroyed
};

}  // namespace wsvisor
