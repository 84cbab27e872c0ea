#!/usr/bin/python3
"""wsvisor with --store etcd://... against a real three-member etcd cluster (Debian's
etcd-server, started by tests/support/etcd_cluster.py), seen from a foreign gRPC client.

The promise under test: everything registered is in etcd when the RPC answers, so a wsvisor
killed with SIGKILL and started again (even on another machine: a fresh --data-dir) has every
endpoint back, with its owner and generation; one etcd member down changes nothing; a bad --store
value or an unreachable etcd stops start-up with a message that says why.

Run by ctest (label durability), or by hand from the repository root:
  WSVISOR_BIN=build/wsvisor WSVISORCTL_BIN=build/wsvisorctl WSVISOR_SOURCE_DIR=$PWD \\
      /usr/bin/python3 tests/durability/test_etcd_store.py -v
"""

import os
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, os.pardir, "support"))

import grpc  # noqa: E402

from etcd_cluster import EtcdCluster  # noqa: E402
from wsvisor_proc import (CALL_TIMEOUT_S, EXIT_TIMEOUT_S, DurabilityTestCase,  # noqa: E402
                          list_all, report)

REGISTERED = 40
UPDATED = 10
UNREGISTERED = 8


def cheap_spec(pb, endpoint_id, url, labels):
    """A spec that keeps wsvisor idle against a closed port: refused at once, then a long
    backoff."""
    spec = pb.EndpointSpec(id=endpoint_id, url=url, labels=labels)
    spec.connect_timeout.FromMilliseconds(1000)
    spec.backoff.initial.FromSeconds(5)
    spec.backoff.max.FromSeconds(60)
    return spec


def summary(endpoint):
    """What must survive a restart: the spec's identity, owner and generation."""
    return (endpoint.spec.url, dict(endpoint.spec.labels), endpoint.owner, endpoint.generation)


class EtcdStoreTest(DurabilityTestCase):

    def setUp(self):
        super().setUp()
        # A missing etcd fails here (RuntimeError naming the package), never skips.
        self.etcd = EtcdCluster(members=3)
        self.addCleanup(self.etcd.close)
        self.store = "etcd://" + ",".join(self.etcd.endpoints) + "/e2e"

    def start(self, *extra_args, data_dir=None):
        """A wsvisor on the etcd store with a data directory of its own, to show that nothing it
        needs is kept locally."""
        fresh = data_dir or os.path.join(self.work_dir, f"data-{time.monotonic_ns()}")
        return self.wsvisor("--store", self.store, *extra_args, data_dir=fresh)

    def register(self, server, endpoint_id, url, labels=None):
        server.supervisor.RegisterEndpoint(
            self.pb.RegisterEndpointRequest(spec=cheap_spec(self.pb, endpoint_id, url,
                                                            labels or {})),
            timeout=CALL_TIMEOUT_S)

    def listed(self, server):
        return {e.spec.id: summary(e) for e in list_all(server.supervisor, self.pb)}

    def test_everything_registered_is_back_after_kill_9_and_a_start_elsewhere(self):
        closed = self.closed_port()
        server = self.start()
        for i in range(REGISTERED):
            self.register(server, f"ep-{i:03d}", closed.url(f"ep-{i:03d}"), {"batch": "one"})
        for i in range(UPDATED):
            spec = cheap_spec(self.pb, f"ep-{i:03d}", closed.url(f"ep-{i:03d}"),
                              {"batch": "one", "updated": "yes"})
            server.supervisor.UpdateEndpoint(self.pb.UpdateEndpointRequest(spec=spec),
                                             timeout=CALL_TIMEOUT_S)
        for i in range(REGISTERED - UNREGISTERED, REGISTERED):
            server.supervisor.UnregisterEndpoint(
                self.pb.UnregisterEndpointRequest(id=f"ep-{i:03d}"), timeout=CALL_TIMEOUT_S)
        before = self.listed(server)
        self.assertEqual(len(before), REGISTERED - UNREGISTERED)
        self.assertEqual(before["ep-000"][3], 2, "an update raises the generation")
        server.kill9()

        restarted = self.start()
        after = self.listed(restarted)
        report(f"{len(after)} endpoints back from {self.store} after kill -9")
        self.assertEqual(after, before)
        self.assertIn(f"restored {len(before)} endpoints from {self.store}",
                      restarted.log_text())

    def test_config_file_endpoints_keep_their_owner_in_etcd(self):
        closed = self.closed_port()
        config = os.path.join(self.work_dir, "endpoints.yaml")
        with open(config, "w", encoding="utf-8") as out:
            out.write("endpoints:\n" + "".join(
                f"  - id: cfg-{i}\n    url: {closed.url(f'cfg-{i}')}\n" for i in range(3)))
        server = self.start("--config", config)
        self.register(server, "api-1", closed.url("api-1"))
        before = self.listed(server)
        self.assertEqual(before["cfg-0"][2], self.pb.OWNER_CONFIG_FILE)
        server.kill9()

        restarted = self.start("--config", config)
        self.assertEqual(self.listed(restarted), before)
        self.assert_rpc_error(lambda: restarted.supervisor.UnregisterEndpoint(
            self.pb.UnregisterEndpointRequest(id="cfg-1"), timeout=CALL_TIMEOUT_S),
            grpc.StatusCode.FAILED_PRECONDITION, "config file")

    def test_one_etcd_member_down_changes_nothing(self):
        closed = self.closed_port()
        server = self.start()
        self.register(server, "before", closed.url("before"))
        # The first member is the one wsvisor's calls go to while it answers.
        self.etcd.kill(0)
        self.register(server, "during", closed.url("during"))
        before = self.listed(server)
        server.kill9()

        # Start-up with a member down: the store moves on to the next one.
        restarted = self.start()
        self.assertEqual(self.listed(restarted), before)
        self.assertEqual(sorted(before), ["before", "during"])

    def import_data_dir(self, data_dir, store=None):
        result = subprocess.run(
            [self.paths.wsvisor, "--store", store or self.store, "--import-from-data-dir",
             data_dir, "--store-connect-timeout", "20s"],
            capture_output=True, text=True, timeout=60)
        return result.returncode, result.stdout

    def test_a_single_node_registry_moves_into_etcd_with_owner_and_generation(self):
        closed = self.closed_port()
        config = os.path.join(self.work_dir, "endpoints.yaml")
        with open(config, "w", encoding="utf-8") as out:
            out.write(f"endpoints:\n  - id: cfg-0\n    url: {closed.url('cfg-0')}\n")
        single_dir = os.path.join(self.work_dir, "single-node")
        single = self.wsvisor("--config", config, data_dir=single_dir)
        for i in range(5):
            self.register(single, f"mv-{i}", closed.url(f"mv-{i}"), {"team": "blue"})
        spec = cheap_spec(self.pb, "mv-0", closed.url("mv-0"), {"team": "red"})
        single.supervisor.UpdateEndpoint(self.pb.UpdateEndpointRequest(spec=spec),
                                         timeout=CALL_TIMEOUT_S)
        before = self.listed(single)
        single.terminate()

        # An endpoint registered in the cluster already, with another spec, is kept as it is.
        cluster = self.start()
        self.register(cluster, "mv-4", closed.url("elsewhere"))
        kept = self.listed(cluster)["mv-4"]
        cluster.terminate()

        status, out = self.import_data_dir(single_dir)
        report(out.strip().splitlines()[-1])
        self.assertEqual(status, 0, out)
        self.assertIn("imported 5 of 6 endpoints", out)
        self.assertIn("1 were there already (1 with another spec, kept), 0 skipped", out)
        self.assertIn("kept mv-4 as etcd has it", out)

        # A second run copies nothing and changes nothing.
        status, out = self.import_data_dir(single_dir)
        self.assertEqual(status, 0, out)
        self.assertIn("imported 0 of 6 endpoints", out)

        restarted = self.start("--config", config)
        after = self.listed(restarted)
        expected = dict(before)
        expected["mv-4"] = kept
        self.assertEqual(after, expected)
        self.assertEqual(after["mv-0"][3], 2, "the generation moves along")
        self.assertEqual(after["cfg-0"][2], self.pb.OWNER_CONFIG_FILE)

    def test_an_import_needs_an_etcd_store_and_a_readable_registry(self):
        result = subprocess.run([self.paths.wsvisor, "--import-from-data-dir", self.work_dir],
                                capture_output=True, text=True, timeout=EXIT_TIMEOUT_S)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("--import-from-data-dir needs --store etcd://", result.stderr)
        missing = os.path.join(self.work_dir, "no-such-dir", "deeper")
        open(os.path.join(self.work_dir, "no-such-dir"), "w").close()  # a file, not a directory
        status, out = self.import_data_dir(missing)
        self.assertEqual(status, 1, out)
        self.assertIn("cannot open the registry in " + missing, out)

    def test_a_bad_store_flag_stops_start_up_with_the_reason(self):
        cases = {
            "etcd://127.0.0.1:99999": "--store: etcd endpoint '127.0.0.1:99999': the port must "
                                      "be a number from 1 to 65535",
            "etcd://": "--store: 'etcd://' names no etcd endpoint",
            "postgres://db": "--store: unknown store 'postgres://db'",
            "etcd://a:1/trailing/": "--store: etcd key prefix '/trailing/' must be",
        }
        for value, message in cases.items():
            with self.subTest(store=value):
                result = subprocess.run([self.paths.wsvisor, "--store", value],
                                        capture_output=True, text=True, timeout=EXIT_TIMEOUT_S)
                # A bad flag exits 2, like every other bad flag (usage error).
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn(message, result.stderr)

    def test_an_unreachable_etcd_stops_start_up_after_the_connect_timeout(self):
        closed = self.closed_port()
        store = f"etcd://127.0.0.1:{closed.port}/e2e"
        process = self.wsvisor("--store", store, "--store-connect-timeout", "1s",
                               start=False).spawn()
        status = process.wait_exit(timeout_s=15)
        took = time.monotonic() - process.started_at
        log = process.log_text()
        report(f"unreachable etcd: exit {status} after {took:.1f} s")
        self.assertEqual(status, 1, log)
        self.assertNotIn("serving gRPC", log)
        self.assertIn(f"cannot use the etcd store {store}: no answer within 1000 ms", log)
        self.assertIn(f"127.0.0.1:{closed.port}", log)


if __name__ == "__main__":
    unittest.main()
