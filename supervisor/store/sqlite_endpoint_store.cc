#include "supervisor/store/sqlite_endpoint_store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace wsvisor {

namespace {

// Bumped when the table layout changes; a newer database is refused rather than misread.
constexpr int kSchemaVersion = 1;

std::string sqliteError(sqlite3* db, const std::string& what) {
  return what + ": " + (db ? sqlite3_errmsg(db) : "out of memory");
}

bool exec(sqlite3* db, const char* sql, std::string& error) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    error = std::string(sql) + ": " + (message ? message : "unknown error");
    sqlite3_free(message);
    return false;
  }
  return true;
}

// Creates `dir` and its parents.
bool makeDirectories(const std::string& dir, std::string& error) {
  std::string path;
  size_t start = 0;
  while (start <= dir.size()) {
    size_t slash = dir.find('/', start);
    if (slash == std::string::npos) slash = dir.size();
    path = dir.substr(0, slash);
    start = slash + 1;
    if (path.empty() || path == ".") continue;
    if (::mkdir(path.c_str(), 0750) != 0 && errno != EEXIST) {
      error = "cannot create " + path + ": " + std::strerror(errno);
      return false;
    }
    if (slash == dir.size()) break;
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    error = dir + " is not a directory";
    return false;
  }
  return true;
}

const char* ownerName(EndpointOwner owner) {
  return owner == EndpointOwner::kConfigFile ? "config_file" : "api";
}

}  // namespace

std::unique_ptr<SqliteEndpointStore> SqliteEndpointStore::open(const std::string& data_dir,
                                                               std::string& error) {
  if (!makeDirectories(data_dir, error)) return nullptr;
  const std::string path = data_dir + "/wsvisor.db";
  // SQLite treats an empty file as a new database. Ours always has a header once created, so an
  // existing empty file means it was damaged (or truncated by hand): refuse rather than start
  // with a silently empty registry.
  struct stat existing {};
  if (::stat(path.c_str(), &existing) == 0 && existing.st_size == 0) {
    error = "store " + path +
            " exists but is empty (0 bytes); a wsvisor store always has content. Restore it from "
            "a backup, or remove it to start with no endpoints";
    return nullptr;
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    error = sqliteError(db, "cannot open store " + path);
    sqlite3_close(db);
    return nullptr;
  }
  std::unique_ptr<SqliteEndpointStore> store(new SqliteEndpointStore(db, path));
  sqlite3_busy_timeout(db, 5000);

  // A file that is not a database, or a damaged one, fails here with a clear message.
  std::string check_error;
  sqlite3_stmt* check = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &check, nullptr) != SQLITE_OK) {
    error = sqliteError(db, "store " + path + " is unreadable or not a wsvisor database");
    return nullptr;
  }
  std::string verdict;
  while (sqlite3_step(check) == SQLITE_ROW) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(check, 0));
    if (text && std::strcmp(text, "ok") != 0 && verdict.size() < 512) verdict += text;
  }
  if (sqlite3_finalize(check) != SQLITE_OK || !verdict.empty()) {
    error = "store " + path + " is corrupt" + (verdict.empty() ? "" : ": " + verdict) +
            "; restore it from a backup or move it away to start empty";
    return nullptr;
  }

  if (!exec(db, "PRAGMA journal_mode=WAL", check_error) ||
      !exec(db, "PRAGMA synchronous=FULL", check_error)) {
    error = "store " + path + ": " + check_error;
    return nullptr;
  }
  int version = 0;
  sqlite3_stmt* user_version = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &user_version, nullptr) == SQLITE_OK &&
      sqlite3_step(user_version) == SQLITE_ROW) {
    version = sqlite3_column_int(user_version, 0);
  }
  sqlite3_finalize(user_version);
  if (version > kSchemaVersion) {
    error = "store " + path + " has schema version " + std::to_string(version) +
            ", newer than this wsvisor understands (" + std::to_string(kSchemaVersion) + ")";
    return nullptr;
  }
  if (!exec(db,
            "CREATE TABLE IF NOT EXISTS endpoints ("
            "  id TEXT PRIMARY KEY NOT NULL,"
            "  spec BLOB NOT NULL,"
            "  owner TEXT NOT NULL,"
            "  generation INTEGER NOT NULL,"
            "  updated_at INTEGER NOT NULL)",
            check_error) ||
      !exec(db, "PRAGMA user_version=1", check_error)) {
    error = "store " + path + ": " + check_error;
    return nullptr;
  }
  if (auto prepare_error = store->prepare()) {
    error = *prepare_error;
    return nullptr;
  }
  return store;
}

SqliteEndpointStore::SqliteEndpointStore(sqlite3* db, std::string path)
    : db_(db), path_(std::move(path)) {}

SqliteEndpointStore::~SqliteEndpointStore() { close(); }

std::optional<std::string> SqliteEndpointStore::prepare() {
  if (sqlite3_prepare_v2(db_,
                         "INSERT OR REPLACE INTO endpoints (id, spec, owner, generation, "
                         "updated_at) VALUES (?, ?, ?, ?, strftime('%s','now'))",
                         -1, &put_, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(db_, "DELETE FROM endpoints WHERE id = ?", -1, &remove_, nullptr) !=
          SQLITE_OK) {
    return sqliteError(db_, "store " + path_);
  }
  return std::nullopt;
}

bool SqliteEndpointStore::stepPut(const StoredEndpoint& endpoint) {
  sqlite3_reset(put_);
  sqlite3_bind_text(put_, 1, endpoint.id.data(), static_cast<int>(endpoint.id.size()),
                    SQLITE_TRANSIENT);
  sqlite3_bind_blob(put_, 2, endpoint.encoded_spec.data(),
                    static_cast<int>(endpoint.encoded_spec.size()), SQLITE_TRANSIENT);
  sqlite3_bind_text(put_, 3, ownerName(endpoint.owner), -1, SQLITE_STATIC);
  sqlite3_bind_int64(put_, 4, static_cast<sqlite3_int64>(endpoint.generation));
  const int rc = sqlite3_step(put_);
  sqlite3_reset(put_);
  return rc == SQLITE_DONE;
}

bool SqliteEndpointStore::stepRemove(const std::string& id) {
  sqlite3_reset(remove_);
  sqlite3_bind_text(remove_, 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
  const int rc = sqlite3_step(remove_);
  sqlite3_reset(remove_);
  return rc == SQLITE_DONE;
}

std::optional<std::string> SqliteEndpointStore::put(const StoredEndpoint& endpoint) {
  if (!db_) return "store is closed";
  // Autocommit: the statement is its own transaction, durable when it returns.
  if (!stepPut(endpoint)) return sqliteError(db_, "cannot store " + endpoint.id);
  return std::nullopt;
}

std::optional<std::string> SqliteEndpointStore::remove(const std::string& id) {
  if (!db_) return "store is closed";
  if (!stepRemove(id)) return sqliteError(db_, "cannot remove " + id);
  return std::nullopt;
}

std::optional<std::string> SqliteEndpointStore::applyBatch(
    const std::vector<StoredEndpoint>& puts, const std::vector<std::string>& removes) {
  if (!db_) return "store is closed";
  std::string error;
  if (!exec(db_, "BEGIN IMMEDIATE", error)) return "store " + path_ + ": " + error;
  std::optional<std::string> failure;
  for (const StoredEndpoint& endpoint : puts) {
    if (!stepPut(endpoint)) {
      failure = sqliteError(db_, "cannot store " + endpoint.id);
      break;
    }
  }
  for (size_t i = 0; !failure && i < removes.size(); ++i) {
    if (!stepRemove(removes[i])) failure = sqliteError(db_, "cannot remove " + removes[i]);
  }
  if (!failure && exec(db_, "COMMIT", error)) return std::nullopt;
  if (!failure) failure = "store " + path_ + ": " + error;
  exec(db_, "ROLLBACK", error);
  return failure;
}

std::optional<std::string> SqliteEndpointStore::loadAll(std::vector<StoredEndpoint>& out) {
  if (!db_) return "store is closed";
  sqlite3_stmt* select = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT id, spec, owner, generation FROM endpoints ORDER BY id", -1,
                         &select, nullptr) != SQLITE_OK) {
    return sqliteError(db_, "cannot read store " + path_);
  }
  int rc;
  while ((rc = sqlite3_step(select)) == SQLITE_ROW) {
    StoredEndpoint endpoint;
    endpoint.id = reinterpret_cast<const char*>(sqlite3_column_text(select, 0));
    const void* blob = sqlite3_column_blob(select, 1);
    endpoint.encoded_spec.assign(static_cast<const char*>(blob),
                                 static_cast<size_t>(sqlite3_column_bytes(select, 1)));
    const std::string owner = reinterpret_cast<const char*>(sqlite3_column_text(select, 2));
    endpoint.owner = owner == "config_file" ? EndpointOwner::kConfigFile : EndpointOwner::kApi;
    endpoint.generation = static_cast<uint64_t>(sqlite3_column_int64(select, 3));
    out.push_back(std::move(endpoint));
  }
  std::optional<std::string> error;
  if (rc != SQLITE_DONE) error = sqliteError(db_, "cannot read store " + path_);
  sqlite3_finalize(select);
  return error;
}

void SqliteEndpointStore::close() {
  if (!db_) return;
  sqlite3_finalize(put_);
  sqlite3_finalize(remove_);
  put_ = remove_ = nullptr;
  // Folds the WAL back into the database file so that a copied data dir is self-contained.
  sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
  sqlite3_close(db_);
  db_ = nullptr;
}

}  // namespace wsvisor
