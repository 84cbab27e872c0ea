#pragma once

#include <google/protobuf/duration.pb.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace wsvisor::service {

// Durations as people type them on a command line: one or more terms of a decimal number and a
// unit, as in Go's time.ParseDuration: "250ms", "10s", "1.5s", "1m30s", "2h", "100us".
// Units: ns, us (or µs), ms, s, m, h. A bare "0" is accepted; any other number needs a unit,
// because "10" could mean seconds or milliseconds and guessing wrong is a silent 1000x error.
// Negative durations and values finer than 1 ns are rejected rather than rounded.
//
// Returns nullopt and sets `error` (e.g. `invalid duration "10": missing unit after "10" (use
// ns, us, ms, s, m or h)`) when `text` is not a duration.
std::optional<std::chrono::nanoseconds> parseDuration(std::string_view text, std::string& error);

// The protobuf form of `duration`, which must not be negative.
google::protobuf::Duration toProtoDuration(std::chrono::nanoseconds duration);

// A duration for people to read: the largest unit that keeps the integer part non-zero, with at
// most three decimals ("250ms", "1.235ms", "10s", "1.5s"); from one minute up, hours, minutes
// and seconds with zero parts left out ("1m30s", "1h5m", "2h").
// Round values print exactly, so a configured interval reads back as it was typed.
std::string formatDuration(const google::protobuf::Duration& duration);

}  // namespace wsvisor::service
