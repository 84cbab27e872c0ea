#pragma once

#include <string>

namespace wsvisor::service {

// Version of this build (CMake project version) and the source revision it was configured from
// (git commit, "unknown" outside a checkout).
std::string buildVersion();
std::string buildRevision();

}  // namespace wsvisor::service
