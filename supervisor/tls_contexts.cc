#include "supervisor/tls_contexts.h"

#include <openssl/ssl.h>
#include <sys/stat.h>

namespace wsvisor {

namespace {

// Builds the TLS context of one configuration: its CA file or the system store, optional client
// certificate, and peer verification (the peer's name is checked per connection).
std::shared_ptr<asio::ssl::context> makeTlsContext(const core::TlsOptions& tls,
                                                   std::string& error) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  std::error_code ec;
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1,
                   ec);
  // A heartbeat leaves a connection's TLS buffers empty between frames: release them meanwhile.
  SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  if (tls.insecure_skip_verify) {
    ctx->set_verify_mode(asio::ssl::verify_none, ec);
  } else {
    ctx->set_verify_mode(asio::ssl::verify_peer, ec);
    if (tls.ca_file.empty()) {
      ctx->set_default_verify_paths(ec);
    } else {
      ctx->load_verify_file(tls.ca_file, ec);
      if (ec) {
        error = "cannot load CA file " + tls.ca_file + ": " + ec.message();
        return nullptr;
      }
    }
  }
  if (!tls.client_cert_file.empty()) {
    ctx->use_certificate_chain_file(tls.client_cert_file, ec);
    if (ec) {
      error = "cannot load client certificate " + tls.client_cert_file + ": " + ec.message();
      return nullptr;
    }
    ctx->use_private_key_file(tls.client_key_file, asio::ssl::context::pem, ec);
    if (ec) {
      error = "cannot load client key " + tls.client_key_file + ": " + ec.message();
      return nullptr;
    }
  }
  return ctx;
}

}  // namespace

TlsContexts::FileIdentity TlsContexts::identityOf(const std::string& path) {
  FileIdentity identity;
  struct stat st {};
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return identity;
  identity.device = static_cast<unsigned long>(st.st_dev);
  identity.inode = static_cast<unsigned long>(st.st_ino);
  identity.size = static_cast<long long>(st.st_size);
  identity.modified_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL +
                         static_cast<long long>(st.st_mtim.tv_nsec);
  return identity;
}

std::shared_ptr<asio::ssl::context> TlsContexts::get(const core::TlsOptions& tls,
                                                     std::string& error) {
  if (++gets_since_sweep_ >= 256) dropUnused();
  Key key{tls.ca_file,
          tls.client_cert_file,
          tls.client_key_file,
          tls.insecure_skip_verify,
          identityOf(tls.ca_file),
          identityOf(tls.client_cert_file),
          identityOf(tls.client_key_file)};
  const auto now = std::chrono::steady_clock::now();
  auto it = cached_.find(key);
  if (it != cached_.end() && now - it->second.built < kMaxReuse) {
    if (auto context = it->second.context.lock()) return context;
  }
  std::shared_ptr<asio::ssl::context> context = makeTlsContext(tls, error);
  if (!context) return nullptr;  // not cached: the next attempt reports the file's state again
  cached_[key] = Entry{context, now};
  return context;
}

void TlsContexts::dropUnused() {
  gets_since_sweep_ = 0;
  for (auto it = cached_.begin(); it != cached_.end();) {
    it = it->second.context.expired() ? cached_.erase(it) : std::next(it);
  }
}

}  // namespace wsvisor
