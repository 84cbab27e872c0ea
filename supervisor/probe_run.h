#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "supervisor/core/endpoint_spec.h"
#include "supervisor/core/probe.h"
#include "supervisor/session_connection.h"
#include "supervisor/session_timer.h"
#include "supervisor/shard_context.h"
#include "supervisor/websocket_transport.h"

namespace wsvisor {

// Runs one core::Probe on its io thread, as SupervisedEndpoint runs a Session: feeds it events
// stamped with the monotonic clock, carries out its actions through the transport and keeps its
// timer armed. Unlike an endpoint it publishes nothing on the health bus, has no per-endpoint
// metrics and is never stored: it only reports its result, once.
//
// Lifetime: owned by its IoShard and destroyed on the io thread by the shard, on the loop turn
// after it finished() (never from inside its own methods). Callbacks (timer, websocketpp) carry its
// key, never a pointer. A ProbeRun destroyed unfinished (the shard going away) reports kShutDown
// first.
class ProbeRun {
 public:
  // Called once, on the io thread, with the final result: succeeded, failed, cancelled or shut
  // down.
  using Done = std::function<void(const core::ProbeResult& result)>;

  ProbeRun(uint64_t key, std::shared_ptr<const core::EndpointSpec> spec, uint32_t heartbeats,
           Done done, ShardContext& shard);
  ~ProbeRun();
  ProbeRun(const ProbeRun&) = delete;
  ProbeRun& operator=(const ProbeRun&) = delete;

  void start();
  // Closes the connection (1001 when shutting down, else 1000) or drops the attempt, and
  // reports kCancelled or kShutDown. No-op once finished.
  void cancel(bool shutting_down);
  // An event from the transport. Events of a connection the probe has let go are dropped.
  void onTransportEvent(uint64_t attempt, const ConnectionRef& ref,
                        const core::SessionEvent& event);
  void onTimer(core::MonoTime deadline);
  // The result has been reported: the shard may destroy this.
  bool finished() const { return probe_.finished(); }

 private:
  void apply(const core::SessionActions& actions);
  void report();

  const std::shared_ptr<const core::EndpointSpec> spec_;
  ShardContext& shard_;
  core::Probe probe_;
  Done done_;
  SessionTimer timer_;
  SessionConnection connection_;
};

}  // namespace wsvisor
