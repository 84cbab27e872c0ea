"""Real processes for wsvisor's end-to-end tests: the wsvisor binary, a foreign WebSocket upstream
and the wsvisorctl client, started and stopped the way a user would.

Both e2e test files need the same processes under the same rules, so they live here once:
  - every wait has a deadline (poll, never sleep for a fixed time to "let things settle");
  - every process is stopped when the test ends, passed or failed, even when set-up fails half
    way (tests register stops with addCleanup as soon as a process exists);
  - wsvisor is stopped with SIGTERM, as Kubernetes or systemd would, and must exit 0 in time;
  - when a test fails, wsvisor's log is printed, because that is where the reason usually is.

Paths come from the environment so that ctest can pass them:
  WSVISOR_BIN, WSVISORCTL_BIN  the binaries (default: <source>/build/wsvisor, .../wsvisorctl)
  WSVISOR_SOURCE_DIR           the repository root (default: two levels above this file)
"""

import dataclasses
import importlib
import os
import queue
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

# Debian's Python modules (websockets, grpcio, protobuf) belong to this interpreter; the first
# python3 on PATH may be another one without them.
SYSTEM_PYTHON = "/usr/bin/python3"
PROTOC = "/usr/bin/protoc"
GRPC_PYTHON_PLUGIN = "/usr/bin/grpc_python_plugin"
WELL_KNOWN_TYPES_DIR = "/usr/include"  # google/protobuf/*.proto (libprotobuf-dev)

# Bounds for waits that are not what a test measures. Generous: the machine has two cores and
# other builds and tests run beside these ones.
SERVER_START_TIMEOUT_S = 20.0
SERVER_STOP_TIMEOUT_S = 15.0
UPSTREAM_START_TIMEOUT_S = 15.0
CTL_CALL_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.02


@dataclasses.dataclass(frozen=True)
class Paths:
    """Where the binaries and the sources are."""

    wsvisor: str
    wsvisorctl: str
    source_dir: str

    @classmethod
    def locate(cls):
        """The paths the environment names (or the defaults), not yet checked."""
        source_dir = os.environ.get("WSVISOR_SOURCE_DIR") or os.path.abspath(
            os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
        build_dir = os.path.join(source_dir, "build")
        return cls(
            wsvisor=os.environ.get("WSVISOR_BIN") or os.path.join(build_dir, "wsvisor"),
            wsvisorctl=os.environ.get("WSVISORCTL_BIN") or os.path.join(build_dir, "wsvisorctl"),
            source_dir=source_dir,
        )

    @classmethod
    def from_environment(cls):
        paths = cls.locate()
        # A missing binary is an error, not a skip: under ctest a skip would pass silently.
        for path in (paths.wsvisor, paths.wsvisorctl):
            if not os.access(path, os.X_OK):
                raise RuntimeError(f"{path} is not an executable; set WSVISOR_BIN and "
                                   "WSVISORCTL_BIN (ctest does)")
        return paths

    @property
    def upstream_script(self):
        return os.path.join(self.source_dir, "tests", "support", "python_ws_upstream.py")

    @property
    def proto_dir(self):
        return os.path.join(self.source_dir, "proto")


def free_tcp_port():
    """A port that was free a moment ago. Another process may take it before wsvisor binds it,
    which is why WsvisorServer.start() retries with a new one when the bind fails."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, timeout_s, what, interval_s=POLL_INTERVAL_S):
    """Polls condition() until it returns something truthy and returns that, or fails the test
    after timeout_s saying what was awaited. The poll interval is short so that measured times
    are precise to a few tens of milliseconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:.1f} s waiting for {what}")
        time.sleep(interval_s)


def read_log(path):
    """The text of a process's log file ("" if it does not exist yet)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as log:
            return log.read()
    except FileNotFoundError:
        return ""


def ctl_list_succeeds(wsvisorctl, address, ctl_args=()):
    """True if `wsvisorctl list` against address succeeds now (a probe that wsvisor serves).
    ctl_args are the global flags the server needs (TLS files, a token)."""
    probe = subprocess.run(
        [wsvisorctl, "--server", address, "--request-timeout", "1s", *ctl_args, "list"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=CTL_CALL_TIMEOUT_S, env=environment_without_server())
    return probe.returncode == 0


def generate_stubs(proto_dir, out_dir):
    """protoc + grpc_python_plugin on our public proto; modules land in out_dir."""
    command = [PROTOC, f"-I{proto_dir}", f"-I{WELL_KNOWN_TYPES_DIR}", f"--python_out={out_dir}",
               f"--grpc_out={out_dir}", f"--plugin=protoc-gen-grpc={GRPC_PYTHON_PLUGIN}",
               os.path.join(proto_dir, "wsvisor", "v1", "supervisor.proto")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"protoc failed: {result.stderr}")


def import_supervisor_stubs(test_class, prefix="wsvisor-faults-stubs-"):
    """For setUpClass: generates the supervisor.proto modules into a temporary directory (removed,
    and taken off sys.path, by class cleanups) and returns (supervisor_pb2, supervisor_pb2_grpc)."""
    stubs_dir = tempfile.mkdtemp(prefix=prefix)
    test_class.addClassCleanup(shutil.rmtree, stubs_dir, ignore_errors=True)
    generate_stubs(test_class.paths.proto_dir, stubs_dir)
    sys.path.insert(0, stubs_dir)
    test_class.addClassCleanup(sys.path.remove, stubs_dir)
    return (importlib.import_module("wsvisor.v1.supervisor_pb2"),
            importlib.import_module("wsvisor.v1.supervisor_pb2_grpc"))


def elapsed_ms(since):
    """Milliseconds of monotonic time since `since` (a time.monotonic() value)."""
    return (time.monotonic() - since) * 1000.0


def rss_mib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError(f"no VmRSS for {pid}")


class RssSampler:
    """Samples a process's resident set size every 10 ms on a thread; `peak_mib` is the highest."""

    def __init__(self, pid):
        self._pid = pid
        self.start_mib = rss_mib(pid)
        self.peak_mib = self.start_mib
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.01):
            try:
                self.peak_mib = max(self.peak_mib, rss_mib(self._pid))
            except (OSError, AssertionError):
                return

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)


def stop_process(process, stop_signal=signal.SIGTERM, timeout_s=10.0):
    """Sends stop_signal and waits; kills the process if it is still there after timeout_s.
    Returns the exit status, or None if it had to be killed. Safe on a process that has exited."""
    if process.poll() is not None:
        return process.returncode
    process.send_signal(signal.SIGCONT)  # a paused process would not act on the signal
    process.send_signal(stop_signal)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


class Upstream:
    """tests/support/python_ws_upstream.py in a child process: a real WebSocket server that
    answers pings itself (python3-websockets). pause() (SIGSTOP) makes it a hung upstream whose
    TCP connections stay open.

    We hold its stdin pipe and pass --exit-on-stdin-eof, so it exits even if this test process
    dies without running its cleanups."""

    def __init__(self, paths, *extra_args):
        self._process = subprocess.Popen(
            [SYSTEM_PYTHON, paths.upstream_script, "--exit-on-stdin-eof", *extra_args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.port = self._read_port()
        except BaseException:
            self.stop()
            raise

    def _read_port(self):
        deadline = time.monotonic() + UPSTREAM_START_TIMEOUT_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._process.stdout], [], [], POLL_INTERVAL_S * 5)
            if ready:
                line = self._process.stdout.readline()
                if line.startswith("PORT "):
                    return int(line.split()[1])
                raise AssertionError(f"upstream printed {line!r} instead of 'PORT <n>'; "
                                     f"stderr: {self._process.stderr.read()}")
        raise AssertionError(f"upstream printed no port within {UPSTREAM_START_TIMEOUT_S} s")

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}/"

    def pause(self):
        self._process.send_signal(signal.SIGSTOP)

    def resume(self):
        self._process.send_signal(signal.SIGCONT)

    def stop(self):
        # SIGCONT first (in stop_process): a stopped process keeps SIGTERM pending forever.
        stop_process(self._process)
        for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
            stream.close()


class WsvisorServer:
    """The real wsvisor binary on a free 127.0.0.1 port, with its own data directory.

    Its stderr (the log) goes to a file so that a chatty server can never block on a full pipe;
    log_text() reads it back."""

    def __init__(self, paths, work_dir, start_attempts=5, extra_args=(), ctl_args=()):
        """extra_args go to wsvisor; ctl_args are the wsvisorctl global flags that reach it
        (used to tell when it serves)."""
        self._paths = paths
        self._work_dir = work_dir
        self._extra_args = tuple(extra_args)
        self._ctl_args = tuple(ctl_args)
        self._process = None
        self.address = None
        self.log_path = os.path.join(work_dir, "wsvisor.log")
        self._start(start_attempts)

    def _start(self, attempts):
        for attempt in range(1, attempts + 1):
            self.address = f"127.0.0.1:{free_tcp_port()}"
            started = time.monotonic()
            # "w": the log then holds this attempt only, so a bind failure of an earlier attempt
            # is not mistaken for the reason this one failed.
            with open(self.log_path, "w", encoding="utf-8") as log:
                self._process = subprocess.Popen(
                    [self._paths.wsvisor,
                     "--listen", self.address,
                     "--metrics-listen", "127.0.0.1:0",
                     "--data-dir", os.path.join(self._work_dir, "data"),
                     "--log-level", "info", *self._extra_args],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
            if self._wait_until_serving():
                print(f"  wsvisor serving on {self.address} after {elapsed_ms(started):.0f} ms "
                      f"(attempt {attempt})", flush=True)
                return
            # It exited before serving. A lost race for the port is worth another try; any other
            # start-up failure is the bug this test is here to find.
            if self._process.returncode != 0 and "cannot listen" in self.log_text():
                continue
            raise AssertionError(f"wsvisor exited with {self._process.returncode} before serving; "
                                 f"log:\n{self.log_text()}")
        raise AssertionError(f"wsvisor could not bind a port in {attempts} attempts")

    def _wait_until_serving(self):
        """True once `wsvisorctl list` succeeds; False if wsvisor exits first."""
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            if ctl_list_succeeds(self._paths.wsvisorctl, self.address, self._ctl_args):
                return True
            time.sleep(POLL_INTERVAL_S * 5)
        self.stop()
        raise AssertionError(f"wsvisor did not serve within {SERVER_START_TIMEOUT_S} s; "
                             f"log:\n{self.log_text()}")

    @property
    def pid(self):
        return self._process.pid

    def log_text(self):
        return read_log(self.log_path)

    def stop(self):
        """SIGTERM, then the exit status within SERVER_STOP_TIMEOUT_S (None if it had to be
        killed) and how long the shutdown took in milliseconds."""
        started = time.monotonic()
        status = stop_process(self._process, signal.SIGTERM, SERVER_STOP_TIMEOUT_S)
        return status, elapsed_ms(started)


def environment_without_server(**extra):
    """This process's environment minus WSVISOR_SERVER (a developer's shell may set it, and the
    tests must talk to their own server), plus `extra`."""
    environment = {k: v for k, v in os.environ.items() if k != "WSVISOR_SERVER"}
    environment.update(extra)
    return environment


class Wsvisorctl:
    """Runs wsvisorctl against one server, as a user types it."""

    def __init__(self, paths, server_address, *global_args):
        """global_args (TLS files, a token file) go before every command."""
        self._binary = paths.wsvisorctl
        self.server_address = server_address
        self._global_args = global_args

    def command(self, *args):
        return [self._binary, "--server", self.server_address, *self._global_args, *args]

    def run(self, *args, env=None, with_server_flag=True):
        """One call; returns the CompletedProcess (text stdout and stderr)."""
        argv = self.command(*args) if with_server_flag else [self._binary, *args]
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=CTL_CALL_TIMEOUT_S,
                              env=env if env is not None else environment_without_server())

    def start_watch(self, *args):
        """`wsvisorctl watch ARGS` in the background; see LineReader."""
        process = subprocess.Popen(
            self.command("watch", *args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, bufsize=1, env=environment_without_server())
        return LineReader(process)


class LineReader:
    """A child process whose stdout lines are read by a thread into a queue, so a test can wait
    for a line with a deadline instead of blocking on readline() forever."""

    _EOF = object()

    def __init__(self, process):
        self.process = process
        self.lines = []  # every line taken from the queue so far, for failure messages
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self):
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(self._EOF)

    def wait_for(self, matches, timeout_s, what):
        """Returns the first line from now on for which matches(line) is true; fails the test
        if none arrives within timeout_s or the output ends."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(remaining, 0))
            except queue.Empty:
                raise AssertionError(f"no line with {what} within {timeout_s:.1f} s; "
                                     f"lines so far: {self.lines}") from None
            if line is self._EOF:
                raise AssertionError(f"output ended before a line with {what}; "
                                     f"lines: {self.lines}; stderr: {self.stderr_text()}")
            self.lines.append(line)
            if matches(line):
                return line

    def interrupt(self, timeout_s=10.0):
        """SIGINT, as Ctrl-C would send; returns the exit status (None if it had to be killed)."""
        status = stop_process(self.process, signal.SIGINT, timeout_s)
        self._thread.join(timeout=timeout_s)
        return status

    def stderr_text(self):
        if self.process.poll() is None:
            return "(still running)"
        return self.process.stderr.read()

    def close(self):
        stop_process(self.process, signal.SIGINT)
        self._thread.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            stream.close()


class WsvisorTestCase(unittest.TestCase):
    """Gives each test its own temporary directory, upstream and wsvisor, all removed or stopped
    at the end however the test ends; checks that wsvisor exits 0 on SIGTERM; prints wsvisor's
    log when the test failed."""

    paths = None
    _server_logs = ()  # replaced per test in setUp; read by run() even if setUp never ran

    @classmethod
    def setUpClass(cls):
        cls.paths = Paths.from_environment()

    def setUp(self):
        self._server_logs = []
        self.work_dir = tempfile.mkdtemp(prefix="wsvisor-e2e-")
        self.addCleanup(shutil.rmtree, self.work_dir, ignore_errors=True)
        self.upstream = self.start_upstream()
        self.server = WsvisorServer(self.paths, self.work_dir)
        self.addCleanup(self._stop_server, self.server)
        self.ctl = Wsvisorctl(self.paths, self.server.address)

    def start_upstream(self, *extra_args):
        upstream = Upstream(self.paths, *extra_args)
        self.addCleanup(upstream.stop)
        return upstream

    def start_watch(self, *args):
        watcher = self.ctl.start_watch(*args)
        self.addCleanup(watcher.close)
        return watcher

    def _stop_server(self, server):
        status, took_ms = server.stop()
        self._server_logs.append(server.log_text())
        print(f"  wsvisor stopped by SIGTERM in {took_ms:.0f} ms, exit status {status}", flush=True)
        self.assertEqual(status, 0, f"wsvisor should exit 0 within {SERVER_STOP_TIMEOUT_S} s of "
                         "SIGTERM (None: it had to be killed)")

    def run(self, result=None):
        # Cleanups (which stop the server and collect its log) run inside TestCase.run, so the log
        # is printed here, once the outcome is known.
        result = result if result is not None else self.defaultTestResult()
        problems_before = len(result.failures) + len(result.errors)
        outcome = super().run(result)
        if len(result.failures) + len(result.errors) > problems_before:
            for log in self._server_logs:
                sys.stderr.write(f"----- wsvisor log of {self.id()} -----\n{log}"
                                 "----- end of wsvisor log -----\n")
        return outcome
