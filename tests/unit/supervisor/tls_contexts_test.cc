// TLS client contexts are shared by connections with the same options and files, and rebuilt
// when a file changes. CA certificates are made with the `openssl` command-line tool.

#include "supervisor/tls_contexts.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace wsvisor {
namespace {

class TlsContextsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/wsvisor-tls-contexts-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes a new self-signed CA certificate (EC P-256) to `path`.
  void makeCa(const std::string& path, const std::string& name) {
    const std::string command =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "
        "'/CN=" +
        name + "' -keyout '" + dir_ + "/" + name + ".key' -out '" + path + "' >/dev/null 2>&1";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
  }

  core::TlsOptions withCa(const std::string& path) {
    core::TlsOptions tls;
    tls.ca_file = path;
    return tls;
  }

  std::string dir_;
  TlsContexts contexts_;
};

TEST_F(TlsContextsTest, ConnectionsWithTheSameOptionsShareOneContext) {
  const std::string ca = dir_ + "/ca.pem";
  makeCa(ca, "one");
  std::string error;
  auto first = contexts_.get(withCa(ca), error);
  ASSERT_NE(first, nullptr) << error;
  auto second = contexts_.get(withCa(ca), error);
  EXPECT_EQ(second, first);
  EXPECT_EQ(contexts_.cachedForTest(), 1u);

  core::TlsOptions skip = withCa(ca);
  skip.insecure_skip_verify = true;
  auto other = contexts_.get(skip, error);
  ASSERT_NE(other, nullptr) << error;
  EXPECT_NE(other, first);
}

TEST_F(TlsContextsTest, AChangedCaFileGetsANewContext) {
  const std::string ca = dir_ + "/ca.pem";
  makeCa(ca, "old");
  std::string error;
  auto before = contexts_.get(withCa(ca), error);
  ASSERT_NE(before, nullptr) << error;
  makeCa(dir_ + "/new.pem", "new-with-a-longer-name");
  std::filesystem::rename(dir_ + "/new.pem", ca);  // rotated as an operator would
  auto after = contexts_.get(withCa(ca), error);
  ASSERT_NE(after, nullptr) << error;
  EXPECT_NE(after, before);
}

TEST_F(TlsContextsTest, AFileThatCannotBeLoadedIsReportedEachTimeAndNotCached) {
  const std::string ca = dir_ + "/missing.pem";
  std::string error;
  EXPECT_EQ(contexts_.get(withCa(ca), error), nullptr);
  EXPECT_EQ(error.rfind("cannot load CA file " + ca + ": ", 0), 0u) << error;
  EXPECT_EQ(contexts_.cachedForTest(), 0u);
  makeCa(ca, "late");
  error.clear();
  EXPECT_NE(contexts_.get(withCa(ca), error), nullptr) << error;
}

TEST_F(TlsContextsTest, AContextNoConnectionUsesIsNotKept) {
  const std::string ca = dir_ + "/ca.pem";
  makeCa(ca, "one");
  std::string error;
  std::weak_ptr<asio::ssl::context> weak = contexts_.get(withCa(ca), error);
  EXPECT_TRUE(weak.expired());  // held only while a connection holds it
  auto again = contexts_.get(withCa(ca), error);
  ASSERT_NE(again, nullptr) << error;
}

TEST_F(TlsContextsTest, ContextsReleaseIdleConnectionBuffers) {
  std::string error;
  core::TlsOptions system_store;
  auto context = contexts_.get(system_store, error);
  ASSERT_NE(context, nullptr) << error;
  EXPECT_NE(SSL_CTX_get_mode(context->native_handle()) & SSL_MODE_RELEASE_BUFFERS, 0);
}

}  // namespace
}  // namespace wsvisor
