#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wsvisor::ctl {

// The name in `known` closest to `typed`, for a "did you mean" after a typing mistake
// (`--intervall` → `--interval`, `regster` → `register`, `-interval` → `--interval`). Leading
// dashes are ignored, and so is case. Distance is the optimal string alignment distance: an
// insertion, a deletion, a substitution or a swap of two neighbours costs 1. A name counts as
// close when at most a third of it (at least 1, at most 3 edits) must change and `typed` keeps
// something of its own: "-x" suggests nothing. Ties go to the name listed first; nullopt when
// nothing is close.
std::optional<std::string> nearestName(std::string_view typed,
                                       const std::vector<std::string_view>& known);

}  // namespace wsvisor::ctl
