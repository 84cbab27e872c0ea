#pragma once

#include <asio/io_context.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <websocketpp/common/connection_hdl.hpp>

#include "supervisor/core/endpoint_spec.h"
#include "supervisor/core/session_event.h"

namespace wsvisor {

// One connection made by WebSocketTransport. Holds no ownership: websocketpp owns a connection
// until it opens (a TLS one for good), an OpenConnection owns an open plain one, and a handle to a
// finished connection simply stops resolving.
struct ConnectionRef {
  enum class Holder : uint8_t {
    kWebsocketpp,     // a plain connection websocketpp holds (not open yet, or never taken over)
    kWebsocketppTls,  // a TLS connection: websocketpp holds it all its life
    kOpenConnection,  // an open plain connection (supervisor/open_connection.h)
  };
  websocketpp::connection_hdl handle;
  Holder holder = Holder::kWebsocketpp;
  bool valid() const { return !handle.expired(); }
};

// The thin layer between websocketpp and the Session state machine of one io thread. It turns
// actions into websocketpp calls and websocketpp callbacks into core events; it decides nothing.
// websocketpp makes every connection and runs its opening handshake; an open ws:// connection is
// then taken over by an OpenConnection (supervisor/open_connection.h), which decodes with
// websocketpp's frame processor and reports the same events, failures and close codes.
//
// Threading: every method, and every callback it makes, runs on the thread that runs `io`. With
// one thread per io_context, websocketpp's per-connection strands are trivially respected.
//
// Timeouts: websocketpp's own DNS, connect, TLS and handshake timers are pushed beyond the longest
// allowed connect timeout and its pong timer is never armed; the Session's single timer decides
// (websocketpp issues #773, #807, #844 describe what its timers get wrong).
class WebSocketTransport {
 public:
  // Receives every event of every connection, tagged with the caller's key and attempt number so
  // that events of abandoned attempts can be told apart.
  // `ref` identifies the connection the event came from (so that a stale one can be closed).
  using EventSink = std::function<void(uint64_t key, uint64_t attempt, const ConnectionRef& ref,
                                       const core::SessionEvent& event)>;

  WebSocketTransport(asio::io_context& io, EventSink sink);
  ~WebSocketTransport();
  WebSocketTransport(const WebSocketTransport&) = delete;
  WebSocketTransport& operator=(const WebSocketTransport&) = delete;

  // Starts a connection attempt to `spec.url`. Failures that happen before any I/O (a TLS file
  // that cannot be read, a URL websocketpp refuses) are reported through the sink on a later turn
  // of the loop, never from inside this call. The reference returned names the attempt until it
  // opens: an open plain connection changes holders (ConnectionRef::Holder), so the reference
  // that Connected carries is the one to use from then on.
  ConnectionRef connect(uint64_t key, uint64_t attempt, const core::EndpointSpec& spec);

  void sendPing(const ConnectionRef& ref, const std::string& payload);
  void sendText(const ConnectionRef& ref, const std::string& payload);
  // True when bytes have arrived on the connection's socket that nobody has read yet (one
  // FIONREAD): the event loop is behind, and an answer may be waiting in our own buffer.
  bool hasUnreadInput(const ConnectionRef& ref);
  // Sends a close frame; websocketpp finishes the closing handshake (bounded by its close
  // timeout) on its own. No-op when the connection is not open.
  void close(const ConnectionRef& ref, int code, const std::string& reason);
  // Drops a connection in any state without waiting for anything.
  void abandon(const ConnectionRef& ref);
  // Connections not yet fully closed.
  size_t liveConnections() const;

  // Pongs and text messages that open plain connections took straight from their reads rather
  // than through websocketpp's frame processor (supervisor/open_connection.h), since
  // construction.
  uint64_t pongsTakenFromReadsForTest() const;
  uint64_t textsTakenFromReadsForTest() const;
  // Texts that open plain connections built and sent without websocketpp's processor.
  uint64_t textsSentDirectlyForTest() const;
  // Pings that open plain connections wrote with a send of their own, and how many of those one
  // send could not take whole.
  uint64_t pingsSentDirectlyForTest() const;
  uint64_t pingsFinishedLaterForTest() const;

  // Leaves every connection started after this call with websocketpp for its whole life, as
  // before OpenConnection existed: a test then compares the two, event for event.
  void keepOpenConnectionsWithWebsocketppForTest();

  // Runs `hook` with the socket of every connection started after this call, on the io thread,
  // once its TCP (and TLS) set-up is done and just before the opening handshake request is
  // written, so that a test can make something happen to the connection at that moment.
  void setBeforeHandshakeWriteForTest(std::function<void(int socket_fd)> hook);

 private:
  struct Clients;
  std::unique_ptr<Clients> clients_;
};

}  // namespace wsvisor
