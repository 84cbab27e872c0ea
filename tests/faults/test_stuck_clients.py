#!/usr/bin/python3
"""Stuck and hostile gRPC clients against the real wsvisor binary: watchers that never read while
endpoints churn and an upstream sends a 64 MiB message, thousands of concurrent register and
unregister calls, 1 ms deadlines, cancelled streams, and oversized or malformed requests.

What must hold: memory stays bounded (RSS read from /proc/<pid>/status, peak printed); healthy
endpoints stay HEALTHY; a watcher that does read sees every change; the endpoint list ends
consistent; no call hangs; a cancelled stream ends server-side (wsvisor_watch_streams on /metrics
returns to 0); a bad request is refused naming the field and registers nothing.

Traffic stays on 127.0.0.1. Every wait is bounded and every process is stopped however a test
ends. Run by ctest (which sets WSVISOR_BIN, WSVISORCTL_BIN and WSVISOR_SOURCE_DIR), or by hand:
/usr/bin/python3 tests/faults/test_stuck_clients.py
"""

import concurrent.futures
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "e2e"))

import grpc  # noqa: E402  (Debian python3-grpcio)

from wsvisor_fixtures import (  # noqa: E402
    SYSTEM_PYTHON, RssSampler, WsvisorTestCase, elapsed_ms, import_supervisor_stubs, stop_process,
    wait_until)

CALL_TIMEOUT_S = 10.0
RSS_LIMIT_MIB = 256
MIB = 1024 * 1024


class HealthWatch:
    """One WatchHealth stream read promptly by a thread; every event is kept in order."""

    def __init__(self, stub, pb, **request):
        self._call = stub.WatchHealth(pb.WatchHealthRequest(**request), timeout=600)
        self._events = []
        self._cond = threading.Condition()
        self.final_code = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            for event in self._call:
                with self._cond:
                    self._events.append(event)
                    self._cond.notify_all()
        except grpc.RpcError as error:
            self.final_code = error.code()
        finally:
            with self._cond:
                if self.final_code is None:
                    self.final_code = grpc.StatusCode.OK
                self._cond.notify_all()

    def wait_for(self, predicate, timeout_s, what):
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for event in self._events:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.final_code is not None:
                    raise AssertionError(f"no {what} within {timeout_s:.1f} s")
                self._cond.wait(remaining)

    def events(self):
        with self._cond:
            return list(self._events)

    def cancel(self):
        self._call.cancel()
        self._thread.join(timeout=5)


class RawUpstream:
    """tests/support/python_raw_ws_upstream.py: misbehaves (see its --mode) on `trigger()`."""

    def __init__(self, source_dir, *args):
        script = os.path.join(source_dir, "tests", "support", "python_raw_ws_upstream.py")
        self._process = subprocess.Popen([SYSTEM_PYTHON, script, *args], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True)
        line = self._process.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise AssertionError(f"python_raw_ws_upstream.py printed {line!r}")
        self.url = f"ws://127.0.0.1:{int(line.split()[1])}/"

    def trigger(self):
        self._process.stdin.write("go\n")
        self._process.stdin.flush()

    def stop(self):
        stop_process(self._process)
        for stream in (self._process.stdin, self._process.stdout):
            stream.close()


class StuckClientsTest(WsvisorTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pb, cls.pb_grpc = import_supervisor_stubs(cls)

    def setUp(self):
        super().setUp()
        self.channel = self.open_channel()
        self.stub = self.pb_grpc.SupervisorStub(self.channel)

    # ----- helpers -----

    def open_channel(self):
        channel = grpc.insecure_channel(self.server.address)
        self.addCleanup(channel.close)
        grpc.channel_ready_future(channel).result(timeout=CALL_TIMEOUT_S)
        return channel

    def metrics_port(self):
        match = wait_until(lambda: re.search(r"serving Prometheus metrics on \S+ \(port (\d+)",
                                             self.server.log_text()), 10.0, "the metrics port")
        return int(match.group(1))

    def watch_streams_metric(self, port):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
        match = re.search(r"^wsvisor_watch_streams (\S+)$", text, re.MULTILINE)
        if match is None:
            raise AssertionError("wsvisor_watch_streams is not on /metrics")
        return float(match.group(1))

    def spec(self, endpoint_id, url, interval_ms=200):
        spec = self.pb.EndpointSpec(id=endpoint_id, url=url)
        spec.heartbeat.interval.FromMilliseconds(interval_ms)
        spec.backoff.initial.FromMilliseconds(50)
        spec.backoff.max.FromMilliseconds(500)
        return spec

    def register(self, spec, stub=None, timeout=CALL_TIMEOUT_S):
        return (stub or self.stub).RegisterEndpoint(self.pb.RegisterEndpointRequest(spec=spec),
                                                    timeout=timeout)

    def unregister(self, endpoint_id, stub=None, timeout=CALL_TIMEOUT_S):
        return (stub or self.stub).UnregisterEndpoint(
            self.pb.UnregisterEndpointRequest(id=endpoint_id), timeout=timeout)

    def get(self, endpoint_id):
        return self.stub.GetEndpoint(self.pb.GetEndpointRequest(id=endpoint_id),
                                     timeout=CALL_TIMEOUT_S).endpoint

    def list_all(self):
        """Every endpoint, page by page (the largest page the API allows)."""
        endpoints, token = [], ""
        while True:
            page = self.stub.ListEndpoints(
                self.pb.ListEndpointsRequest(page_size=1000, page_token=token),
                timeout=CALL_TIMEOUT_S)
            endpoints.extend(page.endpoints)
            token = page.next_page_token
            if not token:
                return endpoints

    def closed_port_url(self):
        """A ws:// URL on a port nothing listens on (it was free a moment ago)."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return f"ws://127.0.0.1:{probe.getsockname()[1]}/"

    def pause_process(self, process):
        process.send_signal(signal.SIGSTOP)
        self.addCleanup(process.send_signal, signal.SIGCONT)

    # ----- tests -----

    def test_stuck_watchers_churn_and_a_64_mib_message_keep_memory_bounded(self):
        good_ids = [f"good-{n}" for n in range(3)]
        live = HealthWatch(self.stub, self.pb)
        self.addCleanup(live.cancel)
        for endpoint_id in good_ids:
            self.register(self.spec(endpoint_id, self.upstream.url))
        for endpoint_id in good_ids:
            live.wait_for(lambda e, i=endpoint_id: e.endpoint_id == i
                          and e.status.health == self.pb.HEALTH_HEALTHY, 5.0,
                          f"{endpoint_id} HEALTHY")

        # Two watchers that stop reading: wsvisorctl paused with SIGSTOP (its first line read, so
        # the stream is established), and a raw stream on its own channel that is never read.
        ctl_watch = self.start_watch()
        ctl_watch.wait_for(lambda line: True, 10.0, "wsvisorctl watch output")
        self.pause_process(ctl_watch.process)
        stuck_stub = self.pb_grpc.SupervisorStub(self.open_channel())
        stuck_call = stuck_stub.WatchHealth(self.pb.WatchHealthRequest(), timeout=120)
        self.addCleanup(stuck_call.cancel)

        # The upstream that sends 64 MiB to an endpoint with the default 1 MiB limit.
        big = RawUpstream(self.paths.source_dir, "--mode", "big", "--message-bytes",
                          str(64 * MIB))
        self.addCleanup(big.stop)
        self.register(self.spec("big", big.url))
        live.wait_for(lambda e: e.endpoint_id == "big"
                      and e.status.health == self.pb.HEALTH_HEALTHY, 5.0, "big HEALTHY")

        sampler = RssSampler(self.server.pid)
        self.addCleanup(sampler.stop)
        started = time.monotonic()
        big.trigger()
        # Two rounds of 300 registrations and unregistrations: ~2,400 changes, more than a
        # watcher's queue holds (1,024). Each endpoint has the most label bytes a spec may have
        # (64 x 256 B), which every event carries: ~17 kB per event, ~40 MB per watcher in all,
        # far more than flow-control windows and socket buffers can park, so the server must
        # coalesce what it holds for the stuck watchers.
        churn_ids = [f"churn-{n:03d}" for n in range(300)]
        for _ in range(2):
            for endpoint_id in churn_ids:
                spec = self.spec(endpoint_id, self.upstream.url, interval_ms=1000)
                for n in range(64):
                    spec.labels[f"label-{n:02d}"] = "v" * 256
                self.register(spec)
            for endpoint_id in churn_ids:
                self.unregister(endpoint_id)
        churn_ms = elapsed_ms(started)
        too_big = live.wait_for(
            lambda e: e.endpoint_id == "big"
            and e.status.last_failure.reason == self.pb.FAILURE_REASON_MESSAGE_TOO_BIG,
            10.0, "big MESSAGE_TOO_BIG")
        # Let it reconnect, so its final state is a stable one to compare.
        wait_until(lambda: self.get("big").status.health == self.pb.HEALTH_HEALTHY, 10.0,
                   "big HEALTHY again")
        sampler.stop()
        print(f"  2 x 300 endpoints registered and unregistered in {churn_ms:.0f} ms; big: "
              f"{self.pb.FailureReason.Name(too_big.status.last_failure.reason)} close_code "
              f"{too_big.status.last_failure.close_code}", flush=True)
        print(f"  wsvisor RSS: {sampler.start_mib:.1f} MiB before, peak {sampler.peak_mib:.1f} MiB "
              f"(limit {RSS_LIMIT_MIB} MiB)", flush=True)
        self.assertLess(sampler.peak_mib, RSS_LIMIT_MIB)
        self.assertEqual(too_big.status.last_failure.close_code, 1009)

        # The good endpoints never wavered.
        wavered, healthy_ids = [], set()
        for event in live.events():
            if event.endpoint_id not in good_ids:
                continue
            if event.status.health == self.pb.HEALTH_HEALTHY:
                healthy_ids.add(event.endpoint_id)
            elif event.endpoint_id in healthy_ids:
                wavered.append(event)
        self.assertEqual(wavered, [])
        for endpoint_id in good_ids:
            status = self.get(endpoint_id).status
            self.assertEqual(status.health, self.pb.HEALTH_HEALTHY)
            self.assertFalse(status.HasField("last_failure"), str(status.last_failure))

        # The live watcher saw every change: consecutive revisions, nothing coalesced, and its
        # last word on each endpoint is what Get and List say now.
        listed = {e.spec.id: e for e in self.list_all()}
        self.assertEqual(sorted(listed), sorted(good_ids + ["big"]))

        def settled():
            last = {}
            for event in live.events():
                if event.type != self.pb.HealthEvent.TYPE_SNAPSHOT_COMPLETE:
                    last[event.endpoint_id] = event
            return all(last.get(i) and last[i].status.health == listed[i].status.health
                       and last[i].status.phase == listed[i].status.phase for i in listed) and last
        last = wait_until(settled, 5.0, "the live watcher to agree with List")
        events = [e for e in live.events() if e.type != self.pb.HealthEvent.TYPE_SNAPSHOT]
        revisions = [e.revision for e in events]
        coalesced = sum(1 for e in events if e.coalesced)
        gaps = [(a, b) for a, b in zip(revisions, revisions[1:]) if b != a + 1]
        print(f"  live watcher: {len(events)} events, revisions {revisions[0]}..{revisions[-1]}, "
              f"{len(gaps)} gaps, {coalesced} coalesced", flush=True)
        self.assertEqual(gaps, [])
        self.assertEqual(coalesced, 0)
        for endpoint_id in churn_ids:
            self.assertEqual(last[endpoint_id].type, self.pb.HealthEvent.TYPE_UNREGISTERED,
                             endpoint_id)
        seen = {e.endpoint_id for e in events}
        self.assertTrue(set(churn_ids) <= seen)

        # The stuck watchers, read at last, were coalesced and catch up with the latest state.
        ctl_watch.process.send_signal(signal.SIGCONT)
        ctl_watch.wait_for(lambda text: "(coalesced)" in text, 20.0,
                           "a coalesced event on the resumed wsvisorctl watch")
        ctl_watch.wait_for(lambda text: "churn-299" in text and "unregistered" in text, 20.0,
                           "churn-299 unregistered on the resumed wsvisorctl watch")
        print(f"  resumed wsvisorctl watch: {len(ctl_watch.lines)} lines to catch up, "
              f"{sum('(coalesced)' in line for line in ctl_watch.lines)} coalesced", flush=True)
        final_revision = revisions[-1]
        stuck_events = []
        for event in stuck_call:  # the call's own deadline bounds this loop
            stuck_events.append(event)
            if event.revision >= final_revision:
                break
        stuck_coalesced = sum(1 for e in stuck_events if e.coalesced)
        print(f"  unread gRPC stream, read at last: {len(stuck_events)} events to catch up, "
              f"{stuck_coalesced} coalesced", flush=True)
        self.assertGreater(stuck_coalesced, 0)
        self.assertLess(len(stuck_events), len(events), "the unread stream was not coalesced")

    def test_concurrent_register_unregister_churn_ends_consistent(self):
        url = self.closed_port_url()  # connection refused: cheap, still supervised
        threads, per_thread, shared = 4, 300, 10
        live = HealthWatch(self.stub, self.pb)
        self.addCleanup(live.cancel)
        channels = [self.open_channel() for _ in range(threads)]
        outcomes = []
        lock = threading.Lock()

        def work(worker):
            stub = self.pb_grpc.SupervisorStub(channels[worker])
            codes = {}

            def call(fn, *args):
                try:
                    fn(*args, stub=stub)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as error:
                    code = error.code()
                codes[code] = codes.get(code, 0) + 1

            for n in range(per_thread):
                endpoint_id = f"c{worker}-{n:03d}"
                call(self.register, self.spec(endpoint_id, url, interval_ms=1000))
                if n % 3:
                    call(self.unregister, endpoint_id)
                # The shared ids are raced by every worker: identical specs, so a register is
                # created or idempotent; an unregister may find nothing (NOT_FOUND).
                shared_id = f"shared-{n % shared}"
                call(self.register, self.spec(shared_id, url, interval_ms=1000))
                call(self.unregister, shared_id)
            with lock:
                outcomes.append(codes)

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            for future in [pool.submit(work, w) for w in range(threads)]:
                future.result(timeout=170)
        took_ms = elapsed_ms(started)
        calls = sum(sum(c.values()) for c in outcomes)
        totals = {}
        for codes in outcomes:
            for code, count in codes.items():
                totals[code.name] = totals.get(code.name, 0) + count
        print(f"  {calls} calls from {threads} clients in {took_ms:.0f} ms "
              f"({calls / took_ms * 1000:.0f}/s): {totals}", flush=True)
        self.assertEqual(set(totals) - {"OK", "NOT_FOUND"}, set())

        listed = self.list_all()
        ids = [e.spec.id for e in listed]
        self.assertEqual(ids, sorted(ids), "List is in id order")
        self.assertEqual(len(ids), len(set(ids)), "no id listed twice")
        expected = {f"c{w}-{n:03d}" for w in range(threads) for n in range(per_thread)
                    if n % 3 == 0}
        self.assertEqual(set(ids) - {f"shared-{k}" for k in range(shared)}, expected)
        for k in range(shared):  # a raced id is listed exactly when Get finds it
            shared_id = f"shared-{k}"
            try:
                self.get(shared_id)
                found = True
            except grpc.RpcError as error:
                self.assertEqual(error.code(), grpc.StatusCode.NOT_FOUND)
                found = False
            self.assertEqual(found, shared_id in ids, shared_id)

        def agrees():
            last = {}
            for event in live.events():
                if event.type != self.pb.HealthEvent.TYPE_SNAPSHOT_COMPLETE:
                    last[event.endpoint_id] = event.type
            present = {i for i, t in last.items() if t != self.pb.HealthEvent.TYPE_UNREGISTERED}
            return present == set(ids)
        wait_until(agrees, 10.0, "the watcher's view to match List")
        coalesced = sum(1 for e in live.events() if e.coalesced)
        print(f"  List: {len(ids)} endpoints, consistent with Get and with a watcher that saw "
              f"{len(live.events())} events ({coalesced} coalesced)", flush=True)

    def test_tiny_deadlines_never_hang_and_cancelled_watches_end(self):
        metrics_port = self.metrics_port()
        url = self.closed_port_url()
        outcomes, slowest_ms = {}, 0.0

        def attempt(name, fn):
            nonlocal slowest_ms
            started = time.monotonic()
            try:
                fn()
                code = grpc.StatusCode.OK
            except grpc.RpcError as error:
                code = error.code()
            slowest_ms = max(slowest_ms, elapsed_ms(started))
            outcomes.setdefault(name, {}).setdefault(code.name, 0)
            outcomes[name][code.name] += 1

        for n in range(50):
            endpoint_id = f"tiny-{n}"
            attempt("Register", lambda: self.register(self.spec(endpoint_id, url), timeout=0.001))
            attempt("Get", lambda: self.stub.GetEndpoint(
                self.pb.GetEndpointRequest(id=endpoint_id), timeout=0.001))
            attempt("List", lambda: self.stub.ListEndpoints(self.pb.ListEndpointsRequest(),
                                                            timeout=0.001))
            attempt("Unregister", lambda: self.unregister(endpoint_id, timeout=0.001))
            attempt("WatchHealth", lambda: list(self.stub.WatchHealth(
                self.pb.WatchHealthRequest(), timeout=0.001)))
        print(f"  1 ms deadlines, 50 calls of each: {outcomes}; slowest call returned after "
              f"{slowest_ms:.0f} ms", flush=True)
        self.assertLess(slowest_ms, 2000, "a call with a 1 ms deadline took seconds to end")
        allowed = {"OK", "DEADLINE_EXCEEDED", "NOT_FOUND"}
        for name, codes in outcomes.items():
            self.assertEqual(set(codes) - allowed, set(), name)
        self.assertEqual(set(outcomes["WatchHealth"]), {"DEADLINE_EXCEEDED"})
        # Whatever the deadlines cut, the server's state is consistent.
        for endpoint in self.list_all():
            self.assertEqual(self.get(endpoint.spec.id).spec.id, endpoint.spec.id)

        # Cancelled streams end server-side.
        wait_until(lambda: self.watch_streams_metric(metrics_port) == 0, 10.0,
                   "wsvisor_watch_streams 0 after the 1 ms watches")
        watches = [HealthWatch(self.stub, self.pb) for _ in range(5)]
        for watch in watches:
            watch.wait_for(lambda e: e.type == self.pb.HealthEvent.TYPE_SNAPSHOT_COMPLETE, 10.0,
                           "SNAPSHOT_COMPLETE")
        self.assertEqual(self.watch_streams_metric(metrics_port), 5)
        cancelled = time.monotonic()
        for watch in watches:
            watch.cancel()
        wait_until(lambda: self.watch_streams_metric(metrics_port) == 0, 10.0,
                   "wsvisor_watch_streams back to 0 after cancelling")
        print(f"  5 cancelled WatchHealth streams: wsvisor_watch_streams 5 -> 0 in "
              f"{elapsed_ms(cancelled):.0f} ms", flush=True)

    def test_oversized_and_malformed_requests_are_refused_and_change_nothing(self):
        url = self.upstream.url
        self.register(self.spec("kept", url))
        before = [e.spec for e in self.list_all()]

        def spec_with(**changes):
            spec = self.spec("x", url)
            for name, value in changes.items():
                setattr(spec, name, value)
            return spec

        cr_lf = spec_with()
        cr_lf.headers.add(name="X-Evil", value="a\r\nInjected: yes")
        big_header = spec_with()
        big_header.headers.add(name="X-Big", value="v" * 100_000)
        many_labels = spec_with()
        for n in range(5000):
            many_labels.labels[f"k{n}"] = "v"
        big_label = spec_with()
        big_label.labels["team"] = "v" * 3_000_000  # under gRPC's 4 MB: reaches our validation
        ten_mb = spec_with()
        ten_mb.labels["team"] = "v" * 10_000_000
        cases = [
            ("100 kB id", spec_with(id="a" * 100_000), grpc.StatusCode.INVALID_ARGUMENT, "spec.id"),
            ("100 kB url", spec_with(url="ws://127.0.0.1:1/" + "p" * 100_000),
             grpc.StatusCode.INVALID_ARGUMENT, "spec.url"),
            ("CR/LF in a header value", cr_lf, grpc.StatusCode.INVALID_ARGUMENT,
             "spec.headers[0].value"),
            ("100 kB header value", big_header, grpc.StatusCode.INVALID_ARGUMENT,
             "spec.headers[0].value"),
            ("5,000 labels", many_labels, grpc.StatusCode.INVALID_ARGUMENT, "spec.labels"),
            ("3 MB label value", big_label, grpc.StatusCode.INVALID_ARGUMENT, "spec.labels"),
            # gRPC's default largest received message is 4 MiB: refused before our code runs.
            ("10 MB request", ten_mb, grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
        ]
        for what, spec, code, field in cases:
            with self.subTest(what):
                started = time.monotonic()
                with self.assertRaises(grpc.RpcError) as raised:
                    self.register(spec)
                details = raised.exception.details() or ""
                print(f"  {what}: {raised.exception.code().name} in {elapsed_ms(started):.0f} ms, "
                      f"{len(details)}-byte message {details[:120]!r}", flush=True)
                self.assertEqual(raised.exception.code(), code)
                self.assertTrue(details.startswith(field), details[:200])
                self.assertLess(len(details), 1024, "the error echoes the oversized input")

        # Other RPCs with oversized ids.
        for what, call in [
                ("Get with a 100 kB id", lambda: self.stub.GetEndpoint(
                    self.pb.GetEndpointRequest(id="a" * 100_000), timeout=CALL_TIMEOUT_S)),
                ("Unregister with a 100 kB id", lambda: self.unregister("a" * 100_000)),
                ("Watch of a 100 kB id", lambda: next(self.stub.WatchHealth(
                    self.pb.WatchHealthRequest(ids=["a" * 100_000]), timeout=CALL_TIMEOUT_S))),
                ("List with a garbage page token", lambda: self.stub.ListEndpoints(
                    self.pb.ListEndpointsRequest(page_token="\x00garbage"),
                    timeout=CALL_TIMEOUT_S))]:
            with self.subTest(what):
                with self.assertRaises(grpc.RpcError) as raised:
                    call()
                details = raised.exception.details() or ""
                print(f"  {what}: {raised.exception.code().name} {details[:120]!r}", flush=True)
                self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                self.assertLess(len(details), 1024)

        self.assertEqual([e.spec for e in self.list_all()], before, "a bad request changed state")


if __name__ == "__main__":
    unittest.main(verbosity=2)
