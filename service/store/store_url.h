#pragma once

#include <optional>
#include <string>
#include <vector>

namespace wsvisor::service {

// Where the registry is stored: --store.
//   sqlite                                     the default: <--data-dir>/wsvisor.db
//   etcd://HOST:PORT[,HOST:PORT...][/PREFIX]   etcd's v3 API on each HOST:PORT (a DNS name, an
//                                              IPv4 address or a bracketed IPv6 address; the
//                                              port defaults to 2379), keys under PREFIX
//                                              (default /wsvisor)
struct StoreLocation {
  enum class Kind { kSqlite, kEtcd };
  Kind kind = Kind::kSqlite;
  std::vector<std::string> etcd_endpoints;  // host:port
  std::string etcd_prefix;                  // "/wsvisor": a leading '/', no trailing one

  // The location written back in the flag's syntax, with defaults filled in: for logs.
  std::string describe() const;
};

constexpr char kDefaultEtcdPrefix[] = "/wsvisor";
constexpr int kDefaultEtcdPort = 2379;

// Parses a --store value. Returns nullopt with `error` saying what is wrong and where, e.g.
// "etcd endpoint 'a:99999': the port must be a number from 1 to 65535".
std::optional<StoreLocation> parseStoreLocation(const std::string& text, std::string& error);

}  // namespace wsvisor::service
