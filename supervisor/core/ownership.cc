#include "supervisor/core/ownership.h"

#include <algorithm>
#include <limits>
#include <set>
#include <utility>

namespace wsvisor::core {

namespace {

constexpr uint64_t kFnvOffset = 14695981039346656037ULL;
constexpr uint64_t kFnvPrime = 1099511628211ULL;

uint64_t fnv1a(uint64_t hash, const std::string& text) {
  for (const char c : text) {
    hash ^= static_cast<uint8_t>(c);
    hash *= kFnvPrime;
  }
  return hash;
}

// splitmix64's finalizer: FNV alone leaves the high bits of similar ids correlated.
uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

uint64_t rendezvousWeight(const std::string& member_id, const std::string& endpoint_id) {
  uint64_t hash = fnv1a(kFnvOffset, member_id);
  hash ^= 0xff;  // a byte no UTF-8 text contains: separates the two ids
  hash *= kFnvPrime;
  return mix(fnv1a(hash, endpoint_id));
}

std::optional<std::string> preferredOwner(const std::vector<std::string>& members,
                                          const std::string& endpoint_id) {
  std::optional<std::string> best;
  uint64_t best_weight = 0;
  for (const std::string& member : members) {
    const uint64_t weight = rendezvousWeight(member, endpoint_id);
    if (!best || weight > best_weight || (weight == best_weight && member < *best)) {
      best = member;
      best_weight = weight;
    }
  }
  return best;
}

std::vector<std::string> preferenceOrder(const std::vector<std::string>& members,
                                         const std::string& endpoint_id) {
  std::vector<std::pair<uint64_t, std::string>> weighted;
  weighted.reserve(members.size());
  for (const std::string& member : members) {
    weighted.emplace_back(rendezvousWeight(member, endpoint_id), member);
  }
  // Highest weight first; ties (a 64-bit collision) to the smaller id, as preferredOwner.
  std::sort(weighted.begin(), weighted.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::vector<std::string> order;
  order.reserve(weighted.size());
  for (auto& [weight, member] : weighted) order.push_back(std::move(member));
  return order;
}

std::map<std::string, std::string> routeEndpoints(const ClusterPlacement& placement) {
  constexpr size_t kNoLimit = std::numeric_limits<size_t>::max();
  const std::set<std::string> live(placement.members.begin(), placement.members.end());
  const std::set<std::string> registered(placement.registered.begin(), placement.registered.end());
  std::map<std::string, size_t> held;
  for (const auto& [id, member] : placement.holders) ++held[member];
  auto freeRoom = [&](const std::string& member) {
    auto cap = placement.capacity.find(member);
    if (cap == placement.capacity.end()) return kNoLimit;
    const size_t used = held[member];
    return cap->second > used ? cap->second - used : 0;
  };
  std::map<std::string, size_t> free_room;
  for (const std::string& member : live) free_room[member] = freeRoom(member);

  std::map<std::string, std::string> routed;
  std::map<std::string, size_t> pending;                       // unheld, routed to the member
  std::map<std::string, std::vector<std::string>> candidates;  // held elsewhere, room here
  std::set<std::string> ids = registered;
  for (const auto& [id, member] : placement.holders) ids.insert(id);
  for (const std::string& id : ids) {  // in id order: the candidates come out sorted
    auto holder = placement.holders.find(id);
    if (holder == placement.holders.end()) {
      for (const std::string& member : preferenceOrder(placement.members, id)) {
        if (free_room[member] > pending[member]) {
          routed[id] = member;
          ++pending[member];
          break;
        }
      }
      continue;
    }
    const std::string& owner = holder->second;
    routed[id] = owner;
    // A departed member's key goes with its lease; an unregistered endpoint is only released.
    if (live.count(owner) == 0 || registered.count(id) == 0) continue;
    for (const std::string& member : preferenceOrder(placement.members, id)) {
      if (member == owner) break;
      if (free_room[member] > 0) {
        candidates[member].push_back(id);
        break;
      }
    }
  }
  for (const auto& [member, ids_here] : candidates) {
    const size_t room = free_room[member];
    const size_t moving = room > pending[member] ? room - pending[member] : 0;
    for (size_t i = 0; i < ids_here.size() && i < moving; ++i) routed[ids_here[i]] = member;
  }
  return routed;
}

OwnershipAction decideOwnership(const OwnershipView& view) {
  const std::optional<std::string> target =
      view.routed ? view.routed_to : preferredOwner(view.members, view.endpoint_id);
  const bool ours = view.holder && *view.holder == view.self && view.holder_is_our_lease;
  if (!ours) {
    // Supervising without holding the key must end at once: the key vanished (our lease expired
    // or someone deleted it), so another replica may claim it.
    if (view.supervising) return OwnershipAction::kRelease;
    if (view.holder || !view.registered || !view.may_claim) return OwnershipAction::kNone;
    return target == view.self ? OwnershipAction::kClaim : OwnershipAction::kNone;
  }
  if (!view.registered) return OwnershipAction::kRelease;
  const auto& preferred = target;
  // An empty member view (the watch has not answered yet) is no reason to give work away.
  if (preferred && *preferred != view.self) return OwnershipAction::kRelease;
  return view.supervising ? OwnershipAction::kNone : OwnershipAction::kStart;
}

Duration LeaseDeadline::marginFor(Duration ttl) {
  return std::clamp<Duration>(ttl / 4, std::chrono::milliseconds(200), std::chrono::seconds(1));
}

}  // namespace wsvisor::core
