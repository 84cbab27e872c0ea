// TLS for the epoll fleet (wsfleet --tls CERT KEY): one OpenSSL server context and, per
// connection, a non-blocking stream over the connection's socket. The fleet's epoll loop drives
// it: a step that cannot go on says whether it waits for the socket to become readable or
// writable, and the loop arms epoll accordingly. The WebSocket handling above it is the same as
// for plain connections: it sees decrypted bytes.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace fleet {

// What a non-blocking step came to.
enum class TlsStep {
  kDone,        // handshake complete / bytes moved
  kWouldBlock,  // try again when the socket is ready (wantsWrite() says for what)
  kClosed,      // the peer closed (close_notify or end of stream)
  kFailed,      // protocol or socket error: close the connection
};

class TlsContext {
 public:
  // Loads the PEM certificate chain and private key. Null with `error` set on failure.
  static std::unique_ptr<TlsContext> load(const std::string& cert_file, const std::string& key_file,
                                          std::string& error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* get() const { return ctx_; }

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
};

class TlsStream {
 public:
  // Server side of a TLS connection on the accepted, non-blocking socket `fd` (not owned: the
  // fleet closes it). Null if OpenSSL cannot allocate the connection.
  static std::unique_ptr<TlsStream> accept(const TlsContext& context, int fd);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  bool established() const { return established_; }
  // After kWouldBlock: true if the step waits for writability, false if for readability.
  bool wantsWrite() const { return wants_write_; }

  TlsStep handshake();
  // Decrypted bytes into `buf`; `got` is set when kDone.
  TlsStep read(char* buf, size_t size, size_t& got);
  // Encrypts and sends all of `data`, or none as far as the caller is concerned: after
  // kWouldBlock the caller must call write() again with the same bytes at the start of `data`
  // (more may follow; the buffer may have moved), and OpenSSL carries on where it stopped.
  TlsStep write(const char* data, size_t size);
  // Bytes OpenSSL has read from the socket but not handed out yet. The loop polls epoll
  // level-triggered, so input still in the kernel is announced again; input already pulled
  // into OpenSSL's buffer is not, and must be read before waiting.
  bool hasBuffered() const;
  // Best effort close_notify (one attempt, no waiting), before a clean close.
  void shutdown();

 private:
  explicit TlsStream(SSL* ssl) : ssl_(ssl) {}
  TlsStep classify(int result);

  SSL* ssl_;
  bool established_ = false;
  bool wants_write_ = false;
  bool failed_ = false;
};

}  // namespace fleet
