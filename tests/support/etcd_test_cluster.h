#pragma once

// A real etcd cluster for C++ tests: tests/support/etcd_cluster.py run as a child process and
// driven over its stdin/stdout (one command, one answer per line). The Python helper starts the
// members on free loopback ports, waits until they are healthy, kills and restarts them, and
// removes everything when it exits; it exits when this object closes its end of the socket, or
// when this process dies (PR_SET_PDEATHSIG), so no etcd outlives a crashed test.

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace wsvisor::testing {

class EtcdTestCluster {
 public:
  // Starts `members` members and waits until all are healthy (bounded). Never throws: check
  // ok(), and error() says what failed (e.g. "/usr/bin/etcd is missing: install Debian's
  // etcd-server"), so a test fails with that message rather than skipping.
  explicit EtcdTestCluster(int members);
  ~EtcdTestCluster();
  EtcdTestCluster(const EtcdTestCluster&) = delete;
  EtcdTestCluster& operator=(const EtcdTestCluster&) = delete;

  // A three-member cluster started on first use and stopped when the test binary exits, for the
  // tests that leave it as they found it (every member running; keys under a prefix of their
  // own). Starting a cluster takes a second or two; sharing one keeps a binary of many tests fast.
  static EtcdTestCluster& shared();

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  // Client addresses ("127.0.0.1:PORT"), in member order.
  const std::vector<std::string>& endpoints() const { return endpoints_; }
  // "etcd://a,b,c" + path: the --store flag of wsvisor for this cluster.
  std::string storeUrl(const std::string& path = "") const;

  // SIGKILLs member `index`; returns false with error() set on failure.
  bool kill(int index);
  // Starts member `index` again (same ports, same data) and waits until it is healthy.
  bool restart(int index);

 private:
  // Sends `line` and returns the answer line ("OK ..." / "ERROR ..."), or "" on timeout or EOF.
  std::string command(const std::string& line, std::chrono::milliseconds timeout);
  std::string readLine(std::chrono::milliseconds timeout);

  pid_t pid_ = -1;
  int socket_ = -1;  // the helper's stdin and stdout
  std::string buffered_;
  std::vector<std::string> endpoints_;
  std::string error_;
};

}  // namespace wsvisor::testing
