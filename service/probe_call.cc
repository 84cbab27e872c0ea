#include "service/probe_call.h"

#include "service/proto_conversions.h"

namespace wsvisor::service {

ProbeCall::ProbeCall(Registry& registry, v1::ProbeEndpointResponse* response)
    : registry_(registry), response_(response) {}

Registry::ProbeDone ProbeCall::completion() {
  return [this](const core::ProbeResult& result) { onProbeEnded(result); };
}

void ProbeCall::started(const Registry::ProbeTicket& ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  ticket_ = ticket;
  if (cancelled_) registry_.cancelProbe(ticket);
}

void ProbeCall::OnCancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  if (ticket_) registry_.cancelProbe(*ticket_);
}

void ProbeCall::onProbeEnded(const core::ProbeResult& result) {
  // Finish() is the last use of `this`: OnDone() may delete it as soon as the call completes.
  switch (result.outcome) {
    case core::ProbeResult::Outcome::kSucceeded:
    case core::ProbeResult::Outcome::kFailed:
      // A failed probe is a successful call: the answer is what failed.
      probeResultToProto(result, response_);
      Finish(grpc::Status::OK);
      return;
    case core::ProbeResult::Outcome::kCancelled:
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the probe was cancelled"));
      return;
    case core::ProbeResult::Outcome::kShutDown:
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "wsvisor is shutting down; the probe was cut short"));
      return;
  }
}

}  // namespace wsvisor::service
