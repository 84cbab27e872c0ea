// Rendezvous placement, the per-endpoint ownership rule and the local lease deadline, on a
// simulated clock.
#include "supervisor/core/ownership.h"

#include <gtest/gtest.h>

#include <algorithm>
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

TEST(PreferenceOrderTest, StartsWithThePreferredOwnerAndNamesEveryMemberOnce) {
  const std::vector<std::string> members = {"a", "b", "c"};
  for (const std::string& id : endpointIds(100)) {
    const std::vector<std::string> order = preferenceOrder(members, id);
    ASSERT_EQ(order.size(), 3u);
    EXPECT_EQ(order[0], preferredOwner(members, id)) << id;
    // The second choice is who would be preferred without the first.
    std::vector<std::string> rest;
    for (const std::string& m : members) {
      if (m != order[0]) rest.push_back(m);
    }
    EXPECT_EQ(order[1], preferredOwner(rest, id)) << id;
  }
}

// Endpoints ids whose preference order starts with `first` (then `second`, when given).
std::vector<std::string> preferring(const std::vector<std::string>& members,
                                    const std::string& first, size_t count,
                                    const std::string& second = "") {
  std::vector<std::string> out;
  for (int i = 0; out.size() < count; ++i) {
    const std::string id = "ep-" + std::to_string(i);
    const auto order = preferenceOrder(members, id);
    if (order[0] == first && (second.empty() || order[1] == second)) out.push_back(id);
  }
  return out;
}

TEST(RouteEndpointsTest, WithoutCapacitiesEveryEndpointGoesToItsPreferredOwner) {
  ClusterPlacement placement;
  placement.members = {"a", "b", "c"};
  placement.registered = endpointIds(200);
  // Half of them held by someone who is not preferred: they move, as before routing existed.
  for (size_t i = 0; i < placement.registered.size(); i += 2) {
    const std::string& id = placement.registered[i];
    placement.holders[id] = preferenceOrder(placement.members, id)[2];
  }
  const auto routed = routeEndpoints(placement);
  for (const std::string& id : placement.registered) {
    EXPECT_EQ(routed.at(id), preferredOwner(placement.members, id)) << id;
  }
}

TEST(RouteEndpointsTest, AFullMembersEndpointsGoToTheNextMemberWithRoom) {
  ClusterPlacement placement;
  placement.members = {"a", "b", "c"};
  placement.capacity = {{"a", 2}, {"b", 1000}, {"c", 1000}};
  const auto for_a = preferring(placement.members, "a", 6);
  placement.registered = for_a;
  placement.holders[for_a[0]] = "a";
  placement.holders[for_a[1]] = "a";
  const auto routed = routeEndpoints(placement);
  EXPECT_EQ(routed.at(for_a[0]), "a");
  EXPECT_EQ(routed.at(for_a[1]), "a");
  for (size_t i = 2; i < for_a.size(); ++i) {
    EXPECT_EQ(routed.at(for_a[i]), preferenceOrder(placement.members, for_a[i])[1]) << for_a[i];
  }
}

TEST(RouteEndpointsTest, UnheldEndpointsFillTheFreeRoomInIdOrderThenMoveOn) {
  ClusterPlacement placement;
  placement.members = {"a", "b"};
  placement.capacity = {{"a", 2}, {"b", 1000}};
  const auto for_a = preferring(placement.members, "a", 5);
  placement.registered = for_a;
  std::vector<std::string> sorted = for_a;
  std::sort(sorted.begin(), sorted.end());
  const auto routed = routeEndpoints(placement);
  EXPECT_EQ(routed.at(sorted[0]), "a");
  EXPECT_EQ(routed.at(sorted[1]), "a");
  for (size_t i = 2; i < sorted.size(); ++i) EXPECT_EQ(routed.at(sorted[i]), "b") << sorted[i];
}

TEST(RouteEndpointsTest, EndpointsStayWhereTheyAreWhileThePreferredMemberIsFull) {
  // No churn at the edge: b holds what a could not take; as long as a is full, nothing moves.
  ClusterPlacement placement;
  placement.members = {"a", "b", "c"};
  placement.capacity = {{"a", 2}, {"b", 1000}, {"c", 1000}};
  const auto for_a = preferring(placement.members, "a", 6, "b");
  placement.registered = for_a;
  placement.holders[for_a[0]] = "a";
  placement.holders[for_a[1]] = "a";
  for (size_t i = 2; i < for_a.size(); ++i) placement.holders[for_a[i]] = "b";
  const auto routed = routeEndpoints(placement);
  for (size_t i = 0; i < for_a.size(); ++i) {
    EXPECT_EQ(routed.at(for_a[i]), placement.holders[for_a[i]]) << for_a[i];
  }
}

TEST(RouteEndpointsTest, OneFreedSlotDrawsExactlyOneEndpointBack) {
  ClusterPlacement placement;
  placement.members = {"a", "b"};
  placement.capacity = {{"a", 2}, {"b", 1000}};
  auto for_a = preferring(placement.members, "a", 6);
  std::sort(for_a.begin(), for_a.end());
  // a held for_a[0] and for_a[1]; for_a[0] was unregistered, so a has one slot free.
  placement.registered.assign(for_a.begin() + 1, for_a.end());
  placement.holders[for_a[1]] = "a";
  for (size_t i = 2; i < for_a.size(); ++i) placement.holders[for_a[i]] = "b";
  auto routed = routeEndpoints(placement);
  EXPECT_EQ(routed.at(for_a[2]), "a");  // the first candidate by id: b releases it
  for (size_t i = 3; i < for_a.size(); ++i) EXPECT_EQ(routed.at(for_a[i]), "b") << for_a[i];

  // Released but not yet claimed: it is pending for a, and no second endpoint is released.
  placement.holders.erase(for_a[2]);
  routed = routeEndpoints(placement);
  EXPECT_EQ(routed.at(for_a[2]), "a");
  for (size_t i = 3; i < for_a.size(); ++i) EXPECT_EQ(routed.at(for_a[i]), "b") << for_a[i];

  // Claimed by a: a is full again, nothing else moves.
  placement.holders[for_a[2]] = "a";
  routed = routeEndpoints(placement);
  for (size_t i = 3; i < for_a.size(); ++i) EXPECT_EQ(routed.at(for_a[i]), "b") << for_a[i];
}

TEST(RouteEndpointsTest, NoMemberWithRoomRoutesNowhere) {
  ClusterPlacement placement;
  placement.members = {"a", "b"};
  placement.capacity = {{"a", 1}, {"b", 1}};
  placement.registered = endpointIds(3);
  placement.holders["ep-0"] = "a";
  placement.holders["ep-1"] = "b";
  const auto routed = routeEndpoints(placement);
  EXPECT_EQ(routed.at("ep-0"), "a");
  EXPECT_EQ(routed.at("ep-1"), "b");
  EXPECT_EQ(routed.count("ep-2"), 0u);
}

TEST(DecideOwnershipTest, FollowsTheRoutingWhenGiven) {
  OwnershipView view;
  view.endpoint_id = "ep";
  view.self = "b";
  view.members = {"a", "b"};
  view.routed = true;
  view.routed_to = "b";
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kClaim);
  view.routed_to = "a";
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kNone);
  view.routed_to.reset();  // no member has room
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kNone);
  view.holder = "b";
  view.holder_is_our_lease = true;
  view.supervising = true;
  view.routed_to = "b";
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kNone);
  view.routed_to = "a";
  EXPECT_EQ(decideOwnership(view), OwnershipAction::kRelease);
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
