#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "supervisor/core/endpoint_spec.h"

namespace wsvisor {

// Who registered an endpoint, and so who may change or remove it.
enum class EndpointOwner { kApi, kConfigFile };

// One endpoint as persisted: the spec in its encoded form (see SpecCodec), its owner, and its
// generation, which increases with every change of the spec.
struct StoredEndpoint {
  std::string id;
  std::string encoded_spec;
  EndpointOwner owner = EndpointOwner::kApi;
  uint64_t generation = 1;
};

// Durable storage of the registry. Every write is durable when the call returns (SQLite: on disk,
// fsync'd; etcd: committed by a quorum of members), so an acknowledged registration survives a
// crash of the process or the machine. Implementations are called with the registry's write lock
// held: one writer at a time.
//
// The registry only sees this class: SqliteEndpointStore (supervisor/) and EtcdEndpointStore
// (service/etcd/, which needs etcd's generated gRPC code) implement it.
class EndpointStore {
 public:
  virtual ~EndpointStore() = default;

  // Inserts or replaces. Returns an error message on failure; then nothing was written.
  virtual std::optional<std::string> put(const StoredEndpoint& endpoint) = 0;
  virtual std::optional<std::string> remove(const std::string& id) = 0;
  // All of `puts` and `removes` in one atomic, durable transaction (one fsync): a config file of
  // 19,000 endpoints is applied in well under a second instead of 19,000 fsyncs. A put and a
  // remove of the same id: the remove wins. etcd limits a transaction's size, so the etcd store
  // splits a large batch into several, each atomic; see EtcdEndpointStore for what a failure
  // half way leaves.
  virtual std::optional<std::string> applyBatch(const std::vector<StoredEndpoint>& puts,
                                                const std::vector<std::string>& removes) = 0;
  // Everything stored, or an error message. An unreadable or corrupt store is an error, never
  // an empty result.
  virtual std::optional<std::string> loadAll(std::vector<StoredEndpoint>& out) = 0;
  // Flushes and releases the store; later calls fail.
  virtual void close() = 0;
  // Where the data lives, for logs.
  virtual std::string describe() const = 0;
  // Whether the last failed put() failed because another writer changed the record first (a
  // store shared by several replicas), rather than because the store could not be written.
  virtual bool lastWriteConflicted() const { return false; }
};

// Turns specs into the bytes the store keeps and back. The service layer implements it with the
// public protobuf message, so the stored format is the documented API format and stays readable
// across versions.
class SpecCodec {
 public:
  virtual ~SpecCodec() = default;
  virtual std::string encode(const core::EndpointSpec& spec) const = 0;
  virtual std::optional<core::EndpointSpec> decode(const std::string& bytes,
                                                   std::string& error) const = 0;
};

}  // namespace wsvisor
