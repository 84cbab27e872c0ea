#!/usr/bin/python3
"""Broken networks under the real wsvisor binary: a hung upstream (SIGSTOP), a live TCP connection
silently blackholed by an nftables DROP rule inside a network namespace this test creates, and a
userspace TCP proxy owned by the test that adds latency or freezes forwarding.

Why these: a dead peer that does not close (power loss, a firewall dropping a flow, a stuck
middlebox) is the failure a heartbeat exists for, and it looks nothing like a refused or reset
connection. The kernel here has no netem, so delay and freezes come from the proxy below, and
blackholing from a DROP rule in a namespace the test owns.

Traffic goes only to 127.0.0.1 and to the namespace the test creates (a veth pair with link-local
169.254.x.y/30 addresses); the namespace, its veth pair and its rules are deleted however the test
ends. The blackhole test is skipped, saying why, only where `ip netns add` is not permitted (not
root, no CAP_NET_ADMIN).

Every test prints what it measured. Run by ctest (which sets WSVISOR_BIN, WSVISORCTL_BIN and
WSVISOR_SOURCE_DIR), or by hand: /usr/bin/python3 tests/faults/test_network_faults.py
"""

import os
import queue
import random
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "e2e"))

import grpc  # noqa: E402  (Debian python3-grpcio)

from wsvisor_fixtures import (  # noqa: E402
    SYSTEM_PYTHON, WsvisorTestCase, elapsed_ms, import_supervisor_stubs, stop_process, wait_until)

CALL_TIMEOUT_S = 10.0
# Heartbeat of every endpoint here: a dead peer is declared within INTERVAL + TIMEOUT.
INTERVAL_MS = 200
TIMEOUT_MS = 200
# Slack on detection bounds: two cores, other builds and tests beside us.
SLACK_MS = 400
RECOVERY_TIMEOUT_S = 10.0


class HealthWatch:
    """One WatchHealth stream read by a thread; every event is kept with its arrival time
    (time.monotonic()), so a test can wait for an event and measure when it came."""

    def __init__(self, stub, pb, **request):
        self._pb = pb
        self._call = stub.WatchHealth(pb.WatchHealthRequest(**request), timeout=300)
        self._events = []
        self._cond = threading.Condition()
        self._ended = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            for event in self._call:
                with self._cond:
                    self._events.append((time.monotonic(), event))
                    self._cond.notify_all()
        except grpc.RpcError:
            pass
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def wait_for(self, predicate, timeout_s, after=0.0, what="an event"):
        """(arrival time, event) of the first event after `after` matching predicate."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for at, event in self._events:
                    if at >= after and predicate(event):
                        return at, event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._ended:
                    last = [str(e).replace("\n", " ") for _, e in self._events[-5:]]
                    raise AssertionError(f"no {what} within {timeout_s:.1f} s; last events: {last}")
                self._cond.wait(remaining)

    def events(self):
        with self._cond:
            return list(self._events)

    def cancel(self):
        self._call.cancel()
        self._thread.join(timeout=5)


class FaultProxy:
    """A TCP proxy from 127.0.0.1:<port> to 127.0.0.1:<target_port>, owned by the test.

    set_latency(s) delays every chunk by s seconds in each direction (so a round trip gains 2 s);
    freeze() stops forwarding in both directions while keeping every TCP connection open (bytes
    wait in the proxy), as a stuck middlebox does; thaw() forwards again, in order."""

    def __init__(self, target_port):
        self._target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._cond = threading.Condition()
        self._latency_s = 0.0
        self._frozen = False
        self._closed = False
        self._sockets = []
        self._threads = [threading.Thread(target=self._accept_loop, daemon=True)]
        self._threads[0].start()

    def set_latency(self, seconds):
        with self._cond:
            self._latency_s = seconds
            self._cond.notify_all()

    def freeze(self):
        with self._cond:
            self._frozen = True

    def thaw(self):
        with self._cond:
            self._frozen = False
            self._cond.notify_all()

    def close(self):
        with self._cond:
            self._closed = True
            self._frozen = False
            self._cond.notify_all()
        self._listener.close()
        for sock in list(self._sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv()
            except OSError:
                pass
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept_loop(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self._target_port), timeout=5)
            except OSError:
                client.close()
                continue
            self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                chunks = queue.Queue()
                for target, args in ((self._read, (src, chunks)), (self._write, (dst, chunks))):
                    thread = threading.Thread(target=target, args=args, daemon=True)
                    thread.start()
                    self._threads.append(thread)

    @staticmethod
    def _read(src, chunks):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            chunks.put((time.monotonic(), data))
            if not data:
                return

    def _write(self, dst, chunks):
        while True:
            try:
                received_at, data = chunks.get(timeout=0.05)
            except queue.Empty:
                if self._closed:
                    return
                continue
            with self._cond:
                while not self._closed:
                    wait_s = received_at + self._latency_s - time.monotonic()
                    if not self._frozen and wait_s <= 0:
                        break
                    self._cond.wait(None if self._frozen else wait_s)
                if self._closed:
                    return
            try:
                if data:
                    dst.sendall(data)
                else:
                    dst.shutdown(socket.SHUT_WR)
                    return
            except OSError:
                return


def run(*command, check=True):
    result = subprocess.run(list(command), capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}): "
                             f"{result.stderr.strip()}")
    return result


class NetworkFaultsTest(WsvisorTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pb, cls.pb_grpc = import_supervisor_stubs(cls)

    def setUp(self):
        super().setUp()
        self.channel = grpc.insecure_channel(self.server.address)
        self.addCleanup(self.channel.close)
        grpc.channel_ready_future(self.channel).result(timeout=CALL_TIMEOUT_S)
        self.stub = self.pb_grpc.SupervisorStub(self.channel)
        self.watch = HealthWatch(self.stub, self.pb)
        self.addCleanup(self.watch.cancel)

    # ----- helpers -----

    def register(self, endpoint_id, url, connect_timeout_ms=2000):
        spec = self.pb.EndpointSpec(id=endpoint_id, url=url)
        spec.heartbeat.interval.FromMilliseconds(INTERVAL_MS)
        spec.heartbeat.timeout.FromMilliseconds(TIMEOUT_MS)
        spec.backoff.initial.FromMilliseconds(50)
        spec.backoff.max.FromMilliseconds(500)
        spec.connect_timeout.FromMilliseconds(connect_timeout_ms)
        started = time.monotonic()
        self.stub.RegisterEndpoint(self.pb.RegisterEndpointRequest(spec=spec),
                                   timeout=CALL_TIMEOUT_S)
        at, _ = self.wait_health(endpoint_id, self.pb.HEALTH_HEALTHY, 5.0, after=started)
        print(f"  {endpoint_id}: HEALTHY {(at - started) * 1000:.0f} ms after registering",
              flush=True)

    def get(self, endpoint_id):
        return self.stub.GetEndpoint(self.pb.GetEndpointRequest(id=endpoint_id),
                                     timeout=CALL_TIMEOUT_S).endpoint

    def wait_health(self, endpoint_id, health, timeout_s, after=0.0):
        return self.watch.wait_for(
            lambda e: e.endpoint_id == endpoint_id and e.status.health == health, timeout_s,
            after=after, what=f"{endpoint_id} {self.pb.Health.Name(health)}")

    def assert_pong_timeout_within_bound(self, endpoint_id, fault_at, what):
        at, event = self.wait_health(endpoint_id, self.pb.HEALTH_UNHEALTHY, 5.0, after=fault_at)
        detection_ms = (at - fault_at) * 1000
        bound_ms = INTERVAL_MS + TIMEOUT_MS + SLACK_MS
        failure = event.status.last_failure
        print(f"  {what}: {self.pb.FailureReason.Name(failure.reason)} after "
              f"{detection_ms:.0f} ms (interval {INTERVAL_MS} + timeout {TIMEOUT_MS} + slack "
              f"{SLACK_MS} = {bound_ms} ms), detail {failure.detail!r}", flush=True)
        self.assertEqual(failure.reason, self.pb.FAILURE_REASON_PONG_TIMEOUT)
        self.assertLessEqual(detection_ms, bound_ms)
        return at

    def assert_recovers(self, endpoint_id, since, what):
        at, _ = self.wait_health(endpoint_id, self.pb.HEALTH_HEALTHY, RECOVERY_TIMEOUT_S,
                                 after=since)
        print(f"  {what}: HEALTHY again {(at - since) * 1000:.0f} ms later", flush=True)

    # ----- tests -----

    def test_paused_upstream_is_pong_timeout(self):
        self.register("paused", self.upstream.url)
        paused_at = time.monotonic()
        self.upstream.pause()
        self.addCleanup(self.upstream.resume)
        self.assert_pong_timeout_within_bound("paused", paused_at, "SIGSTOP")
        resumed_at = time.monotonic()
        self.upstream.resume()
        self.assert_recovers("paused", resumed_at, "SIGCONT")

    def test_blackholed_connection_is_pong_timeout_and_recovers(self):
        namespace = Namespace()
        # Registered first: delete() removes whatever create() got to before it stopped.
        self.addCleanup(namespace.delete)
        try:
            namespace.create()
        except PermissionError as error:
            print(f"  SKIPPED: cannot create a network namespace here: {error}", flush=True)
            self.skipTest(f"network namespaces are not usable here: {error}")
        upstream = namespace.start_upstream(self.paths.upstream_script)
        self.addCleanup(upstream.stop)
        url = f"ws://{namespace.peer_address}:{upstream.port}/"
        self.register("blackholed", url)

        dropped_at = time.monotonic()
        namespace.drop_tcp_port(upstream.port)
        print(f"  DROP rule for tcp port {upstream.port} added in {namespace.name} "
              f"({elapsed_ms(dropped_at):.0f} ms)", flush=True)
        self.assert_pong_timeout_within_bound("blackholed", dropped_at, "blackhole (nft DROP)")
        # While the rule stays, reconnects cannot get through either.
        at, event = self.watch.wait_for(
            lambda e: (e.endpoint_id == "blackholed"
                       and e.status.last_failure.reason == self.pb.FAILURE_REASON_CONNECT_TIMEOUT),
            5.0, after=dropped_at, what="a CONNECT_TIMEOUT while blackholed")
        print(f"  reconnect while blackholed: CONNECT_TIMEOUT "
              f"{(at - dropped_at) * 1000:.0f} ms after the DROP", flush=True)

        restored_at = time.monotonic()
        namespace.allow_all()
        self.assert_recovers("blackholed", restored_at, "DROP rule removed")

    def test_proxy_latency_below_timeout_stays_healthy_with_measured_rtt(self):
        proxy = FaultProxy(self.upstream.port)
        self.addCleanup(proxy.close)
        self.register("slow", f"ws://127.0.0.1:{proxy.port}/")
        one_way_s = 0.06  # round trip +120 ms, below the 200 ms timeout
        changed_at = time.monotonic()
        proxy.set_latency(one_way_s)

        def rtt_ms():
            status = self.get("slow").status
            return status.last_rtt.ToNanoseconds() / 1e6

        wait_until(lambda: rtt_ms() >= 2 * one_way_s * 1000, 5.0, "an RTT with the added latency")
        print(f"  latency +{one_way_s * 1000:.0f} ms each way: RTT {rtt_ms():.1f} ms after "
              f"{elapsed_ms(changed_at):.0f} ms", flush=True)
        # Several more heartbeats with the latency on: every one answered in time.
        sent_before = self.get("slow").status.heartbeats_sent
        wait_until(lambda: self.get("slow").status.heartbeats_sent >= sent_before + 5, 5.0,
                   "five more heartbeats")
        status = self.get("slow").status
        print(f"  after {status.heartbeats_sent - sent_before} more heartbeats: "
              f"{self.pb.Health.Name(status.health)}, last RTT "
              f"{status.last_rtt.ToNanoseconds() / 1e6:.1f} ms, smoothed "
              f"{status.smoothed_rtt.ToNanoseconds() / 1e6:.1f} ms", flush=True)
        self.assertEqual(status.health, self.pb.HEALTH_HEALTHY)
        self.assertFalse(status.HasField("last_failure"), str(status.last_failure))
        self.assertGreaterEqual(status.last_rtt.ToNanoseconds() / 1e6, 2 * one_way_s * 1000)
        self.assertEqual([e for _, e in self.watch.events()
                          if e.endpoint_id == "slow"
                          and e.status.health == self.pb.HEALTH_UNHEALTHY], [])

    def test_proxy_freeze_is_pong_timeout_and_thaw_recovers(self):
        proxy = FaultProxy(self.upstream.port)
        self.addCleanup(proxy.close)
        self.register("frozen", f"ws://127.0.0.1:{proxy.port}/")
        frozen_at = time.monotonic()
        proxy.freeze()
        self.assert_pong_timeout_within_bound("frozen", frozen_at, "proxy freeze")
        thawed_at = time.monotonic()
        proxy.thaw()
        self.assert_recovers("frozen", thawed_at, "proxy thawed")


class Namespace:
    """A network namespace wsv-test-<random> joined to this one by a veth pair with link-local
    addresses 169.254.A.B/30 (A, B random, so two runs side by side do not collide). The upstream
    runs inside it; DROP rules are nftables rules inside it (iptables if nft is missing)."""

    # wsv-test-<pid of the test process>-<tag>; the host end of the veth pair is wsvh<tag>.
    _NAME = re.compile(r"^wsv-test-(\d+)-([0-9a-f]{6})\b")

    def __init__(self):
        tag = f"{random.randrange(16 ** 6):06x}"
        self.name = f"wsv-test-{os.getpid()}-{tag}"
        self.host_link = f"wsvh{tag}"
        self.peer_link = f"wsvp{tag}"
        base = f"169.254.{random.randrange(1, 255)}.{4 * random.randrange(64)}"
        prefix, last = base.rsplit(".", 1)
        self.host_address = f"{prefix}.{int(last) + 1}"
        self.peer_address = f"{prefix}.{int(last) + 2}"
        self.created = False

    @classmethod
    def sweep_stale(cls):
        """Deletes namespaces left by test processes that were killed before their cleanup ran
        (e.g. by the ctest timeout): those whose creating process no longer exists."""
        for line in run("ip", "netns", "list", check=False).stdout.splitlines():
            match = cls._NAME.match(line)
            if match and not os.path.exists(f"/proc/{match.group(1)}"):
                run("ip", "netns", "delete", match.group(0), check=False)
                run("ip", "link", "delete", f"wsvh{match.group(2)}", check=False)
                print(f"  deleted stale namespace {match.group(0)}", flush=True)

    def create(self):
        # `ip netns exec` and `ip -n` make a private mount namespace, which fails when / is not a
        # mount point, as in a chroot (a bare debootstrap root). Check before creating anything,
        # so that nothing is left mounted behind. (debianutils' ischroot: 0 means "in a chroot".)
        if shutil.which("ischroot") and subprocess.run(["ischroot"]).returncode == 0:
            raise PermissionError("running in a chroot: ip cannot enter network namespaces")
        self.sweep_stale()
        result = run("ip", "netns", "add", self.name, check=False)
        if result.returncode != 0:
            if "Permission denied" in result.stderr or "Operation not permitted" in result.stderr:
                raise PermissionError(result.stderr.strip())
            raise AssertionError(f"ip netns add {self.name} failed: {result.stderr.strip()}")
        self.created = True
        run("ip", "link", "add", self.host_link, "type", "veth", "peer", "name", self.peer_link,
            "netns", self.name)
        run("ip", "addr", "add", f"{self.host_address}/30", "dev", self.host_link)
        run("ip", "link", "set", self.host_link, "up")
        # Entering the namespace needs a private mount namespace, which a chroot whose root is
        # not a mount point cannot make ("mount --make-rslave /" fails): that is the environment,
        # not wsvisor, so it is reported as a skip like a missing permission.
        probe = run("ip", "-n", self.name, "link", "set", "lo", "up", check=False)
        if probe.returncode != 0 and "make-rslave" in probe.stderr:
            raise PermissionError(f"cannot enter the namespace: {probe.stderr.strip()}")
        run("ip", "-n", self.name, "addr", "add", f"{self.peer_address}/30", "dev", self.peer_link)
        run("ip", "-n", self.name, "link", "set", self.peer_link, "up")
        run("ip", "-n", self.name, "link", "set", "lo", "up")
        print(f"  namespace {self.name}: {self.host_address} (here) <-> {self.peer_address} "
              f"(inside)", flush=True)

    def start_upstream(self, script):
        return NamespacedUpstream(self.name, script, self.peer_address)

    def drop_tcp_port(self, port):
        if shutil.which("nft"):
            run("ip", "netns", "exec", self.name, "nft", "add", "table", "inet", "wsvisor_test")
            run("ip", "netns", "exec", self.name, "nft", "add", "chain", "inet", "wsvisor_test",
                "input", "{ type filter hook input priority 0 ; policy accept ; }")
            run("ip", "netns", "exec", self.name, "nft", "add", "rule", "inet", "wsvisor_test",
                "input", "tcp", "dport", str(port), "drop")
        elif shutil.which("iptables"):
            run("ip", "netns", "exec", self.name, "iptables", "-A", "INPUT", "-p", "tcp",
                "--dport", str(port), "-j", "DROP")
        else:
            raise AssertionError("neither nft (Debian nftables) nor iptables is installed")

    def allow_all(self):
        if shutil.which("nft"):
            run("ip", "netns", "exec", self.name, "nft", "delete", "table", "inet", "wsvisor_test")
        else:
            run("ip", "netns", "exec", self.name, "iptables", "-F", "INPUT")

    def delete(self):
        if not self.created:
            return
        # Deleting the namespace deletes the veth end inside it, and with it the pair.
        run("ip", "netns", "delete", self.name, check=False)
        run("ip", "link", "delete", self.host_link, check=False)
        leftovers = run("ip", "netns", "list", check=False).stdout
        if self.name in leftovers:
            raise AssertionError(f"namespace {self.name} is still there after cleanup")
        print(f"  namespace {self.name} and its veth pair deleted", flush=True)


class NamespacedUpstream:
    """tests/support/python_ws_upstream.py inside a namespace (`ip netns exec`)."""

    def __init__(self, namespace, script, host):
        self._process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, SYSTEM_PYTHON, script, "--host", host,
             "--exit-on-stdin-eof"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self._process.stdout], [], [], 15.0)
        line = self._process.stdout.readline() if ready else "(nothing within 15 s)"
        if not line.startswith("PORT "):
            self.stop()
            raise AssertionError(f"upstream in {namespace} printed {line!r}; "
                                 f"stderr: {self._process.stderr.read()}")
        self.port = int(line.split()[1])

    def stop(self):
        stop_process(self._process)
        for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
            stream.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
