#include "supervisor/core/ownership.h"

#include <algorithm>

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

OwnershipAction decideOwnership(const OwnershipView& view) {
  const bool ours = view.holder && *view.holder == view.self && view.holder_is_our_lease;
  if (!ours) {
    // Supervising without holding the key must end at once: the key vanished (our lease expired
    // or someone deleted it), so another replica may claim it.
    if (view.supervising) return OwnershipAction::kRelease;
    if (view.holder || !view.registered || !view.may_claim) return OwnershipAction::kNone;
    return preferredOwner(view.members, view.endpoint_id) == view.self ? OwnershipAction::kClaim
                                                                       : OwnershipAction::kNone;
  }
  if (!view.registered) return OwnershipAction::kRelease;
  const auto preferred = preferredOwner(view.members, view.endpoint_id);
  // An empty member view (the watch has not answered yet) is no reason to give work away.
  if (preferred && *preferred != view.self) return OwnershipAction::kRelease;
  return view.supervising ? OwnershipAction::kNone : OwnershipAction::kStart;
}

Duration LeaseDeadline::marginFor(Duration ttl) {
  return std::clamp<Duration>(ttl / 4, std::chrono::milliseconds(200), std::chrono::seconds(1));
}

}  // namespace wsvisor::core
