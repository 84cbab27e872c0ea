#pragma once

#include <string>
#include <variant>

#include "service/api/proto_conversions.h"
#include "supervisor/core/endpoint_spec.h"
#include "supervisor/core/spec_validation.h"
#include "tests/fuzz/fuzz_check.h"

namespace wsvisor::fuzz {

// What must hold for every spec that core::validateSpec() accepted, from the API or the config
// file alike. The Registry fills the defaults and stores the result as a serialized EndpointSpec;
// a restart decodes it and validates it again, and refuses to start when that fails. So the
// filled spec must encode, decode to itself and pass validation again. The API's answers (secret
// values redacted) must be specs the API accepts, so that a caller can send one back.
inline void checkAcceptedSpec(core::EndpointSpec spec) {
  core::applyDefaults(spec);
  const core::EndpointSpec filled = spec;
  core::applyDefaults(spec);
  WSVISOR_FUZZ_CHECK(spec == filled);  // idempotent

  const service::ProtoSpecCodec codec;
  std::string error;
  const auto restored = codec.decode(codec.encode(filled), error);
  WSVISOR_FUZZ_CHECK(restored.has_value());
  WSVISOR_FUZZ_CHECK(*restored == filled);
  WSVISOR_FUZZ_CHECK(!core::validateSpec(*restored).has_value());

  v1::EndpointSpec shown;
  service::specToProto(filled, &shown, service::SecretHeaders::kShown);
  const auto sent_back = service::specFromProto(shown);
  WSVISOR_FUZZ_CHECK(std::holds_alternative<core::EndpointSpec>(sent_back));
  WSVISOR_FUZZ_CHECK(!core::validateSpec(std::get<core::EndpointSpec>(sent_back)).has_value());
}

}  // namespace wsvisor::fuzz
