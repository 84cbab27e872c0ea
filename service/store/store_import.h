#pragma once

#include <ostream>
#include <string>

#include "service/store/open_store.h"

namespace wsvisor::service {

// --import-from-data-dir: moving from one wsvisor to a cluster without re-registering anything.
// Reads every endpoint of the single-node registry in `source_data_dir` (SQLite) and creates
// each in the etcd store `target_options` names with its spec, owner and generation, unless
// an endpoint with its id is there already (left as it is, and named when its spec differs).
// Records that do not decode or validate are skipped and named. Idempotent: a second run copies
// nothing. Prints one line per skipped or differing endpoint and a summary to `out`.
// Returns the exit status: 0 when every endpoint was copied or already there, 1 otherwise.
int importDataDirIntoEtcd(const std::string& source_data_dir, const StoreOptions& target_options,
                          std::ostream& out);

}  // namespace wsvisor::service
