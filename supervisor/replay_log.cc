#include "supervisor/replay_log.h"

#include <utility>

namespace wsvisor {

void ReplayLog::append(LoggedEvent logged) {
  // The ring pushes out exactly one event, its oldest (or the new one when the bound is 0), and
  // revisions are consecutive, so the oldest kept revision moves up by one.
  if (events_.push(std::move(logged))) ++first_kept_;
}

}  // namespace wsvisor
