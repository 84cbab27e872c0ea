#include "supervisor/latest_changes.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wsvisor {
namespace {

SharedHealthEvent eventAt(uint64_t revision, const std::string& id,
                          std::map<std::string, std::string> labels = {}) {
  auto event = std::make_shared<core::HealthEvent>();
  event->revision = revision;
  event->endpoint_id = id;
  event->labels = std::move(labels);
  return event;
}

// "id@revision" of every entry after `revision`, in order.
std::vector<std::string> after(const LatestChanges& latest, uint64_t revision) {
  std::vector<std::string> out;
  latest.forEachAfter(revision, [&](const LatestChange& change) {
    out.push_back(change.event->endpoint_id + "@" + std::to_string(change.event->revision));
  });
  return out;
}

TEST(LatestChangesTest, KeepsOneEntryPerEndpointAtItsLatestRevision) {
  LatestChanges latest(16);
  latest.update(0, eventAt(1, "a"), nullptr);
  latest.update(0, eventAt(2, "b"), nullptr);
  latest.update(1, eventAt(3, "a"), nullptr);
  latest.update(0, eventAt(4, "c"), nullptr);
  latest.update(3, eventAt(5, "a"), nullptr);
  EXPECT_EQ(after(latest, 0), (std::vector<std::string>{"b@2", "c@4", "a@5"}));
  EXPECT_EQ(after(latest, 2), (std::vector<std::string>{"c@4", "a@5"}));
  EXPECT_EQ(latest.firstAfter(4)->event->revision, 5u);
  EXPECT_EQ(latest.firstAfter(5), nullptr);
}

TEST(LatestChangesTest, RemembersTheLabelsBeforeTheLastRelabelling) {
  LatestChanges latest(16);
  SharedHealthEvent first = eventAt(1, "a", {{"team", "x"}});
  latest.update(0, first, nullptr);
  latest.update(1, eventAt(2, "a", {{"team", "y"}}), first);
  latest.update(2, eventAt(3, "a", {{"team", "y"}}), nullptr);  // a change of health only
  const LatestChange* change = latest.firstAfter(0);
  ASSERT_NE(change, nullptr);
  EXPECT_EQ(change->event->revision, 3u);
  EXPECT_EQ(change->relabelled_at, 2u);
  EXPECT_EQ(change->relabelled_from->labels.at("team"), "x");
}

TEST(LatestChangesTest, TombstonesStayUntilForgotten) {
  LatestChanges latest(2);
  latest.update(0, eventAt(1, "a"), nullptr);
  latest.update(0, eventAt(2, "b"), nullptr);
  latest.update(1, eventAt(3, "a"), nullptr);  // a's unregistration
  latest.retire(3);
  latest.update(2, eventAt(4, "b"), nullptr);  // b's unregistration
  latest.retire(4);
  EXPECT_EQ(after(latest, 0), (std::vector<std::string>{"a@3", "b@4"}));
  EXPECT_EQ(latest.tombstones(), 2u);
  latest.update(0, eventAt(5, "a"), nullptr);  // a registered again: replaces its tombstone
  EXPECT_EQ(after(latest, 0), (std::vector<std::string>{"b@4", "a@5"}));
  EXPECT_EQ(latest.tombstones(), 1u);
  EXPECT_FALSE(latest.overTombstoneBound());

  latest.forgetTombstonesThrough(4);
  EXPECT_EQ(after(latest, 0), (std::vector<std::string>{"a@5"}));
  EXPECT_EQ(latest.forgottenThrough(), 0u);  // passed by every watcher: nothing lost

  latest.update(0, eventAt(6, "c"), nullptr);
  latest.retire(6);
  latest.update(0, eventAt(7, "d"), nullptr);
  latest.retire(7);
  latest.update(0, eventAt(8, "e"), nullptr);
  latest.retire(8);
  EXPECT_TRUE(latest.overTombstoneBound());
  latest.forgetOldestTombstones(1);
  EXPECT_EQ(latest.tombstones(), 1u);
  EXPECT_EQ(latest.forgottenThrough(), 7u);
  EXPECT_EQ(after(latest, 0), (std::vector<std::string>{"a@5", "e@8"}));
  latest.update(0, eventAt(9, "c"), nullptr);  // registered again after its tombstone went
  EXPECT_EQ(after(latest, 0), (std::vector<std::string>{"a@5", "e@8", "c@9"}));
}

}  // namespace
}  // namespace wsvisor
