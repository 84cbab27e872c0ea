#pragma once

#include <variant>

#include "supervisor/core/endpoint_spec.h"
#include "supervisor/core/endpoint_status.h"
#include "supervisor/core/health_event.h"
#include "supervisor/core/probe.h"
#include "supervisor/core/spec_validation.h"
#include "supervisor/health_history.h"
#include "supervisor/store/endpoint_store.h"
#include "wsvisor/v1/supervisor.pb.h"

namespace wsvisor::service {

// The one place where proto and core types meet.

// Converts a requested spec. Fails only on what the core cannot represent: an unknown enum value
// or a duration that is set but not positive (unset durations mean "default", so a set zero must
// be refused here). Everything else is checked by core::validateSpec().
std::variant<core::EndpointSpec, core::FieldError> specFromProto(const v1::EndpointSpec& proto);
// kShown replaces secret header values with core::kRedactedValue (every API response); kStored
// keeps them (the store only).
enum class SecretHeaders { kShown, kStored };
void specToProto(const core::EndpointSpec& spec, v1::EndpointSpec* proto,
                 SecretHeaders secrets = SecretHeaders::kShown);

// Monotonic times in the core become wall-clock timestamps here.
void failureToProto(const core::Failure& failure, v1::Failure* proto);
void statusToProto(const core::EndpointStatus& status, v1::EndpointStatus* proto);
// The inverse, for the status another replica published (cluster mode); wall-clock times become
// monotonic ones of this process. Unknown enum values become unknown health, no phase, no reason.
core::EndpointStatus statusFromProto(const v1::EndpointStatus& proto);
void healthEventToProto(const core::HealthEvent& event, v1::HealthEvent* proto);
void historyToProto(const EndpointHistory& history, v1::GetEndpointHistoryResponse* proto);
// A finished probe (succeeded or failed) as the ProbeEndpoint answer.
void probeResultToProto(const core::ProbeResult& result, v1::ProbeEndpointResponse* proto);

v1::Health healthToProto(core::Health health);
v1::Owner ownerToProto(EndpointOwner owner);

// Stores specs as the serialized public EndpointSpec message: the documented, versioned format.
class ProtoSpecCodec : public SpecCodec {
 public:
  std::string encode(const core::EndpointSpec& spec) const override;
  std::optional<core::EndpointSpec> decode(const std::string& bytes,
                                           std::string& error) const override;
};
v1::FailureReason failureReasonToProto(core::FailureReason reason);

}  // namespace wsvisor::service
