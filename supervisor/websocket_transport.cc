#include "supervisor/websocket_transport.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <asio/ssl.hpp>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <websocketpp/client.hpp>

#include "supervisor/core/websocket_url.h"
#include "supervisor/open_connection.h"
#include "supervisor/tls_contexts.h"
#include "supervisor/websocket_client_config.h"

namespace wsvisor {

namespace {

// websocketpp's _htonll (every frame header with an extended length, pings and pongs included)
// detects the byte order on first use into a function-local static, without synchronisation:
// first used by two io threads at once, that is a data race. Detecting it here, during static
// initialisation and so before any thread exists, leaves the threads only reading it.
[[maybe_unused]] const uint64_t kByteOrderDetected = websocketpp::lib::net::_htonll(1);

using PlainClient = websocketpp::client<PlainClientConfig>;
using TlsClient = websocketpp::client<TlsClientConfig>;
using Holder = ConnectionRef::Holder;
using SslContextPtr = std::shared_ptr<asio::ssl::context>;

template <typename Client>
void configureClient(Client& client, asio::io_context& io) {
  // Our own log lines say what matters; websocketpp's would print every connect and close.
  client.clear_access_channels(websocketpp::log::alevel::all);
  client.clear_error_channels(websocketpp::log::elevel::all);
  client.init_asio(&io);
}

bool isDnsError(const std::error_code& ec) {
  return ec.category() == asio::error::get_netdb_category() ||
         ec.category() == asio::error::get_addrinfo_category();
}

bool isIpLiteral(const std::string& host) {
  asio::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// The host of a ws:// or wss:// URL that has passed validation, without brackets.
std::string hostOf(const std::string& url) {
  std::string error;
  const auto parsed = core::parseWebSocketUrl(url, error);
  return parsed ? parsed->host : std::string();
}

// Makes OpenSSL check the peer certificate against `name` during the handshake, so that a
// mismatch fails verification with its own reason ("hostname mismatch", "IP address mismatch")
// instead of asio's opaque verify callback.
void expectPeerName(SSL* ssl, const std::string& name) {
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (isIpLiteral(name)) {
    X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
  } else {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set1_host(ssl, name.c_str());
  }
}

// Why a connection attempt failed, from what websocketpp recorded on the connection.
template <typename Connection>
core::Failure classifyConnectFailure(Connection& con, bool secure, const std::string& verify_name) {
  using core::Failure;
  using core::FailureReason;
  const int status = static_cast<int>(con.get_response_code());
  if (status != 0 && status != 101) {
    std::string detail = "HTTP " + std::to_string(status);
    if (!con.get_response_msg().empty()) detail += " " + con.get_response_msg();
    return Failure::make(FailureReason::kHandshakeRejected, detail, status);
  }
  // websocketpp keeps the error that ended the attempt in get_ec() (asio errors pass through
  // unchanged); get_transport_ec() may hold a later, secondary error (EBADF after a failed
  // resolve), so it is consulted second.
  const std::error_code ec = con.get_ec();
  const std::error_code tec = con.get_transport_ec();
  for (const std::error_code& cause : {ec, tec}) {
    if (cause == asio::error::connection_refused) {
      return Failure::make(FailureReason::kConnectionRefused, "connection refused");
    }
    if (isDnsError(cause)) return Failure::make(FailureReason::kDns, cause.message());
  }
  if (secure) {
    if constexpr (std::is_same_v<Connection, TlsClient::connection_type>) {
      const long verify = SSL_get_verify_result(con.get_socket().native_handle());
      if (verify != X509_V_OK) {
        std::string detail = std::string("certificate verification failed: ") +
                             X509_verify_cert_error_string(verify);
        if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
          detail += " (the certificate does not name " + verify_name + ")";
        }
        return Failure::make(FailureReason::kTls, detail);
      }
    }
    // The handshake failed in OpenSSL (the alert the peer sent, e.g. "certificate required", is
    // in one of the two codes), or the peer cut the TLS stream without an alert (asio's
    // stream_truncated), which is how some servers refuse a missing client certificate.
    std::string tls_detail;
    for (const std::error_code& cause : {ec, tec}) {
      if (cause.category() == asio::error::get_ssl_category() ||
          cause.category() == asio::ssl::error::get_stream_category()) {
        // websocketpp often records the same error in both codes: say it once, so that
        // every retry reports the same detail.
        if (tls_detail == cause.message()) continue;
        tls_detail += (tls_detail.empty() ? "" : "; ") + cause.message();
      }
    }
    if (!tls_detail.empty()) {
      return Failure::make(FailureReason::kTls, "TLS handshake failed: " + tls_detail);
    }
    if (ec.category() == websocketpp::transport::asio::socket::get_socket_category()) {
      return Failure::make(FailureReason::kTls, ec.message() + (tec ? ": " + tec.message() : ""));
    }
  }
  // Sending the handshake request failed (a reset that landed before or while it was written):
  // websocketpp reports that only as pass_through, "Underlying Transport Error".
  if (const std::error_code& write_error = con.handshakeWriteError()) {
    return Failure::make(FailureReason::kNetworkError,
                         "writing the opening handshake failed: " + write_error.message());
  }
  return Failure::make(FailureReason::kNetworkError, ec ? ec.message() : tec.message());
}

// Why an open connection ended (a websocketpp connection or an OpenConnection: the same
// accessors, the same meaning). The transport never closes a connection the session still
// considers current, so every close seen here came from the peer or from a protocol violation
// that websocketpp's processor found (its close reason is then that error's message).
template <typename Connection>
core::Failure classifyClose(Connection& con) {
  using core::Failure;
  using core::FailureReason;
  namespace status = websocketpp::close::status;
  const auto local = con.get_local_close_code();
  const std::string& local_reason = con.get_local_close_reason();
  const auto processor_message = [](websocketpp::processor::error::processor_errors e) {
    return websocketpp::processor::error::make_error_code(e).message();
  };
  if (local == status::message_too_big &&
      local_reason == processor_message(websocketpp::processor::error::message_too_big)) {
    return Failure::make(FailureReason::kMessageTooBig,
                         "message larger than max_message_bytes; closed with 1009", 0, local);
  }
  if ((local == status::protocol_error || local == status::invalid_payload) &&
      local_reason != con.get_remote_close_reason()) {
    return Failure::make(FailureReason::kNetworkError, "protocol error: " + local_reason, 0, local);
  }
  const auto remote = con.get_remote_close_code();
  if (remote == status::no_status || remote == status::abnormal_close) {
    const std::error_code tec = con.get_transport_ec();
    std::string detail = "connection ended without a close frame";
    if (tec) detail += ": " + tec.message();
    return Failure::make(FailureReason::kClosedByPeer, detail, 0, status::abnormal_close);
  }
  std::string detail = "close code " + std::to_string(remote);
  if (!con.get_remote_close_reason().empty()) detail += ": " + con.get_remote_close_reason();
  return Failure::make(FailureReason::kClosedByPeer, detail, 0, remote);
}

// websocketpp keeps a connection's handshake request and response (header maps and strings,
// ~1 KiB per connection) for the connection's whole life, although a client connection reads
// them only until it opens: to validate the response and log the result, both before the open
// handler runs. After that only the accessors would (we call get_response_code() and
// get_response_msg() for failed attempts, which never opened). websocketpp has no call to drop
// them, and its accessors are const views of members that are not const, so they are swapped
// with empty ones through those views (swapped, not assigned: a string assigned an empty one
// keeps its buffer). The handshake text it sent (its own member) stays.
template <typename Connection>
void releaseHandshake(Connection& con) {
  using Request = typename Connection::request_type;
  using Response = typename Connection::response_type;
  static_assert(std::is_same_v<Request, websocketpp::http::parser::request> &&
                    std::is_same_v<Response, websocketpp::http::parser::response>,
                "checked against websocketpp's own HTTP parser only");
  Request request;
  Response response;
  std::swap(const_cast<Request&>(con.get_request()), request);
  std::swap(const_cast<Response&>(con.get_response()), response);
}

}  // namespace

struct WebSocketTransport::Clients {
  asio::io_context& io;
  EventSink sink;
  PlainClient plain;
  TlsClient tls;
  // Connections not yet fully closed. A websocketpp connection's entry leaves when its fail or
  // close handler runs, when it is taken over (the OpenConnection's entry replaces it), or when we
  // drop a connection that is not open yet: websocketpp calls neither handler for an attempt
  // whose socket was closed under it (its resolve and connect handlers return early on
  // operation_aborted). An OpenConnection's leaves when it ends or its socket is dropped.
  std::unordered_set<const void*> live;
  TlsContexts tls_contexts;
  std::function<void(int)> before_handshake_write_for_test;
  bool take_over_open_connections = true;
  // The open plain connections of this io thread (their reads' readiness is the io_context's own
  // poller: it outlives them).
  OpenConnections open_connections;

  Clients(asio::io_context& io_context, EventSink event_sink)
      : io(io_context),
        sink(std::move(event_sink)),
        open_connections(asio::use_service<ReadinessPoller>(io_context),
                         OpenConnections::Events{&Clients::onOpenPong, &Clients::onOpenMessage,
                                                 &Clients::onOpenClosed, this}) {
    configureClient(plain, io);
    configureClient(tls, io);
  }

  // An OpenConnection's events: what websocketpp's handlers below report for its connections.
  static ConnectionRef refTo(OpenConnection& con) {
    return ConnectionRef{con.weak_from_this(), Holder::kOpenConnection};
  }
  static void onOpenPong(void* context, OpenConnection& con, std::string_view payload) {
    static_cast<Clients*>(context)->sink(con.key(), con.attempt(), refTo(con),
                                         core::event::PongReceived{payload});
  }
  static void onOpenMessage(void* context, OpenConnection& con, std::string_view payload) {
    static_cast<Clients*>(context)->sink(con.key(), con.attempt(), refTo(con),
                                         core::event::MessageReceived{payload});
  }
  static void onOpenClosed(void* context, OpenConnection& con) {
    auto* self = static_cast<Clients*>(context);
    self->live.erase(&con);
    self->sink(con.key(), con.attempt(), refTo(con), core::event::Closed{classifyClose(con)});
  }

  // Reports a failure that happened before any I/O on a later loop turn, so that the session is
  // never re-entered from inside its own action.
  void failLater(uint64_t key, uint64_t attempt, core::Failure failure) {
    asio::post(io, [this, key, attempt, failure = std::move(failure)] {
      sink(key, attempt, ConnectionRef{}, core::event::ConnectFailed{failure});
    });
  }

  // Called from websocketpp's open handler of a plain connection: an OpenConnection takes its
  // socket and the frames behind the response, and reports Connected and everything after.
  // websocketpp still runs those frames through its own processor once this returns, with every
  // handler of its gone and its socket I/O turned off (TransportConnection::takeSocket), and then
  // lets the connection go.
  void takeOver(PlainClient::connection_type& opened, uint64_t key, uint64_t attempt,
                uint64_t max_message_bytes, std::string_view frames) {
    opened.set_message_handler(nullptr);
    opened.set_pong_handler(nullptr);
    opened.set_ping_handler([](websocketpp::connection_hdl, std::string) { return false; });
    opened.set_close_handler(nullptr);
    opened.set_fail_handler(nullptr);
    // A close frame (or a frame its processor rejects) behind the response makes websocketpp
    // answer it and start a closing-handshake timer, which would keep its connection for 5 s:
    // without the timer it goes as soon as it stops processing.
    opened.set_close_handshake_timeout(0);
    releaseHandshake(opened);
    live.erase(&opened);
    const std::shared_ptr<OpenConnection> con = OpenConnection::start(
        open_connections, opened.takeSocket(), key, attempt, max_message_bytes);
    live.insert(con.get());
    sink(key, attempt, refTo(*con), core::event::Connected{});
    con->readFramesBehindResponse(frames);
  }

  template <typename Client>
  ConnectionRef start(Client& client, uint64_t key, uint64_t attempt,
                      const core::EndpointSpec& spec, SslContextPtr tls_context) {
    using ConnectionPtr = typename Client::connection_ptr;
    constexpr bool kTls = std::is_same_v<Client, TlsClient>;
    constexpr Holder kHolder = kTls ? Holder::kWebsocketppTls : Holder::kWebsocketpp;
    // The name the peer certificate must carry (TLS only).
    const std::string verify_name =
        spec.tls.server_name.empty() ? hostOf(spec.url) : spec.tls.server_name;
    if constexpr (kTls) {
      // websocketpp calls the TLS and socket init handlers from inside get_connection(), so they
      // must be in place on the endpoint before it (handlers set on the connection afterwards
      // would never run). Everything here runs on this one io thread: no other connection can
      // pick up these handlers.
      const bool verify = !spec.tls.insecure_skip_verify;
      client.set_tls_init_handler(
          [tls_context](websocketpp::connection_hdl) { return tls_context; });
      client.set_socket_init_handler(
          [verify_name, verify](websocketpp::connection_hdl,
                                asio::ssl::stream<asio::ip::tcp::socket>& stream) {
            if (verify) expectPeerName(stream.native_handle(), verify_name);
          });
    }
    std::error_code ec;
    ConnectionPtr con = client.get_connection(spec.url, ec);
    if (ec) {
      failLater(key, attempt,
                core::Failure::make(core::FailureReason::kNetworkError,
                                    "cannot start connection: " + ec.message()));
      return {};
    }
    for (const core::Header& header : spec.headers) con->append_header(header.name, header.value);
    for (const std::string& protocol : spec.subprotocols) {
      con->add_subprotocol(protocol, ec);
    }
    con->set_max_message_size(spec.max_message_bytes);
    con->set_open_handshake_timeout(kTransportTimeoutMs);
    con->set_close_handshake_timeout(kCloseHandshakeTimeoutMs);

    // Handlers capture the key and attempt, never the session: the session may be gone by the
    // time websocketpp calls back (websocketpp issues #773, #844: timers firing after close).
    auto* self = this;
    const uint64_t max_message_bytes = spec.max_message_bytes;
    const bool take_over = take_over_open_connections;
    con->set_open_handler([self, &client, key, attempt, max_message_bytes,
                           take_over](websocketpp::connection_hdl hdl) {
      std::error_code ignored;
      auto opened = client.get_con_from_hdl(hdl, ignored);
      if constexpr (!kTls) {
        if (opened && take_over) {
          const std::string& length = opened->get_response().get_header("Content-Length");
          const bool response_has_body = !length.empty() && length != "0";
          std::string_view frames;
          if (opened->framesBehindResponse(response_has_body, frames)) {
            self->takeOver(*opened, key, attempt, max_message_bytes, frames);
            return;
          }
        }
      }
      if (opened) releaseHandshake(*opened);
      self->sink(key, attempt, ConnectionRef{hdl, kHolder}, core::event::Connected{});
    });
    con->set_fail_handler([self, &client, key, attempt, secure = kTls,
                           verify_name](websocketpp::connection_hdl hdl) {
      std::error_code ignored;
      auto failed = client.get_con_from_hdl(hdl, ignored);
      if (!failed) return;
      self->live.erase(failed.get());
      self->sink(key, attempt, ConnectionRef{hdl, kHolder},
                 core::event::ConnectFailed{classifyConnectFailure(*failed, secure, verify_name)});
    });
    con->set_close_handler([self, &client, key, attempt](websocketpp::connection_hdl hdl) {
      std::error_code ignored;
      auto closed = client.get_con_from_hdl(hdl, ignored);
      if (!closed) return;
      self->live.erase(closed.get());
      self->sink(key, attempt, ConnectionRef{hdl, kHolder},
                 core::event::Closed{classifyClose(*closed)});
    });
    con->set_message_handler(
        [self, key, attempt](websocketpp::connection_hdl hdl, typename Client::message_ptr msg) {
          self->sink(key, attempt, ConnectionRef{hdl, kHolder},
                     core::event::MessageReceived{msg->get_payload()});
        });
    con->set_pong_handler(
        [self, key, attempt](websocketpp::connection_hdl hdl, std::string payload) {
          self->sink(key, attempt, ConnectionRef{hdl, kHolder}, core::event::PongReceived{payload});
        });
    if constexpr (kTls) {
      // websocketpp sets SNI from the URL host during pre-init, just before this handler runs:
      // replace it with the configured server name, or clear it for an IP literal (RFC 6066
      // section 3 allows only DNS names in SNI).
      std::weak_ptr<typename Client::connection_type> weak = con;
      const std::string server_name = spec.tls.server_name;
      const bool ip_literal = isIpLiteral(con->get_host());
      con->set_tcp_pre_init_handler([weak, server_name, ip_literal](websocketpp::connection_hdl) {
        auto c = weak.lock();
        if (!c) return;
        SSL* ssl = c->get_socket().native_handle();
        if (!server_name.empty()) {
          SSL_set_tlsext_host_name(ssl, server_name.c_str());
        } else if (ip_literal) {
          SSL_set_tlsext_host_name(ssl, nullptr);
        }
      });
    }
    if (before_handshake_write_for_test) {
      // websocketpp runs the post-init handler right before it writes the handshake request.
      std::weak_ptr<typename Client::connection_type> weak = con;
      con->set_tcp_post_init_handler(
          [weak, hook = before_handshake_write_for_test](websocketpp::connection_hdl) {
            if (auto c = weak.lock()) hook(c->get_raw_socket().native_handle());
          });
    }
    // Counted before connect(): websocketpp may report an immediate failure from inside it.
    live.insert(con.get());
    client.connect(con);
    return ConnectionRef{con->get_handle(), kHolder};
  }

  // Closes the socket of a websocketpp connection that is not open; its pending I/O completes
  // with operation_aborted. websocketpp then reports nothing more for a connection still
  // connecting, and ends one that was closing (its close handler runs); either way it stops
  // counting as live here.
  template <typename Connection>
  void dropUnopened(Connection& con) {
    std::error_code ec;
    con.get_raw_socket().close(ec);
    live.erase(&con);
  }
  // The same for an OpenConnection that is closing or closed.
  void dropUnopened(OpenConnection& con) {
    con.dropSocket();
    live.erase(&con);
  }

  // Runs `fn` with the connection `ref` names, if it still exists: a websocketpp connection of
  // either client, or an OpenConnection.
  template <typename Fn>
  void withConnection(const ConnectionRef& ref, Fn&& fn) {
    std::error_code ec;
    switch (ref.holder) {
      case Holder::kWebsocketpp:
        if (auto con = plain.get_con_from_hdl(ref.handle, ec)) fn(*con);
        return;
      case Holder::kWebsocketppTls:
        if (auto con = tls.get_con_from_hdl(ref.handle, ec)) fn(*con);
        return;
      case Holder::kOpenConnection:
        if (auto con = std::static_pointer_cast<OpenConnection>(ref.handle.lock())) fn(*con);
        return;
    }
  }
};

WebSocketTransport::WebSocketTransport(asio::io_context& io, EventSink sink)
    : clients_(std::make_unique<Clients>(io, std::move(sink))) {}

WebSocketTransport::~WebSocketTransport() = default;

ConnectionRef WebSocketTransport::connect(uint64_t key, uint64_t attempt,
                                          const core::EndpointSpec& spec) {
  if (spec.url.compare(0, 6, "wss://") != 0) {
    return clients_->start(clients_->plain, key, attempt, spec, nullptr);
  }
  std::string error;
  SslContextPtr context = clients_->tls_contexts.get(spec.tls, error);
  if (!context) {
    clients_->failLater(key, attempt, core::Failure::make(core::FailureReason::kTls, error));
    return {};
  }
  return clients_->start(clients_->tls, key, attempt, spec, std::move(context));
}

namespace {

template <typename Connection>
constexpr bool kIsOpenConnection = std::is_same_v<std::decay_t<Connection>, OpenConnection>;

// Both kinds of connection answer close() alike: an error when they are not open.
std::error_code closeConnection(OpenConnection& con, int code, const std::string& reason) {
  return con.close(static_cast<websocketpp::close::status::value>(code), reason);
}
template <typename Connection>
std::error_code closeConnection(Connection& con, int code, const std::string& reason) {
  std::error_code ec;
  con.close(static_cast<websocketpp::close::status::value>(code), reason, ec);
  return ec;
}

}  // namespace

void WebSocketTransport::sendPing(const ConnectionRef& ref, const std::string& payload) {
  clients_->withConnection(ref, [&](auto& con) {
    if constexpr (kIsOpenConnection<decltype(con)>) {
      con.sendPing(payload);
    } else {
      std::error_code ec;
      con.ping(payload, ec);  // a failed send shows up as a missing pong: the session decides
    }
  });
}

bool WebSocketTransport::hasUnreadInput(const ConnectionRef& ref) {
  bool unread = false;
  clients_->withConnection(ref, [&](auto& con) {
    if constexpr (kIsOpenConnection<decltype(con)>) {
      unread = con.hasUnreadInput();
    } else {
      std::error_code ec;
      unread = con.get_raw_socket().available(ec) > 0 && !ec;
      if constexpr (std::is_same_v<std::decay_t<decltype(con)>, TlsClient::connection_type>) {
        // OpenSSL decrypts whole records (up to 16 KiB) but websocketpp takes them a read buffer
        // at a time: the rest waits inside OpenSSL, where the socket's byte count does not show
        // it.
        unread = unread || SSL_pending(con.get_socket().native_handle()) > 0;
      }
    }
  });
  return unread;
}

void WebSocketTransport::sendText(const ConnectionRef& ref, const std::string& payload) {
  clients_->withConnection(ref, [&](auto& con) {
    // A failed send shows up as a missing reply: the session decides.
    if constexpr (kIsOpenConnection<decltype(con)>) {
      (void)con.sendText(payload);
    } else {
      (void)con.send(payload, websocketpp::frame::opcode::text);
    }
  });
}

void WebSocketTransport::close(const ConnectionRef& ref, int code, const std::string& reason) {
  clients_->withConnection(ref, [&](auto& con) {
    if (closeConnection(con, code, reason)) {
      clients_->dropUnopened(con);  // not open: nothing to say goodbye to
    }
  });
}

void WebSocketTransport::abandon(const ConnectionRef& ref) {
  clients_->withConnection(ref, [&](auto& con) {
    // Open connections end through their closing handshake, which then reports Closed.
    if (!closeConnection(con, websocketpp::close::status::going_away, "abandoned")) return;
    clients_->dropUnopened(con);
  });
}

size_t WebSocketTransport::liveConnections() const { return clients_->live.size(); }

uint64_t WebSocketTransport::pongsTakenFromReadsForTest() const {
  return clients_->open_connections.pongs_taken_from_reads;
}

uint64_t WebSocketTransport::textsTakenFromReadsForTest() const {
  return clients_->open_connections.texts_taken_from_reads;
}

uint64_t WebSocketTransport::textsSentDirectlyForTest() const {
  return clients_->open_connections.texts_sent_directly;
}

uint64_t WebSocketTransport::pingsSentDirectlyForTest() const {
  return clients_->open_connections.pings_sent_directly;
}

uint64_t WebSocketTransport::pingsFinishedLaterForTest() const {
  return clients_->open_connections.pings_finished_later;
}

void WebSocketTransport::keepOpenConnectionsWithWebsocketppForTest() {
  clients_->take_over_open_connections = false;
}

void WebSocketTransport::setBeforeHandshakeWriteForTest(std::function<void(int socket_fd)> hook) {
  clients_->before_handshake_write_for_test = std::move(hook);
}

}  // namespace wsvisor
