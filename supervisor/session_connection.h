#pragma once

#include <cstdint>
#include <string>

#include "supervisor/core/endpoint_spec.h"
#include "supervisor/core/session.h"
#include "supervisor/websocket_transport.h"

namespace wsvisor {

// The connection that one Session (of an endpoint or of a probe) drives through the transport,
// on its io thread, and which connection attempt's events still count.
//
// A destroyed SessionConnection leaves no connection behind.
class SessionConnection {
 public:
  SessionConnection(WebSocketTransport& transport, uint64_t key)
      : transport_(transport), key_(key) {}
  ~SessionConnection() {
    if (ref_.valid()) transport_.abandon(ref_);
  }
  SessionConnection(const SessionConnection&) = delete;
  SessionConnection& operator=(const SessionConnection&) = delete;

  // Carries out the connection part of `actions`, in the order SessionActions gives: close or
  // abandon the current connection, send the heartbeat, start a new attempt for `spec`.
  void carryOut(const core::SessionActions& actions, const std::string& ping_payload,
                const std::string& text_payload, const core::EndpointSpec& spec);

  // Events of any other attempt come from a connection the session has let go.
  bool isCurrent(uint64_t attempt) const { return attempt == attempt_; }
  // The current attempt opened: `ref`, which Connected carried, names the connection from now on
  // (WebSocketTransport::connect).
  void opened(const ConnectionRef& ref) { ref_ = ref; }
  const ConnectionRef& ref() const { return ref_; }

 private:
  WebSocketTransport& transport_;
  const uint64_t key_;
  uint64_t attempt_ = 0;
  ConnectionRef ref_;
};

}  // namespace wsvisor
