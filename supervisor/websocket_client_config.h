#pragma once

// The websocketpp configuration of wsvisor's client: what websocketpp::connection is built from
// (supervisor/websocket_transport.cc), and what an open plain connection's frame processor is
// built from once wsvisor has taken the connection over (supervisor/open_connection.h).

#include <websocketpp/concurrency/none.hpp>
#include <websocketpp/config/asio_client.hpp>
#include <websocketpp/logger/stub.hpp>

#include "supervisor/transport_connection.h"

namespace wsvisor {

// Longer than the longest connect timeout a spec may ask for (5 min): websocketpp's own
// transport timers must never be the ones that fire.
inline constexpr long kTransportTimeoutMs = 5 * 60 * 1000 + 30 * 1000;

// How long a closing handshake may take before the connection is dropped, as websocketpp's close
// handshake timeout (set on every connection).
inline constexpr long kCloseHandshakeTimeoutMs = 5000;

// Each io_context is run by exactly one thread and every call into websocketpp is made on it, so
// websocketpp's locks, per-connection strands and logger work are pure cost: measured at 19,000
// connections they are a few µs of every heartbeat (bench/README.md).
template <typename Base>
struct ClientConfig : public Base {
  typedef ClientConfig type;
  typedef Base base;
  typedef websocketpp::concurrency::none concurrency_type;
  typedef websocketpp::log::stub alog_type;
  typedef websocketpp::log::stub elog_type;
  struct transport_config : public base::transport_config {
    typedef websocketpp::concurrency::none concurrency_type;
    typedef websocketpp::log::stub alog_type;
    typedef websocketpp::log::stub elog_type;
    static const bool enable_multithreading = false;
    static const long timeout_socket_pre_init = kTransportTimeoutMs;
    static const long timeout_proxy = kTransportTimeoutMs;
    static const long timeout_socket_post_init = kTransportTimeoutMs;
    static const long timeout_dns_resolve = kTransportTimeoutMs;
    static const long timeout_connect = kTransportTimeoutMs;
  };
  // ClientConfig: websocketpp::connection<ClientConfig> is the class the transport connection is a
  // base of.
  typedef TransportEndpoint<transport_config, ClientConfig> transport_type;
  static const long timeout_open_handshake = kTransportTimeoutMs;
  // websocketpp's default is 16 KiB per connection. A plain connection reads into it only until
  // it opens (wsvisor then takes it over); a TLS one keeps it. Heartbeat traffic is tiny and
  // larger messages simply take more reads. 640 rather than 1024 bytes: the TLS connection
  // object then fits tcmalloc's 4.5 KiB size class instead of its 5 KiB one.
  static const size_t connection_read_buffer_size = 640;
};

using PlainClientConfig = ClientConfig<websocketpp::config::asio_client>;
using TlsClientConfig = ClientConfig<websocketpp::config::asio_tls_client>;

}  // namespace wsvisor
