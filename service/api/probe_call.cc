#include "service/api/probe_call.h"

#include "service/api/proto_conversions.h"
#include "supervisor/happens_before.h"

namespace wsvisor::service {

ProbeCall::ProbeCall(ProbeRunner& probes, v1::ProbeEndpointResponse* response)
    : probes_(probes), response_(response) {}

ProbeRunner::Done ProbeCall::completion() {
  return [this](const core::ProbeResult& result) { onProbeEnded(result); };
}

void ProbeCall::started(const ProbeRunner::Ticket& ticket) {
  MutexLock lock(mu_);
  ticket_ = ticket;
  if (cancelled_) probes_.cancel(ticket);
}

ProbeCall* ProbeCall::handOver() {
  // gRPC runs OnCancel() and OnDone() only after the handler has returned the reactor
  // (ServerCallbackUnaryImpl::SetupReactor). ThreadSanitizer cannot see that ordering inside
  // gRPC; both declare their side first.
  annotateHappensBefore(this);
  return this;
}

void ProbeCall::OnCancel() {
  annotateHappensAfter(this);  // after the handler; see handOver()
  MutexLock lock(mu_);
  cancelled_ = true;
  if (ticket_) probes_.cancel(*ticket_);
}

void ProbeCall::OnDone() {
  annotateHappensAfter(this);  // after the handler; see handOver()
  { MutexLock lock(mu_); }     // after a completion's Finish(); see the class
  delete this;
}

void ProbeCall::onProbeEnded(const core::ProbeResult& result) {
  MutexLock lock(mu_);
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
