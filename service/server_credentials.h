#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "service/server_options.h"

namespace wsvisor::service {

// The credentials of the gRPC listener: plaintext, TLS (--tls-cert, --tls-key) or mutual TLS
// (--client-ca as well). The files are checked first (readable, PEM, the key belongs to the
// certificate) so that a mistake stops start-up with a message naming the file instead of
// failing every handshake later. They are then watched and re-read every minute, so a rotated
// certificate (cert-manager, a renewed Secret) is served without a restart.
// Returns nullptr with `error` set when a file is unusable.
std::shared_ptr<grpc::ServerCredentials> makeServerCredentials(const ServerOptions& options,
                                                               std::string& error);

// The credentials of wsvisor's connections to etcd when --store-ca is given: TLS verified by that
// CA, with --store-cert and --store-key as the client certificate if given. The files are read
// once, now, and checked like --tls-cert's, so a mistake stops start-up naming the flag and file.
// Returns nullptr with `error` set when a file is unusable.
std::shared_ptr<grpc::ChannelCredentials> makeStoreCredentials(const ServerOptions& options,
                                                               std::string& error);

// "plaintext", "TLS" or "mutual TLS": for the start-up log line.
std::string describeTransportSecurity(const ServerOptions& options);

}  // namespace wsvisor::service
