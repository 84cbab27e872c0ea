// The --config file: the bytes are the file's text, read by service::parseConfigText() (yaml-cpp)
// as wsvisor does on start and on SIGHUP, then validated as the Registry does. Nothing may crash
// or throw; a refused file names a place; accepted specs must hold the invariants of
// checkAcceptedSpec().

#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "service/config_file.h"
#include "supervisor/core/spec_validation.h"
#include "tests/fuzz/accepted_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wsvisor;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto parsed = service::parseConfigText(text);
  if (const auto* error = std::get_if<std::string>(&parsed)) {
    WSVISOR_FUZZ_CHECK(!error->empty());
    return 0;
  }
  for (const core::EndpointSpec& spec : std::get<std::vector<core::EndpointSpec>>(parsed)) {
    if (!core::validateSpec(spec)) fuzz::checkAcceptedSpec(spec);
  }
  return 0;
}
