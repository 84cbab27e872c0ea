#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "supervisor/core/endpoint_spec.h"

namespace wsvisor::core {

// One field in which two specs differ. `field` is the field's path as the API and the
// INVALID_ARGUMENT messages name it ("spec.heartbeat.interval", "spec.labels[team]",
// "spec.headers[0].value"); the values are written as a user writes them: durations as "5s" or
// "250ms", texts quoted, "unset" for an empty text or a missing label, header or subprotocol.
struct FieldDifference {
  std::string field;
  std::string stored;
  std::string requested;
  // The requested value is the one the field takes when left unset: a request that left out a
  // field the stored spec had set shows up this way.
  bool requested_is_default = false;
  // A secret header value (see isSecretHeader()) differs: `stored` and `requested` then hold
  // kRedactedValue, never the values.
  bool secret = false;
};

// Every field in which `requested` differs from `stored`, in the order of the API's
// EndpointSpec. Both specs must have been validated and have had applyDefaults() applied, so
// that an unset field and its default compare equal. A field that only follows from another
// one is left out, so that the list is what a caller must change to match the stored spec: a
// field whose two values are both defaults that follow from other fields (the timeout from the
// interval, the payload from the mode); `jitter` when `no_jitter` differs; the other flapping
// fields when `disabled` differs. A header value is shown only when neither header is secret.
std::vector<FieldDifference> specDifferences(const EndpointSpec& stored,
                                             const EndpointSpec& requested);

// The differences on one line, at most `max_shown` of them, each value cut to a readable length:
//   spec.heartbeat.interval: stored 5s, requested 10s (default); spec.labels[team]: stored "red",
//   requested unset; and 2 more
// (all on one line). Empty when there is no difference.
std::string describeDifferences(const std::vector<FieldDifference>& differences, size_t max_shown);

}  // namespace wsvisor::core
