// The reference fleet: a stock websocketpp server (config::asio, log channels cleared) per
// listening address, all on one io_context run by one thread. Kept to measure what the lean
// epoll fleet saves (bench/README.md, "history").
#include <asio/posix/stream_descriptor.hpp>
#include <map>
#include <random>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include "fleet.h"

namespace fleet {

namespace {

using Server = websocketpp::server<websocketpp::config::asio>;

class WebsocketppFleet : public Fleet {
 public:
  explicit WebsocketppFleet(const Options& options) : options_(options), rng_(options.seed) {}

  bool start(std::string& error) override {
    for (const auto& addr : options_.listen) {
      auto server = std::make_unique<Server>();
      Server& s = *server;
      s.clear_access_channels(websocketpp::log::alevel::all);
      s.clear_error_channels(websocketpp::log::elevel::all);
      s.init_asio(&io_);
      s.set_reuse_addr(true);
      s.set_listen_backlog(4096);
      s.set_open_handler([this, &s](websocketpp::connection_hdl hdl) {
        auto con = s.get_con_from_hdl(hdl);
        std::string id = con->get_resource();
        if (!id.empty() && id[0] == '/') id.erase(0, 1);
        conns_[hdl] = Info{&s, std::move(id), false};
        ++counters_.handshakes;
      });
      auto gone = [this](websocketpp::connection_hdl hdl) {
        auto it = conns_.find(hdl);
        if (it != conns_.end()) {
          if (it->second.stalled) --stalled_;
          conns_.erase(it);
        }
        ++counters_.closed;
      };
      s.set_close_handler(gone);
      s.set_fail_handler(gone);
      s.set_ping_handler([this](websocketpp::connection_hdl hdl, std::string) {
        ++counters_.pings;
        auto it = conns_.find(hdl);
        if (it != conns_.end() && it->second.stalled) return false;
        ++counters_.pongs;
        return true;  // websocketpp answers with a pong
      });
      s.set_message_handler([this, &s](websocketpp::connection_hdl hdl, Server::message_ptr msg) {
        ++counters_.messages;
        std::error_code ec;
        s.send(hdl, msg->get_payload(), msg->get_opcode(), ec);
      });
      std::error_code ec;
      asio::ip::tcp::endpoint ep(asio::ip::make_address(addr.host, ec), addr.port);
      if (!ec) s.listen(ep, ec);
      if (ec) {
        error =
            "cannot listen on " + addr.host + ":" + std::to_string(addr.port) + ": " + ec.message();
        return false;
      }
      s.start_accept(ec);
      asio::ip::tcp::endpoint local = s.get_local_endpoint(ec);
      bound_.push_back(addr.host + ":" + std::to_string(local.port()));
      servers_.push_back(std::move(server));
    }
    return true;
  }

  std::vector<std::string> boundAddresses() const override { return bound_; }

  void run(int control_fd, Control& control) override {
    asio::posix::stream_descriptor input(io_, ::dup(control_fd));
    std::function<void()> wait_input = [&] {
      input.async_wait(asio::posix::stream_descriptor::wait_read, [&](const std::error_code& ec) {
        if (ec) return;
        control.onReadable(*this);
        if (control.stopRequested()) {
          io_.stop();
          return;
        }
        wait_input();
      });
    };
    wait_input();
    io_.run();
  }

  Stats stats() const override {
    Stats s = counters_;
    s.open = conns_.size();
    s.stalled = stalled_;
    s.accepted = counters_.handshakes;
    return s;
  }

  std::vector<std::string> stall(const std::string& prefix, size_t count) override {
    std::vector<std::map<websocketpp::connection_hdl, Info>::iterator> candidates;
    for (auto it = conns_.begin(); it != conns_.end(); ++it) {
      if (!it->second.stalled && it->second.id.compare(0, prefix.size(), prefix) == 0) {
        candidates.push_back(it);
      }
    }
    std::shuffle(candidates.begin(), candidates.end(), rng_);
    if (candidates.size() > count) candidates.resize(count);
    std::vector<std::string> ids;
    for (auto it : candidates) {
      it->second.stalled = true;
      ++stalled_;
      // Pings are read but not answered (the ping handler returns false). websocketpp's
      // pause_reading() is not used: in 0.8.2 the client then saw the connection drop.
      ids.push_back(it->second.id);
    }
    return ids;
  }

 private:
  struct Info {
    Server* server;
    std::string id;
    bool stalled;
  };

  const Options options_;
  std::mt19937_64 rng_;
  asio::io_context io_;
  std::vector<std::unique_ptr<Server>> servers_;
  std::vector<std::string> bound_;
  std::map<websocketpp::connection_hdl, Info, std::owner_less<websocketpp::connection_hdl>> conns_;
  size_t stalled_ = 0;
  Stats counters_;
};

}  // namespace

std::unique_ptr<Fleet> makeWebsocketppFleet(const Options& options) {
  return std::make_unique<WebsocketppFleet>(options);
}

}  // namespace fleet
