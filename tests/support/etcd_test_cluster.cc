#include "support/etcd_test_cluster.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace wsvisor::testing {

namespace {

constexpr char kPython[] = "/usr/bin/python3";
constexpr char kScript[] = WSVISOR_SOURCE_DIR "/tests/support/etcd_cluster.py";
// Bounds: the helper itself gives a start 30 s (and retries a lost port race); a restart waits
// for one member.
constexpr std::chrono::seconds kStartTimeout{90};
constexpr std::chrono::seconds kCommandTimeout{45};
constexpr std::chrono::seconds kExitTimeout{15};

std::vector<std::string> splitCommas(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    parts.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return parts;
}

}  // namespace

EtcdTestCluster& EtcdTestCluster::shared() {
  // Destroyed at exit, which stops the members; thread-safe initialisation.
  static EtcdTestCluster cluster(3);
  return cluster;
}

EtcdTestCluster::EtcdTestCluster(int members) {
  int sockets[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0) {
    error_ = std::string("socketpair: ") + std::strerror(errno);
    return;
  }
  const std::string members_text = std::to_string(members);
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    // Between fork and exec only async-signal-safe calls: this process has other threads.
    // When the test process dies the helper sees the end of its input, stops its members and
    // removes their data. The SIGTERM asked for here ends a helper that dies with us before
    // Python has even started it; the running helper ignores SIGTERM (see etcd_cluster.py).
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(sockets[1], STDIN_FILENO);
    ::dup2(sockets[1], STDOUT_FILENO);
    ::close_range(3, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    const char* argv[] = {kPython, kScript, "--members", members_text.c_str(), nullptr};
    ::execv(kPython, const_cast<char* const*>(argv));
    ::_exit(127);
  }
  ::close(sockets[1]);
  if (pid_ < 0) {
    error_ = std::string("fork: ") + std::strerror(errno);
    ::close(sockets[0]);
    return;
  }
  socket_ = sockets[0];
  const std::string ready = readLine(kStartTimeout);
  if (ready.rfind("READY ", 0) != 0) {
    error_ = ready.empty() ? std::string(
                                 "tests/support/etcd_cluster.py did not report a ready "
                                 "cluster in time (see its output above)")
                           : "etcd test cluster: " + ready;
    return;
  }
  endpoints_ = splitCommas(ready.substr(6));
}

EtcdTestCluster::~EtcdTestCluster() {
  if (socket_ >= 0) {
    // End of input makes the helper stop the members and remove their data.
    ::shutdown(socket_, SHUT_WR);
  }
  if (pid_ > 0) {
    const auto deadline = std::chrono::steady_clock::now() + kExitTimeout;
    int status = 0;
    for (;;) {
      const pid_t reaped = ::waitpid(pid_, &status, WNOHANG);
      if (reaped == pid_ || (reaped < 0 && errno != EINTR)) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        // Its members die with it (they have PR_SET_PDEATHSIG).
        ::kill(pid_, SIGKILL);
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (socket_ >= 0) ::close(socket_);
}

std::string EtcdTestCluster::storeUrl(const std::string& path) const {
  std::string url = "etcd://";
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    if (i > 0) url += ",";
    url += endpoints_[i];
  }
  return url + path;
}

bool EtcdTestCluster::kill(int index) {
  const std::string answer = command("kill " + std::to_string(index), kCommandTimeout);
  if (answer.rfind("OK", 0) == 0) return true;
  error_ = "kill " + std::to_string(index) + ": " + (answer.empty() ? "no answer" : answer);
  return false;
}

bool EtcdTestCluster::restart(int index) {
  const std::string answer = command("restart " + std::to_string(index), kCommandTimeout);
  if (answer.rfind("OK", 0) == 0) return true;
  error_ = "restart " + std::to_string(index) + ": " + (answer.empty() ? "no answer" : answer);
  return false;
}

std::string EtcdTestCluster::command(const std::string& line, std::chrono::milliseconds timeout) {
  if (socket_ < 0) return "";
  const std::string text = line + "\n";
  if (::send(socket_, text.data(), text.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(text.size())) {
    return "";
  }
  return readLine(timeout);
}

std::string EtcdTestCluster::readLine(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Each turn reads what arrived or waits for more, until a whole line is there or the deadline.
  for (;;) {
    const size_t newline = buffered_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffered_.substr(0, newline);
      buffered_.erase(0, newline + 1);
      return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "";
    pollfd readable{socket_, POLLIN, 0};
    const int ready = ::poll(&readable, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return "";
    char chunk[4096];
    const ssize_t got = ::recv(socket_, chunk, sizeof(chunk), 0);
    if (got <= 0) return "";
    buffered_.append(chunk, static_cast<size_t>(got));
  }
}

}  // namespace wsvisor::testing
