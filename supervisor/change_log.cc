#include "supervisor/change_log.h"

#include <utility>

namespace wsvisor {

void ChangeLog::append(SharedHealthEvent event, SharedHealthEvent relabelled_from) {
  LoggedEvent logged;
  logged.bytes = sizeof(LoggedEvent) + approximateEventBytes(*event);
  logged.bytes_before = bytes_appended_;
  bytes_appended_ += logged.bytes;
  logged.event = std::move(event);
  logged.relabelled_from = std::move(relabelled_from);
  // The ring pushes out exactly one event, its oldest (or the new one when the bound is 0), and
  // revisions are consecutive, so the oldest kept revision moves up by one.
  if (events_.push(std::move(logged))) ++first_kept_;
}

}  // namespace wsvisor
