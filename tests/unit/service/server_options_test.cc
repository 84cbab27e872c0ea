// wsvisor's command-line flags: the API's security, health history and the watch replay log.
#include "service/server_options.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
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

TEST(ServerOptionsTest, EtcdTlsFlagsAreReadAndOffByDefault) {
  std::string error;
  bool help = false;
  const auto defaults = parseServerOptions({"--store", "etcd://127.0.0.1:2379"}, error, help);
  ASSERT_TRUE(defaults) << error;
  EXPECT_TRUE(defaults->store_ca_file.empty());
  EXPECT_TRUE(defaults->store_cert_file.empty());
  EXPECT_TRUE(defaults->store_key_file.empty());
  EXPECT_TRUE(defaults->store_server_name.empty());

  // The flags may come before --store: they are checked against it after every flag is read.
  const auto options = parseServerOptions(
      {"--store-ca", "ca.pem", "--store-cert=c.pem", "--store-key", "k.pem", "--store-server-name",
       "etcd.internal", "--store", "etcd://127.0.0.1:2379"},
      error, help);
  ASSERT_TRUE(options) << error;
  EXPECT_EQ(options->store_ca_file, "ca.pem");
  EXPECT_EQ(options->store_cert_file, "c.pem");
  EXPECT_EQ(options->store_key_file, "k.pem");
  EXPECT_EQ(options->store_server_name, "etcd.internal");

  const auto server_only =
      parseServerOptions({"--store", "etcd://a:1", "--store-ca", "ca.pem"}, error, help);
  ASSERT_TRUE(server_only) << error;
  EXPECT_TRUE(server_only->store_cert_file.empty());
}

TEST(ServerOptionsTest, IncompleteEtcdTlsIsRefusedWithTheReason) {
  EXPECT_EQ(parseError({"--store", "etcd://a:1", "--store-ca", "ca", "--store-cert", "c"}),
            "--store-cert and --store-key go together: give both or neither");
  EXPECT_EQ(parseError({"--store", "etcd://a:1", "--store-ca", "ca", "--store-key", "k"}),
            "--store-cert and --store-key go together: give both or neither");
  EXPECT_EQ(parseError({"--store", "etcd://a:1", "--store-cert", "c", "--store-key", "k"}),
            "--store-cert needs --store-ca: TLS to etcd is turned on by the CA that verifies it");
  EXPECT_EQ(
      parseError({"--store", "etcd://a:1", "--store-server-name", "n"}),
      "--store-server-name needs --store-ca: TLS to etcd is turned on by the CA that verifies it");
  EXPECT_EQ(parseError({"--store-ca", "ca.pem"}),
            "--store-ca needs --store etcd://...: only etcd is reached over the network");
  EXPECT_EQ(parseError({"--store", "sqlite", "--store-ca", "ca.pem"}),
            "--store-ca needs --store etcd://...: only etcd is reached over the network");
}

TEST(ServerOptionsTest, HistoryAndReplayLogSizes) {
  std::string error;
  bool help = false;
  const auto defaults = parseServerOptions({}, error, help);
  ASSERT_TRUE(defaults) << error;
  EXPECT_EQ(defaults->history_size, 64u);
  EXPECT_EQ(defaults->replay_log_size, 16384u);

  const auto off = parseServerOptions({"--history-size", "0", "--replay-log-size=0"}, error, help);
  ASSERT_TRUE(off) << error;
  EXPECT_EQ(off->history_size, 0u);
  EXPECT_EQ(off->replay_log_size, 0u);

  const auto most =
      parseServerOptions({"--history-size=1024", "--replay-log-size", "1048576"}, error, help);
  ASSERT_TRUE(most) << error;
  EXPECT_EQ(most->history_size, 1024u);
  EXPECT_EQ(most->replay_log_size, 1048576u);

  EXPECT_EQ(parseError({"--history-size", "1025"}),
            "--history-size must be a number from 0 to 1024, got '1025'");
  EXPECT_EQ(parseError({"--replay-log-size", "-1"}),
            "--replay-log-size must be a number from 0 to 1048576, got '-1'");
}

TEST(ServerOptionsTest, WatchStreamLimits) {
  std::string error;
  bool help = false;
  const auto defaults = parseServerOptions({}, error, help);
  ASSERT_TRUE(defaults) << error;
  EXPECT_EQ(defaults->max_watch_streams, 1000u);
  EXPECT_EQ(defaults->watch_stream_bytes, size_t{32} << 20);

  const auto set = parseServerOptions({"--max-watch-streams", "2500", "--watch-stream-bytes=64KiB"},
                                      error, help);
  ASSERT_TRUE(set) << error;
  EXPECT_EQ(set->max_watch_streams, 2500u);
  EXPECT_EQ(set->watch_stream_bytes, 65536u);
  for (const auto& [text, bytes] : std::vector<std::pair<std::string, size_t>>{
           {"1048576", 1048576}, {"256KiB", 262144}, {"16MiB", 16777216}, {"1GiB", 1073741824}}) {
    const auto parsed = parseServerOptions({"--watch-stream-bytes", text}, error, help);
    ASSERT_TRUE(parsed) << text << ": " << error;
    EXPECT_EQ(parsed->watch_stream_bytes, bytes) << text;
  }

  EXPECT_EQ(parseError({"--max-watch-streams", "0"}),
            "--max-watch-streams must be a number from 1 to 100000, got '0'");
  EXPECT_EQ(parseError({"--max-watch-streams=lots"}),
            "--max-watch-streams must be a number from 1 to 100000, got 'lots'");
  for (const char* bad : {"1000", "63KiB", "2GiB", "16MB", "16 MiB", "MiB", "-1"}) {
    EXPECT_EQ(parseError({"--watch-stream-bytes", bad}),
              std::string("--watch-stream-bytes must be a size from 64KiB to 1GiB (bytes, or a "
                          "whole number with KiB, MiB or GiB, e.g. 16MiB), got '") +
                  bad + "'");
  }
}

TEST(ServerOptionsTest, MaxConnectionsLowersTheBudgetOnlyWhenGiven) {
  std::string error;
  bool help = false;
  const auto defaults = parseServerOptions({}, error, help);
  ASSERT_TRUE(defaults) << error;
  EXPECT_EQ(defaults->max_connections, 0u);
  const auto tiny = parseServerOptions({"--max-connections", "3"}, error, help);
  ASSERT_TRUE(tiny) << error;
  EXPECT_EQ(tiny->max_connections, 3u);
  EXPECT_EQ(parseError({"--max-connections", "0"}),
            "--max-connections must be a number from 1 to 10000000, got '0'");
}

TEST(ServerOptionsTest, ClusterMemberIdAndTtl) {
  std::string error;
  bool help = false;
  const auto defaults = parseServerOptions({}, error, help);
  ASSERT_TRUE(defaults) << error;
  EXPECT_TRUE(defaults->member_id.empty());  // the host name at start-up
  EXPECT_EQ(defaults->member_ttl, std::chrono::seconds(5));

  const auto set =
      parseServerOptions({"--member-id", "wsvisor-0.ns_a", "--member-ttl=2s"}, error, help);
  ASSERT_TRUE(set) << error;
  EXPECT_EQ(set->member_id, "wsvisor-0.ns_a");
  EXPECT_EQ(set->member_ttl, std::chrono::seconds(2));
  const auto longest = parseServerOptions({"--member-ttl", "1m"}, error, help);
  ASSERT_TRUE(longest) << error;
  EXPECT_EQ(longest->member_ttl, std::chrono::seconds(60));

  for (const char* bad : {"1s", "61s", "2500ms", "0", "soon"}) {
    EXPECT_EQ(parseError({"--member-ttl", bad}),
              std::string("--member-ttl must be whole seconds from 2s to 60s (etcd leases count "
                          "seconds), got '") +
                  bad + "'")
        << bad;
  }
  for (const std::string& bad : {std::string(""), std::string("a/b"), std::string(129, 'a')}) {
    EXPECT_EQ(parseError({"--member-id", bad}),
              "--member-id must be 1-128 letters, digits, '.', '_' or '-', got '" + bad + "'");
  }
}

}  // namespace
}  // namespace wsvisor::service
