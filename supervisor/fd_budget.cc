#include "supervisor/fd_budget.h"

#include <sys/resource.h>

namespace wsvisor {

FdBudget FdBudget::raiseAndMeasure(size_t reserved) {
  FdBudget budget;
  budget.reserved = reserved;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    if (limit.rlim_cur < limit.rlim_max) {
      rlimit raised = limit;
      raised.rlim_cur = limit.rlim_max;
      if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    budget.soft_limit = static_cast<size_t>(limit.rlim_cur);
    budget.hard_limit = static_cast<size_t>(limit.rlim_max);
  }
  budget.max_endpoints = budget.soft_limit > reserved ? budget.soft_limit - reserved : 0;
  return budget;
}

std::string FdBudget::describe() const {
  return "open-files limit " + std::to_string(soft_limit) + " (hard " + std::to_string(hard_limit) +
         "), " + std::to_string(reserved) + " reserved: room for " + std::to_string(max_endpoints) +
         " endpoints";
}

}  // namespace wsvisor
