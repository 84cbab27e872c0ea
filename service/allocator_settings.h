#pragma once

#include <string>

namespace wsvisor::service {

// Applies wsvisor's settings to the allocator it was linked with (CMake WSVISOR_ALLOCATOR) and
// describes the result for the start-up log. Call first in main(), before any thread starts.
std::string applyAllocatorSettings();

}  // namespace wsvisor::service
