#!/usr/bin/python3
"""WatchHealth's bounds against the real wsvisor binary and a foreign Python gRPC client:
--max-watch-streams refuses the stream past it with RESOURCE_EXHAUSTED and counts it, and
--watch-stream-bytes coalesces a stream that stopped reading and ends it, with RESOURCE_EXHAUSTED
naming the budget and the flag, once even the latest state per endpoint exceeds it. A reader that
keeps up sees every change either way.

Streams that "never read" are calls whose messages are never requested, on their own channel
with BDP probing off, so that their flow-control window stays at HTTP/2's 64 KiB and what they
do not read stays queued in wsvisor.

Run by ctest (which sets WSVISOR_BIN, WSVISORCTL_BIN and WSVISOR_SOURCE_DIR), or by hand:
/usr/bin/python3 tests/e2e/test_watch_bounds.py
"""

import os
import re
import sys
import threading
import time
import unittest
import urllib.request

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402  (Debian python3-grpcio)

from wsvisor_fixtures import (  # noqa: E402
    WsvisorServer, WsvisorTestCase, import_supervisor_stubs, wait_until)

CALL_TIMEOUT_S = 10.0
# A stuck stream's own channel: the flow-control window stays at 64 KiB.
STUCK_CHANNEL_OPTIONS = [("grpc.http2.bdp_probe", 0)]


class Reader:
    """One WatchHealth stream read promptly by a thread; every event kept in order."""

    def __init__(self, stub, pb):
        self._call = stub.WatchHealth(pb.WatchHealthRequest(), timeout=120)
        self._events = []
        self._cond = threading.Condition()
        self.error = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            for event in self._call:
                with self._cond:
                    self._events.append(event)
                    self._cond.notify_all()
        except grpc.RpcError as error:
            with self._cond:
                self.error = error
                self._cond.notify_all()

    def wait_for(self, predicate, timeout_s, what):
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not any(predicate(e) for e in self._events):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.error is not None:
                    raise AssertionError(f"no {what} within {timeout_s:.1f} s "
                                         f"(stream error: {self.error})")
                self._cond.wait(remaining)

    def events(self):
        with self._cond:
            return list(self._events)

    def cancel(self):
        self._call.cancel()
        self._thread.join(timeout=5)


class WatchBoundsTest(WsvisorTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pb, cls.pb_grpc = import_supervisor_stubs(cls, prefix="wsvisor-watch-bounds-stubs-")

    def restart_with(self, *flags):
        """Replaces the fixture's server with one started with `flags`."""
        self._stop_server(self.server)
        self.server = WsvisorServer(self.paths, self.work_dir, extra_args=flags)
        self.addCleanup(self._stop_server, self.server)
        self.stub = self.pb_grpc.SupervisorStub(self.open_channel())

    def open_channel(self, options=None):
        channel = grpc.insecure_channel(self.server.address, options=options or [])
        self.addCleanup(channel.close)
        grpc.channel_ready_future(channel).result(timeout=CALL_TIMEOUT_S)
        return channel

    def metric(self, name, **labels):
        match = wait_until(lambda: re.search(r"serving Prometheus metrics on \S+ \(port (\d+)",
                                             self.server.log_text()), 10.0, "the metrics port")
        url = f"http://127.0.0.1:{match.group(1)}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        pattern = re.escape(name) + (r"\{" + re.escape(selector) + r"\}" if labels else "")
        found = re.search(r"^" + pattern + r" (\S+)$", text, re.MULTILINE)
        if found is None:
            raise AssertionError(f"{name}{{{selector}}} is not on /metrics")
        return float(found.group(1))

    def spec(self, endpoint_id, labels=0):
        spec = self.pb.EndpointSpec(id=endpoint_id, url=self.upstream.url)
        spec.heartbeat.interval.FromMilliseconds(1000)
        for n in range(labels):
            spec.labels[f"label-{n:02d}"] = "v" * 256
        return spec

    def register(self, spec):
        self.stub.RegisterEndpoint(self.pb.RegisterEndpointRequest(spec=spec),
                                   timeout=CALL_TIMEOUT_S)

    def unregister(self, endpoint_id):
        self.stub.UnregisterEndpoint(self.pb.UnregisterEndpointRequest(id=endpoint_id),
                                     timeout=CALL_TIMEOUT_S)

    def reader(self, stub=None):
        reader = Reader(stub or self.stub, self.pb)
        self.addCleanup(reader.cancel)
        reader.wait_for(lambda e: e.type == self.pb.HealthEvent.TYPE_SNAPSHOT_COMPLETE, 10.0,
                        "SNAPSHOT_COMPLETE")
        return reader

    def stuck_stream(self):
        """A WatchHealth call on its own channel whose messages are not requested until the
        test iterates it; returned with the channel's stub."""
        stub = self.pb_grpc.SupervisorStub(self.open_channel(STUCK_CHANNEL_OPTIONS))
        call = stub.WatchHealth(self.pb.WatchHealthRequest(), timeout=120)
        self.addCleanup(call.cancel)
        return call

    def assert_every_change(self, reader, up_to_revision):
        def caught_up():
            return any(e.revision >= up_to_revision and
                       e.type != self.pb.HealthEvent.TYPE_SNAPSHOT for e in reader.events())
        wait_until(caught_up, 10.0, f"the reader to reach revision {up_to_revision}")
        live = [e for e in reader.events() if e.type not in (
            self.pb.HealthEvent.TYPE_SNAPSHOT, self.pb.HealthEvent.TYPE_SNAPSHOT_COMPLETE)]
        revisions = [e.revision for e in live]
        gaps = [(a, b) for a, b in zip(revisions, revisions[1:]) if b != a + 1]
        self.assertEqual(gaps, [])
        self.assertEqual([e for e in live if e.coalesced], [])
        self.assertIsNone(reader.error)
        return len(live)

    # ----- tests -----

    def test_streams_past_max_watch_streams_are_refused_and_counted(self):
        self.restart_with("--max-watch-streams", "3")
        self.assertEqual(self.metric("wsvisor_max_watch_streams"), 3)
        readers = [self.reader() for _ in range(3)]
        with self.assertRaises(grpc.RpcError) as raised:
            next(self.stub.WatchHealth(self.pb.WatchHealthRequest(), timeout=CALL_TIMEOUT_S))
        print(f"  4th stream: {raised.exception.code().name} {raised.exception.details()!r}",
              flush=True)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertEqual(
            raised.exception.details(),
            "3 WatchHealth streams are open, the most this wsvisor serves at once "
            "(--max-watch-streams 3); close a stream you no longer read, or ask the operator to "
            "raise --max-watch-streams")
        self.assertEqual(self.metric("wsvisor_watch_streams_exhausted_total",
                                     reason="max_streams"), 1)
        self.assertEqual(self.metric("wsvisor_watch_streams_exhausted_total",
                                     reason="byte_budget"), 0)
        self.assertEqual(self.metric("wsvisor_watch_streams"), 3)

        # A closed stream frees its place; the open ones were not disturbed.
        readers[0].cancel()
        wait_until(lambda: self.metric("wsvisor_watch_streams") == 2, 10.0,
                   "wsvisor_watch_streams 2 after a cancel")
        replacement = self.reader()
        self.register(self.spec("a"))
        for reader in (readers[1], readers[2], replacement):
            reader.wait_for(lambda e: e.endpoint_id == "a", 10.0, "a's registration")
            self.assertIsNone(reader.error)

    def test_a_stream_over_its_byte_budget_is_coalesced_then_ended_with_the_reason(self):
        self.restart_with("--watch-stream-bytes", "1MiB")
        live = self.reader()

        # Phase 1: two endpoints with large labels (~14 KiB per event in memory) churn far past
        # the budget and the stuck stream's window. Their latest state fits: the stream is
        # coalesced.
        coalesced_call = self.stuck_stream()
        rounds = 60
        for _ in range(rounds):
            for endpoint_id in ("a", "b"):
                self.register(self.spec(endpoint_id, labels=40))
            for endpoint_id in ("a", "b"):
                self.unregister(endpoint_id)
        wait_until(lambda: sum(1 for e in live.events() if e.endpoint_id == "b" and
                               e.type == self.pb.HealthEvent.TYPE_UNREGISTERED) == rounds, 10.0,
                   "the reader to see b's last unregistration")
        final_revision = max(e.revision for e in live.events())
        events = []
        for event in coalesced_call:
            events.append(event)
            if event.revision >= final_revision:
                break
        coalesced = sum(1 for e in events if e.coalesced)
        print(f"  stuck stream under budget, read at last: {len(events)} events for "
              f"{4 * rounds} registrations and unregistrations, {coalesced} coalesced", flush=True)
        self.assertGreater(coalesced, 0)
        self.assertLess(len(events), 4 * rounds)
        self.assertEqual(events[-1].type, self.pb.HealthEvent.TYPE_UNREGISTERED)
        coalesced_call.cancel()

        # Phase 2: a hundred endpoints' latest state (~1.4 MiB) exceeds the budget: the stuck
        # stream is ended, with the reason, once it reads what was already on its way.
        ended_call = self.stuck_stream()
        ids = [f"e{n:02d}" for n in range(100)]
        for endpoint_id in ids:
            self.register(self.spec(endpoint_id, labels=40))
        for endpoint_id in ids:
            self.unregister(endpoint_id)
        # Registrations publish before they are answered: the queue went over budget already.
        # The stream is ended when the message in flight is read.
        delivered = 0
        with self.assertRaises(grpc.RpcError) as raised:
            for _ in ended_call:
                delivered += 1
        details = raised.exception.details()
        print(f"  stuck stream over budget: {delivered} events delivered, then "
              f"{raised.exception.code().name} {details!r}", flush=True)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertLess(delivered, 10)
        self.assertEqual(self.metric("wsvisor_watch_streams_exhausted_total",
                                     reason="byte_budget"), 1)
        self.assertRegex(
            details,
            r"^this watch fell too far behind: even with only the latest state per endpoint, its "
            r"\d+ queued events need \d+ KiB, more than the per-stream budget of 1024 KiB "
            r"\(1048576 bytes, --watch-stream-bytes\); read faster, watch fewer endpoints \(ids, "
            r"label_selector\) or raise --watch-stream-bytes, then watch again$")
        self.assertIn("WatchHealth stream ended with RESOURCE_EXHAUSTED: this watch fell too far "
                      "behind", self.server.log_text())

        # The reader that kept up saw every change, uncoalesced, and was never ended.
        changes = self.assert_every_change(live, max(e.revision for e in live.events()))
        print(f"  live reader: {changes} changes, none coalesced, no gap", flush=True)
        self.assertGreaterEqual(changes, 4 * rounds + 2 * len(ids))
        self.assertEqual(self.metric("wsvisor_watch_streams_exhausted_total",
                                     reason="max_streams"), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
