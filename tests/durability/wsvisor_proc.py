"""Processes and a gRPC client for wsvisor's durability tests: the wsvisor binary started, killed
and restarted on one data directory, WebSocket upstreams that report what they see, and Python
gRPC stubs generated at test time from the public proto.

Rules every helper here keeps:
  - every wait has a deadline; nothing sleeps a fixed time to "let things settle";
  - every process started is registered with the test case and killed (SIGKILL) in its cleanup
    if the test left it running, passed or failed; temporary directories are removed;
  - wsvisor listens on 127.0.0.1 port 0 and the bound ports are read from its log, so there is
    no race for a "free" port;
  - wsvisor's log goes to a file (a chatty server can never block on a full pipe) and is printed
    when a test fails.

Environment (ctest sets all three):
  WSVISOR_BIN, WSVISORCTL_BIN  the binaries (default: <source>/build/wsvisor, .../wsvisorctl)
  WSVISOR_SOURCE_DIR           the repository root (default: two levels above this file)
"""

import atexit
import collections
import dataclasses
import importlib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "e2e"))

import grpc  # noqa: E402  (Debian python3-grpcio)

import wsvisor_fixtures  # noqa: E402  (after the path set-up above)
# SYSTEM_PYTHON (Debian's interpreter, which has websockets, grpcio and protobuf), the protoc
# tools, the 20 ms poll interval and the shared helpers, re-exported for the durability tests.
from wsvisor_fixtures import (  # noqa: E402,F401
    GRPC_PYTHON_PLUGIN, POLL_INTERVAL_S, PROTOC, SYSTEM_PYTHON, WELL_KNOWN_TYPES_DIR, read_log,
    wait_until)

# Bounds of waits that are not what a test measures. Generous: two cores, other jobs beside us.
START_TIMEOUT_S = 20.0
EXIT_TIMEOUT_S = 20.0
CALL_TIMEOUT_S = 10.0

# grpc.health.v1, wire-compatible with grpc/grpc's health.proto (Debian 12 ships no
# grpcio-health-checking). Placed under a local package so it cannot shadow the `grpc` package.
_HEALTH_PACKAGE = "wsvisor_durability_protos"
_HEALTH_PROTO = """\
syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse); }
"""


class Paths(wsvisor_fixtures.Paths):
    """wsvisor_fixtures.Paths, checked for what the durability tests need: the wsvisor binary
    (not wsvisorctl) and the protoc tools."""

    @classmethod
    def from_environment(cls):
        paths = cls.locate()
        # A missing binary is an error, not a skip: under ctest a skip would pass silently.
        if not os.access(paths.wsvisor, os.X_OK):
            raise RuntimeError(f"{paths.wsvisor} is not an executable; set WSVISOR_BIN (ctest "
                               "does)")
        for tool in (PROTOC, GRPC_PYTHON_PLUGIN):
            if not os.access(tool, os.X_OK):
                raise RuntimeError(f"{tool} is missing (Debian protobuf-compiler-grpc)")
        return paths

    @property
    def foreign_upstream_script(self):
        return self.upstream_script


# ----- generated stubs ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Stubs:
    pb: object          # wsvisor.v1.supervisor_pb2
    pb_grpc: object     # wsvisor.v1.supervisor_pb2_grpc
    health_pb: object   # grpc.health.v1 messages
    health_grpc: object


_stubs = None
_stubs_lock = threading.Lock()


def load_stubs(paths):
    """Generates the Python modules for supervisor.proto and health.proto with protoc and
    grpc_python_plugin (once per process, into a temporary directory removed at exit) and
    imports them."""
    global _stubs
    with _stubs_lock:
        if _stubs is not None:
            return _stubs
        out_dir = tempfile.mkdtemp(prefix="wsvisor-durability-stubs-")
        atexit.register(shutil.rmtree, out_dir, ignore_errors=True)
        local_src = os.path.join(out_dir, "src")
        package_dir = os.path.join(local_src, _HEALTH_PACKAGE)
        os.makedirs(package_dir)
        with open(os.path.join(package_dir, "health.proto"), "w", encoding="utf-8") as proto:
            proto.write(_HEALTH_PROTO)
        command = [
            PROTOC, f"-I{paths.proto_dir}", f"-I{local_src}", f"-I{WELL_KNOWN_TYPES_DIR}",
            f"--python_out={out_dir}", f"--grpc_out={out_dir}",
            f"--plugin=protoc-gen-grpc={GRPC_PYTHON_PLUGIN}",
            os.path.join(paths.proto_dir, "wsvisor", "v1", "supervisor.proto"),
            os.path.join(package_dir, "health.proto"),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"protoc failed ({' '.join(command)}):\n{result.stderr}")
        sys.path.insert(0, out_dir)
        _stubs = Stubs(
            pb=importlib.import_module("wsvisor.v1.supervisor_pb2"),
            pb_grpc=importlib.import_module("wsvisor.v1.supervisor_pb2_grpc"),
            health_pb=importlib.import_module(f"{_HEALTH_PACKAGE}.health_pb2"),
            health_grpc=importlib.import_module(f"{_HEALTH_PACKAGE}.health_pb2_grpc"),
        )
        return _stubs


# ----- small tools ----------------------------------------------------------------------------

class ClosedPort:
    """A loopback TCP port where a connect is refused at once: a socket is bound to it but does
    not listen, so no other process can start listening there while we hold it."""

    def __init__(self):
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]

    def url(self, path=""):
        return f"ws://127.0.0.1:{self.port}/{path}"

    def close(self):
        self._socket.close()


def list_all(supervisor, pb, page_size=100, label_selector=""):
    """Every endpoint, page by page, in id order; checks the paging contract on the way."""
    endpoints = []
    token = ""
    for _ in range(100000):
        response = supervisor.ListEndpoints(
            pb.ListEndpointsRequest(page_size=page_size, page_token=token,
                                    label_selector=label_selector),
            timeout=CALL_TIMEOUT_S)
        if len(response.endpoints) > page_size:
            raise AssertionError(f"a page of {len(response.endpoints)} > page_size {page_size}")
        endpoints.extend(response.endpoints)
        token = response.next_page_token
        if not token:
            break
    ids = [e.spec.id for e in endpoints]
    if ids != sorted(set(ids)):
        raise AssertionError("ListEndpoints pages are not in strictly increasing id order")
    return endpoints


def scrape_metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=CALL_TIMEOUT_S) as r:
        return r.read().decode("utf-8")


def metric_value(text, name, labels=None):
    """The value of one sample in Prometheus text format, or None if it is absent. `labels` must
    match the sample's labels exactly (as a dict)."""
    labels = labels or {}
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        match = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)', line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                match.group(3) or ""))
        if found == labels:
            return float(match.group(4))
    return None


# ----- wsvisor --------------------------------------------------------------------------------

class WsvisorProcess:
    """One run of the wsvisor binary on 127.0.0.1 port 0 with the given data directory.

    start() returns once the gRPC health check answers SERVING. Ports are read from the log
    ("... (port N)"), so a restart on the same data dir gets new ports and there is no race."""

    _counter = 0

    def __init__(self, paths, work_dir, data_dir, extra_args=(), metrics=True):
        WsvisorProcess._counter += 1
        self.paths = paths
        self.data_dir = data_dir
        self.log_path = os.path.join(work_dir, f"wsvisor-{WsvisorProcess._counter}.log")
        self.argv = [paths.wsvisor, "--listen", "127.0.0.1:0",
                     "--metrics-listen", "127.0.0.1:0" if metrics else "",
                     "--data-dir", data_dir, *extra_args]
        self.process = None
        self.grpc_port = None
        self.metrics_port = None
        self._channel = None
        self.started_at = None

    # -- running

    def spawn(self):
        """Starts the process without waiting for anything."""
        self.started_at = time.monotonic()
        with open(self.log_path, "w", encoding="utf-8") as log:
            self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=log)
        return self

    def start(self, timeout_s=START_TIMEOUT_S):
        """Starts and waits until the health check answers SERVING."""
        self.spawn()
        return self.wait_serving(timeout_s)

    def wait_serving(self, timeout_s=START_TIMEOUT_S):
        """After spawn(): waits until the health check answers SERVING; fails if the process
        exits first."""
        deadline = time.monotonic() + timeout_s
        while self.grpc_port is None:
            if self.process.poll() is not None:
                raise AssertionError(f"wsvisor exited with {self.process.returncode} before "
                                     f"serving; log:\n{self.log_text()}")
            match = re.search(r"serving gRPC on \S+ \(port (\d+)\)", self.log_text())
            if match:
                self.grpc_port = int(match.group(1))
                metrics = re.search(r"serving Prometheus metrics on \S+ \(port (\d+)\)",
                                    self.log_text())
                self.metrics_port = int(metrics.group(1)) if metrics else None
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"wsvisor did not serve within {timeout_s} s; log:\n"
                                     f"{self.log_text()}")
            time.sleep(POLL_INTERVAL_S)
        grpc.channel_ready_future(self.channel).result(timeout=max(1.0, deadline -
                                                                   time.monotonic()))
        status = self.health_check()
        if status != self.stubs.health_pb.HealthCheckResponse.SERVING:
            raise AssertionError(f"health check answered {status} after start")
        return self

    @property
    def address(self):
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def stubs(self):
        return load_stubs(self.paths)

    @property
    def channel(self):
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.address)
        return self._channel

    def new_channel(self):
        """A channel of its own (each concurrent client gets one); the caller closes it."""
        return grpc.insecure_channel(self.address)

    @property
    def supervisor(self):
        return self.stubs.pb_grpc.SupervisorStub(self.channel)

    def health_check(self, timeout_s=CALL_TIMEOUT_S):
        health = self.stubs.health_grpc.HealthStub(self.channel)
        return health.Check(self.stubs.health_pb.HealthCheckRequest(service=""),
                            timeout=timeout_s).status

    @property
    def pid(self):
        return self.process.pid

    def running(self):
        return self.process is not None and self.process.poll() is None

    def signal(self, signum):
        self.process.send_signal(signum)

    def kill9(self):
        """SIGKILL and reap: the crash."""
        self.process.kill()
        self.process.wait(timeout=EXIT_TIMEOUT_S)
        self.close_channel()

    def wait_exit(self, timeout_s=EXIT_TIMEOUT_S):
        """The exit status, or fails if the process is still running after timeout_s."""
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"wsvisor still running {timeout_s} s later") from None

    def terminate(self, timeout_s=EXIT_TIMEOUT_S):
        """SIGTERM; returns (exit status, seconds until the process was gone)."""
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        status = self.wait_exit(timeout_s)
        took = time.monotonic() - sent
        self.close_channel()
        return status, took

    def close_channel(self):
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def cleanup(self):
        """Kills the process if a test left it running; always safe."""
        self.close_channel()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=EXIT_TIMEOUT_S)

    def log_text(self):
        return read_log(self.log_path)


# ----- upstreams ------------------------------------------------------------------------------

Connection = collections.namedtuple("Connection", "number opened path closed close_code")


class _UpstreamProcess:
    """A Python upstream child process that prints "PORT <n>" first. We hold its stdin, so it
    exits if this test process dies."""

    def __init__(self, argv):
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, bufsize=1)
        try:
            self.port = self._read_port()
        except BaseException:
            self.cleanup()
            raise

    def _read_port(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.1)
            if ready:
                line = self.process.stdout.readline()
                if line.startswith("PORT "):
                    return int(line.split()[1])
                raise AssertionError(f"upstream printed {line!r} instead of 'PORT <n>'")
            if self.process.poll() is not None:
                raise AssertionError(f"upstream exited: {self.process.stderr.read()}")
        raise AssertionError("upstream printed no port in time")

    def url(self, path=""):
        return f"ws://127.0.0.1:{self.port}/{path}"

    def pause(self):
        self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        self.process.send_signal(signal.SIGCONT)

    def cleanup(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
        self.process.wait(timeout=EXIT_TIMEOUT_S)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                stream.close()
            except OSError:
                pass


class ForeignUpstream(_UpstreamProcess):
    """tests/support/python_ws_upstream.py: answers pings, echoes text."""

    def __init__(self, paths):
        super().__init__([SYSTEM_PYTHON, paths.foreign_upstream_script, "--exit-on-stdin-eof"])


class RecordingUpstream(_UpstreamProcess):
    """recording_upstream.py: answers pings, echoes text, and reports every connection's open
    time, path, close time and close code, which a reader thread collects."""

    def __init__(self):
        super().__init__([SYSTEM_PYTHON, os.path.join(HERE, "recording_upstream.py")])
        self._lock = threading.Lock()
        self._connections = {}  # number -> Connection
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            parts = line.split()
            with self._lock:
                if parts[0] == "OPEN":
                    number = int(parts[1])
                    self._connections[number] = Connection(number, float(parts[2]), parts[3],
                                                           None, None)
                elif parts[0] == "CLOSE":
                    number = int(parts[1])
                    self._connections[number] = self._connections[number]._replace(
                        closed=float(parts[2]),
                        close_code=None if parts[3] == "None" else int(parts[3]))

    def connections(self, path=None, opened_after=None):
        """Connections seen so far, in accept order, optionally only to `path` ("/<id>") or
        accepted after `opened_after` (time.monotonic())."""
        with self._lock:
            found = sorted(self._connections.values(), key=lambda c: c.number)
        return [c for c in found
                if (path is None or c.path == path)
                and (opened_after is None or c.opened > opened_after)]

    def open_connections(self, path=None):
        return [c for c in self.connections(path) if c.closed is None]


# ----- test case base -------------------------------------------------------------------------

class DurabilityTestCase(unittest.TestCase):
    """Gives each test a temporary directory (removed afterwards), starts processes through
    helpers that kill them in cleanup, and prints wsvisor's logs when a test fails."""

    paths = None
    stubs = None

    @classmethod
    def setUpClass(cls):
        cls.paths = Paths.from_environment()
        cls.stubs = load_stubs(cls.paths)
        cls.pb = cls.stubs.pb

    def setUp(self):
        self.work_dir = tempfile.mkdtemp(prefix="wsvisor-durability-")
        self.addCleanup(shutil.rmtree, self.work_dir, ignore_errors=True)
        self.data_dir = os.path.join(self.work_dir, "data")
        self._wsvisors = []
        self._captured_logs = []
        # Cleanups run last-in first-out: this one runs after the processes are stopped and
        # before the directory holding their logs is removed.
        self.addCleanup(self._capture_logs)

    def _capture_logs(self):
        for process in self._wsvisors:
            self._captured_logs.append((process.log_path, process.log_text()))

    def wsvisor(self, *extra_args, data_dir=None, start=True, metrics=True):
        """A wsvisor on `data_dir` (default: the test's), started unless start=False."""
        process = WsvisorProcess(self.paths, self.work_dir, data_dir or self.data_dir,
                                 extra_args, metrics=metrics)
        self._wsvisors.append(process)
        self.addCleanup(process.cleanup)
        if start:
            process.start()
        return process

    def recording_upstream(self):
        upstream = RecordingUpstream()
        self.addCleanup(upstream.cleanup)
        return upstream

    def foreign_upstream(self):
        upstream = ForeignUpstream(self.paths)
        self.addCleanup(upstream.cleanup)
        return upstream

    def closed_port(self):
        port = ClosedPort()
        self.addCleanup(port.close)
        return port

    def assert_rpc_error(self, call, code, *details):
        with self.assertRaises(grpc.RpcError) as raised:
            call()
        self.assertEqual(raised.exception.code(), code, raised.exception.details())
        for text in details:
            self.assertIn(text, raised.exception.details())
        return raised.exception

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        problems_before = len(result.failures) + len(result.errors)
        outcome = super().run(result)
        if len(result.failures) + len(result.errors) > problems_before:
            for path, log in getattr(self, "_captured_logs", ()):
                sys.stderr.write(f"----- {os.path.basename(path)} ({len(log)} bytes, last "
                                 f"20000) -----\n{log[-20000:]}----- end -----\n")
        return outcome


def report(text):
    """A figure for the test log (ctest -V shows it)."""
    print(f"  {text}", flush=True)
