#include "service/store/store_import.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "service/api/proto_conversions.h"
#include "service/cluster/etcd/etcd_endpoint_store.h"
#include "service/store/open_store.h"
#include "supervisor/core/spec_validation.h"
#include "supervisor/store/sqlite_endpoint_store.h"

namespace wsvisor::service {

int importDataDirIntoEtcd(const std::string& source_data_dir, const StoreOptions& target_options,
                          std::ostream& out) {
  std::string error;
  auto source = SqliteEndpointStore::open(source_data_dir, error);
  if (!source) {
    out << "cannot open the registry in " << source_data_dir << ": " << error << "\n";
    return 1;
  }
  std::vector<StoredEndpoint> records;
  if (auto failure = source->loadAll(records)) {
    out << "cannot read " << source->describe() << ": " << *failure << "\n";
    return 1;
  }
  source->close();

  auto opened = openEndpointStore(target_options, error);
  auto* target = dynamic_cast<etcd::EtcdEndpointStore*>(opened.get());
  if (!target) {
    out << "cannot open the etcd store " << target_options.location.describe() << ": " << error
        << "\n";
    return 1;
  }
  std::vector<StoredEndpoint> present_list;
  if (auto failure = target->loadAll(present_list)) {
    out << "cannot read " << target->describe() << ": " << *failure << "\n";
    return 1;
  }
  std::map<std::string, StoredEndpoint> present;
  for (StoredEndpoint& record : present_list) present[record.id] = std::move(record);
  const ProtoSpecCodec codec;
  size_t copied = 0, already_there = 0, differing = 0, skipped = 0;
  int status = 0;
  for (const StoredEndpoint& record : records) {
    // Only what this version of wsvisor would accept goes into the shared store: every replica
    // would refuse the rest.
    auto spec = codec.decode(record.encoded_spec, error);
    if (spec) {
      if (auto problem = core::validateSpec(*spec)) {
        error = problem->toString();
        spec.reset();
      }
    }
    if (!spec) {
      out << "skipped " << record.id << ": " << error << "\n";
      ++skipped;
      status = 1;
      continue;
    }
    if (auto it = present.find(record.id); it != present.end()) {
      ++already_there;
      // Left as it is; said when it is not the same endpoint, so the operator can decide.
      if (it->second.encoded_spec != record.encoded_spec) {
        out << "kept " << record.id << " as etcd has it (generation " << it->second.generation
            << "); the imported spec (generation " << record.generation << ") differs\n";
        ++differing;
      }
      continue;
    }
    bool created = false;
    if (auto failure = target->createIfAbsent(record, created)) {
      out << "cannot copy " << record.id << " (nothing after it was copied): " << *failure << "\n";
      status = 1;
      break;
    }
    if (created) {
      ++copied;
    } else {
      ++already_there;  // registered through a replica since the read above
    }
  }
  out << "imported " << copied << " of " << records.size() << " endpoints from "
      << source->describe() << " into " << target->describe() << "; " << already_there
      << " were there already (" << differing << " with another spec, kept), " << skipped
      << " skipped\n";
  target->close();
  return status;
}

}  // namespace wsvisor::service
