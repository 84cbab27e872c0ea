// wsvisor's command-line flags for the API's security.
#include "service/server_options.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace wsvisor::service {
namespace {

std::string parseError(const std::vector<std::string>& args) {
  std::string error;
  bool help = false;
  EXPECT_FALSE(parseServerOptions(args, error, help).has_value()) << "accepted";
  return error;
}

TEST(ServerOptionsTest, SecurityFlagsAreReadAndOffByDefault) {
  std::string error;
  bool help = false;
  const auto defaults = parseServerOptions({}, error, help);
  ASSERT_TRUE(defaults) << error;
  EXPECT_TRUE(defaults->tls_cert_file.empty());
  EXPECT_TRUE(defaults->auth_token_file.empty());
  EXPECT_TRUE(defaults->health_listen.empty());

  const auto options =
      parseServerOptions({"--tls-cert", "c.pem", "--tls-key=k.pem", "--client-ca", "ca.pem",
                          "--auth-token-file", "t", "--health-listen", "0.0.0.0:8081"},
                         error, help);
  ASSERT_TRUE(options) << error;
  EXPECT_EQ(options->tls_cert_file, "c.pem");
  EXPECT_EQ(options->tls_key_file, "k.pem");
  EXPECT_EQ(options->client_ca_file, "ca.pem");
  EXPECT_EQ(options->auth_token_file, "t");
  EXPECT_EQ(options->health_listen, "0.0.0.0:8081");
}

TEST(ServerOptionsTest, IncompleteTlsIsRefusedWithTheReason) {
  EXPECT_EQ(parseError({"--tls-cert", "c.pem"}),
            "--tls-cert and --tls-key go together: give both or neither");
  EXPECT_EQ(parseError({"--tls-key", "k.pem"}),
            "--tls-cert and --tls-key go together: give both or neither");
  EXPECT_EQ(parseError({"--client-ca", "ca.pem"}),
            "--client-ca needs --tls-cert and --tls-key: client certificates are checked in TLS");
  EXPECT_EQ(parseError({"--listen", "127.0.0.1:1", "--health-listen", "127.0.0.1:1"}),
            "--health-listen must differ from --listen");
}

}  // namespace
}  // namespace wsvisor::service
