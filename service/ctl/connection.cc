#include "service/ctl/connection.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <fstream>
#include <optional>
#include <sstream>

namespace wsvisor::ctl {

namespace {

std::optional<std::string> readFile(const std::string& flag, const std::string& path,
                                    std::string& error) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream text;
  if (file) text << file.rdbuf();
  if (!file || file.bad()) {
    error = flag + ": cannot read " + path;
    return std::nullopt;
  }
  return text.str();
}

}  // namespace

std::string tokenFromFileText(const std::string& text) {
  const std::string first_line = text.substr(0, text.find('\n'));
  const size_t begin = first_line.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  const size_t end = first_line.find_last_not_of(" \t\r");
  return first_line.substr(begin, end - begin + 1);
}

std::shared_ptr<grpc::Channel> openChannel(CtlCommand& command, std::string& error) {
  const ConnectionOptions& connection = command.connection;
  if (!connection.token_file.empty()) {
    const auto text = readFile("--token-file", connection.token_file, error);
    if (!text) return nullptr;
    const std::string token = tokenFromFileText(*text);
    if (token.empty()) {
      error = "--token-file: " + connection.token_file + " holds no token on its first line";
      return nullptr;
    }
    command.authorization = "Bearer " + token;
  }
  if (!connection.tls) {
    return grpc::CreateChannel(command.server, grpc::InsecureChannelCredentials());
  }
  grpc::SslCredentialsOptions tls;
  if (!connection.tls_ca_file.empty()) {
    const auto ca = readFile("--tls-ca", connection.tls_ca_file, error);
    if (!ca) return nullptr;
    tls.pem_root_certs = *ca;
  }
  if (!connection.tls_cert_file.empty()) {
    const auto cert = readFile("--tls-cert", connection.tls_cert_file, error);
    const auto key = cert ? readFile("--tls-key", connection.tls_key_file, error) : std::nullopt;
    if (!key) return nullptr;
    tls.pem_cert_chain = *cert;
    tls.pem_private_key = *key;
  }
  grpc::ChannelArguments arguments;
  if (!connection.tls_server_name.empty()) {
    arguments.SetSslTargetNameOverride(connection.tls_server_name);
  }
  return grpc::CreateCustomChannel(command.server, grpc::SslCredentials(tls), arguments);
}

}  // namespace wsvisor::ctl
