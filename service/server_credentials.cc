#include "service/server_credentials.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <optional>
#include <sstream>

#include "supervisor/log.h"

namespace wsvisor::service {

namespace {

// How often the watched files are re-read for rotation.
constexpr unsigned kCertificateRefreshSeconds = 60;

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyDeleter>;

std::string openSslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no PEM data found";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

BioPtr openFile(const std::string& flag, const std::string& path, std::string& error) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    error = flag + " " + path + ": cannot read the file";
  }
  return bio;
}

X509Ptr readCertificate(const std::string& flag, const std::string& path, std::string& error) {
  BioPtr bio = openFile(flag, path, error);
  if (!bio) return nullptr;
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) error = flag + " " + path + ": not a PEM certificate (" + openSslError() + ")";
  return cert;
}

std::optional<std::string> checkTlsFiles(const ServerOptions& options) {
  std::string error;
  X509Ptr cert = readCertificate("--tls-cert", options.tls_cert_file, error);
  if (!cert) return error;
  BioPtr key_bio = openFile("--tls-key", options.tls_key_file, error);
  if (!key_bio) return error;
  KeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return "--tls-key " + options.tls_key_file + ": not an unencrypted PEM private key (" +
           openSslError() + ")";
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return "--tls-key " + options.tls_key_file + " does not belong to the certificate in " +
           "--tls-cert " + options.tls_cert_file;
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0) {
    WSV_LOG(kWarning) << "--tls-cert " << options.tls_cert_file
                      << " has expired: clients will refuse the handshake";
  }
  if (!options.client_ca_file.empty() &&
      !readCertificate("--client-ca", options.client_ca_file, error)) {
    return error;
  }
  return std::nullopt;
}

std::optional<std::string> checkStoreFiles(const ServerOptions& options) {
  std::string error;
  if (!readCertificate("--store-ca", options.store_ca_file, error)) return error;
  if (options.store_cert_file.empty()) return std::nullopt;
  X509Ptr cert = readCertificate("--store-cert", options.store_cert_file, error);
  if (!cert) return error;
  BioPtr key_bio = openFile("--store-key", options.store_key_file, error);
  if (!key_bio) return error;
  KeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return "--store-key " + options.store_key_file + ": not an unencrypted PEM private key (" +
           openSslError() + ")";
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return "--store-key " + options.store_key_file + " does not belong to the certificate in " +
           "--store-cert " + options.store_cert_file;
  }
  return std::nullopt;
}

bool readWholeFile(const std::string& flag, const std::string& path, std::string& out,
                   std::string& error) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) {
    error = flag + " " + path + ": cannot read the file";
    return false;
  }
  out = text.str();
  return true;
}

}  // namespace

std::shared_ptr<grpc::ChannelCredentials> makeStoreCredentials(const ServerOptions& options,
                                                               std::string& error) {
  if (auto problem = checkStoreFiles(options)) {
    error = *problem;
    return nullptr;
  }
  grpc::SslCredentialsOptions ssl;
  if (!readWholeFile("--store-ca", options.store_ca_file, ssl.pem_root_certs, error)) {
    return nullptr;
  }
  if (!options.store_cert_file.empty() &&
      (!readWholeFile("--store-cert", options.store_cert_file, ssl.pem_cert_chain, error) ||
       !readWholeFile("--store-key", options.store_key_file, ssl.pem_private_key, error))) {
    return nullptr;
  }
  return grpc::SslCredentials(ssl);
}

std::shared_ptr<grpc::ServerCredentials> makeServerCredentials(const ServerOptions& options,
                                                               std::string& error) {
  if (options.tls_cert_file.empty()) return grpc::InsecureServerCredentials();
  if (auto problem = checkTlsFiles(options)) {
    error = *problem;
    return nullptr;
  }
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      options.tls_key_file, options.tls_cert_file, options.client_ca_file,
      kCertificateRefreshSeconds);
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  if (options.client_ca_file.empty()) {
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    tls.watch_root_certs();
    tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(tls);
}

std::string describeTransportSecurity(const ServerOptions& options) {
  if (options.tls_cert_file.empty()) return "plaintext";
  return options.client_ca_file.empty() ? "TLS" : "mutual TLS";
}

}  // namespace wsvisor::service
