#!/usr/bin/python3
"""Cluster mode: who supervises what, and routing around a full replica.

Three wsvisor replicas share a real three-member etcd cluster (Debian's etcd-server) on loopback;
replica-0 is started with --max-connections 3, far fewer than the endpoints it is preferred for.
  1. 30 endpoints registered through different replicas: each gets exactly one connection.
     replica-0 supervises exactly 3 of those it is preferred for; every other endpoint is
     supervised by the first replica of its rendezvous order that has room (the same hash as
     supervisor/core/ownership.cc, recomputed here).
  2. Every replica's Get and List, and `wsvisorctl list -o json`, name that replica in
     status.supervised_by; `wsvisorctl list` shows it in a SUPERVISED BY column.
  3. Over an observation window of many reconcile passes nothing moves: no new upstream
     connection, and no replica logs a claim or a release.
  4. At the edge: one of replica-0's endpoints is unregistered, which frees one slot. Exactly one
     endpoint moves back to replica-0 (one release, one claim), and then nothing moves again.

Every wait polls with a deadline; the observation windows are the only fixed waits, because
what they check is that nothing happens. Run: /usr/bin/python3 test_full_replica.py -v with
WSVISOR_BIN and WSVISORCTL_BIN set, as ctest does.
"""

import json
import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "durability"))
sys.path.insert(0, os.path.join(HERE, os.pardir, "support"))

from etcd_cluster import EtcdCluster  # noqa: E402
from wsvisor_proc import CALL_TIMEOUT_S, DurabilityTestCase, list_all, report  # noqa: E402

ENDPOINTS = 30
REPLICAS = ["replica-0", "replica-1", "replica-2"]
TINY = "replica-0"
TINY_BUDGET = 3
TTL_S = 3
POLL_S = 0.02
# The reconciler runs at least every 0.2 s: 5 s is 25 passes of every replica.
OBSERVE_S = 5.0
CLAIM_LOG = "owned by this replica"
RELEASE_LOG = "released to replica"

MASK = (1 << 64) - 1
FNV_OFFSET = 14695981039346656037
FNV_PRIME = 1099511628211


def _fnv1a(value, data):
    for byte in data:
        value ^= byte
        value = (value * FNV_PRIME) & MASK
    return value


def _mix(x):
    x ^= x >> 30
    x = (x * 0xbf58476d1ce4e5b9) & MASK
    x ^= x >> 27
    x = (x * 0x94d049bb133111eb) & MASK
    x ^= x >> 31
    return x


def rendezvous_weight(member, endpoint_id):
    """core::rendezvousWeight, byte for byte."""
    value = _fnv1a(FNV_OFFSET, member.encode())
    value ^= 0xff
    value = (value * FNV_PRIME) & MASK
    return _mix(_fnv1a(value, endpoint_id.encode()))


def preference_order(endpoint_id):
    """core::preferenceOrder over REPLICAS."""
    return sorted(REPLICAS, key=lambda m: (-rendezvous_weight(m, endpoint_id), m))


def spec(pb, endpoint_id, url):
    result = pb.EndpointSpec(id=endpoint_id, url=url)
    result.heartbeat.interval.FromMilliseconds(500)
    result.connect_timeout.FromMilliseconds(1000)
    result.backoff.initial.FromMilliseconds(200)
    result.backoff.max.FromSeconds(1)
    return result


class FullReplicaTest(DurabilityTestCase):

    def setUp(self):
        super().setUp()
        self.etcd = EtcdCluster(members=3)
        self.addCleanup(self.etcd.close)
        self.store = "etcd://" + ",".join(self.etcd.endpoints) + "/cluster"
        self.upstream = self.recording_upstream()
        self.ids = [f"ep-{i:02d}" for i in range(ENDPOINTS)]
        self.ctl = os.environ.get("WSVISORCTL_BIN") or os.path.join(
            os.path.dirname(self.paths.wsvisor), "wsvisorctl")

    def replica(self, name, *extra):
        data = os.path.join(self.work_dir, f"data-{name}")
        return self.wsvisor("--store", self.store, "--member-id", name,
                            "--member-ttl", f"{TTL_S}s", "--store-connect-timeout", "20s",
                            *extra, data_dir=data)

    def wait_until(self, what, predicate, timeout_s):
        deadline = time.monotonic() + timeout_s
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail(f"not within {timeout_s} s: {what}")
            time.sleep(POLL_S)

    def open_per_id(self):
        counts = {i: 0 for i in self.ids}
        for c in self.upstream.open_connections():
            counts[c.path.lstrip("/")] = counts.get(c.path.lstrip("/"), 0) + 1
        return counts

    def each_connected_once(self):
        return all(n == 1 for n in self.open_per_id().values())

    def supervisors(self, replica):
        """id -> status.supervised_by, as `replica` lists them."""
        return {e.spec.id: e.status.supervised_by for e in list_all(replica.supervisor, self.pb)}

    def expected(self, tiny_holds):
        """Where each endpoint belongs: replica-0 keeps what it holds; every other endpoint goes
        to the first replica of its order with room (replica-0 has none)."""
        return {i: TINY if i in tiny_holds else
                next(m for m in preference_order(i) if m != TINY) for i in self.ids}

    def settled(self, replicas):
        """The assignment every replica reports, once all agree, it is complete and replica-0
        holds its whole budget; else None."""
        if not self.each_connected_once():
            return None
        views = [self.supervisors(r) for r in replicas]
        if any(v != views[0] for v in views) or set(views[0]) != set(self.ids):
            return None
        if any(not s for s in views[0].values()):
            return None
        if sum(1 for s in views[0].values() if s == TINY) != TINY_BUDGET:
            return None
        return views[0]

    def ownership_log_counts(self, replicas):
        return [(r.log_text().count(CLAIM_LOG), r.log_text().count(RELEASE_LOG)) for r in replicas]

    def ctl_run(self, replica, *args):
        result = subprocess.run([self.ctl, "--server", replica.address, *args],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def assert_nothing_moves(self, replicas, what):
        connections = {c.number for c in self.upstream.connections()}
        logs = self.ownership_log_counts(replicas)
        time.sleep(OBSERVE_S)  # what is checked is that nothing happens in this window
        opened = [c for c in self.upstream.connections() if c.number not in connections]
        self.assertEqual(opened, [], f"{what}: endpoints were dialled again")
        self.assertEqual(self.ownership_log_counts(replicas), logs,
                         f"{what}: claims or releases (per replica: claims, releases)")
        self.assertTrue(self.each_connected_once(), f"{what}: {self.open_per_id()}")
        report(f"{what}: {OBSERVE_S:.0f} s without a claim, a release or a new connection")

    def test_a_full_replica_is_routed_around_without_churn(self):
        pb = self.pb
        replicas = [self.replica(TINY, "--max-connections", str(TINY_BUDGET)),
                    self.replica(REPLICAS[1]), self.replica(REPLICAS[2])]
        prefer_tiny = [i for i in self.ids if preference_order(i)[0] == TINY]
        report(f"{len(prefer_tiny)} of {ENDPOINTS} endpoints prefer {TINY} "
               f"(budget {TINY_BUDGET})")
        self.assertGreater(len(prefer_tiny), TINY_BUDGET + 2, "the ids must overflow replica-0")

        # 1. Registrations through every replica.
        for n, endpoint_id in enumerate(self.ids):
            replicas[n % len(replicas)].supervisor.RegisterEndpoint(
                pb.RegisterEndpointRequest(spec=spec(pb, endpoint_id,
                                                     self.upstream.url(endpoint_id))),
                timeout=CALL_TIMEOUT_S)
        assignment = self.wait_until("every endpoint supervised once, every replica agreeing",
                                     lambda: self.settled(replicas), 20)
        tiny_holds = {i for i, s in assignment.items() if s == TINY}
        self.assertLessEqual(tiny_holds, set(prefer_tiny))
        self.assertEqual(assignment, self.expected(tiny_holds))
        per_replica = {m: sum(1 for s in assignment.values() if s == m) for m in REPLICAS}
        report(f"endpoints supervised per replica: {per_replica}")

        # 2. Get through every replica, and wsvisorctl, name the same replica.
        for r in replicas:
            for endpoint_id in self.ids:
                got = r.supervisor.GetEndpoint(pb.GetEndpointRequest(id=endpoint_id),
                                               timeout=CALL_TIMEOUT_S)
                self.assertEqual(got.endpoint.status.supervised_by, assignment[endpoint_id],
                                 endpoint_id)
        lines = self.ctl_run(replicas[1], "-o", "json", "list").splitlines()
        from_json = {}
        for line in lines:
            endpoint = json.loads(line)
            from_json[endpoint["spec"]["id"]] = endpoint["status"].get("supervisedBy", "")
        self.assertEqual(from_json, assignment)
        got_json = json.loads(self.ctl_run(replicas[2], "-o", "json", "get", "ep-00"))
        self.assertEqual(got_json["status"]["supervisedBy"], assignment["ep-00"])
        table = self.ctl_run(replicas[0], "list")
        report("wsvisorctl list (replica-0):\n" + table)
        header = table.splitlines()[0]
        self.assertIn("SUPERVISED BY", header)
        column = header.index("SUPERVISED BY")
        for row in table.splitlines()[1:]:
            endpoint_id = row.split()[0]
            self.assertEqual(row[column:].split()[0], assignment[endpoint_id], row)

        # 3. Steady: nothing moves while replica-0 stays full.
        self.assert_nothing_moves(replicas, "replica-0 full")

        # 4. The edge: one slot frees up on replica-0; exactly one endpoint moves back to it.
        gone = sorted(tiny_holds)[0]
        waiting = sorted(set(prefer_tiny) - tiny_holds)
        self.assertTrue(waiting, "an endpoint preferring replica-0 is supervised elsewhere")
        before = {c.number for c in self.upstream.connections()}
        logs_before = self.ownership_log_counts(replicas)
        replicas[1].supervisor.UnregisterEndpoint(pb.UnregisterEndpointRequest(id=gone),
                                                  timeout=CALL_TIMEOUT_S)
        self.ids.remove(gone)

        def moved_back():
            now = self.settled(replicas)
            return now if now and sum(1 for s in now.values() if s == TINY) == TINY_BUDGET \
                and any(c.number not in before for c in self.upstream.connections()) else None
        after = self.wait_until("one endpoint moves back to replica-0", moved_back, 20)
        moved = sorted(i for i in self.ids if after[i] != assignment[i])
        self.assertEqual(moved, [waiting[0]], "the first waiting endpoint by id, and only it")
        self.assertEqual(after[waiting[0]], TINY)
        tiny_holds = (tiny_holds - {gone}) | {waiting[0]}
        self.assertEqual(after, self.expected(tiny_holds))
        # Settle the log lines of that one move (the release and the claim are logged after the
        # connections change), then nothing moves again.
        self.wait_until("the move is logged", lambda: sum(
            c for c, _ in self.ownership_log_counts(replicas)) > sum(c for c, _ in logs_before),
            5)
        opened = [c for c in self.upstream.connections() if c.number not in before]
        self.assertEqual([c.path.lstrip("/") for c in opened], [waiting[0]])
        claims = [c - b for (c, _), (b, _) in zip(self.ownership_log_counts(replicas),
                                                   logs_before)]
        releases = [r - b for (_, r), (_, b) in zip(self.ownership_log_counts(replicas),
                                                     logs_before)]
        report(f"after one slot freed: claims per replica {claims}, releases {releases}")
        self.assertEqual(claims, [1, 0, 0])
        self.assertEqual(sum(releases), 1)
        self.assert_nothing_moves(replicas, "replica-0 full again")


if __name__ == "__main__":
    unittest.main()
