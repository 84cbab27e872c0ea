#pragma once

// Real WebSocket upstreams for integration tests:
//  - TestUpstream: an in-process websocketpp server whose behaviour a test controls (answer pings
//    or not, echo, reject the handshake, close or drop every connection) and which records what
//    its clients did (handshake headers, pings, close codes, texts).
//  - PythonUpstream: a foreign upstream, tests/support/python_ws_upstream.py run by Debian's
//    python3-websockets in a child process that a test can pause (SIGSTOP) to make it hang.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace wsvisor::testing {

// A plain ws:// server on 127.0.0.1 with an ephemeral port and its own io thread.
//
// Threading: every public method may be called from any test thread. Setters and actions are
// posted to the io thread and return once they have run there, so a setting is in force for
// every frame processed after the call returns, and an action's frames are queued for sending by
// then. Queries are answered by the io thread too, so they see a consistent snapshot.
//
// Lifetime: the constructor binds and starts serving (throws std::runtime_error if it cannot
// bind); the destructor stops listening, drops every connection without a close frame (clients
// see an abnormal closure, 1006, as when an upstream process dies), and joins the io thread
// within a bounded time.
//
// Sockets are marked close-on-exec so a child process a test spawns (wsvisor, Python) does not
// inherit the listening socket and keep the port answering after this object is gone.
class TestUpstream {
 public:
  TestUpstream();
  ~TestUpstream();
  TestUpstream(const TestUpstream&) = delete;
  TestUpstream& operator=(const TestUpstream&) = delete;

  // The bound port, and "ws://127.0.0.1:PORT" + path (path should start with '/').
  uint16_t port() const { return port_; }
  std::string url(const std::string& path = "/") const;

  // Behaviour. Defaults: answer pings, echo text, accept handshakes, select no subprotocol.
  //
  // false: pings are counted but get no pong, while the connection stays open (a hung peer).
  void setAnswerPings(bool answer);
  // true: every text message is sent back unchanged (the reply a TEXT heartbeat expects).
  void setEchoText(bool echo);
  // 0 accepts; otherwise every opening handshake is answered with this HTTP status (100..511,
  // else std::invalid_argument) and no WebSocket connection is opened.
  void setRejectHandshake(int http_status);
  // true: accept the first Sec-WebSocket-Protocol the client offers (if it offers any).
  void setSelectSubprotocol(bool select);

  // Actions on every open connection.
  void sendToAll(const std::string& text);
  // Starts a close handshake with `code`; codes the client echoes back are not recorded in
  // closeCodesReceived().
  void closeAll(uint16_t code, const std::string& reason);
  // Shuts the TCP connection down without a close frame.
  void dropAll();

  // Observations.
  size_t openConnections();
  size_t tcpConnections();       // accepted TCP connections not yet closed, open or handshaking
  size_t connectionsAccepted();  // WebSocket connections ever opened
  size_t handshakesRejected();   // handshakes answered with setRejectHandshake()'s status
  // One map per accepted handshake, in order: request header names in lower case (values as
  // sent, including "sec-websocket-protocol" when offered), plus ":path" for the request target.
  std::vector<std::map<std::string, std::string>> handshakeRequests();
  // Close codes from close frames that clients started (e.g. 1000, 1001); 1005 if a client's
  // close frame carried no code. Connections that vanished without a close frame add nothing.
  std::vector<int> closeCodesReceived();
  size_t pingsReceived();
  std::vector<std::string> textsReceived();

 private:
  struct Impl;

  // Runs `work` on the io thread and waits for it (inline when already on the io thread).
  void runOnIo(const std::function<void()>& work);

  std::unique_ptr<Impl> impl_;  // owns the io_context, the server and the io thread
  uint16_t port_ = 0;
};

// tests/support/python_ws_upstream.py in a child process of /usr/bin/python3: binds 127.0.0.1 on
// an ephemeral port, answers pings by itself (python3-websockets does), echoes text, never pings
// us, and with `--send-every SECONDS` sends "tick" to every client periodically.
//
// The child inherits no descriptor but its stdin and stdout pipes, runs in its own process group,
// and exits when its stdin pipe reaches EOF, so a test process that crashes or is killed by the
// ctest timeout leaves no upstream behind (even a paused one: the kernel sends an orphaned,
// stopped process group SIGHUP and SIGCONT).
//
// Not thread-safe: one test thread owns it. The destructor stops the child (see stop()).
class PythonUpstream {
 public:
  static constexpr const char* kDefaultScript = "python_ws_upstream.py";
  // Another script of tests/support with the same contract (prints "PORT <n>", exits on EOF of
  // its stdin): python_tls_upstream.py, python_raw_ws_upstream.py.
  struct Script {
    std::string name;
  };

  // Starts the script with `args` appended (e.g. {"--send-every", "0.1"}) and waits up to
  // `startup_timeout` for its "PORT <n>" line. Throws std::runtime_error (after killing and
  // reaping the child) if it cannot start or does not report a port in time.
  explicit PythonUpstream(const std::vector<std::string>& args = {},
                          std::chrono::milliseconds startup_timeout = std::chrono::seconds(10));
  // Runs `script` with exactly `args`.
  PythonUpstream(const Script& script, const std::vector<std::string>& args,
                 std::chrono::milliseconds startup_timeout = std::chrono::seconds(15));
  ~PythonUpstream();
  PythonUpstream(const PythonUpstream&) = delete;
  PythonUpstream& operator=(const PythonUpstream&) = delete;

  uint16_t port() const { return port_; }
  std::string url(const std::string& path = "/") const;
  pid_t pid() const { return pid_; }

  // SIGSTOP: the process stops reading, answering pings and closing, while the kernel keeps its
  // TCP connections up and still completes TCP handshakes on the listening port (a hung upstream).
  void pause();
  // SIGCONT.
  void resume();
  // Writes `line` and a newline to the script's stdin (python_raw_ws_upstream.py starts
  // misbehaving on "go").
  void sendLine(const std::string& line);

  // Sends SIGTERM (and SIGCONT, so a paused child can act on it), waits up to `grace` for a clean
  // exit, then SIGKILLs. Reaps the child and returns its waitpid() status; later calls return
  // the same status. The script exits 0 on SIGTERM.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

  // Absolute path of a script of tests/support (from the WSVISOR_SOURCE_DIR compile definition).
  static std::string scriptPath(const std::string& script = kDefaultScript);

 private:
  void start(const std::string& script, const std::vector<std::string>& args,
             std::chrono::milliseconds startup_timeout);

  pid_t pid_ = -1;
  int stdin_fd_ = -1;  // write end of the child's stdin; closing it (or dying) makes it exit
  uint16_t port_ = 0;
  int exit_status_ = -1;
};

}  // namespace wsvisor::testing
