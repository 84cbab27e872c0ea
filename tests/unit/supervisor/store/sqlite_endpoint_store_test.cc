// The SQLite store against a real database in a temporary directory.
#include "supervisor/store/sqlite_endpoint_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace wsvisor {
namespace {

class SqliteEndpointStoreTest : public ::testing::Test {
 protected:
  SqliteEndpointStoreTest() {
    char pattern[] = "/tmp/wsvisor-store-test-XXXXXX";
    dir_ = mkdtemp(pattern);
  }
  ~SqliteEndpointStoreTest() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<SqliteEndpointStore> open() {
    std::string error;
    auto store = SqliteEndpointStore::open(dir_, error);
    EXPECT_TRUE(store) << error;
    return store;
  }
  std::vector<StoredEndpoint> loadAll(EndpointStore& store) {
    std::vector<StoredEndpoint> all;
    EXPECT_FALSE(store.loadAll(all).has_value());
    return all;
  }

  std::string dir_;
};

TEST_F(SqliteEndpointStoreTest, WhatIsPutIsThereAfterReopening) {
  {
    auto store = open();
    ASSERT_FALSE(store->put({"a", std::string("\x00\x01spec-a", 8), EndpointOwner::kApi, 1}));
    ASSERT_FALSE(store->put({"b", "spec-b", EndpointOwner::kConfigFile, 3}));
  }
  auto store = open();
  const auto all = loadAll(*store);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, "a");
  EXPECT_EQ(all[0].encoded_spec, std::string("\x00\x01spec-a", 8));  // binary-safe
  EXPECT_EQ(all[0].owner, EndpointOwner::kApi);
  EXPECT_EQ(all[1].owner, EndpointOwner::kConfigFile);
  EXPECT_EQ(all[1].generation, 3u);
}

TEST_F(SqliteEndpointStoreTest, PutReplacesAndRemoveDeletes) {
  auto store = open();
  ASSERT_FALSE(store->put({"a", "v1", EndpointOwner::kApi, 1}));
  ASSERT_FALSE(store->put({"a", "v2", EndpointOwner::kApi, 2}));
  ASSERT_FALSE(store->put({"b", "v1", EndpointOwner::kApi, 1}));
  ASSERT_FALSE(store->remove("b"));
  const auto all = loadAll(*store);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].encoded_spec, "v2");
  EXPECT_EQ(all[0].generation, 2u);
}

TEST_F(SqliteEndpointStoreTest, CreatesAMissingDataDirectory) {
  std::string error;
  auto store = SqliteEndpointStore::open(dir_ + "/nested/data", error);
  ASSERT_TRUE(store) << error;
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/nested/data/wsvisor.db"));
}

TEST_F(SqliteEndpointStoreTest, ACorruptDatabaseIsAnErrorNotAnEmptyStore) {
  {
    std::ofstream garbage(dir_ + "/wsvisor.db", std::ios::binary);
    garbage << std::string(8192, 'x');
  }
  std::string error;
  EXPECT_FALSE(SqliteEndpointStore::open(dir_, error));
  EXPECT_NE(error.find(dir_ + "/wsvisor.db"), std::string::npos) << error;
}

TEST_F(SqliteEndpointStoreTest, ADataDirThatIsAFileIsAnError) {
  std::ofstream(dir_ + "/file") << "x";
  std::string error;
  EXPECT_FALSE(SqliteEndpointStore::open(dir_ + "/file", error));
  EXPECT_FALSE(error.empty());
}

TEST_F(SqliteEndpointStoreTest, WritesAfterCloseFailCleanly) {
  auto store = open();
  store->close();
  EXPECT_TRUE(store->put({"a", "v", EndpointOwner::kApi, 1}).has_value());
}

}  // namespace
}  // namespace wsvisor
