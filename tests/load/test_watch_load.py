#!/usr/bin/python3
"""WatchHealth under load against the real wsvisor binary: 2,000 concurrent streams that never
read, plus 1,000 endpoints flapping on a foreign WebSocket upstream (python3-websockets closes
every connection after 2-6 s), on 127.0.0.1.

What must hold, and is printed:
  - wsvisor's resident memory (VmRSS, sampled every 10 ms) stays under RSS_LIMIT_MIB;
  - every reader that keeps up sees every change: consecutive revisions, none coalesced, every
    registered endpoint;
  - supervision stays on time: 20 steady endpoints (200 ms heartbeats on another upstream) never
    leave HEALTHY and send at least 90 % of the heartbeats their interval calls for;
  - the 2,000 stuck streams stay open (nothing in the run exceeds --watch-stream-bytes) and end
    server-side when their clients cancel.

The run is bounded by counts (FLAP_CHANGES changes seen by the readers) and deadlines, never by
fixed sleeps. Run by ctest (label `load`, which sets WSVISOR_BIN, WSVISORCTL_BIN and
WSVISOR_SOURCE_DIR), or by hand: /usr/bin/python3 tests/load/test_watch_load.py
"""

import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "e2e"))

import grpc  # noqa: E402  (Debian python3-grpcio)

from wsvisor_fixtures import (  # noqa: E402
    SYSTEM_PYTHON, Paths, RssSampler, Upstream, WsvisorServer, elapsed_ms,
    import_supervisor_stubs, stop_process, wait_until)

STUCK_STREAMS = 2000
STUCK_CHANNELS = 8  # 250 streams per HTTP/2 connection
READERS = 2
FLAPPING_ENDPOINTS = 1000
STEADY_ENDPOINTS = 20
STEADY_INTERVAL_MS = 200
FLAP_CHANGES = 8000  # changes the readers must see after the registrations
RUN_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 30.0
# The stated bound: wsvisor takes ~65 MiB with the streams open. Publishing appends each change
# once to the change log every stream reads from (16,384 events of ~0.5 KiB with these labels:
# ~8 MiB) and moves one entry per endpoint in the latest changes; a stream that reads nothing
# keeps only its position and the one message it has in flight. Measured peak: 98 MiB (when each
# stream kept its own queue of events instead: 519 MiB).
RSS_LIMIT_MIB = 192
MIB = 1024 * 1024


class FlappingUpstream:
    """tests/support/python_flapping_upstream.py: closes each connection after 2-6 s."""

    def __init__(self, paths, log_path):
        script = os.path.join(paths.source_dir, "tests", "support", "python_flapping_upstream.py")
        self._log = open(log_path, "w", encoding="utf-8")
        self._process = subprocess.Popen(
            [SYSTEM_PYTHON, script, "--exit-on-stdin-eof", "--min-lifetime", "2",
             "--max-lifetime", "6"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True)
        ready, _, _ = select.select([self._process.stdout], [], [], 15.0)
        line = self._process.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            self.stop()
            raise AssertionError(f"python_flapping_upstream.py printed {line!r}")
        self.url = f"ws://127.0.0.1:{int(line.split()[1])}/"

    def stop(self):
        stop_process(self._process)
        for stream in (self._process.stdin, self._process.stdout, self._log):
            stream.close()


class Reader:
    """One WatchHealth stream read promptly by a thread; events kept in order."""

    def __init__(self, stub, pb):
        self._call = stub.WatchHealth(pb.WatchHealthRequest(), timeout=600)
        self._events = []
        self._lock = threading.Lock()
        self.error = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            for event in self._call:
                with self._lock:
                    self._events.append(event)
        except grpc.RpcError as error:
            self.error = error

    def events(self):
        with self._lock:
            return list(self._events)

    def count(self):
        with self._lock:
            return len(self._events)

    def cancel(self):
        self._call.cancel()
        self._thread.join(timeout=5)


class WatchLoadTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.paths = Paths.from_environment()
        cls.pb, cls.pb_grpc = import_supervisor_stubs(cls, prefix="wsvisor-load-stubs-")

    def setUp(self):
        self.work_dir = tempfile.mkdtemp(prefix="wsvisor-load-")
        self.addCleanup(shutil.rmtree, self.work_dir, ignore_errors=True)
        self.steady = Upstream(self.paths)
        self.addCleanup(self.steady.stop)
        self.flapping = FlappingUpstream(self.paths, os.path.join(self.work_dir, "flapping.log"))
        self.addCleanup(self.flapping.stop)
        self.server = WsvisorServer(
            self.paths, self.work_dir,
            extra_args=("--max-watch-streams", str(STUCK_STREAMS + READERS + 8)))
        self.addCleanup(self.stop_server)
        self.channel = self.open_channel()
        self.stub = self.pb_grpc.SupervisorStub(self.channel)

    def stop_server(self):
        status, took_ms = self.server.stop()
        print(f"  wsvisor stopped by SIGTERM in {took_ms:.0f} ms, exit status {status}", flush=True)
        if status != 0:
            sys.stderr.write(f"----- wsvisor log -----\n{self.server.log_text()}\n")
        self.assertEqual(status, 0)

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

    def spec(self, endpoint_id, url, interval_ms):
        spec = self.pb.EndpointSpec(id=endpoint_id, url=url)
        spec.labels["team"] = "load"
        spec.labels["kind"] = endpoint_id.split("-")[0]
        spec.heartbeat.interval.FromMilliseconds(interval_ms)
        spec.backoff.initial.FromMilliseconds(50)
        spec.backoff.max.FromMilliseconds(500)
        return spec

    def register(self, spec):
        self.stub.RegisterEndpoint(self.pb.RegisterEndpointRequest(spec=spec),
                                   timeout=CALL_TIMEOUT_S)

    def list_all(self):
        endpoints, token = [], ""
        while True:
            page = self.stub.ListEndpoints(
                self.pb.ListEndpointsRequest(page_size=1000, page_token=token),
                timeout=CALL_TIMEOUT_S)
            endpoints.extend(page.endpoints)
            token = page.next_page_token
            if not token:
                return endpoints

    def test_stuck_streams_and_flapping_endpoints_keep_memory_bounded_and_readers_whole(self):
        pb = self.pb
        started = time.monotonic()
        readers = []
        for _ in range(READERS):
            reader = Reader(self.stub, pb)
            self.addCleanup(reader.cancel)
            readers.append(reader)

        # The stuck streams: their messages are never requested. BDP probing off, so that each
        # stream's flow-control window stays at 64 KiB and what it does not read stays queued.
        stuck_calls = []
        for _ in range(STUCK_CHANNELS):
            stub = self.pb_grpc.SupervisorStub(self.open_channel([("grpc.http2.bdp_probe", 0)]))
            for _ in range(STUCK_STREAMS // STUCK_CHANNELS):
                stuck_calls.append(stub.WatchHealth(pb.WatchHealthRequest(), timeout=600))
        self.addCleanup(lambda: [call.cancel() for call in stuck_calls])
        wait_until(lambda: self.metric("wsvisor_watch_streams") == STUCK_STREAMS + READERS, 60.0,
                   f"{STUCK_STREAMS + READERS} open streams")
        opened_ms = elapsed_ms(started)
        sampler = RssSampler(self.server.pid)
        self.addCleanup(sampler.stop)

        steady_ids = [f"steady-{n:02d}" for n in range(STEADY_ENDPOINTS)]
        for endpoint_id in steady_ids:
            self.register(self.spec(endpoint_id, self.steady.url, STEADY_INTERVAL_MS))
        flapping_ids = [f"flap-{n:04d}" for n in range(FLAPPING_ENDPOINTS)]
        registering = time.monotonic()
        for endpoint_id in flapping_ids:
            self.register(self.spec(endpoint_id, self.flapping.url, 5000))
        registered_ms = elapsed_ms(registering)
        steady_before = {i: self.stub.GetEndpoint(pb.GetEndpointRequest(id=i),
                                                  timeout=CALL_TIMEOUT_S).endpoint.status
                         for i in steady_ids}
        window_started = time.monotonic()
        seen_before = [r.count() for r in readers]

        # The run: until the readers have seen FLAP_CHANGES more changes, bounded in time.
        wait_until(lambda: min(r.count() - n for r, n in zip(readers, seen_before)) >= FLAP_CHANGES,
                   RUN_TIMEOUT_S, f"{FLAP_CHANGES} changes seen by every reader", interval_s=0.2)
        window_s = time.monotonic() - window_started
        steady_after = {i: self.stub.GetEndpoint(pb.GetEndpointRequest(id=i),
                                                 timeout=CALL_TIMEOUT_S).endpoint.status
                        for i in steady_ids}
        dropped = {e.endpoint_id for e in readers[0].events()
                   if e.status.last_failure.reason == pb.FAILURE_REASON_CLOSED_BY_PEER}
        open_streams = self.metric("wsvisor_watch_streams")
        over_budget = self.metric("wsvisor_watch_streams_exhausted_total", reason="byte_budget")
        sampler.stop()
        print(f"  {STUCK_STREAMS} stuck streams and {READERS} readers open in {opened_ms:.0f} ms; "
              f"{FLAPPING_ENDPOINTS} flapping and {STEADY_ENDPOINTS} steady endpoints registered "
              f"in {registered_ms:.0f} ms", flush=True)
        print(f"  run: {window_s:.1f} s, {readers[0].count() - seen_before[0]} events seen by a "
              f"reader in it ({(readers[0].count() - seen_before[0]) / window_s:.0f}/s), "
              f"{len(dropped)} endpoints dropped by the upstream", flush=True)
        print(f"  wsvisor RSS: {sampler.start_mib:.1f} MiB with the streams open, peak "
              f"{sampler.peak_mib:.1f} MiB (limit {RSS_LIMIT_MIB} MiB)", flush=True)
        self.assertLess(sampler.peak_mib, RSS_LIMIT_MIB)
        self.assertEqual(open_streams, STUCK_STREAMS + READERS)
        self.assertEqual(over_budget, 0)
        self.assertGreater(len(dropped), FLAPPING_ENDPOINTS // 2, "the endpoints did not flap")

        # Supervision on time: the steady endpoints never wavered and kept their heartbeat rate.
        wavered = [e for e in readers[0].events() if e.endpoint_id in steady_ids
                   and e.status.health not in (pb.HEALTH_HEALTHY, pb.HEALTH_UNKNOWN)]
        self.assertEqual(wavered, [])
        expected = window_s * 1000.0 / STEADY_INTERVAL_MS
        rates = sorted((steady_after[i].heartbeats_sent - steady_before[i].heartbeats_sent)
                       / expected for i in steady_ids)
        worst_rtt_ms = max(steady_after[i].last_rtt.ToMicroseconds() / 1000.0
                           for i in steady_ids)
        print(f"  steady endpoints: all HEALTHY; heartbeats sent {rates[0]:.0%} to "
              f"{rates[-1]:.0%} of schedule; last RTT at most {worst_rtt_ms:.1f} ms", flush=True)
        for endpoint_id in steady_ids:
            self.assertEqual(steady_after[endpoint_id].health, pb.HEALTH_HEALTHY, endpoint_id)
        self.assertGreaterEqual(rates[0], 0.9)

        # Every reader saw every change: consecutive revisions, none coalesced, every endpoint.
        listed = {e.spec.id for e in self.list_all()}
        self.assertEqual(len(listed), FLAPPING_ENDPOINTS + STEADY_ENDPOINTS)
        for n, reader in enumerate(readers):
            events = [e for e in reader.events() if e.type not in (
                pb.HealthEvent.TYPE_SNAPSHOT, pb.HealthEvent.TYPE_SNAPSHOT_COMPLETE)]
            revisions = [e.revision for e in events]
            gaps = [(a, b) for a, b in zip(revisions, revisions[1:]) if b != a + 1]
            coalesced = sum(1 for e in events if e.coalesced)
            print(f"  reader {n}: {len(events)} changes, revisions {revisions[0]}..{revisions[-1]}, "
                  f"{len(gaps)} gaps, {coalesced} coalesced", flush=True)
            self.assertIsNone(reader.error)
            self.assertEqual(gaps, [])
            self.assertEqual(coalesced, 0)
            self.assertEqual(listed - {e.endpoint_id for e in events}, set())

        # The stuck streams end server-side when their clients leave.
        cancelled = time.monotonic()
        for call in stuck_calls:
            call.cancel()
        wait_until(lambda: self.metric("wsvisor_watch_streams") == READERS, 30.0,
                   f"wsvisor_watch_streams back to {READERS}")
        print(f"  {STUCK_STREAMS} stuck streams cancelled: ended server-side in "
              f"{elapsed_ms(cancelled):.0f} ms; whole test {elapsed_ms(started) / 1000:.1f} s",
              flush=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
