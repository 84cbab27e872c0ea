#pragma once

#include <string_view>
#include <variant>

#include "supervisor/core/endpoint_status.h"
#include "supervisor/core/time.h"

namespace wsvisor::core {

// Everything that can happen to one supervised endpoint. The runtime builds these from
// registry commands, websocketpp callbacks and its timer; payload views are valid only for the
// duration of Session::onEvent().
namespace event {
struct Start {                      // registered: begin connecting
  Duration first_attempt_after{0};  // > 0: wait this long first (restart spreading)
};
struct Stop {                  // unregistered or shutting down: close and go quiet for good
  bool shutting_down = false;  // close with 1001 (going away) instead of 1000
};
struct Connected {};    // the WebSocket opening handshake completed
struct ConnectFailed {  // the attempt failed before the connection opened
  Failure failure;
};
struct MessageReceived {  // a text or binary message from the upstream
  std::string_view payload;
};
struct PongReceived {  // an RFC 6455 pong frame
  std::string_view payload;
};
struct Closed {  // the open connection ended
  Failure failure;
};
struct TimerFired {};  // the deadline last returned by nextDeadline() may have passed
}  // namespace event

using SessionEvent =
    std::variant<event::Start, event::Stop, event::Connected, event::ConnectFailed,
                 event::MessageReceived, event::PongReceived, event::Closed, event::TimerFired>;

}  // namespace wsvisor::core
