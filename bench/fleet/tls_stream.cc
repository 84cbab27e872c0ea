// OpenSSL under the epoll fleet; see tls_stream.h.
#include "tls_stream.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <climits>

namespace fleet {

namespace {

std::string lastError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

}  // namespace

std::unique_ptr<TlsContext> TlsContext::load(const std::string& cert_file,
                                             const std::string& key_file, std::string& error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) {
    error = "SSL_CTX_new: " + lastError();
    return nullptr;
  }
  std::unique_ptr<TlsContext> context(new TlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // No session resumption: neither wsvisor's client contexts (OpenSSL keeps no client sessions
  // unless asked) nor the peers resume sessions, so tickets and a cache would only cost. No
  // renegotiation: then a write never has to wait for input, nor a read for output, except
  // for a TLS 1.3 key update, which the read path handles.
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  // Read-ahead: one read() takes whatever the socket holds (a ping record is ~30 bytes), where
  // OpenSSL would otherwise read each record's header and body separately: two syscalls a ping.
  SSL_CTX_set_read_ahead(ctx, 1);
  // The fleet keeps unsent output in a std::string that may grow (and move) before the retry.
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    error = "cannot load certificate " + cert_file + ": " + lastError();
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    error = "cannot load key " + key_file + ": " + lastError();
    return nullptr;
  }
  return context;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

std::unique_ptr<TlsStream> TlsStream::accept(const TlsContext& context, int fd) {
  SSL* ssl = SSL_new(context.get());
  if (ssl == nullptr) {
    ERR_clear_error();
    return nullptr;
  }
  std::unique_ptr<TlsStream> stream(new TlsStream(ssl));
  if (SSL_set_fd(ssl, fd) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return stream;
}

TlsStream::~TlsStream() { SSL_free(ssl_); }

TlsStep TlsStream::classify(int result) {
  wants_write_ = false;
  const int error = SSL_get_error(ssl_, result);
  switch (error) {
    case SSL_ERROR_WANT_READ:
      return TlsStep::kWouldBlock;
    case SSL_ERROR_WANT_WRITE:
      wants_write_ = true;
      return TlsStep::kWouldBlock;
    case SSL_ERROR_ZERO_RETURN:
      return TlsStep::kClosed;
    default:
      // OpenSSL requires an empty error queue before the next operation on this thread, or
      // SSL_get_error() misreports it; and a failed connection must not send close_notify.
      ERR_clear_error();
      failed_ = true;
      return TlsStep::kFailed;
  }
}

TlsStep TlsStream::handshake() {
  const int result = SSL_do_handshake(ssl_);
  if (result == 1) {
    established_ = true;
    wants_write_ = false;
    return TlsStep::kDone;
  }
  return classify(result);
}

TlsStep TlsStream::read(char* buf, size_t size, size_t& got) {
  const int result = SSL_read(ssl_, buf, static_cast<int>(size > INT_MAX ? INT_MAX : size));
  if (result > 0) {
    got = static_cast<size_t>(result);
    wants_write_ = false;
    return TlsStep::kDone;
  }
  return classify(result);
}

TlsStep TlsStream::write(const char* data, size_t size) {
  if (size > INT_MAX) {
    failed_ = true;
    return TlsStep::kFailed;
  }
  // Without SSL_MODE_ENABLE_PARTIAL_WRITE, success means all of it was sent.
  const int result = SSL_write(ssl_, data, static_cast<int>(size));
  if (result > 0) {
    wants_write_ = false;
    return TlsStep::kDone;
  }
  return classify(result);
}

bool TlsStream::hasBuffered() const { return SSL_has_pending(ssl_) == 1; }

void TlsStream::shutdown() {
  if (!established_ || failed_) return;
  if (SSL_shutdown(ssl_) < 0) ERR_clear_error();
}

}  // namespace fleet
