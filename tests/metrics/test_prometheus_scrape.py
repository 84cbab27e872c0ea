#!/usr/bin/python3
"""wsvisor's Prometheus metrics, checked against the truth: the real wsvisor binary supervising a
real foreign upstream (python3-websockets), scraped by `promtool check metrics` and by a real
Prometheus server (Debian `prometheus` 2.42).

  - the exposition passes `promtool check metrics` and declares every family of
    metric_families.py with its type;
  - the values agree with what wsvisor's API says (health, heartbeats, transition times), with
    what the gRPC calls were (codes, counts, open streams) and with /proc (descriptors, memory,
    CPU, start time);
  - Prometheus sees an endpoint go down within one scrape interval of wsvisor marking it
    UNHEALTHY, and the shipped alert rules and dashboard queries evaluate against the real series;
  - an unregistered endpoint's series leave /metrics;
  - --metrics-per-endpoint=false and --metrics-endpoint-labels shape the series as documented.

Every wait is bounded and polls (Prometheus 2.42 scrapes first ~5.5 s after it starts, even at a
1 s interval); every process is stopped however the test ends; everything listens on 127.0.0.1.
Measured times are printed.

Environment (ctest sets these): WSVISOR_BIN, WSVISORCTL_BIN, WSVISOR_SOURCE_DIR. Needs promtool
and prometheus on PATH (Debian package `prometheus`). Run with /usr/bin/python3.
"""

import calendar
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, os.pardir, "e2e"))
import metric_families  # noqa: E402  (after the path set-up above)
from test_deploy_rules import dashboard_panels, fill_grafana_variables  # noqa: E402
from wsvisor_fixtures import (  # noqa: E402
    SERVER_START_TIMEOUT_S, SERVER_STOP_TIMEOUT_S, Paths, Upstream, Wsvisorctl,
    ctl_list_succeeds, elapsed_ms, free_tcp_port, read_log, stop_process, wait_until)

# Heartbeats of the test endpoints: a hung upstream is UNHEALTHY ~400 ms after its last answer.
HEARTBEAT_FLAGS = ("--interval", "200ms", "--timeout", "200ms")
SCRAPE_INTERVAL_S = 1.0
# What "within one scrape interval" may add on a busy two-core machine: the scrape's own
# duration, scheduling, and for the polled measurement our 20 ms poll and the query itself.
SCRAPE_SLACK_S = 0.5
POLLED_SLACK_S = 1.0
HEALTHY_TIMEOUT_S = 15.0
UNHEALTHY_TIMEOUT_S = 10.0
SERIES_GONE_TIMEOUT_S = 5.0
# Debian's 2.42 scrapes first ~5.5 s after start; generous for a loaded machine.
PROMETHEUS_READY_TIMEOUT_S = 30.0
PROMETHEUS_FIRST_SCRAPE_TIMEOUT_S = 40.0
HTTP_TIMEOUT_S = 5.0

RTT_BUCKETS = ("0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
               "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf")

ALERTS_FILE = os.path.join("deploy", "prometheus", "alerts.yml")
DASHBOARD_FILE = os.path.join("deploy", "grafana", "wsvisor-dashboard.json")


# ---------------------------------------------------------------------------------------------
# The text exposition format, parsed strictly enough to assert on.

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def _parse_labels(text):
    labels = {}
    position = 0
    while position < len(text):
        match = _LABEL.match(text, position)
        if not match:
            raise AssertionError(f"bad label set {{{text}}}")
        if match.group(1) in labels:
            raise AssertionError(f"label {match.group(1)} twice in {{{text}}}")
        labels[match.group(1)] = (match.group(2).replace(r"\"", '"').replace(r"\n", "\n")
                                  .replace("\\\\", "\\"))
        position = match.end()
    return labels


class Exposition:
    """One scrape of /metrics: HELP and TYPE per family, and every sample."""

    def __init__(self, text):
        self.text = text
        self.help = {}
        self.type = {}
        self.samples = []  # (name, labels dict, value)
        for line in text.splitlines():
            if line.startswith("# HELP "):
                name, _, help_text = line[len("# HELP "):].partition(" ")
                self.help[name] = help_text
            elif line.startswith("# TYPE "):
                name, _, kind = line[len("# TYPE "):].partition(" ")
                self.type[name] = kind
            elif line and not line.startswith("#"):
                match = _SAMPLE.match(line)
                if not match:
                    raise AssertionError(f"bad sample line {line!r}")
                self.samples.append((match.group(1), _parse_labels(match.group(2) or ""),
                                     float(match.group(3))))

    def series(self, name, **labels):
        """(labels, value) of the samples called `name` whose labels include `labels`."""
        return [(l, v) for n, l, v in self.samples
                if n == name and all(l.get(k) == want for k, want in labels.items())]

    def value(self, name, **labels):
        """The value of the one sample called `name` with these labels (None if there is none)."""
        found = self.series(name, **labels)
        if len(found) > 1:
            raise AssertionError(f"{len(found)} samples {name}{labels}: {found}")
        return found[0][1] if found else None

    def family_samples(self, family):
        return [(n, l, v) for n, l, v in self.samples if metric_families.family_of(n) == family]

    def endpoint_ids(self, family):
        return {l.get("endpoint") for _, l, _ in self.family_samples(family)}


# ---------------------------------------------------------------------------------------------
# Processes.

def http_get(url, timeout_s=HTTP_TIMEOUT_S):
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return response.read().decode("utf-8")


def rfc3339_to_unix(text):
    """'2026-11-27T00:47:11.660061147Z' (protobuf JSON Timestamp) → seconds since the epoch."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z", text)
    if not match:
        raise AssertionError(f"not an RFC 3339 UTC time: {text!r}")
    whole = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    return whole + float("0" + (match.group(2) or ".0"))


class MetricsWsvisor:
    """The real wsvisor binary with its gRPC and metrics ports on free 127.0.0.1 ports, its own
    data directory, and `extra_args`. Its log goes to a file (a pipe could fill and block it)."""

    def __init__(self, paths, work_dir, name, extra_args=(), attempts=5):
        self._paths = paths
        self.data_dir = os.path.join(work_dir, f"{name}-data")
        self.log_path = os.path.join(work_dir, f"{name}.log")
        self._process = None
        for attempt in range(1, attempts + 1):
            self.address = f"127.0.0.1:{free_tcp_port()}"
            self.metrics_port = free_tcp_port()
            self.launched_wall = time.time()
            started = time.monotonic()
            with open(self.log_path, "w", encoding="utf-8") as log:
                self._process = subprocess.Popen(
                    [paths.wsvisor, "--listen", self.address,
                     "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
                     "--data-dir", self.data_dir, "--shutdown-grace", "1s", *extra_args],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
            if self._wait_until_serving():
                print(f"  wsvisor {name} serving after {elapsed_ms(started):.0f} ms "
                      f"(attempt {attempt})", flush=True)
                self.serving_wall = time.time()
                self.ctl = Wsvisorctl(paths, self.address)
                return
            log_text = self.log_text()
            if "cannot listen" in log_text or "cannot serve metrics" in log_text:
                continue  # lost a race for one of the two ports
            raise AssertionError(f"wsvisor exited with {self._process.returncode} before "
                                 f"serving; log:\n{log_text}")
        raise AssertionError(f"wsvisor could not bind its ports in {attempts} attempts")

    def _wait_until_serving(self):
        """True once both the gRPC API and /metrics answer; False if wsvisor exits first."""
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            if ctl_list_succeeds(self._paths.wsvisorctl, self.address):
                try:
                    self.metrics_text()
                    return True
                except (urllib.error.URLError, OSError):
                    pass
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"wsvisor did not serve within {SERVER_START_TIMEOUT_S} s; "
                             f"log:\n{self.log_text()}")

    @property
    def pid(self):
        return self._process.pid

    def metrics_text(self):
        return http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")

    def scrape(self):
        return Exposition(self.metrics_text())

    def log_text(self):
        return read_log(self.log_path)

    def ctl_ok(self, *args):
        """wsvisorctl ARGS, which must succeed; returns its stdout."""
        result = self.ctl.run(*args)
        if result.returncode != 0:
            raise AssertionError(f"wsvisorctl {' '.join(args)} exited {result.returncode}: "
                                 f"{result.stderr}")
        return result.stdout

    def register(self, endpoint_id, url, *flags):
        self.ctl_ok("register", endpoint_id, url, *HEARTBEAT_FLAGS, *flags)

    def endpoint(self, endpoint_id):
        return json.loads(self.ctl_ok("-o", "json", "get", endpoint_id))

    def endpoints(self):
        """{id: endpoint JSON} from `wsvisorctl list -o json` (one message per line)."""
        out = {}
        for line in self.ctl_ok("-o", "json", "list").splitlines():
            if line.strip():
                message = json.loads(line)
                for item in message.get("endpoints", [message]):
                    out[item["spec"]["id"]] = item
        return out

    def wait_for_health(self, ids, health, timeout_s):
        """Polls the API until every endpoint in ids has `health` (HEALTHY, UNHEALTHY)."""
        def reached():
            listed = self.endpoints()
            return all(listed.get(i, {}).get("status", {}).get("health") == f"HEALTH_{health}"
                       for i in ids)
        wait_until(reached, timeout_s, f"{sorted(ids)} {health} in wsvisor's API")

    def wait_for_up(self, ids, value, timeout_s):
        """Polls /metrics until wsvisor_endpoint_up of every endpoint in ids is `value`;
        returns that scrape."""
        def reached():
            scrape = self.scrape()
            ok = all(scrape.value("wsvisor_endpoint_up", endpoint=i) == value for i in ids)
            return scrape if ok else None
        return wait_until(reached, timeout_s, f"wsvisor_endpoint_up == {value} for {sorted(ids)}")

    def stop(self):
        """SIGTERM; returns the exit status (None if it had to be killed)."""
        return stop_process(self._process, signal.SIGTERM, SERVER_STOP_TIMEOUT_S)


class PrometheusServer:
    """A real Prometheus on a free 127.0.0.1 port scraping one wsvisor as job="wsvisor" every
    SCRAPE_INTERVAL_S, with the shipped alert rules evaluated as often."""

    def __init__(self, work_dir, wsvisor_metrics_port, rule_file, attempts=5):
        if shutil.which("prometheus") is None:
            raise RuntimeError("prometheus not found: install the Debian package `prometheus`")
        self.config_path = os.path.join(work_dir, "prometheus.yml")
        with open(self.config_path, "w", encoding="utf-8") as config:
            config.write(
                "global:\n"
                f"  scrape_interval: {SCRAPE_INTERVAL_S:g}s\n"
                f"  scrape_timeout: {SCRAPE_INTERVAL_S:g}s\n"
                f"  evaluation_interval: {SCRAPE_INTERVAL_S:g}s\n"
                f"rule_files: [{json.dumps(rule_file)}]\n"
                "scrape_configs:\n"
                "  - job_name: wsvisor\n"
                "    static_configs:\n"
                f"      - targets: ['127.0.0.1:{wsvisor_metrics_port}']\n")
        self.log_path = os.path.join(work_dir, "prometheus.log")
        self._process = None
        for _ in range(attempts):
            self.port = free_tcp_port()
            storage = tempfile.mkdtemp(prefix="tsdb-", dir=work_dir)
            self.started = time.monotonic()
            with open(self.log_path, "w", encoding="utf-8") as log:
                self._process = subprocess.Popen(
                    ["prometheus", f"--config.file={self.config_path}",
                     f"--storage.tsdb.path={storage}",
                     f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=work_dir)
            if self._wait_until_ready():
                self.ready_after_s = time.monotonic() - self.started
                return
            if "address already in use" in self.log_text():
                continue
            raise AssertionError(f"prometheus exited with {self._process.returncode}; "
                                 f"log:\n{self.log_text()}")
        raise AssertionError(f"prometheus could not bind a port in {attempts} attempts")

    def _wait_until_ready(self):
        deadline = time.monotonic() + PROMETHEUS_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                http_get(f"http://127.0.0.1:{self.port}/-/ready", timeout_s=1)
                return True
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"prometheus not ready within {PROMETHEUS_READY_TIMEOUT_S} s; "
                             f"log:\n{self.log_text()}")

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            body = http_get(url)
        except urllib.error.HTTPError as error:  # 400/422: a bad query; the body says why
            body = error.read().decode("utf-8")
        reply = json.loads(body)
        if reply.get("status") != "success":
            raise AssertionError(f"Prometheus API {path} {params}: {reply}")
        return reply["data"]

    def query(self, expr):
        """The instant vector of expr now: [(labels, value)]."""
        data = self.api("query", query=expr)
        if data["resultType"] != "vector":
            raise AssertionError(f"{expr} gave a {data['resultType']}")
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def by_endpoint(self, expr):
        return {labels.get("endpoint"): value for labels, value in self.query(expr)}

    def log_text(self):
        return read_log(self.log_path)

    def stop(self):
        return stop_process(self._process, signal.SIGTERM, 20.0)


def process_stat_ticks(pid):
    """utime + stime of a process in clock ticks (proc(5) fields 14 and 15)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def process_status_kib(pid, key):
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def soft_open_files_limit(pid):
    with open(f"/proc/{pid}/limits", encoding="ascii") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError(f"no open files limit in /proc/{pid}/limits")


# ---------------------------------------------------------------------------------------------

class MetricsTestCase(unittest.TestCase):
    """A temporary directory and a python upstream per test; wsvisor started by the test with the
    flags it is about. Prints wsvisor's (and Prometheus') log when a test fails."""

    paths = None

    @classmethod
    def setUpClass(cls):
        cls.paths = Paths.from_environment()
        if shutil.which("promtool") is None:
            raise RuntimeError("promtool not found: install the Debian package `prometheus`")

    def setUp(self):
        self._logs = []
        self.work_dir = tempfile.mkdtemp(prefix="wsvisor-metrics-")
        self.addCleanup(shutil.rmtree, self.work_dir, ignore_errors=True)
        self.upstream = Upstream(self.paths)
        self.addCleanup(self.upstream.stop)  # SIGCONT first: it may be paused

    def start_wsvisor(self, name="wsvisor", *extra_args):
        server = MetricsWsvisor(self.paths, self.work_dir, name, extra_args)
        self.addCleanup(self._stop_wsvisor, server, name)
        return server

    def _stop_wsvisor(self, server, name):
        status = server.stop()
        self._logs.append((f"wsvisor {name}", server.log_text()))
        self.assertEqual(status, 0, "wsvisor should exit 0 on SIGTERM (None: it was killed)")

    def start_prometheus(self, server):
        prometheus = PrometheusServer(self.work_dir, server.metrics_port,
                                      os.path.join(self.paths.source_dir, ALERTS_FILE))

        def stop():
            prometheus.stop()
            self._logs.append(("prometheus", prometheus.log_text()))
        self.addCleanup(stop)
        return prometheus

    def register_three(self, server, *flags):
        ids = ("alpha", "beta", "gamma")
        for endpoint_id in ids:
            server.register(endpoint_id, self.upstream.url, *flags)
        server.wait_for_health(ids, "HEALTHY", HEALTHY_TIMEOUT_S)
        return ids

    def promtool_check(self, text):
        result = subprocess.run(["promtool", "check", "metrics"], input=text,
                                capture_output=True, text=True, timeout=60)
        self.assertEqual((result.returncode, result.stdout + result.stderr), (0, ""),
                         "promtool check metrics found problems")

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        problems_before = len(result.failures) + len(result.errors)
        outcome = super().run(result)
        if len(result.failures) + len(result.errors) > problems_before:
            for name, log in self._logs:
                sys.stderr.write(f"----- {name} log of {self.id()} -----\n{log}"
                                 f"----- end of {name} log -----\n")
        return outcome


class ExpositionTest(MetricsTestCase):

    def test_exposition_passes_promtool_and_declares_every_family(self):
        server = self.start_wsvisor()
        self.register_three(server)
        server.wait_for_up(("alpha", "beta", "gamma"), 1, HEALTHY_TIMEOUT_S)
        scrape = server.scrape()
        self.promtool_check(scrape.text)
        for family, (kind, labels) in metric_families.FAMILIES.items():
            with self.subTest(family=family):
                self.assertTrue(scrape.help.get(family), "no HELP line")
                self.assertEqual(scrape.type.get(family), kind)
                samples = scrape.family_samples(family)
                self.assertTrue(samples, "no samples")
                for name, sample_labels, _ in samples:
                    self.assertLessEqual(set(labels), set(sample_labels), name)
        # ...and nothing else: a new family needs its docs, type and label checks here.
        exported = {name for name in scrape.type
                    if not name.startswith(metric_families.FOREIGN_PREFIXES)}
        self.assertEqual(exported - set(metric_families.FAMILIES), set(),
                         "families missing from metric_families.py and docs/metrics.md")
        self.assertEqual(
            {l["result"] for l, _ in scrape.series("wsvisor_connection_attempts_total")},
            set(metric_families.CONNECTION_RESULTS))
        self.assertEqual({l["health"] for l, _ in scrape.series("wsvisor_endpoints")},
                         set(metric_families.HEALTH_VALUES))
        for endpoint_id in ("alpha", "beta", "gamma"):
            with self.subTest(endpoint=endpoint_id):
                buckets = scrape.series("wsvisor_heartbeat_rtt_seconds_bucket",
                                        endpoint=endpoint_id)
                self.assertEqual(tuple(l["le"] for l, _ in buckets), RTT_BUCKETS)
                counts = [v for _, v in buckets]
                self.assertEqual(counts, sorted(counts), "buckets must be cumulative")
                self.assertEqual(counts[-1], scrape.value("wsvisor_heartbeat_rtt_seconds_count",
                                                          endpoint=endpoint_id))

    def test_endpoint_values_agree_with_the_api(self):
        server = self.start_wsvisor()
        ids = self.register_three(server)
        # A fourth endpoint on a port nobody listens on: refused, UNHEALTHY.
        server.register("refused", f"ws://127.0.0.1:{free_tcp_port()}/")
        server.wait_for_health(("refused",), "UNHEALTHY", HEALTHY_TIMEOUT_S)
        server.wait_for_up(ids, 1, HEALTHY_TIMEOUT_S)

        before = server.endpoints()
        scrape = server.scrape()
        after = server.endpoints()

        self.assertEqual({h: scrape.value("wsvisor_endpoints", health=h)
                          for h in metric_families.HEALTH_VALUES},
                         {"healthy": 3, "unhealthy": 1, "unknown": 0, "flapping": 0})
        self.assertEqual({i: scrape.value("wsvisor_endpoint_up", endpoint=i)
                          for i in (*ids, "refused")},
                         {"alpha": 1, "beta": 1, "gamma": 1, "refused": 0})
        # A counter read between two API snapshots lies between their sums.
        sent = scrape.value("wsvisor_heartbeats_sent_total")
        self.assertLessEqual(sum(int(e["status"].get("heartbeatsSent", 0))
                                 for e in before.values()), sent)
        self.assertLessEqual(sent, sum(int(e["status"].get("heartbeatsSent", 0))
                                       for e in after.values()))
        answered = sum(v for _, v in scrape.series("wsvisor_heartbeat_rtt_seconds_count"))
        self.assertGreater(answered, 0)
        self.assertLessEqual(answered, sent)
        for endpoint_id in ids:
            with self.subTest(endpoint=endpoint_id):
                count = scrape.value("wsvisor_heartbeat_rtt_seconds_count", endpoint=endpoint_id)
                mean = scrape.value("wsvisor_heartbeat_rtt_seconds_sum",
                                    endpoint=endpoint_id) / count
                self.assertLess(mean, 0.2, "answered heartbeats must be within the timeout")
                self.assertGreater(mean, 0)
                # The gauge is set with the transition; the API reports the same moment.
                transition = rfc3339_to_unix(after[endpoint_id]["status"]["lastTransitionTime"])
                self.assertAlmostEqual(
                    scrape.value("wsvisor_endpoint_last_transition_timestamp_seconds",
                                 endpoint=endpoint_id), transition, delta=0.1)
        self.assertGreaterEqual(
            scrape.value("wsvisor_connection_attempts_total", result="success"), 3)
        self.assertGreaterEqual(
            scrape.value("wsvisor_connection_attempts_total", result="connection_refused"), 1)
        self.assertGreaterEqual(
            scrape.value("wsvisor_heartbeat_failures_total", reason="connection_refused"), 1)
        self.assertGreaterEqual(scrape.value("wsvisor_health_transitions_total", to="healthy"), 3)
        self.assertGreaterEqual(scrape.value("wsvisor_health_transitions_total", to="unhealthy"),
                                1)
        build = scrape.series("wsvisor_build_info")
        self.assertEqual(len(build), 1)
        self.assertEqual(build[0][1], 1)
        self.assertTrue(build[0][0]["version"])

    def test_grpc_and_watch_stream_metrics_count_the_calls(self):
        server = self.start_wsvisor()
        server.register("alpha", self.upstream.url)
        server.register("beta", self.upstream.url)
        self.assertEqual(server.ctl.run("get", "nobody").returncode, 1)  # NOT_FOUND
        self.assertEqual(server.ctl.run("register", "alpha", "ws://127.0.0.1:1/").returncode, 1)

        def method(name, **labels):
            return dict(grpc_service="wsvisor.v1.Supervisor", grpc_method=name, **labels)

        scrape = server.scrape()
        self.assertEqual(scrape.value("grpc_server_started_total",
                                      **method("RegisterEndpoint", grpc_type="unary")), 3)
        self.assertEqual(scrape.value("grpc_server_handled_total",
                                      **method("RegisterEndpoint", grpc_code="OK")), 2)
        self.assertEqual(scrape.value("grpc_server_handled_total",
                                      **method("RegisterEndpoint", grpc_code="AlreadyExists")), 1)
        self.assertEqual(scrape.value("grpc_server_handled_total",
                                      **method("GetEndpoint", grpc_code="NotFound")), 1)
        self.assertEqual(scrape.value("grpc_server_handling_seconds_count",
                                      **method("RegisterEndpoint")), 3)
        self.assertEqual(scrape.value("wsvisor_watch_streams"), 0)

        watchers = []
        for _ in range(2):
            watcher = server.ctl.start_watch()
            self.addCleanup(watcher.close)
            watchers.append(watcher)
        wait_until(lambda: server.scrape().value("wsvisor_watch_streams") == 2, 10,
                   "wsvisor_watch_streams == 2")
        scrape = server.scrape()
        self.assertEqual(scrape.value("grpc_server_started_total",
                                      **method("WatchHealth", grpc_type="server_stream")), 2)
        for watcher in watchers:
            watcher.interrupt()
        wait_until(lambda: server.scrape().value("wsvisor_watch_streams") == 0, 10,
                   "wsvisor_watch_streams == 0 after the watchers left")
        wait_until(lambda: server.scrape().value(
            "grpc_server_handled_total", **method("WatchHealth", grpc_code="Canceled")) == 2, 10,
            "both watch streams counted as handled (Canceled)")

    def test_process_metrics_and_endpoint_limit_agree_with_proc(self):
        server = self.start_wsvisor("wsvisor", "--max-endpoints", "50")
        self.register_three(server)
        ticks = os.sysconf("SC_CLK_TCK")
        cpu_before = process_stat_ticks(server.pid) / ticks
        fds_before = len(os.listdir(f"/proc/{server.pid}/fd"))
        scrape = server.scrape()
        fds_after = len(os.listdir(f"/proc/{server.pid}/fd"))
        cpu_after = process_stat_ticks(server.pid) / ticks
        rss = process_status_kib(server.pid, "VmRSS") * 1024
        vsize = process_status_kib(server.pid, "VmSize") * 1024

        cpu = scrape.value("process_cpu_seconds_total")
        self.assertGreaterEqual(cpu, cpu_before - 0.015)
        self.assertLessEqual(cpu, cpu_after + 0.015)
        # The scrape's own connection is open while it is counted.
        open_fds = scrape.value("process_open_fds")
        self.assertGreaterEqual(open_fds, min(fds_before, fds_after) - 1)
        self.assertLessEqual(open_fds, max(fds_before, fds_after) + 2)
        self.assertEqual(scrape.value("process_max_fds"), soft_open_files_limit(server.pid))
        # The smaller of --max-endpoints and the open-files budget: 50 here.
        self.assertEqual(scrape.value("wsvisor_max_endpoints"), 50)
        self.assertAlmostEqual(scrape.value("process_resident_memory_bytes"), rss,
                               delta=max(0.25 * rss, 4 << 20))
        self.assertAlmostEqual(scrape.value("process_virtual_memory_bytes"), vsize,
                               delta=0.1 * vsize)
        # The allocator's count of bytes in use (~0.5 MiB idle: gRPC, SQLite, the endpoints) is
        # below RSS, which also holds the binary, its libraries and the allocator's free memory.
        heap = scrape.value("wsvisor_heap_allocated_bytes")
        self.assertGreater(heap, 100 << 10)
        self.assertLess(heap, rss)
        # Boot time in /proc/stat has whole seconds, so the start time is exact to about 1 s.
        start = scrape.value("process_start_time_seconds")
        self.assertGreaterEqual(start, server.launched_wall - 1.5)
        self.assertLessEqual(start, server.serving_wall + 0.1)


class PrometheusTest(MetricsTestCase):

    def test_prometheus_sees_endpoints_go_down_within_one_scrape_interval(self):
        server = self.start_wsvisor()
        ids = self.register_three(server)
        server.wait_for_up(ids, 1, HEALTHY_TIMEOUT_S)

        part_started = time.monotonic()
        prometheus = self.start_prometheus(server)
        up_in_prometheus = 'wsvisor_endpoint_up{job="wsvisor"}'

        wait_until(lambda: all(prometheus.by_endpoint(up_in_prometheus).get(i) == 1 for i in ids),
                   PROMETHEUS_FIRST_SCRAPE_TIMEOUT_S, "Prometheus to see all three endpoints up")
        first_scrape_s = time.monotonic() - prometheus.started
        print(f"  prometheus ready after {prometheus.ready_after_s * 1000:.0f} ms, "
              f"first scrape seen after {first_scrape_s:.2f} s", flush=True)
        targets = prometheus.api("targets")["activeTargets"]
        self.assertEqual([(t["labels"]["job"], t["health"], t["lastError"]) for t in targets],
                         [("wsvisor", "up", "")])

        # Enough scrapes for rate() over the dashboard's windows, then every dashboard query
        # must evaluate against the real series.
        wait_until(lambda: prometheus.query('count_over_time(up{job="wsvisor"}[10s]) >= 3'),
                   10, "three scrapes")
        self.check_dashboard_queries(prometheus, ids)

        # The upstream hangs. wsvisor marks the endpoints UNHEALTHY ~2 heartbeats later; poll
        # wsvisor's /metrics and Prometheus together to see when each of them shows it.
        paused_at = time.monotonic()
        self.upstream.pause()
        seen_by_wsvisor, seen_by_prometheus = {}, {}

        def poll():
            now = time.monotonic()
            scrape = server.scrape()
            for i in ids:
                if i not in seen_by_wsvisor and scrape.value("wsvisor_endpoint_up",
                                                             endpoint=i) == 0:
                    seen_by_wsvisor[i] = now
            now = time.monotonic()
            for i, value in prometheus.by_endpoint(up_in_prometheus).items():
                if i in ids and i not in seen_by_prometheus and value == 0:
                    seen_by_prometheus[i] = now
            return len(seen_by_prometheus) == len(ids)
        wait_until(poll, UNHEALTHY_TIMEOUT_S + SCRAPE_INTERVAL_S + POLLED_SLACK_S,
                   "Prometheus to see all three endpoints down")

        for i in ids:
            with self.subTest(endpoint=i):
                status = server.endpoint(i)["status"]
                self.assertEqual(status["health"], "HEALTH_UNHEALTHY")
                transition = rfc3339_to_unix(status["lastTransitionTime"])
                # The first sample of 0 Prometheus stored, with the time of its scrape.
                raw = prometheus.api(
                    "query", query=f'wsvisor_endpoint_up{{job="wsvisor", endpoint="{i}"}}[1m]')
                samples = [(float(t), float(v)) for t, v in raw["result"][0]["values"]]
                first_zero = next(t for t, v in samples if v == 0 and t > transition - 1)
                sample_lag = first_zero - transition
                polled_lag = seen_by_prometheus[i] - seen_by_wsvisor.get(i, paused_at)
                print(f"  {i}: UNHEALTHY in wsvisor {(seen_by_wsvisor[i] - paused_at) * 1000:.0f} "
                      f"ms after the pause; first 0 scraped {sample_lag * 1000:.0f} ms after the "
                      f"transition; visible in Prometheus' API {polled_lag * 1000:.0f} ms after "
                      f"wsvisor's /metrics showed it", flush=True)
                # A scrape that started just before the transition may already read the new value
                # (the sample carries the scrape's start time), hence the small negative bound.
                self.assertGreaterEqual(sample_lag, -SCRAPE_SLACK_S,
                                        "a 0 scraped long before wsvisor's transition")
                self.assertLessEqual(sample_lag, SCRAPE_INTERVAL_S + SCRAPE_SLACK_S,
                                     "the first scrape after the transition did not read 0")
                self.assertLessEqual(polled_lag, SCRAPE_INTERVAL_S + POLLED_SLACK_S,
                                     "Prometheus' API showed 0 more than a scrape interval after "
                                     "wsvisor's /metrics did")

        # The shipped rules evaluate without error against the real series, and the endpoint
        # alert sees the down endpoints (pending: its `for` is 2 minutes).
        for group in prometheus.api("rules")["groups"]:
            for rule in group["rules"]:
                self.assertEqual((rule["name"], rule["health"], rule.get("lastError", "")),
                                 (rule["name"], "ok", ""))
        wait_until(lambda: {l.get("endpoint") for l, _ in prometheus.query(
            'ALERTS{alertname="WsvisorEndpointDown", alertstate="pending"}')} >= set(ids),
            5 * SCRAPE_INTERVAL_S + POLLED_SLACK_S, "WsvisorEndpointDown pending for all three")
        self.assertEqual(prometheus.query('ALERTS{alertname="WsvisorDown"}'), [])
        not_healthy_panel = prometheus.by_endpoint('wsvisor_endpoint_up{job="wsvisor"} == 0')
        self.assertEqual(set(not_healthy_panel), set(ids))
        print(f"  Prometheus part took {time.monotonic() - part_started:.1f} s", flush=True)

    def check_dashboard_queries(self, prometheus, ids):
        """Every query of the shipped dashboard evaluates; those that should have data do."""
        with open(os.path.join(self.paths.source_dir, DASHBOARD_FILE), encoding="utf-8") as f:
            dashboard = json.load(f)
        # No endpoint is down yet, and no call has failed (Canceled and OK are left out).
        may_be_empty = {"Endpoints not healthy now", "gRPC errors / s by method and code"}
        empty = []
        for panel in dashboard_panels(dashboard["panels"]):
            for target in panel.get("targets", []):
                expr = fill_grafana_variables(target["expr"].replace("$__rate_interval", "10s")
                                              .replace("$__range", "1m"))
                expr = expr.replace('job=~".*"', 'job=~"wsvisor"')
                with self.subTest(panel=panel["title"], ref=target["refId"]):
                    result = prometheus.query(expr)
                    if not result and panel["title"] not in may_be_empty:
                        empty.append(f"{panel['title']} {target['refId']}: {expr}")
        self.assertEqual(empty, [], "dashboard queries without data")
        endpoint_var = next(v for v in dashboard["templating"]["list"] if v["name"] == "endpoint")
        selector = re.fullmatch(r"label_values\((.*),\s*endpoint\)",
                                endpoint_var["query"]["query"]).group(1)
        values = prometheus.api("series", **{"match[]": fill_grafana_variables(selector)})
        self.assertEqual({s["endpoint"] for s in values}, set(ids))


class SeriesLifecycleTest(MetricsTestCase):

    def test_unregistered_endpoint_leaves_metrics_and_the_others_stay(self):
        server = self.start_wsvisor()
        ids = self.register_three(server)
        server.wait_for_up(ids, 1, HEALTHY_TIMEOUT_S)
        started = time.monotonic()
        server.ctl_ok("unregister", "beta")

        def beta_gone():
            scrape = server.scrape()
            ok = not [s for s in scrape.samples if s[1].get("endpoint") == "beta"]
            return scrape if ok else None
        scrape = wait_until(beta_gone, SERIES_GONE_TIMEOUT_S, "beta's series to leave /metrics")
        print(f"  beta's series gone {elapsed_ms(started):.0f} ms after unregister", flush=True)
        for family in metric_families.PER_ENDPOINT_FAMILIES:
            with self.subTest(family=family):
                self.assertEqual(scrape.endpoint_ids(family), {"alpha", "gamma"})
        self.assertEqual(scrape.value("wsvisor_endpoint_up", endpoint="alpha"), 1)
        self.assertEqual(scrape.value("wsvisor_endpoint_up", endpoint="gamma"), 1)
        self.assertEqual(scrape.value("wsvisor_endpoints", health="healthy"), 2)
        self.promtool_check(scrape.text)

    def test_quick_unregister_and_register_keeps_exactly_one_series(self):
        server = self.start_wsvisor("wsvisor", "--threads", "2")
        ids = self.register_three(server)
        for _ in range(5):
            server.ctl_ok("unregister", "beta")
            server.register("beta", self.upstream.url)
        server.wait_for_health(ids, "HEALTHY", HEALTHY_TIMEOUT_S)
        scrape = server.wait_for_up(ids, 1, HEALTHY_TIMEOUT_S)
        for family in metric_families.PER_ENDPOINT_FAMILIES:
            with self.subTest(family=family):
                self.assertEqual(scrape.endpoint_ids(family), set(ids))
        # ...and it is live: its RTT histogram keeps counting.
        count = scrape.value("wsvisor_heartbeat_rtt_seconds_count", endpoint="beta")
        wait_until(lambda: server.scrape().value("wsvisor_heartbeat_rtt_seconds_count",
                                                 endpoint="beta") > count,
                   5, "beta's RTT histogram to count new heartbeats")


class CardinalityFlagsTest(MetricsTestCase):

    def test_per_endpoint_off_leaves_no_endpoint_label(self):
        server = self.start_wsvisor("wsvisor", "--metrics-per-endpoint=false")
        self.register_three(server)
        scrape = server.scrape()
        self.promtool_check(scrape.text)
        self.assertEqual([s for s in scrape.samples if "endpoint" in s[1]], [])
        for family in metric_families.PER_ENDPOINT_FAMILIES:
            with self.subTest(family=family):
                self.assertEqual(scrape.family_samples(family), [])
        self.assertEqual(scrape.value("wsvisor_endpoints", health="healthy"), 3)
        self.assertGreater(scrape.value("wsvisor_heartbeats_sent_total"), 0)

    def test_copied_endpoint_labels_appear_on_per_endpoint_series(self):
        server = self.start_wsvisor("wsvisor", "--metrics-endpoint-labels", "team")
        ids = self.register_three(server, "--label", "team=red", "--label", "tier=gold")
        server.register("unlabelled", self.upstream.url)
        server.wait_for_up(ids, 1, HEALTHY_TIMEOUT_S)
        scrape = server.scrape()
        self.promtool_check(scrape.text)
        for family in metric_families.PER_ENDPOINT_FAMILIES:
            for name, labels, _ in scrape.family_samples(family):
                with self.subTest(series=name, endpoint=labels["endpoint"]):
                    if labels["endpoint"] in ids:
                        self.assertEqual(labels.get("team"), "red")
                    else:  # an empty label value is the same as no label to Prometheus
                        self.assertIn(labels.get("team"), ("", None))
                    self.assertNotIn("tier", labels)  # not asked for
        for name, labels, _ in scrape.samples:
            if metric_families.family_of(name) not in metric_families.PER_ENDPOINT_FAMILIES:
                self.assertNotIn("team", labels, name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
