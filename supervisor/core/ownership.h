#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "supervisor/core/time.h"

namespace wsvisor::core {

// Who should supervise an endpoint in a cluster: rendezvous (highest random weight) hashing.
// Every replica computes the same answer from the same member set, with no coordination, and a
// member joining or leaving moves only the endpoints it gains or held (about 1/N of them).

// The weight of `member` for `endpoint_id`: FNV-1a of both (with a separator, so "a"+"bc" and
// "ab"+"c" differ), finished by a 64-bit mixer. Stable across processes, builds and platforms
// (std::hash is not), because every replica must agree.
uint64_t rendezvousWeight(const std::string& member_id, const std::string& endpoint_id);

// The member with the highest weight for `endpoint_id` (ties, which need a 64-bit collision, go to
// the smaller member id); nullopt when `members` is empty.
std::optional<std::string> preferredOwner(const std::vector<std::string>& members,
                                          const std::string& endpoint_id);

// The members' rendezvous order for `endpoint_id`: preferredOwner first, then the member it would
// fall to if that one left, and so on.
std::vector<std::string> preferenceOrder(const std::vector<std::string>& members,
                                         const std::string& endpoint_id);

// Routing around full replicas. Each member publishes its capacity: how many endpoint connections
// it can hold in all (its open-files budget). With the owner keys, which every replica watches,
// each replica computes the same free room for every member, `capacity - keys it holds`, from
// one source: a claim or a release moves the room and the owner keys in the same etcd write, so
// no replica acts on a room that its view of the owners has already used up.
//
// Where an endpoint goes (routeEndpoints):
//   - unheld: to the first member in its preference order with free room left after the unheld
//     endpoints before it (in id order) that went there ("the next replica with room"); to none
//     when every member is full. Such endpoints count as pending for that member.
//   - held: it stays with its holder, unless a member ahead of the holder in its order has free
//     room. Then it is a candidate to move there; of each member's candidates, sorted by id, only
//     the first `free room - pending` move. Every replica ranks the same list, so a member that
//     frees one slot draws exactly one endpoint back, and a member that stays full draws none:
//     no release that the full member could not take, hence no claim/release churn at the edge.
// Worked example: members a, b, c; a publishes capacity 2 and holds x and y; z prefers a, then b.
// a has no free room, so z goes to b (claimed by b). While a stays full, z stays at b. When x is
// unregistered, a's room is 1: z is a's one candidate and is released by b and claimed by a.
struct ClusterPlacement {
  std::vector<std::string> members;        // live members
  std::map<std::string, size_t> capacity;  // member -> connections it can hold; absent: no limit
  std::map<std::string, std::string> holders;  // endpoint id -> member named by its owner key
  std::vector<std::string> registered;         // registered endpoint ids
};

// Endpoint id -> the member that should hold it, for every registered or held endpoint; absent
// when no member has room for it. Without published capacities this is preferredOwner for every
// unheld endpoint and for every held one.
std::map<std::string, std::string> routeEndpoints(const ClusterPlacement& placement);

// What a replica does about one endpoint, given what it sees in etcd. The ownership key
// `<prefix>/owners/<id>` is created only if absent and bound to the claimer's lease, so at most
// one replica holds it at any moment; a replica supervises an endpoint only while it holds it.
enum class OwnershipAction {
  kNone,     // nothing to do (someone else holds it, or we hold it and should)
  kClaim,    // we are preferred and the key is free: create it, then dial
  kRelease,  // we hold it but another live member is preferred (or it was unregistered): stop the
             // connection first, then delete the key if it still holds our value
  kStart,    // we hold the key but do not supervise yet (claim answered, dial not started)
};

struct OwnershipView {
  std::string endpoint_id;
  std::string self;                  // this replica's member id
  std::vector<std::string> members;  // live members as the members/ watch shows them, self included
  bool registered = true;            // the endpoint is still registered
  std::optional<std::string> holder;  // the value of the ownership key; nullopt when absent
  bool holder_is_our_lease = false;   // the key is bound to our current lease
  bool supervising = false;           // we run a connection for it
  bool may_claim = true;              // our lease has headroom (LeaseDeadline::mayClaim)
  // With `routed`, `routed_to` (routeEndpoints) stands where preferredOwner(members) would: the
  // member that should hold the endpoint; nullopt when no member has room for it.
  bool routed = false;
  std::optional<std::string> routed_to;
};

// The rule, per endpoint. A key that names us but is bound to an older lease of ours (a previous
// run of this replica) is someone else's until that lease expires: we must not dial while a
// previous incarnation might still hold a connection.
OwnershipAction decideOwnership(const OwnershipView& view);

// When a replica must stop everything it supervises because its etcd lease may be gone.
//
// The lease lives on etcd's side at least `ttl` after the last acknowledged renewal was *sent*
// (etcd applied it after that moment). So while `now < last_ack_sent + ttl` the lease certainly
// exists, the replica's owner keys exist, and nobody else can hold them. The replica stops its
// connections `margin` before that moment, so they are closed before another replica can claim
// them, even if this replica is cut off from etcd and never learns that the lease expired.
//
// Worked example, ttl 5 s, margin 1 s: renewals are sent every ttl/3; the one sent at t=10 s is
// acknowledged; then etcd becomes unreachable. The deadline is 10 + 5 - 1 = 14 s: at t=14 s the
// replica stops all connections; the lease expires on etcd no earlier than t=15 s; another
// replica claims the endpoint after that and dials. Never two connections to one endpoint.
class LeaseDeadline {
 public:
  LeaseDeadline(Duration ttl, Duration margin) : ttl_(ttl), margin_(margin) {}

  // A renewal (or the grant) sent at `sent` was acknowledged.
  void acknowledged(MonoTime sent) {
    if (!last_ack_sent_ || sent > *last_ack_sent_) last_ack_sent_ = sent;
  }
  // The lease is gone for sure (etcd said so): stop now.
  void lost() { lost_ = true; }

  // The moment supervision must have stopped; MonoTime::min() before any acknowledgement.
  MonoTime stopAt() const {
    if (lost_ || !last_ack_sent_) return MonoTime::min();
    return *last_ack_sent_ + ttl_ - margin_;
  }
  bool mayOwn(MonoTime now) const { return now < stopAt(); }
  // Claims need headroom: a claim made just before the deadline would be stopped at once.
  bool mayClaim(MonoTime now) const { return now + margin_ < stopAt(); }

  // The margin for a TTL: a quarter of it, at most 1 s and at least 200 ms, so a 2 s lease keeps
  // 1.5 s of usable ownership after each acknowledgement and a 60 s lease loses only 1 s.
  static Duration marginFor(Duration ttl);

 private:
  Duration ttl_;
  Duration margin_;
  std::optional<MonoTime> last_ack_sent_;
  bool lost_ = false;
};

}  // namespace wsvisor::core
