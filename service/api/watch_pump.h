#pragma once

#include <deque>
#include <functional>
#include <thread>

#include "supervisor/mutex.h"

namespace wsvisor::service {

// One thread that runs watch-stream work: turning queued health events into messages and
// starting their writes. Publishers — the io threads that detect failures — only queue a
// pointer and post here, so 100 watchers cost them 100 pointer pushes per event, never 100
// serializations, and a burst of snapshots cannot delay a heartbeat.
class WatchPump {
 public:
  WatchPump();
  ~WatchPump();  // stops the thread; tasks not yet run are dropped
  WatchPump(const WatchPump&) = delete;
  WatchPump& operator=(const WatchPump&) = delete;

  void post(std::function<void()> task);

 private:
  void run();

  Mutex mu_;
  CondVar ready_;
  std::deque<std::function<void()>> tasks_ WSV_GUARDED_BY(mu_);
  bool stopping_ WSV_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace wsvisor::service
