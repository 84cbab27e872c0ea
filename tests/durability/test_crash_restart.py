#!/usr/bin/python3
"""Durability of wsvisor's endpoint store across crashes and restarts, seen from a gRPC client.

The promise under test (DESIGN.md, "Errors"): every acknowledged Register/Update/Unregister is on
disk before the RPC answers, so a crash (SIGKILL) loses no acknowledged registration and
resurrects no acknowledged unregistration; a restart restores every endpoint and spreads the
first connection attempts at --restore-dial-rate; a damaged store stops the start-up loudly
instead of starting empty.

Run by ctest (label durability), or by hand from the repository root:
  WSVISOR_BIN=build/wsvisor WSVISORCTL_BIN=build/wsvisorctl WSVISOR_SOURCE_DIR=$PWD \
      /usr/bin/python3 tests/durability/test_crash_restart.py -v
WSVISOR_CRASH_RUNS (default 40) sets the number of crash runs; WSVISOR_CRASH_SEED replays the
random kill moments and client choices that a failed run printed.
"""

import os
import random
import shutil
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402

from wsvisor_proc import (CALL_TIMEOUT_S, DurabilityTestCase, list_all, report,  # noqa: E402
                          wait_until)

# Crash test: runs, and a new data directory every EPOCH runs so the store stays a few hundred to
# a few thousand endpoints (about 1000 registrations/s are acknowledged on this machine).
CRASH_RUNS = int(os.environ.get("WSVISOR_CRASH_RUNS", "40"))
CRASH_EPOCH = 5
CRASH_CLIENTS = 4
CRASH_KILL_DELAY_S = (0.02, 0.6)
# Share of calls that unregister or update one of the client's own acknowledged endpoints.
UNREGISTER_SHARE = 0.25
UPDATE_SHARE = 0.15

RESTART_ENDPOINTS = 200
HEALTHY_WITHIN_S = 30.0
THROUGHPUT_ENDPOINTS = 500
THROUGHPUT_FLOOR_PER_S = 20.0  # a sanity floor only: the figure itself goes into the issue note


def cheap_spec(pb, endpoint_id, url, labels):
    """A spec that keeps wsvisor idle when the upstream is a closed port: refused at once, then a
    long backoff before the next attempt."""
    spec = pb.EndpointSpec(id=endpoint_id, url=url, labels=labels)
    spec.connect_timeout.FromMilliseconds(1000)
    spec.backoff.initial.FromSeconds(5)
    spec.backoff.max.FromSeconds(60)
    return spec


class _Absent:
    def __repr__(self):
        return "ABSENT"


ABSENT = _Absent()


class CrashModel:
    """What may be in the store, per endpoint id: the set of states consistent with what the
    clients were told. A state is ABSENT or (url, sorted labels, generation). An acknowledged
    call leaves one state; a call in flight at the crash leaves the states before and after it."""

    def __init__(self):
        self.possible = {}  # id -> set of states

    def check(self, observed, counters):
        """Compares the listed endpoints with the model; counts and returns the problems."""
        problems = []
        for endpoint_id, states in self.possible.items():
            seen = observed.get(endpoint_id, ABSENT)
            if seen in states:
                continue
            if seen is ABSENT:
                counters["lost"] += 1
                problems.append(f"LOST {endpoint_id}: acknowledged as {states}, not listed")
            elif states == {ABSENT}:
                counters["resurrected"] += 1
                problems.append(f"RESURRECTED {endpoint_id}: unregistration acknowledged, "
                                f"listed as {seen}")
            else:
                counters["wrong_spec"] += 1
                problems.append(f"WRONG SPEC {endpoint_id}: listed as {seen}, expected one of "
                                f"{states}")
        for endpoint_id in observed.keys() - self.possible.keys():
            counters["phantom"] += 1
            problems.append(f"PHANTOM {endpoint_id}: listed but never registered")
        # From now on, what was listed is the truth (in-flight calls are resolved).
        self.possible = {endpoint_id: {observed.get(endpoint_id, ABSENT)}
                         for endpoint_id in self.possible.keys() | observed.keys()}
        return problems


class CrashClient(threading.Thread):
    """Registers new endpoints and unregisters or updates its own acknowledged ones until a call
    fails; writes every outcome into the shared model. Only this client touches its ids, so its
    in-flight call is the only uncertainty about them."""

    def __init__(self, test, server, model, model_lock, run, index, url_for, rng):
        super().__init__(daemon=True, name=f"crash-client-{index}")
        self.pb = test.pb
        self.channel = server.new_channel()
        self.supervisor = test.stubs.pb_grpc.SupervisorStub(self.channel)
        self.model, self.lock = model, model_lock
        self.run_number, self.index = run, index
        self.url_for = url_for
        self.rng = rng
        # Acknowledged calls of this client (its own dict: no lock needed).
        self.counters = dict.fromkeys(("registered", "unregistered", "updated"), 0)
        self.own = {}  # id -> current acknowledged state (url, labels, generation); present only
        self.sequence = 0
        self.error = None  # (monotonic time, grpc code, details) of the call that failed
        self.unexpected = []

    def _state(self, spec, generation):
        return (spec.url, tuple(sorted(spec.labels.items())), generation)

    def run(self):
        try:
            while True:
                choice = self.rng.random()
                if self.own and choice < UNREGISTER_SHARE:
                    self._unregister()
                elif self.own and choice < UNREGISTER_SHARE + UPDATE_SHARE:
                    self._update()
                else:
                    self._register()
        except grpc.RpcError as error:
            self.error = (time.monotonic(), error.code(), error.details())
        finally:
            self.channel.close()

    def _call(self, endpoint_id, before, after, rpc):
        """Marks the call in flight (before or after), runs it, and on success keeps only
        `after`. An exception leaves both possible and ends the client."""
        with self.lock:
            self.model.possible[endpoint_id] = {before, after}
        response = rpc()
        with self.lock:
            self.model.possible[endpoint_id] = {after}
        return response

    def _register(self):
        self.sequence += 1
        endpoint_id = f"r{self.run_number:02d}-c{self.index}-{self.sequence:05d}"
        labels = {"client": str(self.index), "seq": str(self.sequence),
                  "run": str(self.run_number)}
        spec = cheap_spec(self.pb, endpoint_id, self.url_for(endpoint_id), labels)
        after = self._state(spec, 1)
        response = self._call(endpoint_id, ABSENT, after, lambda: self.supervisor.RegisterEndpoint(
            self.pb.RegisterEndpointRequest(spec=spec), timeout=CALL_TIMEOUT_S))
        if not response.created or response.endpoint.generation != 1:
            self.unexpected.append(f"register {endpoint_id}: created={response.created} "
                                   f"generation={response.endpoint.generation}")
        self.own[endpoint_id] = after
        self.counters["registered"] += 1

    def _unregister(self):
        endpoint_id = self.rng.choice(sorted(self.own))
        before = self.own[endpoint_id]
        self._call(endpoint_id, before, ABSENT, lambda: self.supervisor.UnregisterEndpoint(
            self.pb.UnregisterEndpointRequest(id=endpoint_id), timeout=CALL_TIMEOUT_S))
        del self.own[endpoint_id]
        self.counters["unregistered"] += 1

    def _update(self):
        endpoint_id = self.rng.choice(sorted(self.own))
        url, labels, generation = self.own[endpoint_id]
        new_labels = dict(labels)
        new_labels["version"] = str(generation + 1)
        spec = cheap_spec(self.pb, endpoint_id, url, new_labels)
        after = self._state(spec, generation + 1)
        response = self._call(
            endpoint_id, self.own[endpoint_id], after,
            lambda: self.supervisor.UpdateEndpoint(
                self.pb.UpdateEndpointRequest(spec=spec, expected_generation=generation),
                timeout=CALL_TIMEOUT_S))
        if response.reconnected or response.endpoint.generation != generation + 1:
            self.unexpected.append(f"update {endpoint_id}: reconnected={response.reconnected} "
                                   f"generation={response.endpoint.generation}")
        self.own[endpoint_id] = after
        self.counters["updated"] += 1


class CrashRestartTest(DurabilityTestCase):
    maxDiff = None

    def observed_state(self, server):
        observed = {}
        for endpoint in list_all(server.supervisor, self.pb, page_size=97):
            self.assertEqual(endpoint.owner, self.pb.OWNER_API, endpoint.spec.id)
            observed[endpoint.spec.id] = (endpoint.spec.url,
                                          tuple(sorted(endpoint.spec.labels.items())),
                                          endpoint.generation)
        return observed

    def test_sigkill_loses_no_acknowledged_change(self):
        closed = self.closed_port()
        seed = int(os.environ.get("WSVISOR_CRASH_SEED") or time.time_ns())
        rng = random.Random(seed)
        counters = dict.fromkeys(("registered", "unregistered", "updated", "in_flight", "lost",
                                  "resurrected", "wrong_spec", "phantom"), 0)
        restart_ms = []
        started = time.monotonic()
        model = CrashModel()
        problems = []
        data_dir = None
        server = None
        for run in range(CRASH_RUNS):
            if run % CRASH_EPOCH == 0:
                # A new store: keeps the registry at a size this small machine restores quickly.
                if server is not None:
                    server.kill9()
                data_dir = os.path.join(self.work_dir, f"data-{run // CRASH_EPOCH}")
                model = CrashModel()
                server = self.wsvisor(data_dir=data_dir, metrics=False)

            lock = threading.Lock()
            clients = [CrashClient(self, server, model, lock, run, index, closed.url,
                                   random.Random(rng.random()))
                       for index in range(CRASH_CLIENTS)]
            for client in clients:
                client.start()
            time.sleep(rng.uniform(*CRASH_KILL_DELAY_S))  # the random moment of the crash
            killed_at = time.monotonic()
            server.kill9()
            for client in clients:
                client.join(timeout=CALL_TIMEOUT_S + 5)
                self.assertFalse(client.is_alive(), "a client did not notice the crash")
                self.assertEqual(client.unexpected, [])
                self.assertIsNotNone(client.error, "a client stopped without an error")
                failed_at, code, details = client.error
                self.assertGreaterEqual(failed_at, killed_at,
                                        f"a call failed before the kill: {code} {details}")
                for key, value in client.counters.items():
                    counters[key] += value
            with lock:
                counters["in_flight"] += sum(len(states) > 1
                                             for states in model.possible.values())

            spawned = time.monotonic()
            server = self.wsvisor(data_dir=data_dir, metrics=False)
            restart_ms.append((time.monotonic() - spawned) * 1000)
            problems.extend(f"run {run}: {problem}"
                            for problem in model.check(self.observed_state(server), counters))
        server.kill9()

        report(f"crash test: {CRASH_RUNS} runs of {CRASH_CLIENTS} clients killed by SIGKILL after "
               f"{CRASH_KILL_DELAY_S[0]}-{CRASH_KILL_DELAY_S[1]} s, in "
               f"{time.monotonic() - started:.1f} s (WSVISOR_CRASH_SEED={seed})")
        report(f"acknowledged: {counters['registered']} registrations, "
               f"{counters['unregistered']} unregistrations, {counters['updated']} updates; "
               f"{counters['in_flight']} calls in flight at a kill")
        report(f"lost {counters['lost']}, resurrected {counters['resurrected']}, wrong spec "
               f"{counters['wrong_spec']}, phantom {counters['phantom']}")
        report(f"restart to SERVING: median {sorted(restart_ms)[len(restart_ms) // 2]:.0f} ms, "
               f"max {max(restart_ms):.0f} ms")
        self.assertEqual(problems[:20], [], f"{len(problems)} problems (first 20 shown)")
        self.assertGreater(counters["registered"], CRASH_RUNS, "the clients barely ran")
        self.assertGreater(counters["unregistered"], 0)

    def register_live(self, server, upstream, count, heartbeat_ms=1000):
        for number in range(count):
            endpoint_id = f"live-{number:03d}"
            spec = self.pb.EndpointSpec(id=endpoint_id, url=upstream.url(endpoint_id),
                                        labels={"n": str(number)})
            spec.heartbeat.interval.FromMilliseconds(heartbeat_ms)
            response = server.supervisor.RegisterEndpoint(
                self.pb.RegisterEndpointRequest(spec=spec), timeout=CALL_TIMEOUT_S)
            self.assertTrue(response.created)

    def healthy_count(self, server):
        return sum(e.status.health == self.pb.HEALTH_HEALTHY
                   for e in list_all(server.supervisor, self.pb, page_size=1000))

    def test_kill9_restart_restores_every_endpoint_and_all_become_healthy(self):
        upstream = self.foreign_upstream()
        server = self.wsvisor()
        self.register_live(server, upstream, RESTART_ENDPOINTS)
        wait_until(lambda: self.healthy_count(server) == RESTART_ENDPOINTS, HEALTHY_WITHIN_S,
                   f"{RESTART_ENDPOINTS} endpoints HEALTHY before the kill", interval_s=0.1)
        before = {e.spec.id: e.spec for e in list_all(server.supervisor, self.pb)}
        server.kill9()

        restarted = self.wsvisor(start=False).spawn()
        spawned = restarted.started_at
        restarted.wait_serving()
        serving_ms = (time.monotonic() - spawned) * 1000
        after = {e.spec.id: e.spec for e in list_all(restarted.supervisor, self.pb)}
        self.assertEqual(sorted(after), sorted(before), "the same endpoints after the restart")
        for endpoint_id, spec in before.items():
            self.assertEqual(after[endpoint_id], spec, endpoint_id)
        wait_until(lambda: self.healthy_count(restarted) == RESTART_ENDPOINTS, HEALTHY_WITHIN_S,
                   f"{RESTART_ENDPOINTS} restored endpoints HEALTHY", interval_s=0.05)
        healthy_ms = (time.monotonic() - spawned) * 1000
        report(f"kill -9 with {RESTART_ENDPOINTS} endpoints: restart serving after "
               f"{serving_ms:.0f} ms, all {RESTART_ENDPOINTS} listed, all HEALTHY "
               f"{healthy_ms:.0f} ms after the restart began")

    def test_restore_spreads_first_connection_attempts(self):
        rate = 100
        upstream = self.recording_upstream()
        server = self.wsvisor()
        self.register_live(server, upstream, RESTART_ENDPOINTS, heartbeat_ms=5000)
        wait_until(lambda: len({c.path for c in upstream.open_connections()}) ==
                   RESTART_ENDPOINTS, HEALTHY_WITHIN_S,
                   f"{RESTART_ENDPOINTS} endpoints connected before the kill", interval_s=0.05)
        server.kill9()

        killed_at = time.monotonic()
        restarted = self.wsvisor("--restore-dial-rate", str(rate))
        # The snapshot at the start of a watch is the state right after the restart.
        watch = restarted.supervisor.WatchHealth(self.pb.WatchHealthRequest(), timeout=30)
        self.addCleanup(watch.cancel)
        snapshot = []
        for event in watch:
            if event.type == self.pb.HealthEvent.TYPE_SNAPSHOT_COMPLETE:
                break
            snapshot.append(event)
        watch.cancel()
        self.assertEqual(len(snapshot), RESTART_ENDPOINTS)
        backing_off = [e for e in snapshot
                       if e.status.phase == self.pb.CONNECTION_PHASE_BACKING_OFF]
        attempts = sorted(e.status.next_attempt_time.ToNanoseconds() / 1e9 for e in backing_off)
        window_s = RESTART_ENDPOINTS / rate
        spread_s = attempts[-1] - attempts[0] if attempts else 0.0
        report(f"restore at {rate}/s: {len(backing_off)} of {RESTART_ENDPOINTS} endpoints "
               f"BACKING_OFF in the first snapshot, next_attempt_time spread over "
               f"{spread_s:.2f} s (window {window_s:.1f} s)")
        self.assertGreaterEqual(len(backing_off), RESTART_ENDPOINTS // 2,
                                "most endpoints should still be waiting for their slot")
        for event in backing_off:
            self.assertTrue(event.status.HasField("next_attempt_time"), event.endpoint_id)
        self.assertGreaterEqual(spread_s, 1.5)
        self.assertLessEqual(spread_s, window_s + 0.5)

        # The upstream's view: one new connection per endpoint, arriving over the window.
        wait_until(lambda: len({c.path for c in upstream.connections(opened_after=killed_at)})
                   == RESTART_ENDPOINTS, HEALTHY_WITHIN_S,
                   "every restored endpoint to connect again", interval_s=0.05)
        first_accepts = {}
        for connection in upstream.connections(opened_after=killed_at):
            first_accepts.setdefault(connection.path, connection.opened)
        accepts = sorted(first_accepts.values())
        accept_spread_s = accepts[-1] - accepts[0]
        busiest = max(sum(1 for t in accepts if start <= t < start + 0.25) for start in accepts)
        report(f"upstream accepted the {RESTART_ENDPOINTS} reconnections over "
               f"{accept_spread_s:.2f} s; at most {busiest} in any 250 ms "
               f"(at {rate}/s: about {rate // 4})")
        self.assertGreaterEqual(accept_spread_s, 1.5)
        self.assertLessEqual(busiest, rate // 4 * 3, "accepts should arrive over time")

    def test_damaged_store_stops_the_start(self):
        closed = self.closed_port()
        server = self.wsvisor()
        for number in range(40):
            endpoint_id = f"kept-{number:02d}"
            server.supervisor.RegisterEndpoint(self.pb.RegisterEndpointRequest(
                spec=cheap_spec(self.pb, endpoint_id, closed.url(endpoint_id),
                                {"padding": "x" * 200, "n": str(number)})),
                timeout=CALL_TIMEOUT_S)
        status, _ = server.terminate()
        self.assertEqual(status, 0)
        pristine = os.path.join(self.work_dir, "pristine")
        shutil.copytree(self.data_dir, pristine)
        size = os.path.getsize(os.path.join(pristine, "wsvisor.db"))
        self.assertGreater(size, 4 * 4096, "the store should span several pages")

        def garbage(path):
            with open(path, "wb") as db:
                db.write(random.Random(7).randbytes(size))

        def not_a_database(path):
            with open(path, "wb") as db:
                db.write(b"this is not an SQLite database\n" * 100)

        def truncated(path):
            os.truncate(path, size // 2)

        def header_only(path):
            os.truncate(path, 100)

        def middle_pages_overwritten(path):
            with open(path, "r+b") as db:
                db.seek(4096)
                db.write(random.Random(8).randbytes(size - 2 * 4096))

        for damage in (garbage, not_a_database, truncated, header_only, middle_pages_overwritten):
            with self.subTest(damage=damage.__name__):
                data_dir = os.path.join(self.work_dir, damage.__name__)
                shutil.copytree(pristine, data_dir)
                store = os.path.join(data_dir, "wsvisor.db")
                damage(store)
                self.assert_refuses_to_start(data_dir, store, damage.__name__)

    def assert_refuses_to_start(self, data_dir, store, what):
        process = self.wsvisor(data_dir=data_dir, start=False).spawn()
        status = process.wait_exit()
        log = process.log_text()
        report(f"store {what}: exit {status}; "
               f"{[line for line in log.splitlines() if 'wsvisor:' in line]}")
        self.assertNotEqual(status, 0, f"wsvisor started on a damaged store ({what}); log:\n{log}")
        self.assertNotIn("serving gRPC", log)
        self.assertIn(store, log, "the message should name the store's path")

    # SQLite alone would take a zero-length wsvisor.db for a new, empty database; wsvisor must
    # refuse instead of starting with no endpoints.
    def test_emptied_store_file_stops_the_start(self):
        closed = self.closed_port()
        server = self.wsvisor()
        server.supervisor.RegisterEndpoint(self.pb.RegisterEndpointRequest(
            spec=cheap_spec(self.pb, "kept", closed.url("kept"), {})), timeout=CALL_TIMEOUT_S)
        status, _ = server.terminate()
        self.assertEqual(status, 0)
        store = os.path.join(self.data_dir, "wsvisor.db")
        os.truncate(store, 0)  # e.g. a failed copy or restore of the volume
        process = self.wsvisor(start=False).spawn()
        try:
            status = process.wait_exit(timeout_s=3)
        except AssertionError:
            listed = list_all(process.wait_serving().supervisor, self.pb)
            self.fail(f"wsvisor started on an emptied {store} with {len(listed)} endpoints")
        self.assertNotEqual(status, 0)

    def test_registration_throughput_with_fsync(self):
        closed = self.closed_port()
        server = self.wsvisor()

        def register_range(supervisor, prefix, numbers):
            for number in numbers:
                endpoint_id = f"{prefix}-{number:04d}"
                response = supervisor.RegisterEndpoint(self.pb.RegisterEndpointRequest(
                    spec=cheap_spec(self.pb, endpoint_id, closed.url(endpoint_id),
                                    {"n": str(number)})), timeout=CALL_TIMEOUT_S)
                assert response.created, endpoint_id

        started = time.monotonic()
        register_range(server.supervisor, "seq", range(THROUGHPUT_ENDPOINTS))
        sequential_per_s = THROUGHPUT_ENDPOINTS / (time.monotonic() - started)

        clients = 4
        errors = []
        channels = [server.new_channel() for _ in range(clients)]
        for channel in channels:
            self.addCleanup(channel.close)
            grpc.channel_ready_future(channel).result(timeout=CALL_TIMEOUT_S)

        def client(index):
            try:
                register_range(self.stubs.pb_grpc.SupervisorStub(channels[index]), f"par{index}",
                               range(index, THROUGHPUT_ENDPOINTS, clients))
            except Exception as error:  # noqa: BLE001 - reported by the main thread
                errors.append(error)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        concurrent_per_s = THROUGHPUT_ENDPOINTS / (time.monotonic() - started)
        self.assertEqual(errors, [])
        self.assertEqual(len(list_all(server.supervisor, self.pb, page_size=1000)),
                         2 * THROUGHPUT_ENDPOINTS)
        report(f"registrations with fsync (WAL, synchronous=FULL): {sequential_per_s:.0f}/s "
               f"from one client, {concurrent_per_s:.0f}/s from {clients} concurrent clients "
               f"({THROUGHPUT_ENDPOINTS} each)")
        self.assertGreater(sequential_per_s, THROUGHPUT_FLOOR_PER_S)
        self.assertGreater(concurrent_per_s, THROUGHPUT_FLOOR_PER_S)


if __name__ == "__main__":
    unittest.main(verbosity=2)
