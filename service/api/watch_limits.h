#pragma once

#include <cstddef>

namespace wsvisor::service {

// Bounds on the WatchHealth streams (--max-watch-streams, --watch-stream-bytes).
//
// Defaults, and why: a stream that reads nothing keeps at most `stream_bytes` of events queued,
// counted as if it alone kept them alive (watchers share the events, so the real cost of many
// stuck streams is far less). A coalesced stream converges to one event per endpoint: ~0.8 KiB
// each with a few labels, a failure and its bookkeeping, ~22 KiB with the most label bytes a spec
// may have. 32 MiB holds that for about 40,000 ordinary endpoints — twice the ~19,900 one process
// can supervise within its open-files limit, so a slow watcher of everything during a mass outage
// is coalesced, not ended — or for about 1,400 endpoints that all carry the maximal labels.
// 1,000 streams is far beyond the handful of controllers and dashboards that watch one wsvisor,
// yet caps what a leaking client can pin.
struct WatchLimits {
  static constexpr size_t kDefaultMaxStreams = 1000;
  static constexpr size_t kDefaultStreamBytes = size_t{32} << 20;

  size_t max_streams = kDefaultMaxStreams;
  size_t stream_bytes = kDefaultStreamBytes;
};

}  // namespace wsvisor::service
