"""wsvisor at scale, side by side with Node `ws` and Python `websockets` supervisors.

    bench/run --endpoints 19000 --window 300 --peers all

(bench/run installs the packages, Python included, then runs this file.)

Builds what it needs (Release), starts the fleet upstream(s) and wsvisor, registers N endpoints
over gRPC, waits until all are HEALTHY, measures a steady window, stalls K connections and times
their detection, fans health out to M WatchHealth streams, then runs each peer against the same
fleet and measures it the same way. Prints a table and ends with one JSON line. Loopback only;
every wait is bounded; every process it starts is stopped before it exits. With --tls all of it
runs over wss:// (bench_tls.py makes a throwaway CA). See bench/README.md.
"""
import argparse
import atexit
import json
import math
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import bench_tls

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

# One fleet process serves at most this many connections: the open-files hard limit is 20,000
# per process, and stalled connections linger (until the client gives up on them) while their
# endpoints reconnect.
FLEET_CAPACITY = 15000
FLEET_LISTENERS = 8  # loopback addresses per fleet process: 127.0.<f>.1 … 127.0.<f>.8


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg():
    return os.getloadavg()[0]


# --------------------------------------------------------------------------------------------
# processes


class Proc:
    """A child process whose stdout lines are collected by a thread (with arrival times)."""

    live = []

    def __init__(self, name, argv, stderr_path=None, stdin=True, cwd=None, env=None):
        self.name = name
        self.argv = argv
        self.stderr_file = open(stderr_path, "w") if stderr_path else subprocess.DEVNULL
        self.p = subprocess.Popen(
            argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=self.stderr_file, text=True, bufsize=1, cwd=cwd,
            env=env)
        self.pid = self.p.pid
        self.lines = []  # (monotonic time, line)
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        Proc.live.append(self)

    def _read(self):
        for line in self.p.stdout:
            with self.cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def send(self, line):
        try:
            self.p.stdin.write(line + "\n")
            self.p.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def wait_line(self, predicate, timeout, start_index=0):
        """First line (from start_index on) for which predicate(line) is true, or None."""
        deadline = time.monotonic() + timeout
        index = start_index
        with self.cond:
            while True:
                while index < len(self.lines):
                    if predicate(self.lines[index][1]):
                        return self.lines[index][1]
                    index += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.p.poll() is not None and index >= len(self.lines)):
                    return None
                self.cond.wait(min(remaining, 0.5))

    def count(self):
        with self.cond:
            return len(self.lines)

    def last_line(self, predicate):
        with self.cond:
            for _, line in reversed(self.lines):
                if predicate(line):
                    return line
        return None

    def stop(self, grace=15, close_stdin=True, sig=signal.SIGTERM):
        if self.p.poll() is None:
            if close_stdin and self.p.stdin:
                try:
                    self.p.stdin.close()
                except OSError:
                    pass
            if sig is not None:
                try:
                    self.p.send_signal(sig)
                except ProcessLookupError:
                    pass
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop within {grace}s; killing it")
                self.p.kill()
                self.p.wait(10)
        if self in Proc.live:
            Proc.live.remove(self)
        return self.p.returncode


def stop_all():
    for proc in list(Proc.live):
        try:
            proc.stop(grace=5)
        except Exception as e:  # noqa: BLE001 - best effort at exit
            log(f"stopping {proc.name}: {e}")


atexit.register(stop_all)


def on_signal(signum, _frame):
    log(f"signal {signum}: cleaning up")
    stop_all()
    sys.exit(128 + signum)


signal.signal(signal.SIGINT, on_signal)
signal.signal(signal.SIGTERM, on_signal)


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu(pid):
    """{tid: utime + stime seconds} of every thread of `pid`."""
    result = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            result[tid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        except OSError:
            pass
    return result


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def kv(line):
    return dict(item.split("=", 1) for item in line.split()[1:] if "=" in item)


# --------------------------------------------------------------------------------------------
# build


def build(args):
    build_dir = args.build_dir
    hook = os.path.join(HERE, "cmake", "add_bench.cmake")
    cache = os.path.join(build_dir, "CMakeCache.txt")
    configured = False
    if os.path.exists(cache):
        with open(cache) as f:
            text = f.read()
        configured = "CMAKE_PROJECT_wsvisor_INCLUDE" in text and "CMAKE_BUILD_TYPE:STRING=Release" in text
    if not configured:
        log(f"configuring {build_dir} (Release, with bench/)")
        cmd = ["cmake", "-S", REPO, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
               "-DWSVISOR_BUILD_TESTS=OFF", f"-DCMAKE_PROJECT_wsvisor_INCLUDE={hook}"]
        if not os.path.exists(cache):
            cmd += ["-G", "Ninja"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    log("building wsvisor and the bench tools")
    subprocess.run(["cmake", "--build", build_dir, "-j", str(os.cpu_count() or 2), "--target",
                    "wsvisor", "wsfleet", "bench_client", "session_benchmark",
                    "transport_variants"],
                   check=True, stdout=subprocess.DEVNULL)
    if args.peers in ("node", "all"):
        node_dir = os.path.join(HERE, "peers", "node")
        if not os.path.exists(os.path.join(node_dir, "node_modules", "ws", "package.json")):
            log("installing the Node peer's pinned packages (npm ci)")
            subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                           cwd=node_dir, check=True, stdout=subprocess.DEVNULL)


def binary(args, name):
    path = os.path.join(args.build_dir, "bench", name) if name != "wsvisor" else \
        os.path.join(args.build_dir, "wsvisor")
    if not os.access(path, os.X_OK):
        sys.exit(f"bench: {path} is missing; run without --no-build")
    return path


# --------------------------------------------------------------------------------------------
# the fleet


class Fleet:
    def __init__(self, args, out_dir, connections):
        self.procs = []
        count = max(1, math.ceil(connections / FLEET_CAPACITY))
        hosts = [[f"127.0.{f}.{a + 1}" for a in range(FLEET_LISTENERS)] for f in range(count)]
        # --tls: one certificate for every listening address; clients verify it against the CA.
        self.tls = bench_tls.make_loopback_ca(os.path.join(out_dir, "tls"),
                                              sum(hosts, [])) if args.tls else None
        self.scheme = "wss" if self.tls else "ws"
        for f in range(count):
            listen = ",".join(f"{h}:0" for h in hosts[f])
            tls = ["--tls", self.tls["cert"], self.tls["key"]] if self.tls else []
            proc = Proc(f"fleet{f}", [binary(args, "wsfleet"), "--impl", args.fleet_impl,
                                      "--listen", listen, "--seed", str(f + 1)] + tls,
                        stderr_path=os.path.join(out_dir, f"fleet{f}.stderr"))
            line = proc.wait_line(lambda l: l.startswith("listening"), 10)
            if not line:
                sys.exit(f"bench: fleet {f} did not start (see {out_dir}/fleet{f}.stderr)")
            proc.addresses = [a for a in line.split()[1:] if ":" in a and "=" not in a]
            self.procs.append(proc)
        log(f"{count} fleet process(es) ({args.fleet_impl}), "
            f"{count * FLEET_LISTENERS} listening addresses, {self.scheme}://")

    def endpoints(self, prefix, n):
        """(id, url, fleet index) for n endpoints; fleet connection ids are '<prefix>/<id>'."""
        result = []
        count = len(self.procs)
        letter = prefix[0]
        for i in range(n):
            f = i % count
            addrs = self.procs[f].addresses
            addr = addrs[(i // count) % len(addrs)]
            endpoint_id = f"{letter}-{i:06d}"
            result.append((endpoint_id, f"{self.scheme}://{addr}/{prefix}/{endpoint_id}", f))
        return result

    def stats(self):
        """[(stats dict, monotonic time)] per fleet process."""
        result = []
        for proc in self.procs:
            start = proc.count()
            proc.send("stats")
            line = proc.wait_line(lambda l: l.startswith("stats "), 10, start)
            result.append(kv(line) if line else {})
        return result

    def cpu(self):
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def stall(self, prefix, k):
        """Stalls about k connections spread over the fleets; returns (ids, stall times)."""
        stalled = {}
        share = [k // len(self.procs) + (1 if i < k % len(self.procs) else 0)
                 for i in range(len(self.procs))]
        starts = [p.count() for p in self.procs]
        for proc, n in zip(self.procs, share):
            if n:
                proc.send(f"stall {prefix}/ {n}")
        for proc, n, start in zip(self.procs, share, starts):
            if not n:
                continue
            line = proc.wait_line(lambda l: l.startswith("stalled "), 10, start)
            info = kv(line)
            t_us = int(info["realtime_us"])
            for conn_id in filter(None, info.get("ids", "").split(",")):
                stalled[conn_id.split("/", 1)[1]] = t_us
        return stalled

    def stop(self):
        for proc in self.procs:
            proc.send("quit")
            proc.stop(grace=10, sig=None)


def write_endpoints(path, endpoints):
    with open(path, "w") as f:
        for endpoint_id, url, _ in endpoints:
            f.write(f"{endpoint_id} {url}\n")


# --------------------------------------------------------------------------------------------
# wsvisor


def scrape(port):
    """(heartbeats_sent_total, unhealthy transitions, seconds taken, bytes, mid-time)."""
    t0 = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=120) as r:
        body = r.read()
    t1 = time.monotonic()
    text = body.decode()
    hb = re.search(r"^wsvisor_heartbeats_sent_total (\S+)$", text, re.M)
    unhealthy = re.search(r'^wsvisor_health_transitions_total\{to="unhealthy"\} (\S+)$', text, re.M)
    return {
        "heartbeats": float(hb.group(1)) if hb else float("nan"),
        "unhealthy_transitions": float(unhealthy.group(1)) if unhealthy else float("nan"),
        "seconds": t1 - t0,
        "bytes": len(body),
        "mid": (t0 + t1) / 2,
    }


def start_wsvisor(args, out_dir, tag, per_endpoint):
    data_dir = tempfile.mkdtemp(prefix=f"wsvisor-bench-{tag}-", dir=args.data_parent)
    argv = [binary(args, "wsvisor"), "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
            "--data-dir", data_dir, "--metrics-per-endpoint", "true" if per_endpoint else "false",
            "--threads", str(args.threads), "--log-level", args.wsvisor_log_level]
    stderr_path = os.path.join(out_dir, f"wsvisor-{tag}.log")
    proc = Proc(f"wsvisor-{tag}", argv, stderr_path=stderr_path)
    proc.data_dir = data_dir
    deadline = time.monotonic() + 30
    grpc_port = metrics_port = None
    while time.monotonic() < deadline and (grpc_port is None or metrics_port is None):
        with open(stderr_path) as f:
            text = f.read()
        m = re.search(r"serving gRPC on \S+ \(port (\d+)\)", text)
        grpc_port = int(m.group(1)) if m else None
        m = re.search(r"serving Prometheus metrics on \S+ \(port (\d+)\)", text)
        metrics_port = int(m.group(1)) if m else None
        m = re.search(r"accepting up to (\d+) endpoints", text)
        proc.max_endpoints = int(m.group(1)) if m else None
        if proc.p.poll() is not None:
            break
        time.sleep(0.1)
    if grpc_port is None or metrics_port is None:
        sys.exit(f"bench: wsvisor did not start; see {stderr_path}")
    proc.grpc = f"127.0.0.1:{grpc_port}"
    proc.metrics_port = metrics_port
    return proc


def read_events(path):
    """Parses a bench_client event log."""
    events = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) != 10:
                continue
            events.append({
                "w": int(p[0]), "type": int(p[1]), "id": p[2], "health": int(p[3]),
                "prev": int(p[4]), "phase": int(p[5]), "event_us": int(p[6]),
                "arrival_us": int(p[7]), "coalesced": p[8] == "1", "revision": int(p[9])})
    return events


TYPE_CHANGED = 4
HEALTHY, UNHEALTHY = 1, 2


def realtime_us():
    return time.clock_gettime_ns(time.CLOCK_REALTIME) // 1000


def measure_window(pid, seconds, heartbeats_at, fleet):
    """CPU of `pid` over a window and the heartbeats sent in it.

    heartbeats_at() -> (count, monotonic time the count refers to). The count is read just
    outside the CPU window and scaled to it by rate, so that reading it (a /metrics scrape can be
    expensive) is not charged to the window."""
    hb0, t_hb0 = heartbeats_at()
    fleet_stats0 = fleet.stats()
    fleet_cpu0 = fleet.cpu()
    t0, cpu0, load0 = time.monotonic(), cpu_seconds(pid), loadavg()
    wall0 = realtime_us()
    time.sleep(seconds)
    t1, cpu1, load1 = time.monotonic(), cpu_seconds(pid), loadavg()
    wall1 = realtime_us()
    fleet_cpu1 = fleet.cpu()
    fleet_stats1 = fleet.stats()
    hb1, t_hb1 = heartbeats_at()
    rate = (hb1 - hb0) / (t_hb1 - t_hb0)
    heartbeats = rate * (t1 - t0)
    fleet_pings = sum(int(b.get("pings", 0)) - int(a.get("pings", 0))
                      for a, b in zip(fleet_stats0, fleet_stats1))
    return {
        "seconds": t1 - t0,
        "cpu_s": cpu1 - cpu0,
        "heartbeats": heartbeats,
        "heartbeats_per_s": rate,
        "cpu_us_per_heartbeat": (cpu1 - cpu0) * 1e6 / heartbeats if heartbeats else None,
        "cpu_cores": (cpu1 - cpu0) / (t1 - t0),
        "load_start": load0,
        "load_end": load1,
        "wall_start_us": wall0,
        "wall_end_us": wall1,
        "fleet_cpu_us_per_ping": (fleet_cpu1 - fleet_cpu0) * 1e6 / fleet_pings if fleet_pings else None,
    }


def run_wsvisor(args, out_dir, fleet, per_endpoint, full):
    """One wsvisor run. `full`: also stalls, detection and watcher fan-out."""
    tag = "metrics-on" if per_endpoint else "metrics-off"
    n = args.endpoints
    result = {"per_endpoint_metrics": per_endpoint}
    endpoints = fleet.endpoints("w", n)
    endpoints_file = os.path.join(out_dir, "endpoints-wsvisor.txt")
    write_endpoints(endpoints_file, endpoints)

    wsv = start_wsvisor(args, out_dir, tag, per_endpoint)
    if wsv.max_endpoints is not None and wsv.max_endpoints < n:
        sys.exit(f"bench: wsvisor accepts only {wsv.max_endpoints} endpoints here (open files)")
    time.sleep(1)
    rss_before = rss_kib(wsv.pid)
    log(f"wsvisor ({tag}) pid {wsv.pid} gRPC {wsv.grpc}, RSS {rss_before} KiB before registering")

    primary_log = os.path.join(out_dir, f"events-primary-{tag}.txt")
    primary = Proc(f"watch-primary-{tag}", [binary(args, "bench_client"), "watch", "--server",
                                             wsv.grpc, "--watchers", "1", "--expect", str(n),
                                             "--log", primary_log],
                   stderr_path=os.path.join(out_dir, f"watch-primary-{tag}.stderr"))
    if not primary.wait_line(lambda l: l.startswith("snapshot_complete"), 20):
        sys.exit("bench: the primary WatchHealth stream did not start")

    log(f"registering {n} endpoints, {args.register_concurrency} calls in flight "
        f"(load {loadavg():.2f})")
    reg = subprocess.run([binary(args, "bench_client"), "register", "--server", wsv.grpc,
                          "--endpoints", endpoints_file, "--concurrency",
                          str(args.register_concurrency), "--interval-ms",
                          str(int(args.interval * 1000)), "--timeout-ms",
                          str(int(args.timeout * 1000))] +
                         (["--ca-file", fleet.tls["ca"]] if fleet.tls else []),
                         capture_output=True, text=True, timeout=max(600, n / 20))
    reg_line = next((l for l in reg.stdout.splitlines() if l.startswith("registered ")), None)
    if reg_line is None:
        sys.exit(f"bench: registration failed: {reg.stdout[-2000:]} {reg.stderr[-2000:]}")
    reg_info = kv(reg_line)
    log(reg_line)
    if int(reg_info["errors"]) != 0:
        sys.exit(f"bench: {reg_info['errors']} registrations failed: {reg_line}")
    register_start_us = int(reg_info["start_realtime_us"])
    register_end_us = int(reg_info["end_realtime_us"])
    result["register_per_s"] = float(reg_info["per_s"])
    result["register_s"] = float(reg_info["elapsed_s"])

    line = primary.wait_line(lambda l: l.startswith("all_healthy"), args.healthy_timeout)
    if line is None:
        last = primary.last_line(lambda l: l.startswith("health "))
        sys.exit(f"bench: not all endpoints HEALTHY within {args.healthy_timeout}s: {last}")
    all_healthy_us = int(kv(line)["realtime_us"])
    result["all_healthy_s"] = (all_healthy_us - register_start_us) / 1e6
    result["healthy_after_last_register_s"] = (all_healthy_us - register_end_us) / 1e6
    log(f"all {n} HEALTHY {result['all_healthy_s']:.1f}s after the first RegisterEndpoint "
        f"({result['healthy_after_last_register_s']:.1f}s after the last)")

    time.sleep(args.settle)
    rss_steady = rss_kib(wsv.pid)
    result["rss_before_kib"] = rss_before
    result["rss_steady_kib"] = rss_steady
    result["rss_kib_per_endpoint"] = (rss_steady - rss_before) / n

    scrapes = []

    def heartbeats_at():
        s = scrape(wsv.metrics_port)
        scrapes.append(s)
        return s["heartbeats"], s["mid"]

    log(f"steady window: {args.window:.0f}s (load {loadavg():.2f})")
    threads0 = thread_cpu(wsv.pid)
    window = measure_window(wsv.pid, args.window, heartbeats_at, fleet)
    threads1 = thread_cpu(wsv.pid)
    busiest = sorted(((threads1[t] - threads0.get(t, 0), t) for t in threads1), reverse=True)
    result["window_thread_cores"] = [round(c / window["seconds"], 3) for c, _ in busiest[:4]]
    result.update({k: window[k] for k in ("cpu_us_per_heartbeat", "heartbeats_per_s", "cpu_cores",
                                          "fleet_cpu_us_per_ping")})
    result["window_s"] = window["seconds"]
    result["load_window_start"] = window["load_start"]
    result["load_window_end"] = window["load_end"]
    result["metrics_scrape_s"] = scrapes[-1]["seconds"]
    result["metrics_scrape_bytes"] = scrapes[-1]["bytes"]
    result["rss_after_scrape_kib"] = rss_kib(wsv.pid)
    primary.send("flush")
    time.sleep(0.5)
    events = read_events(primary_log)
    false_unhealthy = [e for e in events if e["type"] == TYPE_CHANGED and e["health"] == UNHEALTHY
                       and window["wall_start_us"] <= e["event_us"] <= window["wall_end_us"]]
    result["false_unhealthy"] = len(false_unhealthy)
    result["false_unhealthy_metric"] = int(scrapes[-1]["unhealthy_transitions"] -
                                           scrapes[0]["unhealthy_transitions"])
    log(f"window: {window['cpu_s']:.2f} CPU s, {window['heartbeats']:.0f} heartbeats → "
        f"{result['cpu_us_per_heartbeat']:.2f} µs/heartbeat, {result['false_unhealthy']} false "
        f"UNHEALTHY; /metrics {scrapes[-1]['bytes'] / 1e6:.1f} MB in {scrapes[-1]['seconds']:.2f}s")

    if full and args.profile > 0:
        profile(args, out_dir, wsv.pid, tag, result["heartbeats_per_s"])
    if full and args.stall > 0:
        result.update(stall_and_watch(args, out_dir, fleet, wsv, primary, primary_log, n, tag))

    primary.send("quit")
    primary.stop(grace=15, sig=None)
    t_stop = time.monotonic()
    rc = wsv.stop(grace=30)
    result["wsvisor_exit_code"] = rc
    result["wsvisor_stop_s"] = time.monotonic() - t_stop
    shutil.rmtree(wsv.data_dir, ignore_errors=True)
    return result


SYSCALLS = ["sendmsg", "sendto", "write", "writev", "recvfrom", "recvmsg", "read", "readv",
            "epoll_wait", "epoll_ctl", "timerfd_settime", "futex"]


def profile(args, out_dir, pid, tag, heartbeats_per_s):
    """Syscalls per heartbeat (perf stat) and a perf record of wsvisor in steady state, after the
    window (so that neither disturbs it)."""
    seconds = min(args.profile, 10)
    events = ["context-switches", "raw_syscalls:sys_enter"] + [
        f"syscalls:sys_enter_{name}" for name in SYSCALLS]
    stat = subprocess.run(["perf", "stat", "-x", ",", "-p", str(pid)] +
                          sum((["-e", e] for e in events), []) + ["--", "sleep", str(seconds)],
                          capture_output=True, text=True, timeout=seconds + 60)
    per_heartbeat = {}
    for line in stat.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[0].replace(".", "").isdigit():
            per_heartbeat[fields[2].replace("syscalls:sys_enter_", "")] = round(
                float(fields[0]) / seconds / heartbeats_per_s, 3)
    with open(os.path.join(out_dir, f"perf-stat-wsvisor-{tag}.json"), "w") as f:
        json.dump({"per_heartbeat": per_heartbeat, "raw": stat.stderr}, f, indent=2)
    log(f"per heartbeat: {per_heartbeat}")
    data = os.path.join(out_dir, f"perf-wsvisor-{tag}.data")
    log(f"perf record of wsvisor for {args.profile:.0f}s → {data}")
    rec = subprocess.run(["perf", "record", "-F", "499", "--call-graph", "dwarf,8192", "-p",
                          str(pid), "-o", data, "--", "sleep", str(args.profile)],
                         capture_output=True, text=True, timeout=args.profile + 120)
    if rec.returncode != 0:
        log(f"perf record failed: {rec.stderr[-500:]}")
        return
    # perf report is CPU-heavy: it runs after every measurement (PENDING_REPORTS).
    PENDING_REPORTS.append((data, out_dir, tag))
    time.sleep(args.settle)


PENDING_REPORTS = []


def perf_reports():
    for data, out_dir, tag in PENDING_REPORTS:
        log(f"perf report of {data}")
        perf_report(data, out_dir, tag)


def perf_report(data, out_dir, tag):
    # Flat (self) and inclusive (children) profiles, one compact line per symbol.
    for name, extra in (("flat", ["--no-children", "--sort", "dso,symbol"]),
                        ("children", ["--children", "--sort", "symbol"]),
                        ("dso", ["--no-children", "--sort", "dso"])):
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--percent-limit", "0.3",
                              "-g", "none"] + extra, capture_output=True, text=True, timeout=600)
        lines = [re.sub(r"\s+", " ", l).strip()[:220] for l in rep.stdout.splitlines()
                 if l.strip() and not l.startswith("#")]
        lines.sort(key=lambda l: -float(l.split("%")[0]) if l[:1].isdigit() else 0)
        with open(os.path.join(out_dir, f"perf-wsvisor-{tag}-{name}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")


def stall_and_watch(args, out_dir, fleet, wsv, primary, primary_log, n, tag):
    result = {}
    fanout = None
    fanout_log = os.path.join(out_dir, f"events-fanout-{tag}.txt")
    fanout_start_us = realtime_us()
    if args.watchers > 0:
        log(f"opening {args.watchers} WatchHealth streams (each gets a {n}-endpoint snapshot)")
        wsv_cpu0, t_snap0 = cpu_seconds(wsv.pid), time.monotonic()
        threads0 = thread_cpu(wsv.pid)
        nice = ["nice", "-n", str(args.watcher_nice)] if args.watcher_nice else []
        fanout = Proc(f"watch-fanout-{tag}", nice + [binary(args, "bench_client"), "watch",
                                                      "--server", wsv.grpc, "--watchers",
                                                      str(args.watchers), "--log", fanout_log],
                      stderr_path=os.path.join(out_dir, f"watch-fanout-{tag}.stderr"))
        deadline = time.monotonic() + max(60, args.watchers * n / 20000)
        complete = 0
        while time.monotonic() < deadline:
            with fanout.cond:
                complete = sum(1 for _, l in fanout.lines if l.startswith("snapshot_complete"))
            if complete >= args.watchers or fanout.p.poll() is not None:
                break
            time.sleep(0.2)
        result["watchers_ready"] = complete
        # What the snapshots cost: wsvisor's CPU (gRPC serialization) and the client's.
        result["snapshot_s"] = time.monotonic() - t_snap0
        result["snapshot_wsvisor_cpu_s"] = cpu_seconds(wsv.pid) - wsv_cpu0
        result["snapshot_client_cpu_s"] = cpu_seconds(fanout.pid)
        threads1 = thread_cpu(wsv.pid)
        busiest = sorted(((threads1[t] - threads0.get(t, 0), t) for t in threads1), reverse=True)
        # Share of a core each busy wsvisor thread got meanwhile (the io thread needs about
        # N / interval × its per-heartbeat cost).
        result["snapshot_thread_cores"] = [round(c / result["snapshot_s"], 3)
                                           for c, _ in busiest[:6]]
        log(f"{complete}/{args.watchers} watchers have their snapshot in "
            f"{result['snapshot_s']:.1f}s: wsvisor {result['snapshot_wsvisor_cpu_s']:.1f} CPU s, "
            f"client {result['snapshot_client_cpu_s']:.1f} CPU s")
        time.sleep(2)

    recorder = None
    if args.profile_stall:
        data = os.path.join(out_dir, f"perf-wsvisor-{tag}-stall.data")
        recorder = subprocess.Popen(["perf", "record", "-F", "499", "--call-graph", "dwarf,8192",
                                     "-p", str(wsv.pid), "-o", data, "--", "sleep",
                                     str(args.interval + args.timeout + 2)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    log(f"stalling {args.stall} connections (load {loadavg():.2f})")
    stalled = fleet.stall("w", args.stall)
    result["stalled"] = len(stalled)
    stall_from = min(stalled.values()) if stalled else realtime_us()
    # Detection needs at most interval + timeout; recovery a backoff (~1 s) and a handshake more.
    wait_s = args.interval + args.timeout + 6
    time.sleep(wait_s)
    if recorder:
        recorder.wait(120)
        PENDING_REPORTS.append((data, out_dir, f"{tag}-stall"))
    # Bounded wait until everything is HEALTHY again (the stalled endpoints reconnect).
    primary.wait_line(lambda l: l.startswith("health ") and kv(l).get("healthy") == str(n) and
                      int(kv(l)["realtime_us"]) > stall_from, 20, 0)
    time.sleep(1)
    primary.send("flush")
    if fanout:
        fanout.send("flush")
    time.sleep(1)

    events = read_events(primary_log)
    detect_ms = []
    undetected = 0
    for endpoint_id, t_us in stalled.items():
        first = next((e for e in events if e["id"] == endpoint_id and e["type"] == TYPE_CHANGED and
                      e["health"] == UNHEALTHY and e["arrival_us"] >= t_us), None)
        if first is None:
            undetected += 1
        else:
            detect_ms.append((first["arrival_us"] - t_us) / 1000)
    result["undetected"] = undetected
    result["detect_p50_ms"] = percentile(detect_ms, 50)
    result["detect_p99_ms"] = percentile(detect_ms, 99)
    result["detect_max_ms"] = max(detect_ms) if detect_ms else None
    result["detect_min_ms"] = min(detect_ms) if detect_ms else None
    others = [e for e in events if e["type"] == TYPE_CHANGED and e["health"] == UNHEALTHY and
              e["arrival_us"] >= stall_from and e["id"] not in stalled]
    result["unhealthy_not_stalled"] = len(others)
    # False verdicts while the watchers took their snapshots (before anything was stalled).
    result["unhealthy_during_snapshots"] = sum(
        1 for e in events if e["type"] == TYPE_CHANGED and e["health"] == UNHEALTHY and
        fanout_start_us <= e["event_us"] < stall_from)

    if fanout:
        fanout.send("quit")
        fanout.stop(grace=20, sig=None)
        summaries = [kv(l) for _, l in fanout.lines if l.startswith("watch_summary")]
        f_events = [e for e in read_events(fanout_log) if e["arrival_us"] >= stall_from - 1000]
        lags = [(e["arrival_us"] - e["event_us"]) / 1000 for e in f_events]
        result["watch_events"] = len(f_events)
        result["watch_lag_p50_ms"] = percentile(lags, 50)
        result["watch_lag_p99_ms"] = percentile(lags, 99)
        result["watch_lag_max_ms"] = max(lags) if lags else None
        result["watch_coalesced"] = sum(1 for e in f_events if e["coalesced"])
        # Every watcher must see every transition of the stalled endpoints that the primary saw.
        primary_transitions = sorted(
            (e["id"], e["revision"]) for e in events
            if e["type"] == TYPE_CHANGED and e["prev"] != e["health"] and e["arrival_us"] >= stall_from)
        per_watcher = {}
        for e in f_events:
            if e["type"] == TYPE_CHANGED and e["prev"] != e["health"]:
                per_watcher.setdefault(e["w"], set()).add((e["id"], e["revision"]))
        expected = set(primary_transitions)
        missing = [len(expected - per_watcher.get(w, set())) for w in range(args.watchers)]
        result["watch_transitions_expected"] = len(expected)
        result["watch_transitions_missing_max"] = max(missing) if missing else None
        result["watch_streams_ok"] = sum(1 for s in summaries if s.get("status") in ("1", "0"))
    return result


# --------------------------------------------------------------------------------------------
# peers


def run_peer(args, out_dir, fleet, name):
    n = args.endpoints
    letter_prefix = {"node": "node", "python": "py"}[name]
    endpoints_file = os.path.join(out_dir, f"endpoints-{name}.txt")
    write_endpoints(endpoints_file, fleet.endpoints(letter_prefix, n))
    empty_file = os.path.join(out_dir, "endpoints-empty.txt")
    open(empty_file, "w").close()
    interval_ms, timeout_ms = str(int(args.interval * 1000)), str(int(args.timeout * 1000))
    if name == "node":
        base = ["node", os.path.join(HERE, "peers", "node", "supervisor.js")]
        extra = ["--interval-ms", interval_ms]
    else:
        base = ["/usr/bin/python3", os.path.join(HERE, "peers", "python", "supervisor.py")]
        extra = ["--interval-ms", interval_ms, "--timeout-ms", timeout_ms]
    if fleet.tls:
        extra += ["--ca", fleet.tls["ca"]]  # also for the idle run: it loads the CA the same way

    # The idle runtime's own footprint, so that RSS per connection is what connections add.
    idle = Proc(f"{name}-idle", base + ["--endpoints", empty_file] + extra)
    idle.wait_line(lambda l: l.startswith("{"), 15)
    idle.wait_line(lambda l: l.startswith("{"), 15, 1)
    rss_before = rss_kib(idle.pid)
    idle.stop(grace=10)

    peer = Proc(name, base + ["--endpoints", endpoints_file] + extra,
                stderr_path=os.path.join(out_dir, f"peer-{name}.stderr"))
    t_start = time.monotonic()
    line = peer.wait_line(lambda l: l.startswith("{") and json.loads(l)["open"] >= n,
                          args.healthy_timeout)
    result = {"rss_before_kib": rss_before}
    if line is None:
        last = peer.last_line(lambda l: l.startswith("{"))
        log(f"{name}: not all {n} connections open within {args.healthy_timeout}s: {last}")
        result["all_open_s"] = None
    else:
        result["all_open_s"] = time.monotonic() - t_start
    time.sleep(args.settle)
    result["rss_steady_kib"] = rss_kib(peer.pid)
    result["rss_kib_per_endpoint"] = (result["rss_steady_kib"] - rss_before) / n

    def stats_now():
        start = peer.count()
        line = peer.wait_line(lambda l: l.startswith("{"), 5, start)
        return json.loads(line), time.monotonic()

    first = {}

    def pings_at():
        s, t = stats_now()
        if not first:
            first.update(s)
        first["last"] = s
        return s["pings"], t

    log(f"{name}: window {args.peer_window:.0f}s (load {loadavg():.2f})")
    window = measure_window(peer.pid, args.peer_window, pings_at, fleet)
    last = first["last"]
    result.update({
        "cpu_us_per_heartbeat": window["cpu_us_per_heartbeat"],
        "heartbeats_per_s": window["heartbeats_per_s"],
        "cpu_cores": window["cpu_cores"],
        "load_window_start": window["load_start"],
        "load_window_end": window["load_end"],
        "fleet_cpu_us_per_ping": window["fleet_cpu_us_per_ping"],
        "open_at_end": last["open"],
        # Connections that ended during the window: each one is a false "dead" verdict.
        "false_unhealthy": last["closed"] - first["closed"],
    })
    log(f"{name}: {result['cpu_us_per_heartbeat']:.2f} µs/ping, "
        f"{result['rss_kib_per_endpoint']:.1f} KiB/connection, {result['false_unhealthy']} "
        f"connections lost in the window")
    peer.stop(grace=20)
    return result


# --------------------------------------------------------------------------------------------
# micro-benchmark


def run_session_benchmark(args):
    out = subprocess.run([binary(args, "session_benchmark"), "--benchmark_format=json",
                          "--benchmark_min_time=0.5"], capture_output=True, text=True, timeout=120)
    data = json.loads(out.stdout)
    return {b["name"]: b["cpu_time"] for b in data["benchmarks"]}  # ns (time_unit ns)


# --------------------------------------------------------------------------------------------
# report


def fmt(v, spec=".2f", none="—"):
    return none if v is None else format(v, spec)


def print_table(res, args):
    w = res["wsvisor"]
    interval_ms, timeout_ms = args.interval * 1000, args.timeout * 1000
    tls = res.get("tls")
    rows = [
        ("endpoints", f"{args.endpoints}", ""),
        ("transport", "wss:// (TLS)" if tls else "ws://",
         f"fleet: {tls['handshakes']} TLS handshakes, {tls['errors']} failed; clients verify "
         "the certificate against a throwaway CA" if tls else "plain, no TLS"),
        ("register throughput", f"{fmt(w['register_per_s'], '.0f')} /s",
         f"{args.register_concurrency} in flight; {fmt(w['register_s'], '.1f')} s for all"),
        ("time to all HEALTHY", f"{fmt(w['all_healthy_s'], '.1f')} s",
         f"from the first RegisterEndpoint; {fmt(w['healthy_after_last_register_s'], '.1f')} s "
         "after the last · target ≤ 30 s"),
        ("CPU per heartbeat", f"{fmt(w['cpu_us_per_heartbeat'])} µs",
         f"{fmt(w['heartbeats_per_s'], '.0f')} heartbeats/s, {fmt(w['cpu_cores'], '.3f')} cores · "
         "target ≤ 10 µs"),
        ("RSS per endpoint", f"{fmt(w['rss_kib_per_endpoint'])} KiB",
         f"per-endpoint metrics on; {w['rss_before_kib']} → {w['rss_steady_kib']} KiB · "
         "target ≤ 10 KiB"),
    ]
    off = res.get("wsvisor_metrics_off")
    if off:
        rows.append(("  … metrics off", f"{fmt(off['rss_kib_per_endpoint'])} KiB",
                     f"CPU {fmt(off['cpu_us_per_heartbeat'])} µs/heartbeat"))
    rows += [
        ("false UNHEALTHY", f"{w['false_unhealthy']}",
         f"over {fmt(w['window_s'], '.0f')} s (metric says {w['false_unhealthy_metric']}) · "
         "target 0"),
    ]
    if "detect_p50_ms" in w:
        rows += [
            ("detection p50 / p99 / max",
             f"{fmt(w['detect_p50_ms'], '.0f')} / {fmt(w['detect_p99_ms'], '.0f')} / "
             f"{fmt(w['detect_max_ms'], '.0f')} ms",
             f"{w['stalled']} stalled, {w['undetected']} undetected · targets p99 ≤ "
             f"{interval_ms + timeout_ms + 50:.0f}, max ≤ {interval_ms + timeout_ms + 200:.0f} ms"),
        ]
    if "unhealthy_not_stalled" in w:
        rows.append(("  false UNHEALTHY, later phases",
                     f"{w.get('unhealthy_during_snapshots', 0)} + {w['unhealthy_not_stalled']}",
                     "while the watchers took their snapshots + non-stalled endpoints after the "
                     "stall · target 0"))
    if "watch_lag_p99_ms" in w:
        rows += [
            ("WatchHealth lag p50 / p99 / max",
             f"{fmt(w['watch_lag_p50_ms'], '.1f')} / {fmt(w['watch_lag_p99_ms'], '.1f')} / "
             f"{fmt(w['watch_lag_max_ms'], '.1f')} ms",
             f"{args.watchers} streams, {w['watch_events']} events, {w['watch_coalesced']} "
             f"coalesced, worst stream missed {w['watch_transitions_missing_max']} of "
             f"{w['watch_transitions_expected']} transitions · target p99 ≤ 100 ms"),
        ]
    rows += [
        ("fleet CPU per ping", f"{fmt(w['fleet_cpu_us_per_ping'])} µs", f"{args.fleet_impl} fleet"),
        ("load (1 min) in window", f"{fmt(w['load_window_start'])} → {fmt(w['load_window_end'])}",
         f"nproc {os.cpu_count()}"),
    ]
    micro = res.get("session_benchmark_ns")
    if micro:
        rows.append(("Session cycle (micro)", f"{fmt(micro.get('BM_HeartbeatCycle'), '.0f')} ns",
                     "TimerFired→ping + PongReceived, Google Benchmark; 19,000 sessions: "
                     f"{fmt(micro.get('BM_HeartbeatCycleManySessions/19000'), '.0f')} ns"))
    print()
    print(f"{'wsvisor':34} {'value':>22}  notes")
    for name, value, note in rows:
        print(f"{name:34} {value:>22}  {note}")
    if res.get("peers"):
        print()
        print(f"{'supervisor':12} {'µs/heartbeat':>13} {'× wsvisor':>10} {'KiB/conn':>9} "
              f"{'× wsvisor':>10} {'lost':>5} {'load':>11}")
        print(f"{'wsvisor':12} {fmt(w['cpu_us_per_heartbeat']):>13} {'1.0':>10} "
              f"{fmt(w['rss_kib_per_endpoint'], '.1f'):>9} {'1.0':>10} {w['false_unhealthy']:>5} "
              f"{fmt(w['load_window_start'], '.1f'):>5}→{fmt(w['load_window_end'], '.1f'):<5}")
        for name, p in res["peers"].items():
            cpu_ratio = (p["cpu_us_per_heartbeat"] / w["cpu_us_per_heartbeat"]
                         if p.get("cpu_us_per_heartbeat") and w["cpu_us_per_heartbeat"] else None)
            rss_ratio = (p["rss_kib_per_endpoint"] / w["rss_kib_per_endpoint"]
                         if w["rss_kib_per_endpoint"] else None)
            print(f"{name:12} {fmt(p['cpu_us_per_heartbeat']):>13} {fmt(cpu_ratio, '.1f'):>10} "
                  f"{fmt(p['rss_kib_per_endpoint'], '.1f'):>9} {fmt(rss_ratio, '.1f'):>10} "
                  f"{p['false_unhealthy']:>5} {fmt(p['load_window_start'], '.1f'):>5}→"
                  f"{fmt(p['load_window_end'], '.1f'):<5}")
    print()


def main():
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=19000, help="N endpoints (default 19000)")
    parser.add_argument("--window", type=float, default=300,
                        help="steady measurement window, seconds (default 300)")
    parser.add_argument("--peers", choices=["none", "node", "python", "all"], default="all")
    parser.add_argument("--peer-window", type=float, default=None,
                        help="window for each peer, seconds (default: --window)")
    parser.add_argument("--interval", type=float, default=1.0, help="heartbeat interval, s")
    parser.add_argument("--timeout", type=float, default=1.0, help="heartbeat timeout, s")
    parser.add_argument("--stall", type=int, default=100, help="K connections to stall")
    parser.add_argument("--watchers", type=int, default=100, help="M WatchHealth streams")
    parser.add_argument("--metrics-per-endpoint", choices=["true", "false", "both"],
                        default="both",
                        help="wsvisor's --metrics-per-endpoint; 'both' (default) measures with "
                             "it on (the full run) and then RSS/CPU with it off")
    parser.add_argument("--threads", type=int, default=1, help="wsvisor --threads (default 1)")
    parser.add_argument("--watcher-nice", type=int, default=0,
                        help="run the WatchHealth fan-out client under nice -n N (it shares the "
                             "machine's cores with wsvisor; default 0)")
    parser.add_argument("--register-concurrency", type=int, default=64)
    parser.add_argument("--settle", type=float, default=5,
                        help="seconds between all-healthy and the RSS reading/window")
    parser.add_argument("--healthy-timeout", type=float, default=None,
                        help="bound on waiting for all HEALTHY / all open (default 60 + N/200 s)")
    parser.add_argument("--fleet-impl", choices=["epoll", "websocketpp"], default="epoll")
    parser.add_argument("--tls", action="store_true",
                        help="run everything over wss://: the fleet serves TLS with a throwaway "
                             "CA's certificate, which wsvisor and the peers verify")
    parser.add_argument("--data-parent", default=None,
                        help="where wsvisor's data dir is created (default: the system temp "
                             "dir); e.g. /dev/shm to take fsync out of registration")
    parser.add_argument("--wsvisor-log-level", default="info")
    parser.add_argument("--build-dir", default=os.environ.get(
        "WSVISOR_BENCH_BUILD_DIR", os.path.join(REPO, "build-bench")))
    parser.add_argument("--profile", type=float, default=0,
                        help="after the window, perf-record wsvisor for this many seconds "
                             "(reports in the output directory)")
    parser.add_argument("--profile-stall", action="store_true",
                        help="perf-record wsvisor from the stall until detection is due")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--no-micro", action="store_true", help="skip the Session micro-benchmark")
    parser.add_argument("--out", default=None, help="directory for logs and event files")
    args = parser.parse_args()
    if args.peer_window is None:
        args.peer_window = args.window
    if args.healthy_timeout is None:
        args.healthy_timeout = 60 + args.endpoints / 200
    args.build_dir = os.path.abspath(args.build_dir)
    if args.tls and args.fleet_impl != "epoll":
        parser.error("--tls needs --fleet-impl epoll")
    out_dir = args.out or os.path.join(args.build_dir, "bench-results",
                                       time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)

    if not args.no_build:
        build(args)
    log(f"results in {out_dir}; load {loadavg():.2f}, nproc {os.cpu_count()}")

    res = {"endpoints": args.endpoints, "interval_s": args.interval, "timeout_s": args.timeout,
           "window_s": args.window, "load_start": loadavg(),
           "transport": "wss" if args.tls else "ws"}
    if not args.no_micro:
        res["session_benchmark_ns"] = run_session_benchmark(args)
    fleet = Fleet(args, out_dir, args.endpoints + args.stall + 200)
    try:
        per_endpoint = args.metrics_per_endpoint != "false"
        res["wsvisor"] = run_wsvisor(args, out_dir, fleet, per_endpoint, full=True)
        if args.metrics_per_endpoint == "both":
            res["wsvisor_metrics_off"] = run_wsvisor(args, out_dir, fleet, False, full=False)
        peers = {"none": [], "node": ["node"], "python": ["python"],
                 "all": ["node", "python"]}[args.peers]
        res["peers"] = {}
        for name in peers:
            time.sleep(2)
            res["peers"][name] = run_peer(args, out_dir, fleet, name)
        if fleet.tls:
            stats = fleet.stats()
            res["tls"] = {
                "handshakes": sum(int(s.get("tls_handshakes", 0)) for s in stats),
                "errors": sum(int(s.get("tls_errors", 0)) for s in stats)}
    finally:
        fleet.stop()
    res["load_end"] = loadavg()
    perf_reports()

    print_table(res, args)
    with open(os.path.join(out_dir, "result.json"), "w") as f:
        json.dump(res, f, indent=2)
    w = res["wsvisor"]
    summary = {
        "endpoints": args.endpoints,
        "transport": res["transport"],
        "interval_s": args.interval,
        "timeout_s": args.timeout,
        "window_s": round(w["window_s"], 1),
        "all_healthy_s": w["all_healthy_s"],
        "cpu_us_per_heartbeat": w["cpu_us_per_heartbeat"],
        "rss_kib_per_endpoint": w["rss_kib_per_endpoint"],
        "false_unhealthy": w["false_unhealthy"],
        "false_unhealthy_during_snapshots": w.get("unhealthy_during_snapshots"),
        "false_unhealthy_after_stall": w.get("unhealthy_not_stalled"),
        "detect_p50_ms": w.get("detect_p50_ms"),
        "detect_p99_ms": w.get("detect_p99_ms"),
        "detect_max_ms": w.get("detect_max_ms"),
        "watch_lag_p99_ms": w.get("watch_lag_p99_ms"),
        "register_per_s": w["register_per_s"],
        "load_1m": [round(w["load_window_start"], 2), round(w["load_window_end"], 2)],
    }
    if "tls" in res:
        summary["tls_handshake_errors"] = res["tls"]["errors"]
    if "wsvisor_metrics_off" in res:
        summary["metrics_off"] = {
            "cpu_us_per_heartbeat": res["wsvisor_metrics_off"]["cpu_us_per_heartbeat"],
            "rss_kib_per_endpoint": res["wsvisor_metrics_off"]["rss_kib_per_endpoint"]}
    if "session_benchmark_ns" in res:
        summary["session_cycle_ns"] = res["session_benchmark_ns"].get("BM_HeartbeatCycle")
    summary["peers"] = {
        name: {"cpu_us_per_heartbeat": p["cpu_us_per_heartbeat"],
               "rss_kib_per_endpoint": p["rss_kib_per_endpoint"]}
        for name, p in res.get("peers", {}).items()}
    print(json.dumps(summary, separators=(",", ":")))


if __name__ == "__main__":
    main()
