// --store: sqlite, or etcd://HOST:PORT[,HOST:PORT...][/PREFIX], and a precise error otherwise.
#include "service/store/store_url.h"

#include <gtest/gtest.h>

#include "service/server_options.h"

namespace wsvisor::service {
namespace {

StoreLocation parsed(const std::string& text) {
  std::string error;
  auto location = parseStoreLocation(text, error);
  EXPECT_TRUE(location) << text << ": " << error;
  return location.value_or(StoreLocation{});
}

std::string refused(const std::string& text) {
  std::string error;
  EXPECT_FALSE(parseStoreLocation(text, error)) << text << " was accepted";
  return error;
}

TEST(StoreUrlTest, SqliteIsTheDefault) {
  std::string error;
  bool help = false;
  const auto options = parseServerOptions({}, error, help);
  ASSERT_TRUE(options) << error;
  EXPECT_EQ(options->store.kind, StoreLocation::Kind::kSqlite);
  EXPECT_EQ(options->store_connect_timeout, std::chrono::seconds(30));
  EXPECT_EQ(parsed("sqlite").kind, StoreLocation::Kind::kSqlite);
}

TEST(StoreUrlTest, EtcdEndpointsAndPrefix) {
  const auto location = parsed("etcd://etcd-0.etcd:2379,10.0.0.7:32379,[::1]:2379/team/wsvisor");
  EXPECT_EQ(location.kind, StoreLocation::Kind::kEtcd);
  EXPECT_EQ(location.etcd_endpoints,
            (std::vector<std::string>{"etcd-0.etcd:2379", "10.0.0.7:32379", "[::1]:2379"}));
  EXPECT_EQ(location.etcd_prefix, "/team/wsvisor");
  EXPECT_EQ(location.describe(), "etcd://etcd-0.etcd:2379,10.0.0.7:32379,[::1]:2379/team/wsvisor");
}

TEST(StoreUrlTest, ThePortDefaultsTo2379AndThePrefixToWsvisor) {
  const auto location = parsed("etcd://etcd,[fd00::1]");
  EXPECT_EQ(location.etcd_endpoints, (std::vector<std::string>{"etcd:2379", "[fd00::1]:2379"}));
  EXPECT_EQ(location.etcd_prefix, "/wsvisor");
  EXPECT_EQ(parsed("etcd://127.0.0.1:2379/").etcd_prefix, "/wsvisor");
}

TEST(StoreUrlTest, BadValuesAreRefusedSayingWhatIsWrong) {
  EXPECT_EQ(refused("etcd"),
            "unknown store 'etcd': use sqlite or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]");
  EXPECT_EQ(refused("http://127.0.0.1:2379"),
            "unknown store 'http://127.0.0.1:2379': use sqlite or "
            "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]");
  EXPECT_EQ(refused("etcd://"),
            "'etcd://' names no etcd endpoint; use sqlite or "
            "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]");
  EXPECT_EQ(refused("etcd:///wsvisor"),
            "'etcd:///wsvisor' names no etcd endpoint; use sqlite or "
            "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]");
  EXPECT_EQ(refused("etcd://a:2379,,b:2379"),
            "'etcd://a:2379,,b:2379' has an empty etcd endpoint (two commas, or one at an end)");
  EXPECT_EQ(refused("etcd://a:2379,"),
            "'etcd://a:2379,' has an empty etcd endpoint (two commas, or one at an end)");
  EXPECT_EQ(refused("etcd://a:99999"),
            "etcd endpoint 'a:99999': the port must be a number from 1 to 65535");
  EXPECT_EQ(refused("etcd://a:"), "etcd endpoint 'a:': the port must be a number from 1 to 65535");
  EXPECT_EQ(refused("etcd://a:0"),
            "etcd endpoint 'a:0': the port must be a number from 1 to 65535");
  EXPECT_EQ(refused("etcd://:2379"), "etcd endpoint ':2379': the host is missing");
  EXPECT_EQ(refused("etcd://a_b:2379"),
            "etcd endpoint 'a_b:2379': the host must be a DNS name or an IP address");
  EXPECT_EQ(refused("etcd://::1:2379"),
            "etcd endpoint '::1:2379': an IPv6 address must be in brackets, e.g. [::1]:2379");
  EXPECT_EQ(refused("etcd://[::1:2379"),
            "etcd endpoint '[::1:2379': an IPv6 address needs its closing ']'");
  EXPECT_EQ(refused("etcd://[::1]2379"),
            "etcd endpoint '[::1]2379': expected ':PORT' after the IPv6 address");
  EXPECT_EQ(refused("etcd://a:2379,a"), "etcd endpoint 'a:2379' is listed twice");
  EXPECT_EQ(refused("etcd://user@a:2379"),
            "'etcd://user@a:2379': user names, queries and fragments are not supported; use "
            "sqlite or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]");
  const std::string prefix_rule =
      "' must be /-separated names of letters, digits, '.', '_' and '-', with no empty name and "
      "no trailing '/'";
  EXPECT_EQ(refused("etcd://a/wsvisor/"), "etcd key prefix '/wsvisor/" + prefix_rule);
  EXPECT_EQ(refused("etcd://a//wsvisor"), "etcd key prefix '//wsvisor" + prefix_rule);
  EXPECT_EQ(refused("etcd://a/ws visor"), "etcd key prefix '/ws visor" + prefix_rule);
}

TEST(StoreUrlTest, TheFlagsNameThemselvesInTheirErrors) {
  std::string error;
  bool help = false;
  EXPECT_FALSE(parseServerOptions({"--store", "etcd://a:x"}, error, help));
  EXPECT_EQ(error, "--store: etcd endpoint 'a:x': the port must be a number from 1 to 65535");
  EXPECT_FALSE(parseServerOptions({"--store-connect-timeout", "0s"}, error, help));
  EXPECT_EQ(error,
            "--store-connect-timeout must be a positive duration like 500ms, 10s or 1m, got '0s'");

  const auto options = parseServerOptions(
      {"--store=etcd://127.0.0.1:2379", "--store-connect-timeout", "2s"}, error, help);
  ASSERT_TRUE(options) << error;
  EXPECT_EQ(options->store.describe(), "etcd://127.0.0.1:2379/wsvisor");
  EXPECT_EQ(options->store_connect_timeout, std::chrono::seconds(2));
}

}  // namespace
}  // namespace wsvisor::service
