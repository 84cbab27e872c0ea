#include "service/api/supervisor_service.h"

#include "service/api/proto_conversions.h"
#include "supervisor/core/spec_validation.h"
#include "supervisor/log.h"

namespace wsvisor::service {

namespace {

constexpr uint32_t kDefaultPageSize = 100;
constexpr uint32_t kMaxPageSize = 1000;
constexpr int kMaxWatchIds = 1000;

grpc::Status invalidArgument(const core::FieldError& error) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, error.toString());
}

grpc::Status toStatus(const RegistryError& error) {
  switch (error.code) {
    case RegistryError::Code::kInvalidArgument:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, error.message);
    case RegistryError::Code::kNotFound:
      return grpc::Status(grpc::StatusCode::NOT_FOUND, error.message);
    case RegistryError::Code::kAlreadyExists:
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS, error.message);
    case RegistryError::Code::kResourceExhausted:
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, error.message);
    case RegistryError::Code::kFailedPrecondition:
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, error.message);
    case RegistryError::Code::kAborted:
      return grpc::Status(grpc::StatusCode::ABORTED, error.message);
    case RegistryError::Code::kUnavailable:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, error.message);
    case RegistryError::Code::kInternal:
      return grpc::Status(grpc::StatusCode::INTERNAL, error.message);
  }
  return grpc::Status(grpc::StatusCode::INTERNAL, error.message);
}

void endpointToProto(const EndpointView& view, v1::Endpoint* proto) {
  specToProto(*view.spec, proto->mutable_spec());
  statusToProto(view.status, proto->mutable_status());
  proto->set_owner(ownerToProto(view.owner));
  proto->set_generation(view.generation);
}

std::optional<core::LabelSelector> parseSelector(const std::string& text, const char* field,
                                                 grpc::Status& status) {
  std::string error;
  auto selector = core::LabelSelector::parse(text, error);
  if (!selector) status = invalidArgument({field, error});
  return selector;
}

const grpc::Status kShuttingDown(grpc::StatusCode::UNAVAILABLE, "wsvisor is shutting down");

std::optional<std::string_view> authorizationOf(const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find("authorization");
  if (found == metadata.end()) return std::nullopt;
  return std::string_view(found->second.data(), found->second.size());
}

}  // namespace

SupervisorService::SupervisorService(Registry& registry, ProbeRunner& probes, HealthBus& bus,
                                     const ApiAccess* access, WatchLimits watch_limits,
                                     Metrics* metrics)
    : registry_(registry),
      probes_(probes),
      bus_(bus),
      access_(access),
      watch_limits_(watch_limits),
      metrics_(metrics),
      watch_streams_(watch_limits.max_streams) {}

grpc::Status SupervisorService::admit(const grpc::CallbackServerContext& context, Access needed,
                                      std::string_view method) const {
  if (shutting_down_.load()) return kShuttingDown;
  if (access_ == nullptr) return grpc::Status::OK;
  AccessDecision decision = access_->check(authorizationOf(context), needed, method);
  switch (decision.verdict) {
    case AccessDecision::Verdict::kAllowed:
      return grpc::Status::OK;
    case AccessDecision::Verdict::kUnauthenticated:
      WSV_LOG(kDebug) << method << " from " << context.peer() << " refused: " << decision.message;
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::move(decision.message));
    case AccessDecision::Verdict::kPermissionDenied:
      WSV_LOG(kDebug) << method << " from " << context.peer() << " refused: " << decision.message;
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, std::move(decision.message));
  }
  return grpc::Status(grpc::StatusCode::INTERNAL, "unknown access decision");
}

template <typename Handler>
grpc::ServerUnaryReactor* SupervisorService::answer(grpc::CallbackServerContext* context,
                                                    Access needed, std::string_view method,
                                                    Handler&& handler) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  grpc::Status admitted = admit(*context, needed, method);
  reactor->Finish(admitted.ok() ? handler() : admitted);
  return reactor;
}

void SupervisorService::beginShutdown() {
  shutting_down_.store(true);
  watch_streams_.finishAll(kShuttingDown);
}

grpc::ServerUnaryReactor* SupervisorService::RegisterEndpoint(
    grpc::CallbackServerContext* context, const v1::RegisterEndpointRequest* request,
    v1::RegisterEndpointResponse* response) {
  return answer(context, Access::kWrite, "RegisterEndpoint",
                [&] { return doRegister(*request, response); });
}

grpc::ServerUnaryReactor* SupervisorService::UpdateEndpoint(
    grpc::CallbackServerContext* context, const v1::UpdateEndpointRequest* request,
    v1::UpdateEndpointResponse* response) {
  return answer(context, Access::kWrite, "UpdateEndpoint",
                [&] { return doUpdate(*request, response); });
}

grpc::ServerUnaryReactor* SupervisorService::UnregisterEndpoint(
    grpc::CallbackServerContext* context, const v1::UnregisterEndpointRequest* request,
    v1::UnregisterEndpointResponse*) {
  return answer(context, Access::kWrite, "UnregisterEndpoint",
                [&] { return doUnregister(*request); });
}

grpc::ServerUnaryReactor* SupervisorService::GetEndpoint(grpc::CallbackServerContext* context,
                                                         const v1::GetEndpointRequest* request,
                                                         v1::GetEndpointResponse* response) {
  return answer(context, Access::kRead, "GetEndpoint", [&] { return doGet(*request, response); });
}

grpc::ServerUnaryReactor* SupervisorService::ListEndpoints(grpc::CallbackServerContext* context,
                                                           const v1::ListEndpointsRequest* request,
                                                           v1::ListEndpointsResponse* response) {
  return answer(context, Access::kRead, "ListEndpoints",
                [&] { return doList(*request, response); });
}

grpc::ServerUnaryReactor* SupervisorService::GetEndpointHistory(
    grpc::CallbackServerContext* context, const v1::GetEndpointHistoryRequest* request,
    v1::GetEndpointHistoryResponse* response) {
  return answer(context, Access::kRead, "GetEndpointHistory",
                [&] { return doHistory(*request, response); });
}

grpc::Status SupervisorService::doRegister(const v1::RegisterEndpointRequest& request,
                                           v1::RegisterEndpointResponse* response) {
  if (!request.has_spec()) return invalidArgument({"spec", "is required"});
  auto converted = specFromProto(request.spec());
  if (auto* error = std::get_if<core::FieldError>(&converted)) return invalidArgument(*error);
  auto result = registry_.registerEndpoint(std::get<core::EndpointSpec>(std::move(converted)),
                                           EndpointOwner::kApi);
  if (auto* error = std::get_if<RegistryError>(&result)) return toStatus(*error);
  const auto& registered = std::get<Registry::RegisterResult>(result);
  endpointToProto(registered.endpoint, response->mutable_endpoint());
  response->set_created(registered.created);
  return grpc::Status::OK;
}

grpc::Status SupervisorService::doUpdate(const v1::UpdateEndpointRequest& request,
                                         v1::UpdateEndpointResponse* response) {
  if (!request.has_spec()) return invalidArgument({"spec", "is required"});
  auto converted = specFromProto(request.spec());
  if (auto* error = std::get_if<core::FieldError>(&converted)) return invalidArgument(*error);
  auto result = registry_.updateEndpoint(std::get<core::EndpointSpec>(std::move(converted)),
                                         request.expected_generation(), EndpointOwner::kApi);
  if (auto* error = std::get_if<RegistryError>(&result)) return toStatus(*error);
  const auto& updated = std::get<Registry::UpdateResult>(result);
  endpointToProto(updated.endpoint, response->mutable_endpoint());
  response->set_reconnected(updated.reconnected);
  return grpc::Status::OK;
}

grpc::Status SupervisorService::doUnregister(const v1::UnregisterEndpointRequest& request) {
  if (auto error = core::validateEndpointId(request.id(), "id")) return invalidArgument(*error);
  if (auto error = registry_.unregisterEndpoint(request.id(), EndpointOwner::kApi)) {
    return toStatus(*error);
  }
  return grpc::Status::OK;
}

grpc::Status SupervisorService::doGet(const v1::GetEndpointRequest& request,
                                      v1::GetEndpointResponse* response) {
  if (auto error = core::validateEndpointId(request.id(), "id")) return invalidArgument(*error);
  auto view = registry_.get(request.id());
  if (!view) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "endpoint '" + request.id() + "' is not registered");
  }
  endpointToProto(*view, response->mutable_endpoint());
  return grpc::Status::OK;
}

grpc::Status SupervisorService::doList(const v1::ListEndpointsRequest& request,
                                       v1::ListEndpointsResponse* response) {
  grpc::Status status;
  auto selector = parseSelector(request.label_selector(), "label_selector", status);
  if (!selector) return status;
  if (request.page_size() > kMaxPageSize) {
    return invalidArgument(
        {"page_size", "must be at most 1000, got " + std::to_string(request.page_size())});
  }
  if (!request.page_token().empty()) {
    if (core::validateEndpointId(request.page_token(), "page_token")) {
      return invalidArgument({"page_token", "is not a token returned by ListEndpoints"});
    }
  }
  const size_t page_size = request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  Registry::Page page = registry_.list(*selector, page_size, request.page_token());
  for (const EndpointView& view : page.endpoints) endpointToProto(view, response->add_endpoints());
  response->set_next_page_token(page.next_page_token);
  return grpc::Status::OK;
}

grpc::Status SupervisorService::doHistory(const v1::GetEndpointHistoryRequest& request,
                                          v1::GetEndpointHistoryResponse* response) {
  if (auto error = core::validateEndpointId(request.id(), "id")) return invalidArgument(*error);
  auto history = bus_.history(request.id());
  if (!history) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "endpoint '" + request.id() + "' is not registered");
  }
  historyToProto(*history, response);
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* SupervisorService::ProbeEndpoint(grpc::CallbackServerContext* context,
                                                           const v1::ProbeEndpointRequest* request,
                                                           v1::ProbeEndpointResponse* response) {
  auto* call = new ProbeCall(probes_, response);
  // Write access: a probe makes wsvisor dial whatever URL the caller names.
  grpc::Status status = admit(*context, Access::kWrite, "ProbeEndpoint");
  if (status.ok()) status = doProbe(*request, *call);
  if (!status.ok()) call->Finish(status);
  return call->handOver();
}

grpc::Status SupervisorService::doProbe(const v1::ProbeEndpointRequest& request, ProbeCall& call) {
  if (!request.has_spec()) return invalidArgument({"spec", "is required"});
  auto converted = specFromProto(request.spec());
  if (auto* error = std::get_if<core::FieldError>(&converted)) return invalidArgument(*error);
  auto started = probes_.probe(std::get<core::EndpointSpec>(std::move(converted)),
                               request.heartbeats(), call.completion());
  if (auto* error = std::get_if<RegistryError>(&started)) return toStatus(*error);
  // The probe may have ended already; `call` lives at least until the handler returns.
  call.started(std::get<ProbeRunner::Ticket>(started));
  return grpc::Status::OK;
}

grpc::ServerWriteReactor<v1::HealthEvent>* SupervisorService::WatchHealth(
    grpc::CallbackServerContext* context, const v1::WatchHealthRequest* request) {
  auto refuse = [](const grpc::Status& status) {
    class Refused : public grpc::ServerWriteReactor<v1::HealthEvent> {
     public:
      explicit Refused(const grpc::Status& s) { Finish(s); }
      void OnDone() override { delete this; }
    };
    return new Refused(status);
  };
  if (grpc::Status admitted = admit(*context, Access::kRead, "WatchHealth"); !admitted.ok()) {
    return refuse(admitted);
  }
  WatchFilter filter;
  if (request->ids_size() > kMaxWatchIds) {
    return refuse(invalidArgument({"ids", "at most 1000 ids"}));
  }
  for (int i = 0; i < request->ids_size(); ++i) {
    if (auto error = core::validateEndpointId(request->ids(i), "ids[" + std::to_string(i) + "]")) {
      return refuse(invalidArgument(*error));
    }
    filter.ids.insert(request->ids(i));
  }
  grpc::Status status;
  auto selector = parseSelector(request->label_selector(), "label_selector", status);
  if (!selector) return refuse(status);
  filter.selector = std::move(*selector);
  if (!watch_streams_.reserve()) {
    if (metrics_ != nullptr) metrics_->watchStreamRefused();
    const std::string limit = std::to_string(watch_streams_.maxStreams());
    WSV_LOG(kDebug) << "WatchHealth from " << context->peer() << " refused: " << limit
                    << " streams are open (--max-watch-streams)";
    return refuse(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                               limit +
                                   " WatchHealth streams are open, the most this wsvisor "
                                   "serves at once (--max-watch-streams " +
                                   limit +
                                   "); close a stream you no longer read, or ask the operator "
                                   "to raise --max-watch-streams"));
  }
  Metrics* metrics = metrics_;
  return new WatchStream(bus_, watch_streams_, watch_pump_, std::move(filter),
                         request->since_revision(), watch_limits_.stream_bytes,
                         [metrics](WatchExhaustion::Why why) {
                           if (metrics == nullptr) return;
                           if (why == WatchExhaustion::Why::kByteBudget) {
                             metrics->watchStreamOverBudget();
                           } else {
                             metrics->watchStreamTooFarBehind();
                           }
                         });
}

}  // namespace wsvisor::service
