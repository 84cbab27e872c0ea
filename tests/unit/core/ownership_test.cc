// Rendezvous placement, the per-endpoint ownership rule and the local lease deadline, on a
// simulated clock.
#include "supervisor/core/ownership.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace wsvisor::core {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::vector<std::string> endpointIds(int n) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) ids.push_back("ep-" + std::to_string(i));
  return ids;
}

TEST(RendezvousTest, WeightIsStableAndSeparatesTheIds) {
  // Fixed values: every replica, whatever its build, must compute the same weights.
  EXPECT_EQ(rendezvousWeight("a", "b"), rendezvousWeight("a", "b"));
  EXPECT_NE(rendezvousWeight("a", "bc"), rendezvousWeight("ab", "c"));
  EXPECT_NE(rendezvousWeight("m1", "ep-1"), rendezvousWeight("m2", "ep-1"));
}

TEST(RendezvousTest, NoMembersNoOwner) { EXPECT_FALSE(preferredOwner({}, "ep").has_value()); }

TEST(RendezvousTest, OrderOfMembersDoesNotMatter) {
  for (const std::string& id : endpointIds(200)) {
    EXPECT_EQ(preferredOwner({"a", "b", "c"}, id), preferredOwner({"c", "a", "b"}, id)) << id;
  }
}

TEST(RendezvousTest, SpreadsEvenlyAndMovesOnlyTheLeaversShare) {
  const std::vector<std::string> three = {"wsvisor-0", "wsvisor-1", "wsvisor-2"};
  const std::vector<std::string> two = {"wsvisor-0", "wsvisor-2"};
  std::map<std::string, int> per_member;
  int moved = 0;
  for (const std::string& id : endpointIds(3000)) {
    const std::string before = *preferredOwner(three, id);
    const std::string after = *preferredOwner(two, id);
    ++per_member[before];
    if (before != "wsvisor-1") {
      EXPECT_EQ(before, after) << id << " moved although its owner stayed";
    } else {
      ++moved;
    }
  }
  for (const auto& [member, count] : per_member) {
    EXPECT_GT(count, 850) << member;
    EXPECT_LT(count, 1150) << member;
  }
  EXPECT_EQ(moved, per_member["wsvisor-1"]);
}

OwnershipView viewFor(const std::string& endpoint) {
  OwnershipView view;
  view.endpoint_id = endpoint;
  view.self = "a";
  view.members = {"a", "b"};
  return view;
}

// An endpoint "a" prefers among {a, b}, and one "b" prefers.
std::string preferredBy(const std::string& member) {
  for (const std::string& id : endpointIds(100)) {
    if (preferredOwner({"a", "b"}, id) == member) return id;
  }
  return "";
}

TEST(DecideOwnershipTest, ClaimsAFreeKeyOnlyWhenPreferredAndWithHeadroom) {
  OwnershipView view = viewFor(preferredBy("a"));
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kClaim);
  view.may_claim = false;
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kNone);
  view = viewFor(preferredBy("b"));
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kNone);
  view = viewFor(preferredBy("a"));
  view.registered = false;
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kNone);
}

TEST(DecideOwnershipTest, NeverClaimsAKeyHeldByAnother) {
  OwnershipView view = viewFor(preferredBy("a"));
  view.holder = "b";
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kNone);
  // Our own id under an older lease (a previous run) is not ours yet.
  view.holder = "a";
  view.holder_is_our_lease = false;
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kNone);
}

TEST(DecideOwnershipTest, StartsWhatItHoldsAndReleasesToThePreferred) {
  OwnershipView view = viewFor(preferredBy("a"));
  view.holder = "a";
  view.holder_is_our_lease = true;
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kStart);
  view.supervising = true;
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kNone);

  view = viewFor(preferredBy("b"));
  view.holder = "a";
  view.holder_is_our_lease = true;
  view.supervising = true;
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kRelease);
  // b left: keep it.
  view.members = {"a"};
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kNone);
  // Unregistered: release.
  view.registered = false;
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kRelease);
}

TEST(DecideOwnershipTest, SupervisingWithoutTheKeyStops) {
  OwnershipView view = viewFor(preferredBy("a"));
  view.supervising = true;
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kRelease);
  view.holder = "b";
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kRelease);
}

TEST(DecideOwnershipTest, EmptyMemberViewKeepsWhatItHolds) {
  OwnershipView view = viewFor(preferredBy("a"));
  view.members = {};
  view.holder = "a";
  view.holder_is_our_lease = true;
  view.supervising = true;
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kNone);
}

TEST(LeaseDeadlineTest, StopsAMarginBeforeTheLeaseCanExpire) {
  const MonoTime t0{seconds(100)};
  LeaseDeadline deadline(seconds(5), seconds(1));
  EXPECT_FALSE(deadline.mayOwn(t0));  // nothing acknowledged yet
  deadline.acknowledged(t0);
  EXPECT_EQ(deadline.stopAt(), t0 + seconds(4));
  EXPECT_TRUE(deadline.mayOwn(t0 + milliseconds(3999)));
  EXPECT_FALSE(deadline.mayOwn(t0 + seconds(4)));
  // Claims need a margin of headroom on top.
  EXPECT_TRUE(deadline.mayClaim(t0 + milliseconds(2999)));
  EXPECT_FALSE(deadline.mayClaim(t0 + seconds(3)));
  // A later acknowledgement moves the deadline; an older one (reordered) does not.
  deadline.acknowledged(t0 + seconds(2));
  EXPECT_EQ(deadline.stopAt(), t0 + seconds(6));
  deadline.acknowledged(t0 + seconds(1));
  EXPECT_EQ(deadline.stopAt(), t0 + seconds(6));
  deadline.lost();
  EXPECT_FALSE(deadline.mayOwn(t0 + seconds(2)));
}

TEST(LeaseDeadlineTest, MarginIsAQuarterWithinBounds) {
  EXPECT_EQ(LeaseDeadline::marginFor(seconds(2)), milliseconds(500));
  EXPECT_EQ(LeaseDeadline::marginFor(seconds(60)), seconds(1));
  EXPECT_EQ(LeaseDeadline::marginFor(milliseconds(400)), milliseconds(200));
}

}  // namespace
}  // namespace wsvisor::core
