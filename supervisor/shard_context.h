#pragma once

#include <asio/io_context.hpp>
#include <cstdint>

#include "supervisor/core/jitter_source.h"
#include "supervisor/core/time.h"
#include "supervisor/health_bus.h"
#include "supervisor/metrics.h"
#include "supervisor/shard_timers.h"
#include "supervisor/websocket_transport.h"

namespace wsvisor {

// What the endpoints and probes of one io thread share. Everything here is used from that thread
// only (the bus locks internally).
struct ShardContext {
  asio::io_context& io;
  WebSocketTransport& transport;
  HealthBus& bus;
  Metrics& metrics;
  // This io thread's own counters in `metrics` (Metrics::addShardCounters()).
  ShardCounters& counters;
  core::JitterSource& jitter;
  // The sessions' deadlines; an expiry is routed to the endpoint or probe with its key, if that
  // still exists.
  ShardTimers& timers;
};

}  // namespace wsvisor
