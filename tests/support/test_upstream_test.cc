// Proves the test upstreams with a real websocketpp client: what the server answers, what it
// records, and that the Python upstream answers pings until it is paused.

#include "tests/support/test_upstream.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_no_tls_client.hpp>

#include "tests/support/wait.h"

namespace wsvisor::testing {
namespace {

using std::chrono::milliseconds;
using Client = websocketpp::client<websocketpp::config::asio_client>;

constexpr milliseconds kEventually{5000};  // generous bound for things that must happen
constexpr milliseconds kSilence{300};      // how long "nothing happens" is watched

// A websocketpp client with its own io thread, one connection at a time. Actions are posted to
// the io thread; what the connection saw is recorded under a mutex for the test thread to read.
class TestClient {
 public:
  struct Observed {
    bool open = false;
    bool failed = false;
    bool closed = false;
    int fail_http_status = 0;  // response status of a failed handshake
    int remote_close_code = 0;
    std::string remote_close_reason;
    std::string subprotocol;  // the server's Sec-WebSocket-Protocol answer
    int pongs = 0;
    std::vector<std::string> texts;
  };

  TestClient() {
    client_.clear_access_channels(websocketpp::log::alevel::all);
    client_.clear_error_channels(websocketpp::log::elevel::all);
    client_.init_asio(&io_);
    client_.set_open_handler([this](websocketpp::connection_hdl hdl) {
      std::error_code ec;
      Client::connection_ptr con = client_.get_con_from_hdl(hdl, ec);
      std::lock_guard<std::mutex> lock(mu_);
      observed_.open = true;
      // A websocketpp client never fills get_subprotocol(); the answer is only in the response.
      if (con) observed_.subprotocol = con->get_response_header("Sec-WebSocket-Protocol");
    });
    client_.set_fail_handler([this](websocketpp::connection_hdl hdl) {
      std::error_code ec;
      Client::connection_ptr con = client_.get_con_from_hdl(hdl, ec);
      std::lock_guard<std::mutex> lock(mu_);
      observed_.failed = true;
      if (con) observed_.fail_http_status = con->get_response_code();
    });
    client_.set_close_handler([this](websocketpp::connection_hdl hdl) {
      std::error_code ec;
      Client::connection_ptr con = client_.get_con_from_hdl(hdl, ec);
      std::lock_guard<std::mutex> lock(mu_);
      observed_.closed = true;
      if (con) {
        observed_.remote_close_code = con->get_remote_close_code();
        observed_.remote_close_reason = con->get_remote_close_reason();
      }
    });
    client_.set_pong_handler([this](websocketpp::connection_hdl, std::string) {
      std::lock_guard<std::mutex> lock(mu_);
      ++observed_.pongs;
    });
    client_.set_message_handler([this](websocketpp::connection_hdl, Client::message_ptr msg) {
      std::lock_guard<std::mutex> lock(mu_);
      observed_.texts.push_back(msg->get_payload());
    });
    thread_ = std::thread([this] {
      io_.run();
      run_returned_.set_value();
    });
  }

  ~TestClient() {
    std::future<void> run_returned = run_returned_.get_future();
    asio::post(io_, [this] {
      std::error_code ec;
      if (Client::connection_ptr con = client_.get_con_from_hdl(hdl_, ec)) {
        con->terminate(std::error_code());
      }
    });
    work_.reset();
    if (run_returned.wait_for(std::chrono::seconds(2)) != std::future_status::ready) io_.stop();
    thread_.join();
  }

  void connect(const std::string& url, const std::vector<std::string>& subprotocols = {},
               const std::map<std::string, std::string>& headers = {}) {
    runOnIo([&] {
      std::error_code ec;
      Client::connection_ptr con = client_.get_connection(url, ec);
      ASSERT_FALSE(ec) << ec.message();
      for (const std::string& protocol : subprotocols) con->add_subprotocol(protocol);
      for (const auto& [name, value] : headers) con->append_header(name, value);
      hdl_ = con->get_handle();
      client_.connect(con);
    });
  }

  void ping(const std::string& payload) {
    runOnIo([&] {
      std::error_code ec;
      client_.ping(hdl_, payload, ec);
      EXPECT_FALSE(ec) << ec.message();
    });
  }

  void send(const std::string& text) {
    runOnIo([&] {
      std::error_code ec;
      client_.send(hdl_, text, websocketpp::frame::opcode::text, ec);
      EXPECT_FALSE(ec) << ec.message();
    });
  }

  void close(uint16_t code) {
    runOnIo([&] {
      std::error_code ec;
      client_.close(hdl_, code, "", ec);
      EXPECT_FALSE(ec) << ec.message();
    });
  }

  Observed observed() {
    std::lock_guard<std::mutex> lock(mu_);
    return observed_;
  }

  bool waitOpen() {
    return waitUntil([this] { return observed().open; }, kEventually);
  }

 private:
  void runOnIo(const std::function<void()>& work) {
    std::promise<void> done;
    asio::post(io_, [&] {
      work();
      done.set_value();
    });
    done.get_future().wait();
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  Client client_;
  websocketpp::connection_hdl hdl_;  // io thread only
  std::mutex mu_;
  Observed observed_;  // guarded by mu_
  std::promise<void> run_returned_;
  std::thread thread_;  // last: starts after every other member exists
};

TEST(TestUpstreamTest, AnswersPingWithPong) {
  TestUpstream upstream;
  TestClient client;
  client.connect(upstream.url());
  ASSERT_TRUE(client.waitOpen());

  client.ping("p1");
  EXPECT_TRUE(waitUntil([&] { return client.observed().pongs == 1; }, kEventually));
  EXPECT_EQ(upstream.pingsReceived(), 1u);
  EXPECT_EQ(upstream.openConnections(), 1u);
  EXPECT_EQ(upstream.connectionsAccepted(), 1u);
}

TEST(TestUpstreamTest, HungPeerCountsPingsButSendsNoPong) {
  TestUpstream upstream;
  upstream.setAnswerPings(false);
  TestClient client;
  client.connect(upstream.url());
  ASSERT_TRUE(client.waitOpen());

  client.ping("p1");
  EXPECT_TRUE(waitUntil([&] { return upstream.pingsReceived() == 1; }, kEventually));
  EXPECT_FALSE(waitUntil([&] { return client.observed().pongs > 0; }, kSilence));
  EXPECT_EQ(upstream.openConnections(), 1u);
  EXPECT_FALSE(client.observed().closed);

  // The same connection answers again once the peer "recovers".
  upstream.setAnswerPings(true);
  client.ping("p2");
  EXPECT_TRUE(waitUntil([&] { return client.observed().pongs == 1; }, kEventually));
}

TEST(TestUpstreamTest, EchoesTextAndRecordsIt) {
  TestUpstream upstream;
  TestClient client;
  client.connect(upstream.url());
  ASSERT_TRUE(client.waitOpen());

  client.send("heartbeat");
  ASSERT_TRUE(waitUntil([&] { return client.observed().texts.size() == 1; }, kEventually));
  EXPECT_EQ(client.observed().texts[0], "heartbeat");

  upstream.setEchoText(false);
  client.send("unanswered");
  EXPECT_TRUE(waitUntil([&] { return upstream.textsReceived().size() == 2; }, kEventually));
  EXPECT_FALSE(waitUntil([&] { return client.observed().texts.size() > 1; }, kSilence));
  EXPECT_EQ(upstream.textsReceived(), (std::vector<std::string>{"heartbeat", "unanswered"}));
}

TEST(TestUpstreamTest, SendsToEveryClient) {
  TestUpstream upstream;
  TestClient first;
  TestClient second;
  first.connect(upstream.url());
  second.connect(upstream.url());
  ASSERT_TRUE(first.waitOpen());
  ASSERT_TRUE(second.waitOpen());
  ASSERT_TRUE(waitUntil([&] { return upstream.openConnections() == 2; }, kEventually));

  upstream.sendToAll("tick");
  for (TestClient* client : {&first, &second}) {
    EXPECT_TRUE(waitUntil(
        [&] { return client->observed().texts == std::vector<std::string>{"tick"}; }, kEventually));
  }
}

TEST(TestUpstreamTest, RejectsHandshakeWithChosenStatus) {
  TestUpstream upstream;
  upstream.setRejectHandshake(403);
  TestClient client;
  client.connect(upstream.url());

  ASSERT_TRUE(waitUntil([&] { return client.observed().failed; }, kEventually));
  EXPECT_EQ(client.observed().fail_http_status, 403);
  EXPECT_FALSE(client.observed().open);
  EXPECT_EQ(upstream.handshakesRejected(), 1u);
  EXPECT_EQ(upstream.connectionsAccepted(), 0u);
  EXPECT_EQ(upstream.openConnections(), 0u);
}

TEST(TestUpstreamTest, RejectsOutOfRangeStatus) {
  TestUpstream upstream;
  EXPECT_THROW(upstream.setRejectHandshake(99), std::invalid_argument);
  EXPECT_THROW(upstream.setRejectHandshake(600), std::invalid_argument);
}

TEST(TestUpstreamTest, CloseAllReachesClientAndIsNotCountedAsClientClose) {
  TestUpstream upstream;
  TestClient client;
  client.connect(upstream.url());
  ASSERT_TRUE(client.waitOpen());
  // The client can see the connection open before the upstream does: the 101 reply reaches the
  // client before the upstream's write of it has completed. closeAll() and dropAll() act on
  // connections the upstream considers open.
  ASSERT_TRUE(waitUntil([&] { return upstream.openConnections() == 1; }, kEventually));

  upstream.closeAll(4000, "bye");
  ASSERT_TRUE(waitUntil([&] { return client.observed().closed; }, kEventually));
  EXPECT_EQ(client.observed().remote_close_code, 4000);
  EXPECT_EQ(client.observed().remote_close_reason, "bye");
  EXPECT_TRUE(waitUntil([&] { return upstream.openConnections() == 0; }, kEventually));
  EXPECT_TRUE(upstream.closeCodesReceived().empty());  // the client's echo of 4000 is not counted
}

TEST(TestUpstreamTest, RecordsCloseCodesSentByClients) {
  TestUpstream upstream;
  TestClient client;
  client.connect(upstream.url());
  ASSERT_TRUE(client.waitOpen());

  client.close(1001);
  EXPECT_TRUE(waitUntil([&] { return upstream.closeCodesReceived() == std::vector<int>{1001}; },
                        kEventually));
  EXPECT_TRUE(waitUntil([&] { return client.observed().closed; }, kEventually));
  EXPECT_EQ(upstream.openConnections(), 0u);
}

TEST(TestUpstreamTest, DropAllEndsConnectionWithoutCloseFrame) {
  TestUpstream upstream;
  TestClient client;
  client.connect(upstream.url());
  ASSERT_TRUE(client.waitOpen());
  ASSERT_TRUE(waitUntil([&] { return upstream.openConnections() == 1; }, kEventually));  // as above

  upstream.dropAll();
  ASSERT_TRUE(waitUntil([&] { return client.observed().closed; }, kEventually));
  EXPECT_EQ(client.observed().remote_close_code, 1006);  // websocketpp: no close frame received
  EXPECT_EQ(upstream.openConnections(), 0u);
  EXPECT_TRUE(upstream.closeCodesReceived().empty());
}

TEST(TestUpstreamTest, RecordsHandshakeHeadersAndSelectsSubprotocol) {
  TestUpstream upstream;
  upstream.setSelectSubprotocol(true);
  TestClient client;
  client.connect(upstream.url("/feed?x=1"), {"wsvisor.v1", "other"}, {{"X-Test", "yes"}});
  ASSERT_TRUE(client.waitOpen());
  // The server records the handshake in its open handler, which may run just after the client
  // has already seen the 101 response.
  ASSERT_TRUE(waitUntil([&] { return !upstream.handshakeRequests().empty(); }, kEventually));

  const std::vector<std::map<std::string, std::string>> requests = upstream.handshakeRequests();
  ASSERT_EQ(requests.size(), 1u);
  const std::map<std::string, std::string>& headers = requests[0];
  EXPECT_EQ(headers.at(":path"), "/feed?x=1");
  EXPECT_EQ(headers.at("x-test"), "yes");
  EXPECT_EQ(headers.at("sec-websocket-protocol"), "wsvisor.v1, other");
  EXPECT_EQ(headers.at("host"), "127.0.0.1:" + std::to_string(upstream.port()));
  EXPECT_EQ(client.observed().subprotocol, "wsvisor.v1");
}

TEST(TestUpstreamTest, DestructionDropsClientsPromptly) {
  TestClient client;
  const auto start = std::chrono::steady_clock::now();
  {
    TestUpstream upstream;
    client.connect(upstream.url());
    ASSERT_TRUE(client.waitOpen());
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_TRUE(waitUntil([&] { return client.observed().closed; }, kEventually));
  EXPECT_EQ(client.observed().remote_close_code, 1006);
}

TEST(TestUpstreamTest, DestructionIsPromptWithAHandshakeInProgress) {
  // A TCP client that never sends its opening handshake: websocketpp would wait 5 s for it.
  int fd = -1;
  std::chrono::steady_clock::time_point start;
  {
    TestUpstream upstream;
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(upstream.port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_TRUE(waitUntil([&] { return upstream.tcpConnections() == 1; }, kEventually));
    EXPECT_EQ(upstream.openConnections(), 0u);
    start = std::chrono::steady_clock::now();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  ::close(fd);
}

TEST(TestUpstreamTest, LeavesNoFileDescriptorsOpen) {
  auto open_fds = [] {
    return std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                         std::filesystem::directory_iterator());
  };
  const auto before = open_fds();
  {
    TestUpstream upstream;
    PythonUpstream python;
    TestClient client;
    client.connect(upstream.url());
    ASSERT_TRUE(client.waitOpen());
    TestClient python_client;
    python_client.connect(python.url());
    ASSERT_TRUE(python_client.waitOpen());
  }
  EXPECT_EQ(open_fds(), before);
}

TEST(TestUpstreamTest, PortIsFreeAfterDestruction) {
  uint16_t port = 0;
  {
    TestUpstream upstream;
    port = upstream.port();
    ASSERT_NE(port, 0);
  }
  TestClient client;
  client.connect("ws://127.0.0.1:" + std::to_string(port) + "/");
  EXPECT_TRUE(waitUntil([&] { return client.observed().failed; }, kEventually));
}

TEST(PythonUpstreamTest, AnswersPingsUntilPaused) {
  PythonUpstream upstream;
  ASSERT_NE(upstream.port(), 0);
  TestClient client;
  client.connect(upstream.url());
  ASSERT_TRUE(client.waitOpen());

  client.ping("p1");
  EXPECT_TRUE(waitUntil([&] { return client.observed().pongs == 1; }, kEventually));
  client.send("hello");
  EXPECT_TRUE(waitUntil(
      [&] { return client.observed().texts == std::vector<std::string>{"hello"}; }, kEventually));

  upstream.pause();
  client.ping("p2");
  EXPECT_FALSE(waitUntil([&] { return client.observed().pongs > 1; }, kSilence));
  EXPECT_FALSE(client.observed().closed);

  upstream.resume();
  EXPECT_TRUE(waitUntil([&] { return client.observed().pongs == 2; }, kEventually));

  const int status = upstream.stop();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(waitUntil([&] { return client.observed().closed; }, kEventually));
  EXPECT_EQ(client.observed().remote_close_code, 1001);
}

TEST(PythonUpstreamTest, SendsTicksWhenAsked) {
  PythonUpstream upstream({"--send-every", "0.05"});
  TestClient client;
  client.connect(upstream.url());
  ASSERT_TRUE(client.waitOpen());
  EXPECT_TRUE(waitUntil([&] { return client.observed().texts.size() >= 2; }, kEventually));
  EXPECT_EQ(client.observed().texts[0], "tick");
}

TEST(PythonUpstreamTest, StopsWhilePaused) {
  PythonUpstream upstream;
  upstream.pause();
  const int status = upstream.stop();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace wsvisor::testing
