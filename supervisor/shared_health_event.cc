#include "supervisor/shared_health_event.h"

#include <string>

namespace wsvisor {

namespace {

// libstdc++ keeps up to 15 characters inside the string object; longer ones on the heap.
size_t heapBytes(const std::string& text) { return text.capacity() > 15 ? text.capacity() + 1 : 0; }

// A std::map node: three pointers and a colour before the value.
constexpr size_t kMapNodeHeader = 32;
// make_shared's control block, in the same allocation as the event.
constexpr size_t kSharedControlBlock = 16;

}  // namespace

size_t approximateEventBytes(const core::HealthEvent& event) {
  size_t bytes = sizeof(core::HealthEvent) + kSharedControlBlock + heapBytes(event.endpoint_id) +
                 heapBytes(event.status.transition_reason);
  if (event.status.last_failure) bytes += heapBytes(event.status.last_failure->detail);
  for (const auto& [key, value] : event.labels) {
    bytes += kMapNodeHeader + 2 * sizeof(std::string) + heapBytes(key) + heapBytes(value);
  }
  return bytes;
}

}  // namespace wsvisor
