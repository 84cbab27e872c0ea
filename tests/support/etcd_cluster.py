#!/usr/bin/python3
"""A real etcd cluster for tests: N members of Debian's etcd (package etcd-server) on 127.0.0.1.

As a module (Python tests):

    with EtcdCluster(members=3) as cluster:       # started and healthy, or an exception
        cluster.endpoints                          # ["127.0.0.1:40123", ...] client addresses
        cluster.kill(0)                            # SIGKILL member 0 (its data stays)
        cluster.restart(0)                         # start it again on the same ports and data
    with EtcdCluster(members=1, tls=True) as cluster:
        cluster.tls.ca, cluster.tls.client_cert, cluster.tls.client_key   # PEM files
      https:// client URLs, --client-cert-auth: a client needs a certificate from tls.ca
    # every member is killed and every data directory removed, passed or failed

As a program (the C++ tests drive it through tests/support/etcd_test_cluster.h):

    etcd_cluster.py --members 3
      prints  READY <client endpoints, comma-separated>  once the cluster is healthy, then reads
      one command a line from stdin and answers each with one line, OK ... or ERROR <why>:
        kill N      SIGKILL member N (0-based) and reap it
        restart N   start member N again and wait until it is healthy
        endpoints   the client endpoints again
        quit        stop everything and exit (end of stdin does the same)

Rules kept here:
  - every wait has a deadline; nothing sleeps a fixed time to "let things settle";
  - ports are taken from the kernel (bind to port 0), and a start that loses a port race to
    another process is retried with new ports (a bounded number of times);
  - each etcd member gets PR_SET_PDEATHSIG, so it dies with this process even on SIGKILL; the
    cluster is always torn down, data directories removed;
  - etcd runs with a 50 ms heartbeat and a 500 ms election timeout, so a cluster is ready and a
    new leader elected within a second or two, and the shortest lease TTL is 1 s;
  - a missing etcd binary is an error (RuntimeError), never a skip. The binary is /usr/bin/etcd,
    or $WSVISOR_ETCD_BIN.
"""

import argparse
import ctypes
import json
import os
import shutil
import ssl
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

ETCD_BIN = os.environ.get("WSVISOR_ETCD_BIN", "/usr/bin/etcd")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.02
PORT_RACE_ATTEMPTS = 3
# Raft timing for tests: heartbeat 50 ms, election 500 ms (etcd's defaults are 100 ms and 1 s).
HEARTBEAT_MS = 50
ELECTION_MS = 500

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """Runs in the child between fork and exec: SIGKILL it when its parent dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _free_ports(count):
    """`count` distinct loopback ports the kernel just handed out. They are free when this
    returns; a process may still take one before etcd binds it (the caller retries)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _data_root():
    """tmpfs when there is one: etcd fsyncs every commit, and the disk's durability is not what
    these tests are about."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return shm
    return None


def make_certificate_authority(directory, name):
    """A self-signed CA made by openssl in `directory`: returns (certificate, key) paths."""
    cert = os.path.join(directory, f"{name}.pem")
    key = os.path.join(directory, f"{name}-key.pem")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             f"/CN={name}", "-keyout", key, "-out", cert)
    return cert, key


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


class TlsFiles:
    """A CA, a server certificate for 127.0.0.1 (IP SAN) and a client certificate, all signed by
    that CA and made by openssl at test time in `directory`."""

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.ca, self.ca_key = make_certificate_authority(directory, "etcd-ca")
        self.server_cert, self.server_key = self._issue(directory, "etcd-server",
                                                        "subjectAltName=IP:127.0.0.1\n"
                                                        "extendedKeyUsage=serverAuth,clientAuth")
        self.client_cert, self.client_key = self._issue(directory, "etcd-client",
                                                        "extendedKeyUsage=clientAuth")

    def _issue(self, directory, name, extensions):
        cert = os.path.join(directory, f"{name}.pem")
        key = os.path.join(directory, f"{name}-key.pem")
        request = os.path.join(directory, f"{name}.csr")
        extfile = os.path.join(directory, f"{name}.ext")
        with open(extfile, "w", encoding="utf-8") as out:
            out.write(extensions + "\n")
        _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", key, "-out", request)
        _openssl("x509", "-req", "-in", request, "-CA", self.ca, "-CAkey", self.ca_key,
                 "-CAcreateserial", "-days", "2", "-extfile", extfile, "-out", cert)
        return cert, key


class PortTaken(Exception):
    """etcd could not bind one of its ports: another process took it first."""


class Member:
    def __init__(self, index, name, client_port, peer_port, data_dir, log_path, tls=False):
        self.tls = tls
        self.index = index
        self.name = name
        self.client_port = client_port
        self.peer_port = peer_port
        self.data_dir = data_dir
        self.log_path = log_path
        self.process = None

    @property
    def client_url(self):
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self):
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.client_port}"

    def running(self):
        return self.process is not None and self.process.poll() is None

    def log_tail(self, limit=4000):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return log.read()[-limit:]
        except OSError:
            return ""


class EtcdCluster:
    """N etcd members on 127.0.0.1. See the module docstring."""

    def __init__(self, members=3, start=True, timeout_s=START_TIMEOUT_S, tls=False):
        if members < 1:
            raise ValueError("an etcd cluster needs at least one member")
        if not os.access(ETCD_BIN, os.X_OK):
            raise RuntimeError(f"{ETCD_BIN} is missing: install Debian's etcd-server "
                               "(scripts/install-deps does)")
        self.size = members
        self.members = []
        self.work_dir = tempfile.mkdtemp(prefix="wsvisor-etcd-", dir=_data_root())
        self._token = f"wsvisor-test-{uuid.uuid4().hex[:12]}"
        # With tls: clients are served over TLS only and must present a certificate of tls.ca
        # (--client-cert-auth); the peers keep talking plaintext, which is not under test.
        self.tls = None
        if tls:
            try:
                self.tls = TlsFiles(os.path.join(self.work_dir, "tls"))
            except BaseException:
                self.close()
                raise
        if start:
            try:
                self.start(timeout_s)
            except BaseException:
                self.close()
                raise

    # -- life cycle

    def start(self, timeout_s=START_TIMEOUT_S):
        """Starts every member and waits until each answers /health (bounded)."""
        for attempt in range(PORT_RACE_ATTEMPTS):
            self._plan_members(attempt)
            try:
                for member in self.members:
                    self._spawn(member)
                self.wait_healthy(timeout_s=timeout_s)
                return self
            except PortTaken:
                self._kill_all()
                if attempt + 1 == PORT_RACE_ATTEMPTS:
                    raise
        return self

    def _plan_members(self, attempt):
        ports = _free_ports(2 * self.size)
        self.members = []
        for i in range(self.size):
            data_dir = os.path.join(self.work_dir, f"attempt{attempt}-member{i}")
            self.members.append(Member(i, f"m{i}", ports[2 * i], ports[2 * i + 1], data_dir,
                                       os.path.join(self.work_dir, f"member{i}.log"),
                                       tls=self.tls is not None))

    def _initial_cluster(self):
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def _spawn(self, member):
        argv = [
            ETCD_BIN,
            "--name", member.name,
            "--data-dir", member.data_dir,
            "--listen-client-urls", member.client_url,
            "--advertise-client-urls", member.client_url,
            "--listen-peer-urls", member.peer_url,
            "--initial-advertise-peer-urls", member.peer_url,
            "--initial-cluster", self._initial_cluster(),
            "--initial-cluster-token", self._token,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", str(HEARTBEAT_MS),
            "--election-timeout", str(ELECTION_MS),
            "--logger", "zap",
            "--log-outputs", "stderr",
        ]
        if self.tls:
            argv += ["--cert-file", self.tls.server_cert, "--key-file", self.tls.server_key,
                     "--trusted-ca-file", self.tls.ca, "--client-cert-auth"]
        # ETCD_* variables would override the flags above.
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
        with open(member.log_path, "a", encoding="utf-8") as log:
            member.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                              stdout=subprocess.DEVNULL, stderr=log,
                                              env=environment, preexec_fn=_die_with_parent)

    def _healthy(self, member):
        """True when the member answers /health with "true" (it has a leader and can serve a
        quorum read)."""
        context = None
        if self.tls:
            context = ssl.create_default_context(cafile=self.tls.ca)
            context.load_cert_chain(self.tls.client_cert, self.tls.client_key)
        try:
            with urllib.request.urlopen(member.client_url + "/health", timeout=1.0,
                                        context=context) as reply:
                return json.loads(reply.read().decode()).get("health") == "true"
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def wait_healthy(self, indices=None, timeout_s=START_TIMEOUT_S):
        """Waits until the members `indices` (default: all running) are healthy."""
        targets = [self.members[i] for i in indices] if indices is not None else [
            m for m in self.members if m.running()]
        deadline = time.monotonic() + timeout_s
        pending = list(targets)
        while pending:
            for member in list(pending):
                if not member.running():
                    log = member.log_tail()
                    if "address already in use" in log:
                        raise PortTaken(f"member {member.index}: a port was taken")
                    raise RuntimeError(f"etcd member {member.index} exited with "
                                       f"{member.process.returncode}; its log:\n{log}")
                if self._healthy(member):
                    pending.remove(member)
            if not pending:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"etcd members {[m.index for m in pending]} not healthy within {timeout_s} s;"
                    " last log:\n" + pending[0].log_tail())
            time.sleep(POLL_INTERVAL_S)

    @property
    def endpoints(self):
        """The client addresses, host:port, in member order."""
        return [m.endpoint for m in self.members]

    def kill(self, index):
        """SIGKILL member `index` and reap it; its data directory stays for restart()."""
        member = self.members[index]
        if member.running():
            member.process.kill()
        if member.process is not None:
            member.process.wait(timeout=STOP_TIMEOUT_S)

    def restart(self, index, timeout_s=START_TIMEOUT_S):
        """Starts member `index` again on its ports and data, and waits until it is healthy."""
        member = self.members[index]
        if member.running():
            raise RuntimeError(f"etcd member {index} is still running")
        self._spawn(member)
        self.wait_healthy([index], timeout_s=timeout_s)

    def _kill_all(self):
        for member in self.members:
            if member.running():
                member.process.kill()
        for member in self.members:
            if member.process is not None:
                try:
                    member.process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    pass

    def close(self):
        """Kills every member and removes the data. Safe to call more than once."""
        self._kill_all()
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def logs(self):
        return "".join(f"----- etcd member {m.index} -----\n{m.log_tail()}\n"
                       for m in self.members)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _serve(cluster):
    """The line protocol of the module docstring, until `quit` or end of stdin."""
    print("READY " + ",".join(cluster.endpoints), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "quit":
                print("OK", flush=True)
                return
            if words[0] == "endpoints":
                print("OK " + ",".join(cluster.endpoints), flush=True)
            elif words[0] in ("kill", "restart") and len(words) == 2:
                index = int(words[1])
                if not 0 <= index < cluster.size:
                    raise ValueError(f"no member {index}")
                getattr(cluster, words[0])(index)
                print("OK", flush=True)
            else:
                raise ValueError(f"unknown command {line.strip()!r}")
        except Exception as problem:  # noqa: BLE001: every failure is answered, not raised
            message = " ".join(str(problem).split())
            print(f"ERROR {message}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=3)
    args = parser.parse_args()
    # SIGTERM, which PR_SET_PDEATHSIG sends when the test process dies, is ignored: that death
    # also closes our stdin, and the end of input is the one way out, so the teardown is never
    # cut short half way by an exception from a signal handler.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        cluster = EtcdCluster(members=args.members)
    except Exception as problem:  # noqa: BLE001
        sys.stderr.write(f"etcd_cluster.py: {problem}\n")  # with etcd's log, line by line
        print("ERROR " + " ".join(str(problem).split())[:2000], flush=True)
        return 1
    try:
        _serve(cluster)
    finally:
        cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
