#include "supervisor/session_connection.h"

namespace wsvisor {

void SessionConnection::carryOut(const core::SessionActions& actions,
                                 const std::string& ping_payload, const std::string& text_payload,
                                 const core::EndpointSpec& spec) {
  if (actions.close) {
    transport_.close(ref_, actions.close->code, actions.close->reason);
    ref_ = {};
    ++attempt_;  // whatever the closed connection reports from now on is not news
  }
  if (actions.abandon_connection) {
    transport_.abandon(ref_);
    ref_ = {};
    ++attempt_;
  }
  if (actions.send_ping) {
    transport_.sendPing(ref_, ping_payload);
  } else if (actions.send_text) {
    transport_.sendText(ref_, text_payload);
  }
  if (actions.connect) {
    ++attempt_;
    ref_ = transport_.connect(key_, attempt_, spec);
  }
}

}  // namespace wsvisor
