// RegisterEndpoint and UpdateEndpoint requests as the API receives them: the bytes are parsed as
// the request message, then take SupervisorService's and the Registry's path: specFromProto(),
// core::validateSpec(), core::applyDefaults(). Nothing may crash; accepted specs must hold the
// invariants of checkAcceptedSpec().

#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <variant>

#include "service/api/proto_conversions.h"
#include "supervisor/core/spec_validation.h"
#include "tests/fuzz/accepted_spec.h"
#include "wsvisor/v1/supervisor.pb.h"

// Strings that are not UTF-8 are a normal input here, and protobuf logs an error for each one
// it refuses: gigabytes of log in a ten-minute run, and a slower fuzzer.
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wsvisor;
  // A RegisterEndpointRequest is an UpdateEndpointRequest without expected_generation on the
  // wire: one message type reads both.
  v1::UpdateEndpointRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  if (!request.has_spec()) return 0;  // refused as "spec: is required"

  auto converted = service::specFromProto(request.spec());
  if (auto* error = std::get_if<core::FieldError>(&converted)) {
    WSVISOR_FUZZ_CHECK(!error->field.empty() && !error->message.empty());
    return 0;
  }
  const core::EndpointSpec& spec = std::get<core::EndpointSpec>(converted);
  if (auto error = core::validateSpec(spec)) {
    WSVISOR_FUZZ_CHECK(error->field.rfind("spec", 0) == 0 && !error->message.empty());
    return 0;
  }
  fuzz::checkAcceptedSpec(spec);
  return 0;
}
