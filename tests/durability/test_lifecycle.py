#!/usr/bin/python3
"""wsvisor's process lifecycle and change semantics, seen from a gRPC client and from the
upstreams: graceful shutdown on SIGTERM, the --config file and SIGHUP, and UpdateEndpoint with
idempotent registration and compare-and-set.

Run by ctest (label durability), or by hand from the repository root:
  WSVISOR_BIN=build/wsvisor WSVISORCTL_BIN=build/wsvisorctl WSVISOR_SOURCE_DIR=$PWD \
      /usr/bin/python3 tests/durability/test_lifecycle.py -v
"""

import os
import signal
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402

from wsvisor_proc import (CALL_TIMEOUT_S, DurabilityTestCase, list_all, metric_value,  # noqa: E402
                          report, scrape_metrics, wait_until)

CONNECTED_ENDPOINTS = 5
DEFAULT_GRACE_S = 10.0
WAIT_S = 15.0  # bound of waits for something that normally takes milliseconds


class WatchReader(threading.Thread):
    """Reads one WatchHealth stream to its end and keeps the events and the final status."""

    def __init__(self, supervisor, pb):
        super().__init__(daemon=True)
        self.call = supervisor.WatchHealth(pb.WatchHealthRequest(), timeout=60)
        self.pb = pb
        self.events = []
        self.final_code = None
        self.final_details = None
        self.snapshot_complete = threading.Event()
        self.start()

    def run(self):
        try:
            for event in self.call:
                self.events.append(event)
                if event.type == self.pb.HealthEvent.TYPE_SNAPSHOT_COMPLETE:
                    self.snapshot_complete.set()
            self.final_code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            self.final_code, self.final_details = error.code(), error.details()


class ShutdownTest(DurabilityTestCase):

    def register_connected(self, server, upstream, count, prefix="ep"):
        ids = []
        for number in range(count):
            endpoint_id = f"{prefix}-{number}"
            spec = self.pb.EndpointSpec(id=endpoint_id, url=upstream.url(endpoint_id))
            spec.heartbeat.interval.FromMilliseconds(500)
            server.supervisor.RegisterEndpoint(self.pb.RegisterEndpointRequest(spec=spec),
                                               timeout=CALL_TIMEOUT_S)
            ids.append(endpoint_id)
        wait_until(lambda: all(
            server.supervisor.GetEndpoint(self.pb.GetEndpointRequest(id=i), timeout=CALL_TIMEOUT_S)
            .endpoint.status.health == self.pb.HEALTH_HEALTHY for i in ids),
            WAIT_S, f"{count} endpoints HEALTHY")
        return ids

    def test_sigterm_closes_upstreams_with_1001_ends_watches_and_exits_0(self):
        upstream = self.recording_upstream()
        server = self.wsvisor()  # default --shutdown-grace: 10 s
        ids = self.register_connected(server, upstream, CONNECTED_ENDPOINTS)
        self.assertEqual(len(upstream.open_connections()), CONNECTED_ENDPOINTS)
        self.assertEqual(server.health_check(), self.stubs.health_pb.HealthCheckResponse.SERVING)
        watch = WatchReader(server.supervisor, self.pb)
        self.addCleanup(watch.call.cancel)
        self.assertTrue(watch.snapshot_complete.wait(WAIT_S), "the watch's snapshot")

        status, took_s = server.terminate(timeout_s=DEFAULT_GRACE_S + 5)
        report(f"SIGTERM with {CONNECTED_ENDPOINTS} open upstream connections and a watch: "
               f"exit status {status} after {took_s * 1000:.0f} ms (grace {DEFAULT_GRACE_S:.0f} s)")
        self.assertEqual(status, 0)
        self.assertLess(took_s, DEFAULT_GRACE_S)
        # The store was closed: closing the last SQLite connection checkpoints the WAL into
        # wsvisor.db and deletes the -wal file (a killed process leaves it behind).
        self.assertFalse(os.path.exists(os.path.join(self.data_dir, "wsvisor.db-wal")),
                         "the store's WAL should be checkpointed and removed on a clean exit")

        closed = wait_until(lambda: [c for c in upstream.connections() if c.closed] if all(
            c.closed for c in upstream.connections()) else None, WAIT_S,
            "the upstream to see every connection closed")
        self.assertEqual(sorted(c.path for c in closed), sorted(f"/{i}" for i in ids))
        self.assertEqual([c.close_code for c in closed], [1001] * CONNECTED_ENDPOINTS,
                         "every connection closed by wsvisor with 1001 (going away)")
        watch.join(timeout=WAIT_S)
        self.assertFalse(watch.is_alive(), "the watch stream should have ended")
        self.assertEqual(watch.final_code, grpc.StatusCode.UNAVAILABLE, watch.final_details)
        self.assertIn("shutting down", watch.final_details or "")

    def shutdown_with_hung_upstream(self, grace_s):
        """One endpoint on an upstream that answers nothing (SIGSTOP) keeps wsvisor in its
        shutdown; a client channel stays connected throughout, as real clients' channels do.
        Returns (exit status, seconds from SIGTERM to exit, health status and List error seen
        during the shutdown)."""
        live = self.recording_upstream()
        hung = self.recording_upstream()
        server = self.wsvisor("--shutdown-grace", f"{int(grace_s * 1000)}ms")
        self.register_connected(server, live, 2, prefix="live")
        self.register_connected(server, hung, 1, prefix="hung")
        hung.pause()
        self.addCleanup(hung.resume)
        health_during, list_error = None, None
        sent = time.monotonic()
        server.signal(signal.SIGTERM)
        try:
            health_during = wait_until(lambda: self._health_or_none(server), grace_s,
                                       "health to leave SERVING during the shutdown",
                                       interval_s=0.01)
            with self.assertRaises(grpc.RpcError) as raised:
                server.supervisor.ListEndpoints(self.pb.ListEndpointsRequest(), timeout=1)
            list_error = raised.exception
        finally:
            status = server.wait_exit(timeout_s=grace_s + 10)
        took_s = time.monotonic() - sent
        return status, took_s, health_during, list_error

    def _health_or_none(self, server):
        status = server.health_check(timeout_s=1)
        return None if status == self.stubs.health_pb.HealthCheckResponse.SERVING else status

    def test_sigterm_with_a_hung_upstream_refuses_calls_and_keeps_the_grace(self):
        grace_s = 3.0
        status, took_s, health, list_error = self.shutdown_with_hung_upstream(grace_s)
        report(f"SIGTERM with a hung upstream, --shutdown-grace {grace_s:.0f}s: exit {status} "
               f"after {took_s * 1000:.0f} ms; during it health "
               f"{self.stubs.health_pb.HealthCheckResponse.ServingStatus.Name(health)}, "
               f"ListEndpoints {list_error.code().name} ({list_error.details()!r})")
        self.assertEqual(health, self.stubs.health_pb.HealthCheckResponse.NOT_SERVING)
        self.assertEqual(list_error.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(status, 0)
        self.assertLessEqual(took_s, grace_s + 0.25, "exit within --shutdown-grace")

    # The whole shutdown fits the grace period even when it is short and a client channel is
    # connected (gRPC's Shutdown() then waits for its whole deadline).
    def test_sigterm_keeps_a_short_grace(self):
        grace_s = 1.0
        status, took_s, _, _ = self.shutdown_with_hung_upstream(grace_s)
        report(f"SIGTERM with a hung upstream, --shutdown-grace {grace_s:.0f}s: exit {status} "
               f"after {took_s * 1000:.0f} ms")
        self.assertEqual(status, 0)
        self.assertLessEqual(took_s, grace_s + 0.25, "exit within --shutdown-grace")


def yaml_endpoint(endpoint_id, url, interval="1s", labels=None):
    lines = [f"  - id: {endpoint_id}", f"    url: {url}",
             f"    heartbeat: {{mode: ping, interval: {interval}}}"]
    if labels:
        lines.append("    labels: {" + ", ".join(f"{k}: {v}" for k, v in labels.items()) + "}")
    return "\n".join(lines)


class ConfigFileTest(DurabilityTestCase):

    def setUp(self):
        super().setUp()
        self.upstream = self.recording_upstream()
        self.config_path = os.path.join(self.work_dir, "endpoints.yaml")

    def write_config(self, *entries, raw=None):
        """Replaces the file atomically, as a ConfigMap update or an editor's save does."""
        text = raw if raw is not None else "endpoints:\n" + "\n".join(entries) + "\n"
        temporary = self.config_path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as config:
            config.write(text)
        os.replace(temporary, self.config_path)

    def listed(self, server):
        return {e.spec.id: e for e in list_all(server.supervisor, self.pb)}

    def reloads(self, server, result):
        return metric_value(scrape_metrics(server.metrics_port), "wsvisor_config_reloads_total",
                            {"result": result}) or 0.0

    def test_config_file_owns_its_endpoints_and_sighup_applies_a_diff(self):
        url = self.upstream.url
        self.write_config(yaml_endpoint("cfg-a", url("cfg-a")),
                          yaml_endpoint("cfg-b", url("cfg-b")))
        server = self.wsvisor("--config", self.config_path)
        listed = self.listed(server)
        self.assertEqual(sorted(listed), ["cfg-a", "cfg-b"])
        for endpoint in listed.values():
            self.assertEqual(endpoint.owner, self.pb.OWNER_CONFIG_FILE, endpoint.spec.id)
            self.assertEqual(endpoint.generation, 1)
        self.assertEqual(self.reloads(server, "applied"), 1.0, "the start-up application")

        # The API may not change or remove what the file owns.
        supervisor = server.supervisor
        self.assert_rpc_error(lambda: supervisor.UnregisterEndpoint(
            self.pb.UnregisterEndpointRequest(id="cfg-a"), timeout=CALL_TIMEOUT_S),
            grpc.StatusCode.FAILED_PRECONDITION, "config file")
        changed = self.pb.EndpointSpec()
        changed.CopyFrom(listed["cfg-a"].spec)
        changed.labels["team"] = "red"
        self.assert_rpc_error(lambda: supervisor.UpdateEndpoint(
            self.pb.UpdateEndpointRequest(spec=changed), timeout=CALL_TIMEOUT_S),
            grpc.StatusCode.FAILED_PRECONDITION, "config file")
        self.assert_rpc_error(lambda: supervisor.RegisterEndpoint(
            self.pb.RegisterEndpointRequest(spec=changed), timeout=CALL_TIMEOUT_S),
            grpc.StatusCode.FAILED_PRECONDITION, "config file")
        api_spec = self.pb.EndpointSpec(id="api-1", url=url("api-1"))
        supervisor.RegisterEndpoint(self.pb.RegisterEndpointRequest(spec=api_spec),
                                    timeout=CALL_TIMEOUT_S)
        self.assertEqual(self.listed(server)["cfg-a"].spec, listed["cfg-a"].spec)

        # Edit: drop cfg-b, slow cfg-a's heartbeat, add cfg-c; SIGHUP applies the difference.
        self.write_config(yaml_endpoint("cfg-a", url("cfg-a"), interval="2s"),
                          yaml_endpoint("cfg-c", url("cfg-c"), labels={"team": "blue"}))
        server.signal(signal.SIGHUP)
        wait_until(lambda: self.reloads(server, "applied") == 2.0, WAIT_S, "the reload")
        after = self.listed(server)
        self.assertEqual(sorted(after), ["api-1", "cfg-a", "cfg-c"])
        self.assertEqual(after["cfg-a"].generation, 2)
        self.assertEqual(after["cfg-a"].spec.heartbeat.interval.ToMilliseconds(), 2000)
        self.assertEqual(after["cfg-a"].owner, self.pb.OWNER_CONFIG_FILE)
        self.assertEqual(after["cfg-c"].owner, self.pb.OWNER_CONFIG_FILE)
        self.assertEqual(after["cfg-c"].generation, 1)
        self.assertEqual(dict(after["cfg-c"].spec.labels), {"team": "blue"})
        self.assertEqual(after["api-1"].owner, self.pb.OWNER_API)
        self.assertEqual(after["api-1"].generation, 1)
        wait_until(lambda: not self.upstream.open_connections("/cfg-b"), WAIT_S,
                   "cfg-b's connection to close")
        report("SIGHUP diff applied: cfg-b removed, cfg-a generation 1 -> 2, cfg-c added")

        # Bad files change nothing and are counted as rejected.
        bad_files = {
            "bad YAML": "endpoints: [ {id: cfg-a, url: \n",
            "http:// URL": "endpoints:\n" + yaml_endpoint("cfg-a", "http://127.0.0.1:1/") + "\n",
            "unknown key": "endpoints:\n" + yaml_endpoint("cfg-a", url("cfg-a")) +
                           "\n    hartbeat: {interval: 1s}\n",
            "id owned by the API": "endpoints:\n" + yaml_endpoint("api-1", url("api-1")) + "\n",
            "duplicate id": "endpoints:\n" + yaml_endpoint("cfg-a", url("cfg-a")) + "\n" +
                            yaml_endpoint("cfg-a", url("cfg-a")) + "\n",
        }
        for what, text in bad_files.items():
            with self.subTest(bad_file=what):
                rejected_before = self.reloads(server, "rejected")
                self.write_config(raw=text)
                server.signal(signal.SIGHUP)
                wait_until(lambda: self.reloads(server, "rejected") == rejected_before + 1,
                           WAIT_S, f"the {what} file to be rejected")
                now = self.listed(server)
                self.assertEqual(sorted(now), sorted(after))
                for endpoint_id, endpoint in after.items():
                    self.assertEqual(now[endpoint_id].spec, endpoint.spec, endpoint_id)
                    self.assertEqual(now[endpoint_id].generation, endpoint.generation)
                    self.assertEqual(now[endpoint_id].owner, endpoint.owner)
        self.assertEqual(self.reloads(server, "applied"), 2.0)
        report(f"{len(bad_files)} bad files rejected on SIGHUP "
               f"(wsvisor_config_reloads_total{{result=\"rejected\"}} "
               f"{self.reloads(server, 'rejected'):.0f}), running set unchanged")

        # Ownership and generations survive a restart with the same file.
        self.write_config(yaml_endpoint("cfg-a", url("cfg-a"), interval="2s"),
                          yaml_endpoint("cfg-c", url("cfg-c"), labels={"team": "blue"}))
        status, _ = server.terminate()
        self.assertEqual(status, 0)
        restarted = self.wsvisor("--config", self.config_path)
        again = self.listed(restarted)
        self.assertEqual(sorted(again), sorted(after))
        for endpoint_id, endpoint in after.items():
            self.assertEqual(again[endpoint_id].spec, endpoint.spec, endpoint_id)
            self.assertEqual(again[endpoint_id].generation, endpoint.generation, endpoint_id)
            self.assertEqual(again[endpoint_id].owner, endpoint.owner, endpoint_id)

    def test_bad_config_file_at_start_exits_non_zero_with_the_reason(self):
        cases = {
            "bad YAML": ("endpoints: [ {id: x, url: \n", ""),
            "http:// URL": ("endpoints:\n" + yaml_endpoint("cfg-a", "http://127.0.0.1:1/") +
                            "\n", "url"),
            "unknown key": ("endpoints:\n  - id: cfg-a\n    url: ws://127.0.0.1:1/\n"
                            "    intervall: 1s\n", "intervall"),
        }
        for what, (text, reason) in cases.items():
            with self.subTest(bad_file=what):
                self.write_config(raw=text)
                process = self.wsvisor("--config", self.config_path, start=False).spawn()
                status = process.wait_exit()
                log = process.log_text()
                report(f"start with a config file with {what}: exit {status}; "
                       f"{[line for line in log.splitlines() if 'config' in line][-2:]}")
                self.assertNotEqual(status, 0, log)
                self.assertNotIn("serving gRPC", log)
                self.assertIn(self.config_path, log, "the message should name the file")
                self.assertIn(reason, log)
        missing = os.path.join(self.work_dir, "missing.yaml")
        process = self.wsvisor("--config", missing, start=False).spawn()
        self.assertNotEqual(process.wait_exit(), 0)
        self.assertIn(missing, process.log_text())


class UpdateTest(DurabilityTestCase):

    def setUp(self):
        super().setUp()
        self.upstream = self.recording_upstream()
        self.server = self.wsvisor()
        self.supervisor = self.server.supervisor

    def spec(self, endpoint_id, path=None, interval_ms=300, labels=None):
        spec = self.pb.EndpointSpec(id=endpoint_id, url=self.upstream.url(path or endpoint_id),
                                    labels=labels or {})
        spec.heartbeat.interval.FromMilliseconds(interval_ms)
        return spec

    def get(self, endpoint_id):
        return self.supervisor.GetEndpoint(self.pb.GetEndpointRequest(id=endpoint_id),
                                           timeout=CALL_TIMEOUT_S).endpoint

    def register(self, spec):
        return self.supervisor.RegisterEndpoint(self.pb.RegisterEndpointRequest(spec=spec),
                                                timeout=CALL_TIMEOUT_S)

    def update(self, spec, expected_generation=0):
        return self.supervisor.UpdateEndpoint(
            self.pb.UpdateEndpointRequest(spec=spec, expected_generation=expected_generation),
            timeout=CALL_TIMEOUT_S)

    def heartbeats_after(self, endpoint_id, count):
        """Waits until `count` more heartbeats were sent: the session runs on, whatever
        happened to the connection."""
        start = self.get(endpoint_id).status.heartbeats_sent
        wait_until(lambda: self.get(endpoint_id).status.heartbeats_sent >= start + count, WAIT_S,
                   f"{count} more heartbeats of {endpoint_id}")

    def test_idempotent_register_and_conflicting_spec(self):
        first = self.register(self.spec("ep", labels={"team": "red"}))
        self.assertTrue(first.created)
        self.assertEqual(first.endpoint.generation, 1)
        again = self.register(self.spec("ep", labels={"team": "red"}))
        self.assertFalse(again.created, "an identical spec is an idempotent success")
        self.assertEqual(again.endpoint.generation, 1)
        self.assertEqual(again.endpoint.spec, first.endpoint.spec)
        self.assert_rpc_error(lambda: self.register(self.spec("ep", labels={"team": "blue"})),
                              grpc.StatusCode.ALREADY_EXISTS)
        kept = self.get("ep")
        self.assertEqual(kept.spec, first.endpoint.spec, "the original spec is kept")
        self.assertEqual(kept.generation, 1)

    def test_update_applies_live_or_reconnects_as_needed_and_survives_a_crash(self):
        registered = self.register(self.spec("ep"))
        wait_until(lambda: self.get("ep").status.health == self.pb.HEALTH_HEALTHY, WAIT_S,
                   "ep HEALTHY")
        self.assertEqual(len(self.upstream.connections("/ep")), 1)

        # A heartbeat change applies to the live connection.
        slower = self.spec("ep", interval_ms=200, labels={"v": "2"})
        response = self.update(slower, expected_generation=1)
        self.assertFalse(response.reconnected)
        self.assertEqual(response.endpoint.generation, 2)
        self.assertEqual(response.endpoint.spec.heartbeat.interval.ToMilliseconds(), 200)
        self.heartbeats_after("ep", 3)
        connections = self.upstream.connections("/ep")
        self.assertEqual(len(connections), 1, "no new connection for a heartbeat change")
        self.assertIsNone(connections[0].closed)

        # An identical spec changes nothing, not even the generation.
        same = self.update(slower)
        self.assertFalse(same.reconnected)
        self.assertEqual(same.endpoint.generation, 2)

        # A URL change needs a new connection.
        moved = self.spec("ep", path="ep-moved", interval_ms=200, labels={"v": "3"})
        response = self.update(moved, expected_generation=2)
        self.assertTrue(response.reconnected)
        self.assertEqual(response.endpoint.generation, 3)
        wait_until(lambda: self.upstream.open_connections("/ep-moved"), WAIT_S,
                   "a connection to the new URL")
        wait_until(lambda: self.upstream.connections("/ep")[0].closed, WAIT_S,
                   "the old connection to close")
        report(f"URL change: reconnected=true, old connection closed with code "
               f"{self.upstream.connections('/ep')[0].close_code}, new one opened")
        wait_until(lambda: self.get("ep").status.health == self.pb.HEALTH_HEALTHY, WAIT_S,
                   "ep HEALTHY on the new URL")

        # A stale generation is refused and changes nothing.
        before = self.get("ep")
        self.assert_rpc_error(lambda: self.update(self.spec("ep", labels={"v": "stale"}),
                                                  expected_generation=2),
                              grpc.StatusCode.ABORTED)
        after = self.get("ep")
        self.assertEqual(after.spec, before.spec)
        self.assertEqual(after.generation, 3)
        self.assert_rpc_error(lambda: self.update(self.spec("nobody")), grpc.StatusCode.NOT_FOUND)

        # The last acknowledged update is what a restart after a crash restores.
        self.server.kill9()
        restarted = self.wsvisor()
        restored = restarted.supervisor.GetEndpoint(self.pb.GetEndpointRequest(id="ep"),
                                                    timeout=CALL_TIMEOUT_S).endpoint
        self.assertEqual(restored.spec, after.spec)
        self.assertEqual(restored.generation, 3)
        self.assertNotEqual(registered.endpoint.spec, restored.spec)

    def test_concurrent_compare_and_set_has_one_winner_per_generation(self):
        self.register(self.spec("shared"))
        rounds, writers = 15, 2
        channels = [self.server.new_channel() for _ in range(writers)]
        for channel in channels:
            self.addCleanup(channel.close)
        stubs = [self.stubs.pb_grpc.SupervisorStub(channel) for channel in channels]
        barrier = threading.Barrier(writers, timeout=WAIT_S)
        outcomes = {}

        def writer(index, round_number, generation):
            spec = self.spec("shared", labels={"writer": str(index), "round": str(round_number)})
            barrier.wait()
            try:
                stubs[index].UpdateEndpoint(
                    self.pb.UpdateEndpointRequest(spec=spec, expected_generation=generation),
                    timeout=CALL_TIMEOUT_S)
                outcomes[index] = grpc.StatusCode.OK
            except grpc.RpcError as error:
                outcomes[index] = error.code()

        for round_number in range(rounds):
            generation = self.get("shared").generation
            outcomes.clear()
            threads = [threading.Thread(target=writer, args=(i, round_number, generation))
                       for i in range(writers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=WAIT_S)
            self.assertEqual(sorted(outcomes.values(), key=lambda c: c.name),
                             [grpc.StatusCode.ABORTED, grpc.StatusCode.OK],
                             f"round {round_number}: exactly one writer wins")
            winner = next(i for i, code in outcomes.items() if code == grpc.StatusCode.OK)
            now = self.get("shared")
            self.assertEqual(now.generation, generation + 1)
            self.assertEqual(dict(now.spec.labels), {"writer": str(winner),
                                                     "round": str(round_number)})
        report(f"compare-and-set: {rounds} rounds of {writers} concurrent updaters, one winner "
               f"each; generation {self.get('shared').generation}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
