#pragma once

#include <cstddef>
#include <memory>

#include "supervisor/core/health_event.h"

namespace wsvisor {

// One published event, shared read-only by every watcher it goes to and by the bus's logs:
// publishing to M watchers costs no copy of the labels and strings at all.
using SharedHealthEvent = std::shared_ptr<const core::HealthEvent>;

// The approximate bytes `event` occupies in memory: the struct and its shared_ptr control block,
// one map node per label, and the heap buffers of its strings (id, label keys and values, failure
// detail, transition reason) where they exceed the small-string buffer. With no labels and short
// strings that is about 0.3 KiB; with the most label bytes a spec may have (64 labels of 256-byte
// values) about 22 KiB. A watcher's byte budget counts events by this measure.
size_t approximateEventBytes(const core::HealthEvent& event);

}  // namespace wsvisor
