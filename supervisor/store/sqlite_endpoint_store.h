#pragma once

#include <memory>
#include <string>

#include "supervisor/store/endpoint_store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace wsvisor {

// The default store: one SQLite database, `<data dir>/wsvisor.db`, in WAL mode with
// synchronous=FULL, so that each committed write is fsync'd before put()/remove() return.
//
// Why SQLite rather than a file format of our own: crash safety (atomic commit, torn-write and
// power-loss handling), corruption detection and tooling (`sqlite3 wsvisor.db .dump`) come with
// a library that is tested far beyond anything we could write, and it is one Debian package.
class SqliteEndpointStore : public EndpointStore {
 public:
  // Opens (creating if needed) the database under `data_dir`, which is created if missing.
  // Checks the database's integrity and schema; returns nullptr with `error` set if the store
  // cannot be used, so that start-up fails loudly instead of starting with an empty registry.
  static std::unique_ptr<SqliteEndpointStore> open(const std::string& data_dir, std::string& error);
  ~SqliteEndpointStore() override;

  // EndpointStore
  std::optional<std::string> put(const StoredEndpoint& endpoint) override;
  std::optional<std::string> remove(const std::string& id) override;
  std::optional<std::string> applyBatch(const std::vector<StoredEndpoint>& puts,
                                        const std::vector<std::string>& removes) override;
  std::optional<std::string> loadAll(std::vector<StoredEndpoint>& out) override;
  void close() override;
  std::string describe() const override { return path_; }

 private:
  SqliteEndpointStore(sqlite3* db, std::string path);
  std::optional<std::string> prepare();
  // One statement of put_/remove_, bound and run; the caller owns the transaction.
  bool stepPut(const StoredEndpoint& endpoint);
  bool stepRemove(const std::string& id);

  sqlite3* db_;
  std::string path_;
  sqlite3_stmt* put_ = nullptr;
  sqlite3_stmt* remove_ = nullptr;
};

}  // namespace wsvisor
