#pragma once

#include <asio/ssl/context.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "supervisor/core/endpoint_spec.h"

namespace wsvisor {

// The TLS client contexts of one io thread, shared by every connection whose TLS options name the
// same files with the same contents. A context holds the loaded CA store (the system's has
// hundreds of certificates) and the client certificate: ~18 KiB with one CA file, far more with
// the system store. Built per connection, as it once was, it was a fifth of a wss:// connection's
// memory; shared, it is paid once per distinct configuration.
//
// A context is reused only while the files it was loaded from are unchanged (same inode, size and
// modification time when the next connection starts) and for at most kMaxReuse, so that a
// rotated CA or client certificate is picked up by the next connection as before, and a changed
// system store within minutes. Contexts are held weakly: one lives as long as a connection uses it.
//
// Every context also has OpenSSL release a connection's read and write buffers (~34 KiB) while
// they are empty, which heartbeat traffic leaves them almost always.
//
// Not thread-safe: one per io thread.
class TlsContexts {
 public:
  static constexpr std::chrono::minutes kMaxReuse{5};

  // The context for `tls`, or null with `error` set (a file that cannot be loaded).
  std::shared_ptr<asio::ssl::context> get(const core::TlsOptions& tls, std::string& error);

  // Contexts currently shared (tests).
  size_t cachedForTest() const { return cached_.size(); }

 private:
  // What identifies the contents of a file without reading it; all zero when it cannot be stat'ed.
  struct FileIdentity {
    unsigned long device = 0;
    unsigned long inode = 0;
    long long size = 0;
    long long modified_ns = 0;
    bool operator<(const FileIdentity& o) const {
      return std::tie(device, inode, size, modified_ns) <
             std::tie(o.device, o.inode, o.size, o.modified_ns);
    }
  };
  using Key = std::tuple<std::string, std::string, std::string, bool, FileIdentity, FileIdentity,
                         FileIdentity>;
  struct Entry {
    std::weak_ptr<asio::ssl::context> context;
    std::chrono::steady_clock::time_point built;
  };

  static FileIdentity identityOf(const std::string& path);
  void dropUnused();

  std::map<Key, Entry> cached_;
  size_t gets_since_sweep_ = 0;
};

}  // namespace wsvisor
