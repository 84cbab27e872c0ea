#pragma once

#include <grpcpp/grpcpp.h>

#include <optional>

#include "supervisor/core/probe.h"
#include "supervisor/mutex.h"
#include "supervisor/probe_runner.h"
#include "wsvisor/v1/supervisor.grpc.pb.h"

namespace wsvisor::service {

// One ProbeEndpoint call on gRPC's callback API. The probe runs on an io thread; no gRPC thread
// waits for it. Created by the service for every call, deleted in OnDone().
//
// Ownership: gRPC holds the reactor until OnDone(), which comes only after Finish() and never
// before the method handler has returned. Finish() is called once: by the handler when the probe
// cannot start, or by the probe's completion (onProbeEnded(), on an io thread). So the completion
// never outlives the reactor.
//
// Cancellation: OnCancel() (the client cancelled or left, its deadline passed) asks the runner
// to cancel the probe, which closes its connection and completes at once; the completion then
// finishes the call. The probe may have completed already: cancelling is a no-op then.
//
// Locking: `mu_` guards `ticket_` and `cancelled_` (the handler's thread and the one that runs
// OnCancel() both touch them), and is held across the completion's Finish(). OnDone() takes it
// before deleting: a completion still inside Finish() on the io thread is then done with this
// object first. gRPC runs no reaction of a reactor that is not inlineable from inside Finish(),
// so this cannot deadlock (as in WatchStream).
class ProbeCall final : public grpc::ServerUnaryReactor {
 public:
  ProbeCall(ProbeRunner& probes, v1::ProbeEndpointResponse* response);

  // What ProbeRunner::probe() calls when the probe ends. Valid until Finish().
  ProbeRunner::Done completion();
  // The probe has been handed to the probe runner (which may already have completed it).
  void started(const ProbeRunner::Ticket& ticket);
  // The handler's last call, as it returns this reactor to gRPC.
  ProbeCall* handOver();

  // grpc::ServerUnaryReactor
  void OnCancel() override;
  void OnDone() override;

 private:
  void onProbeEnded(const core::ProbeResult& result);

  ProbeRunner& probes_;
  v1::ProbeEndpointResponse* const response_;
  Mutex mu_;
  std::optional<ProbeRunner::Ticket> ticket_ WSV_GUARDED_BY(mu_);
  bool cancelled_ WSV_GUARDED_BY(mu_) = false;
};

}  // namespace wsvisor::service
