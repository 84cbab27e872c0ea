// wsvisor: the supervisor service.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "service/allocator_settings.h"
#include "service/server.h"
#include "service/store/store_import.h"
#include "supervisor/log.h"

int main(int argc, char** argv) {
  using wsvisor::service::Server;
  const std::string allocator = wsvisor::service::applyAllocatorSettings();
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string error;
  bool help = false;
  auto options = wsvisor::service::parseServerOptions(args, error, help);
  if (help) {
    std::fputs(wsvisor::service::serverUsage().c_str(), stdout);
    return 0;
  }
  if (!options) {
    std::fprintf(stderr, "wsvisor: %s\n", error.c_str());
    return 2;
  }

  if (!options->import_from_data_dir.empty()) {
    const auto target = wsvisor::service::storeOptionsFrom(*options, error);
    if (!target) {
      std::cout << "cannot open the etcd store " << options->store.describe() << ": " << error
                << "\n";
      return 1;
    }
    return wsvisor::service::importDataDirIntoEtcd(options->import_from_data_dir, *target,
                                                   std::cout);
  }

  // Signals are taken by one thread with sigwait(); every other thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  Server server(*options, wsvisor::service::allocatedHeapBytes);
  if (!server.start(error)) {
    std::fprintf(stderr, "wsvisor: %s\n", error.c_str());
    return 1;
  }
  WSV_LOG(kInfo) << "allocator: " << allocator;
  std::thread signal_waiter([&] {
    for (;;) {
      int received = 0;
      sigwait(&signals, &received);
      if (received == SIGHUP) {
        WSV_LOG(kInfo) << "received SIGHUP: reloading the config file and bearer tokens";
        server.reloadConfig();
        server.reloadAuthTokens();
        continue;
      }
      WSV_LOG(kInfo) << "received " << (received == SIGTERM ? "SIGTERM" : "SIGINT");
      server.shutdown();
      return;
    }
  });
  server.wait();
  signal_waiter.join();
  // Everything that matters is closed and flushed (upstreams, watch streams, the store); skip
  // the remaining destructors, among them the metrics HTTP server's, which can take seconds.
  std::fflush(nullptr);
  std::_Exit(0);
}
