// The TEXT-mode heartbeat reply matcher: a payload and an expression as a caller may register
// them (core::validateSpec() must accept them, as the API requires, so that the fuzzer explores
// what wsvisor would run rather than what it refuses), then any reply from the upstream. Nothing
// may crash, and matching must stay fast (libFuzzer's -timeout; scripts/run-fuzz sets it).

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "supervisor/core/endpoint_spec.h"
#include "supervisor/core/reply_matcher.h"
#include "supervisor/core/spec_validation.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wsvisor;
  FuzzedDataProvider input(data, size);
  core::EndpointSpec spec;
  spec.id = "fuzz";
  spec.url = "ws://upstream.example/";
  spec.heartbeat.mode = core::HeartbeatMode::kText;
  // One byte more than the limits, so that the fuzzer also meets the refusals.
  spec.heartbeat.payload = input.ConsumeRandomLengthString(core::limits::kMaxPayloadLength + 1);
  spec.heartbeat.expect = input.ConsumeRandomLengthString(core::limits::kMaxExpectLength + 1);
  const std::string reply = input.ConsumeRemainingBytesAsString();
  if (core::validateSpec(spec)) return 0;
  core::applyDefaults(spec);

  // As a Session builds it from the filled heartbeat policy.
  const core::ReplyMatcher matcher(spec.heartbeat.payload, spec.heartbeat.expect);
  const bool matched = matcher.matches(reply);
  if (spec.heartbeat.expect.empty()) {
    WSVISOR_FUZZ_CHECK(matched == (reply == spec.heartbeat.payload));
  } else if (reply.size() > core::ReplyMatcher::kMaxRegexReplyBytes) {
    WSVISOR_FUZZ_CHECK(!matched);
  }
  return 0;
}
