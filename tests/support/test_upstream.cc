#include "tests/support/test_upstream.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <future>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#ifndef WSVISOR_SOURCE_DIR
#error "WSVISOR_SOURCE_DIR must name the source tree (it locates python_ws_upstream.py)"
#endif

extern char** environ;

namespace wsvisor::testing {
namespace {

using Server = websocketpp::server<websocketpp::config::asio>;
using websocketpp::connection_hdl;

// How long the destructor lets the io thread finish on its own before stopping the io_context.
constexpr std::chrono::seconds kShutdownGrace{2};

constexpr char kPython[] = "/usr/bin/python3";

void setCloseOnExec(int fd) {
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

std::string lowerCase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

}  // namespace

// Everything the io thread owns. Fields below `thread` are touched only on the io thread (the
// constructor sets handlers up before the thread starts); other threads reach them via runOnIo().
struct TestUpstream::Impl {
  struct Connection {
    bool open = false;
    bool closed_by_us = false;  // closeAll() started the close handshake
  };

  // Declared before `server`, so the server (and its acceptor) is destroyed first.
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  Server server;
  std::thread thread;
  std::promise<void> run_returned;

  bool answer_pings = true;
  bool echo_text = true;
  int reject_status = 0;
  bool select_subprotocol = false;

  // Every accepted TCP connection from the start of its handshake until it closes or fails.
  std::map<connection_hdl, Connection, std::owner_less<connection_hdl>> connections;
  size_t accepted = 0;
  size_t rejected = 0;
  size_t pings = 0;
  std::vector<std::map<std::string, std::string>> handshakes;
  std::vector<int> close_codes;
  std::vector<std::string> texts;

  // websocketpp may call a handler (or a timer may fire) after the connection is gone, so every
  // handler looks the connection up without throwing and gives up when it has expired.
  Server::connection_ptr connection(const connection_hdl& hdl) {
    std::error_code ec;
    Server::connection_ptr con = server.get_con_from_hdl(hdl, ec);
    return ec ? nullptr : con;
  }

  // Handles of the connections matching `want`. Acting on a connection can run our close handler
  // synchronously (terminate() does), which erases from `connections`; so callers iterate over
  // this copy, never over the map itself.
  std::vector<connection_hdl> handles(bool only_open) const {
    std::vector<connection_hdl> out;
    for (const auto& [hdl, record] : connections) {
      if (!only_open || record.open) out.push_back(hdl);
    }
    return out;
  }

  void onTcpPreInit(const connection_hdl& hdl) {
    Server::connection_ptr con = connection(hdl);
    if (!con) return;
    setCloseOnExec(con->get_raw_socket().native_handle());
    connections.emplace(hdl, Connection{});
  }

  bool onValidate(const connection_hdl& hdl) {
    Server::connection_ptr con = connection(hdl);
    if (!con) return false;
    if (reject_status != 0) {
      ++rejected;
      con->set_status(static_cast<websocketpp::http::status_code::value>(reject_status));
      return false;
    }
    const std::vector<std::string>& offered = con->get_requested_subprotocols();
    if (select_subprotocol && !offered.empty()) {
      std::error_code ec;
      con->select_subprotocol(offered.front(), ec);
    }
    return true;
  }

  void onOpen(const connection_hdl& hdl) {
    Server::connection_ptr con = connection(hdl);
    if (!con) return;
    connections[hdl].open = true;
    ++accepted;
    std::map<std::string, std::string> headers;
    for (const auto& [name, value] : con->get_request().get_headers()) {
      headers[lowerCase(name)] = value;
    }
    headers[":path"] = con->get_resource();
    handshakes.push_back(std::move(headers));
  }

  void onClose(const connection_hdl& hdl) {
    auto it = connections.find(hdl);
    const bool closed_by_us = it != connections.end() && it->second.closed_by_us;
    if (it != connections.end()) connections.erase(it);
    Server::connection_ptr con = connection(hdl);
    if (!con || closed_by_us) return;
    // abnormal_close (1006) is never on the wire: it means no close frame arrived.
    const websocketpp::close::status::value code = con->get_remote_close_code();
    if (code != websocketpp::close::status::abnormal_close) close_codes.push_back(code);
  }

  void onFail(const connection_hdl& hdl) { connections.erase(hdl); }

  bool onPing(const connection_hdl& /*hdl*/, const std::string& /*payload*/) {
    ++pings;
    return answer_pings;  // false: websocketpp sends no pong
  }

  void onMessage(const connection_hdl& hdl, const Server::message_ptr& msg) {
    if (msg->get_opcode() != websocketpp::frame::opcode::text) return;
    texts.push_back(msg->get_payload());
    if (!echo_text) return;
    if (Server::connection_ptr con = connection(hdl)) {
      // connection::send() reports errors by return value (there is no error_code& overload).
      (void)con->send(msg->get_payload(), websocketpp::frame::opcode::text);
    }
  }

  // Stops accepting and drops every connection, so io.run() can return.
  void shutdown() {
    std::error_code ec;
    server.stop_listening(ec);
    for (const connection_hdl& hdl : handles(/*only_open=*/false)) {
      if (Server::connection_ptr con = connection(hdl)) con->terminate(std::error_code());
    }
  }
};

TestUpstream::TestUpstream() : impl_(std::make_unique<Impl>()) {
  Impl* impl = impl_.get();
  Server& server = impl->server;
  server.clear_access_channels(websocketpp::log::alevel::all);
  server.clear_error_channels(websocketpp::log::elevel::all);
  server.init_asio(&impl->io);
  server.set_tcp_pre_bind_handler([](const Server::transport_type::acceptor_ptr& acceptor) {
    setCloseOnExec(acceptor->native_handle());
    return std::error_code();
  });
  server.set_tcp_pre_init_handler([impl](connection_hdl hdl) { impl->onTcpPreInit(hdl); });
  server.set_validate_handler([impl](connection_hdl hdl) { return impl->onValidate(hdl); });
  server.set_open_handler([impl](connection_hdl hdl) { impl->onOpen(hdl); });
  server.set_close_handler([impl](connection_hdl hdl) { impl->onClose(hdl); });
  server.set_fail_handler([impl](connection_hdl hdl) { impl->onFail(hdl); });
  server.set_ping_handler(
      [impl](connection_hdl hdl, std::string payload) { return impl->onPing(hdl, payload); });
  server.set_message_handler(
      [impl](connection_hdl hdl, Server::message_ptr msg) { impl->onMessage(hdl, msg); });

  std::error_code ec;
  server.listen(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), ec);
  if (!ec) port_ = server.get_local_endpoint(ec).port();
  if (!ec) server.start_accept(ec);
  if (ec) throw std::runtime_error("TestUpstream: cannot listen on 127.0.0.1: " + ec.message());

  impl->thread = std::thread([impl] {
    impl->io.run();
    impl->run_returned.set_value();
  });
}

TestUpstream::~TestUpstream() {
  Impl* impl = impl_.get();
  std::future<void> run_returned = impl->run_returned.get_future();
  asio::post(impl->io, [impl] { impl->shutdown(); });
  impl->work.reset();
  // A connection still in its opening handshake, or a handler we did not foresee, could keep
  // run() busy for websocketpp's 5 s timeouts; do not let a test wait for that.
  if (run_returned.wait_for(kShutdownGrace) != std::future_status::ready) impl->io.stop();
  impl->thread.join();
  // Handlers left in the io_context are destroyed, not run, when `impl` is destroyed.
}

std::string TestUpstream::url(const std::string& path) const {
  return "ws://127.0.0.1:" + std::to_string(port_) + path;
}

void TestUpstream::runOnIo(const std::function<void()>& work) {
  if (std::this_thread::get_id() == impl_->thread.get_id()) {
    work();
    return;
  }
  std::promise<void> done;
  asio::post(impl_->io, [&work, &done] {
    work();
    done.set_value();
  });
  done.get_future().wait();
}

void TestUpstream::setAnswerPings(bool answer) {
  runOnIo([&] { impl_->answer_pings = answer; });
}

void TestUpstream::setEchoText(bool echo) {
  runOnIo([&] { impl_->echo_text = echo; });
}

void TestUpstream::setRejectHandshake(int http_status) {
  // websocketpp's status enum ends at 511; a larger value would be out of the enum's range.
  if (http_status != 0 && (http_status < 100 || http_status > 511)) {
    throw std::invalid_argument("setRejectHandshake: HTTP status must be 0 or 100..511, got " +
                                std::to_string(http_status));
  }
  runOnIo([&] { impl_->reject_status = http_status; });
}

void TestUpstream::setSelectSubprotocol(bool select) {
  runOnIo([&] { impl_->select_subprotocol = select; });
}

void TestUpstream::sendToAll(const std::string& text) {
  runOnIo([&] {
    for (const connection_hdl& hdl : impl_->handles(/*only_open=*/true)) {
      if (Server::connection_ptr con = impl_->connection(hdl)) {
        (void)con->send(text, websocketpp::frame::opcode::text);
      }
    }
  });
}

void TestUpstream::closeAll(uint16_t code, const std::string& reason) {
  runOnIo([&] {
    for (const connection_hdl& hdl : impl_->handles(/*only_open=*/true)) {
      Server::connection_ptr con = impl_->connection(hdl);
      if (!con) continue;
      impl_->connections[hdl].closed_by_us = true;
      std::error_code ec;
      con->close(code, reason, ec);
    }
  });
}

void TestUpstream::dropAll() {
  runOnIo([&] {
    for (const connection_hdl& hdl : impl_->handles(/*only_open=*/true)) {
      // terminate() shuts the socket down (FIN) with no close frame and runs our close handler.
      if (Server::connection_ptr con = impl_->connection(hdl)) con->terminate(std::error_code());
    }
  });
}

size_t TestUpstream::openConnections() {
  size_t n = 0;
  runOnIo([&] { n = impl_->handles(/*only_open=*/true).size(); });
  return n;
}

size_t TestUpstream::tcpConnections() {
  size_t n = 0;
  runOnIo([&] { n = impl_->connections.size(); });
  return n;
}

size_t TestUpstream::connectionsAccepted() {
  size_t n = 0;
  runOnIo([&] { n = impl_->accepted; });
  return n;
}

size_t TestUpstream::handshakesRejected() {
  size_t n = 0;
  runOnIo([&] { n = impl_->rejected; });
  return n;
}

std::vector<std::map<std::string, std::string>> TestUpstream::handshakeRequests() {
  std::vector<std::map<std::string, std::string>> out;
  runOnIo([&] { out = impl_->handshakes; });
  return out;
}

std::vector<int> TestUpstream::closeCodesReceived() {
  std::vector<int> out;
  runOnIo([&] { out = impl_->close_codes; });
  return out;
}

size_t TestUpstream::pingsReceived() {
  size_t n = 0;
  runOnIo([&] { n = impl_->pings; });
  return n;
}

std::vector<std::string> TestUpstream::textsReceived() {
  std::vector<std::string> out;
  runOnIo([&] { out = impl_->texts; });
  return out;
}

// ---------------------------------------------------------------------------------------------
// PythonUpstream

namespace {

// Reads one '\n'-terminated line (without the '\n') from `fd` before `deadline`. False on EOF,
// error or timeout; `line` then holds what was read.
bool readLine(int fd, std::chrono::steady_clock::time_point deadline, std::string* line) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(left.count()) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    char c = 0;
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    if (c == '\n') return true;
    line->push_back(c);
  }
}

}  // namespace

std::string PythonUpstream::scriptPath(const std::string& script) {
  return std::string(WSVISOR_SOURCE_DIR) + "/tests/support/" + script;
}

PythonUpstream::PythonUpstream(const std::vector<std::string>& args,
                               std::chrono::milliseconds startup_timeout) {
  std::vector<std::string> all = {"--exit-on-stdin-eof"};
  all.insert(all.end(), args.begin(), args.end());
  start(kDefaultScript, all, startup_timeout);
}

PythonUpstream::PythonUpstream(const Script& script, const std::vector<std::string>& args,
                               std::chrono::milliseconds startup_timeout) {
  start(script.name, args, startup_timeout);
}

void PythonUpstream::start(const std::string& script, const std::vector<std::string>& args,
                           std::chrono::milliseconds startup_timeout) {
  // stdout is a pipe we read the PORT line from; stdin is a pipe whose write end only we hold,
  // so if this process dies (a crashed or timed-out test) the script sees EOF and exits instead
  // of serving forever.
  int out[2];
  int in[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  if (::pipe2(in, O_CLOEXEC) != 0) {
    const int err = errno;
    ::close(out[0]);
    ::close(out[1]);
    throw std::system_error(err, std::generic_category(), "pipe");
  }

  std::vector<std::string> argv_strings = {kPython, scriptPath(script)};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  // Inherit nothing else: no listening socket or connection of this test process.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);

  // Its own process group, so a terminal's Ctrl-C reaches only the test (which then stops it),
  // and so that, orphaned while stopped, it gets SIGHUP + SIGCONT from the kernel.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t no_signals;
  sigemptyset(&no_signals);
  sigset_t default_signals;
  sigemptyset(&default_signals);
  sigaddset(&default_signals, SIGTERM);
  sigaddset(&default_signals, SIGHUP);
  sigaddset(&default_signals, SIGINT);
  posix_spawnattr_setsigmask(&attr, &no_signals);
  posix_spawnattr_setsigdefault(&attr, &default_signals);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  const int rc = ::posix_spawn(&pid_, kPython, &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  ::close(in[0]);
  // The write end of stdin stays open, deliberately leaked into this process for the child's
  // lifetime; stop() closes it.
  stdin_fd_ = in[1];
  if (rc != 0) {
    pid_ = -1;
    ::close(out[0]);
    ::close(stdin_fd_);
    stdin_fd_ = -1;
    throw std::system_error(rc, std::generic_category(), std::string("posix_spawn ") + kPython);
  }

  std::string line;
  const bool got_line = readLine(out[0], std::chrono::steady_clock::now() + startup_timeout, &line);
  // The script prints nothing after the PORT line; closing our end is safe (Python ignores
  // SIGPIPE and would only get BrokenPipeError).
  ::close(out[0]);
  int port = 0;
  if (got_line && line.rfind("PORT ", 0) == 0) {
    try {
      port = std::stoi(line.substr(5));
    } catch (const std::exception&) {
      port = 0;
    }
  }
  if (port <= 0 || port > 65535) {
    stop(std::chrono::milliseconds(0));
    throw std::runtime_error(script + " did not report its port (read \"" + line +
                             "\"); is python3-websockets installed for " + kPython + "?");
  }
  port_ = static_cast<uint16_t>(port);
}

PythonUpstream::~PythonUpstream() { stop(); }

std::string PythonUpstream::url(const std::string& path) const {
  return "ws://127.0.0.1:" + std::to_string(port_) + path;
}

void PythonUpstream::pause() {
  if (pid_ < 0) return;
  ::kill(pid_, SIGSTOP);
  // Return only once it is stopped, so the test's next step meets a hung peer.
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, WUNTRACED);
  } while (r < 0 && errno == EINTR);
  if (r == pid_ && !WIFSTOPPED(status)) {  // it died instead
    exit_status_ = status;
    pid_ = -1;
    ::close(stdin_fd_);
    stdin_fd_ = -1;
  }
}

void PythonUpstream::sendLine(const std::string& line) {
  const std::string text = line + "\n";
  if (stdin_fd_ < 0 ||
      ::write(stdin_fd_, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    throw std::system_error(errno, std::generic_category(), "write to the upstream's stdin");
  }
}

void PythonUpstream::resume() {
  if (pid_ >= 0) ::kill(pid_, SIGCONT);
}

int PythonUpstream::stop(std::chrono::milliseconds grace) {
  if (pid_ < 0) return exit_status_;
  ::kill(pid_, SIGTERM);
  ::kill(pid_, SIGCONT);  // a stopped process handles SIGTERM only once continued
  const auto deadline = std::chrono::steady_clock::now() + grace;
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) break;
    if (r < 0 && errno != EINTR) break;  // not our child any more; nothing to reap
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::close(stdin_fd_);
  stdin_fd_ = -1;
  pid_ = -1;
  exit_status_ = status;
  return exit_status_;
}

}  // namespace wsvisor::testing
