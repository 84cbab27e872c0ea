#!/usr/bin/python3
"""Offline checks of deploy/kubernetes (no cluster, no network).

For the base and the example overlay: `kubectl kustomize` renders them; every object is
validated against the Kubernetes and Prometheus Operator JSON schemas (validate_k8s.mjs, which
also rejects fields no schema knows); and the properties that matter for running wsvisor are
asserted: gRPC probes, the hardened pod, named ports, a PDB, the termination grace period against
--shutdown-grace, the store on a claim, the config file mounted where --config points, a
ServiceMonitor that gives job="wsvisor", and the PrometheusRule carrying exactly
deploy/prometheus/alerts.yml's groups, which `promtool check rules` accepts. yamllint checks the
sources, and wsvisor itself parses the rendered arguments and endpoint file.

Tools (none is installed by this test): kubectl (Debian kubernetes-client, or any kubectl with
kustomize; env KUBECTL), node with tests/deploy/node_modules (`npm ci --prefix tests/deploy`),
yamllint and promtool (Debian yamllint, prometheus), python3-yaml. A missing tool fails the test
and names its package. The wsvisor start-up check needs WSVISOR_BIN (default build/wsvisor) and
`unshare --net` (root): without them it is skipped.

Run: /usr/bin/python3 -m unittest tests/deploy/test_manifests.py
"""

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
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dockerfile_model  # noqa: E402

HERE = Path(__file__).resolve().parent
SOURCE_DIR = Path(os.environ.get("WSVISOR_SOURCE_DIR", HERE.parents[1]))
KUBERNETES_DIR = SOURCE_DIR / "deploy" / "kubernetes"
ALERTS = SOURCE_DIR / "deploy" / "prometheus" / "alerts.yml"
GENERATOR = KUBERNETES_DIR / "generate-prometheusrule.py"
YAMLLINT_CONFIG = SOURCE_DIR / "deploy" / ".yamllint"
DOCKERFILE = SOURCE_DIR / "deploy" / "docker" / "Dockerfile"
VALIDATOR = HERE / "validate_k8s.mjs"
WSVISOR_BIN = Path(os.environ.get("WSVISOR_BIN", SOURCE_DIR / "build" / "wsvisor"))

# Planning figures of the StatefulSet's resources comment (not promises): used to check that
# --max-endpoints fits the memory limit.
IDLE_MIB = 20
KIB_PER_ENDPOINT = 20
# What kubectl's kustomize may print about the overlay's fields (kept for Debian's kubectl 1.20).
ALLOWED_KUSTOMIZE_WARNINGS = re.compile(
    r"^# Warning: '(bases|patchesStrategicMerge)' is deprecated\..*$")
# Volume types the Pod Security "restricted" profile admits.
RESTRICTED_VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                           "persistentVolumeClaim", "projected", "secret"}


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if not path:
        raise AssertionError(f"{name} is not installed: install {package} "
                             "(scripts/install-deps does)")
    return path


def kubectl() -> str:
    return os.environ.get("KUBECTL") or require_tool("kubectl", "Debian package kubernetes-client")


def parse_duration(text: str) -> float:
    """'10s', '500ms', '1m30s' -> seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def flag_values(args):
    """['--a=1', '--b', '2', '--c'] -> {'--a': '1', '--b': '2', '--c': None}"""
    values = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise AssertionError(f"unexpected argument {arg!r}")
        if "=" in arg:
            name, value = arg.split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            name, value = arg, args[i + 1]
            i += 1
        else:
            name, value = arg, None
        if name in values:
            raise AssertionError(f"{name} given twice")
        values[name] = value
        i += 1
    return values


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def quantity_mib(quantity: str) -> float:
    suffixes = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "k": 1e3 / 2**20, "M": 1e6 / 2**20,
                "G": 1e9 / 2**20}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(quantity))
    if not match or (match.group(2) and match.group(2) not in suffixes):
        raise ValueError(f"unsupported memory quantity {quantity!r}")
    return float(match.group(1)) * (suffixes[match.group(2)] if match.group(2) else 1 / 2**20)


def labels_match(selector: dict, labels: dict) -> bool:
    match_labels = selector.get("matchLabels", selector) or {}
    if "matchExpressions" in selector:
        raise AssertionError("matchExpressions are not evaluated by this test")
    return all(labels.get(k) == v for k, v in match_labels.items())


def render(directory: Path):
    result = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True,
                            text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    unexpected = [line for line in result.stderr.splitlines()
                  if line.strip() and not ALLOWED_KUSTOMIZE_WARNINGS.match(line)]
    if unexpected:
        raise AssertionError(f"kubectl kustomize {directory} printed:\n" + "\n".join(unexpected))
    return result.stdout


class RenderedManifests:
    """Checks shared by the base and every overlay; subclasses set DIRECTORY."""

    DIRECTORY: Path = None
    EXPECTED_NAMESPACE = None

    @classmethod
    def setUpClass(cls):
        cls.text = render(cls.DIRECTORY)
        cls.objects = [o for o in yaml.safe_load_all(cls.text) if o]
        cls.by_kind = {}
        for obj in cls.objects:
            cls.by_kind.setdefault(obj["kind"], []).append(obj)

    def one(self, kind):
        found = self.by_kind.get(kind, [])
        self.assertEqual(len(found), 1, f"expected one {kind}, found {len(found)}")
        return found[0]

    @property
    def statefulset(self):
        return self.one("StatefulSet")

    @property
    def pod(self):
        return self.statefulset["spec"]["template"]

    @property
    def container(self):
        containers = self.pod["spec"]["containers"]
        self.assertEqual([c["name"] for c in containers], ["wsvisor"])
        return containers[0]

    @property
    def args(self):
        self.assertNotIn("command", self.container, "command would replace the image's ENTRYPOINT")
        return flag_values(self.container["args"])

    def named_ports(self):
        return {p["name"]: p for p in self.container["ports"]}

    # --- schemas -----------------------------------------------------------------------------

    def test_objects_match_the_kubernetes_and_operator_schemas(self):
        node = require_tool("node", "Debian package nodejs")
        if not (HERE / "node_modules" / "kubernetes-models").is_dir():
            self.fail("tests/deploy/node_modules is missing: run 'npm ci --prefix tests/deploy'")
        result = subprocess.run([node, str(VALIDATOR), "-"], input=self.text, capture_output=True,
                                text=True, timeout=120)
        self.assertIn(result.returncode, (0, 1), result.stderr)
        reports = [json.loads(line) for line in result.stdout.splitlines()]
        self.assertEqual(len(reports), len(self.objects))
        problems = {f"{r['kind']}/{r['name']}": r["errors"] for r in reports if r["errors"]}
        self.assertEqual(problems, {})
        self.assertEqual(result.returncode, 0)

    def test_expected_objects(self):
        kinds = sorted(o["kind"] for o in self.objects)
        expected = ["ConfigMap", "NetworkPolicy", "PodDisruptionBudget", "PrometheusRule",
                    "Service", "Service", "ServiceAccount", "ServiceMonitor", "StatefulSet"]
        if self.EXPECTED_NAMESPACE:
            expected.append("Namespace")
        self.assertEqual(kinds, sorted(expected))
        for obj in self.objects:
            if obj["kind"] != "Namespace":
                self.assertEqual(obj["metadata"].get("namespace"), self.EXPECTED_NAMESPACE,
                                 f"{obj['kind']}/{obj['metadata']['name']}")

    # --- the workload ------------------------------------------------------------------------

    def test_single_replica_with_its_store_on_a_claim(self):
        spec = self.statefulset["spec"]
        self.assertEqual(spec.get("replicas"), 1, "several replicas need a shared store")
        claims = {c["metadata"]["name"]: c for c in spec["volumeClaimTemplates"]}
        mounts = {m["mountPath"]: m["name"] for m in self.container["volumeMounts"]}
        data_dir = self.args["--data-dir"]
        self.assertIn(data_dir, mounts, "--data-dir must be a mounted volume")
        claim = claims.get(mounts[data_dir])
        self.assertIsNotNone(claim, f"{data_dir} must be on a volumeClaimTemplate")
        self.assertEqual(claim["spec"]["accessModes"], ["ReadWriteOnce"])
        self.assertIn("storage", claim["spec"]["resources"]["requests"])
        self.assertTrue(labels_match(spec["selector"], self.pod["metadata"]["labels"]))

    def test_named_ports_match_the_listen_flags(self):
        ports = self.named_ports()
        self.assertEqual(ports["grpc"]["containerPort"], 50051)
        self.assertEqual(ports["metrics"]["containerPort"], 9464)
        self.assertEqual(port_of(self.args["--listen"]), ports["grpc"]["containerPort"])
        self.assertEqual(port_of(self.args["--metrics-listen"]), ports["metrics"]["containerPort"])
        # 0.0.0.0: the kubelet's probes and the Service reach the pod IP, not loopback.
        self.assertTrue(self.args["--listen"].startswith("0.0.0.0:"))
        self.assertTrue(self.args["--metrics-listen"].startswith("0.0.0.0:"))

    def test_probes_use_grpc_health(self):
        grpc_port = self.named_ports()["grpc"]["containerPort"]
        for name in ("startupProbe", "readinessProbe", "livenessProbe"):
            with self.subTest(probe=name):
                probe = self.container.get(name)
                self.assertIsNotNone(probe, f"{name} missing")
                self.assertEqual(set(probe) & {"httpGet", "tcpSocket", "exec"}, set())
                self.assertEqual(probe["grpc"]["port"], grpc_port)
                self.assertEqual(probe["grpc"].get("service", ""), "")
        startup = self.container["startupProbe"]
        budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
        self.assertGreaterEqual(budget, 120, "the startup probe must outlast a large restore")

    def test_termination_grace_exceeds_shutdown_grace(self):
        self.assertIn("--shutdown-grace", self.args, "pass --shutdown-grace explicitly")
        grace = parse_duration(self.args["--shutdown-grace"])
        period = self.pod["spec"]["terminationGracePeriodSeconds"]
        self.assertGreater(period, grace)
        # wsvisor stops gRPC (up to 1 s) and closes the store after the upstream grace.
        self.assertGreaterEqual(period - grace, 5, "leave time after --shutdown-grace")

    def test_pod_is_hardened(self):
        pod_spec = self.pod["spec"]
        pod_security = pod_spec["securityContext"]
        self.assertIs(pod_security.get("runAsNonRoot"), True)
        self.assertIsInstance(pod_security.get("runAsUser"), int)
        self.assertNotEqual(pod_security["runAsUser"], 0)
        self.assertIsInstance(pod_security.get("fsGroup"), int)
        self.assertEqual(pod_security.get("seccompProfile"), {"type": "RuntimeDefault"})
        self.assertIs(pod_spec.get("automountServiceAccountToken"), False)
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            self.assertFalse(pod_spec.get(host, False), host)

        security = self.container["securityContext"]
        self.assertIs(security.get("readOnlyRootFilesystem"), True)
        self.assertIs(security.get("allowPrivilegeEscalation"), False)
        self.assertEqual(security.get("capabilities", {}).get("drop"), ["ALL"])
        self.assertNotIn("add", security.get("capabilities", {}))
        self.assertFalse(security.get("privileged", False))
        self.assertNotEqual(security.get("runAsUser", pod_security["runAsUser"]), 0)

        # Pod Security "restricted": only these volume types, no host ports.
        for volume in pod_spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            self.assertLessEqual(kinds, RESTRICTED_VOLUME_TYPES, volume["name"])
        for port in self.container["ports"]:
            self.assertNotIn("hostPort", port)

        account = self.one("ServiceAccount")
        self.assertEqual(pod_spec.get("serviceAccountName"), account["metadata"]["name"])
        self.assertIs(account.get("automountServiceAccountToken"), False)

    def test_user_matches_the_image(self):
        stages = dockerfile_model.parse(DOCKERFILE.read_text())
        user = stages[-1].last("USER").args
        uid, _, gid = user.partition(":")
        pod_security = self.pod["spec"]["securityContext"]
        self.assertEqual(pod_security["runAsUser"], int(uid))
        if gid:
            self.assertEqual(pod_security.get("runAsGroup"), int(gid))
            self.assertEqual(pod_security["fsGroup"], int(gid))

    def test_root_filesystem_is_read_only_so_tmp_is_a_volume(self):
        mounts = {m["mountPath"] for m in self.container["volumeMounts"]}
        self.assertIn("/tmp", mounts, "SQLite writes temporary files to /tmp")

    def test_resources_hold_max_endpoints(self):
        resources = self.container["resources"]
        for part in ("requests", "limits"):
            self.assertIn("memory", resources.get(part, {}), part)
        self.assertIn("cpu", resources["requests"])
        limit = quantity_mib(resources["limits"]["memory"])
        self.assertEqual(quantity_mib(resources["requests"]["memory"]), limit,
                         "memory request = limit: the pod is not first to be evicted")
        max_endpoints = int(self.args.get("--max-endpoints", "100000"))
        needed = IDLE_MIB + max_endpoints * KIB_PER_ENDPOINT / 1024
        self.assertGreaterEqual(limit, needed,
                                f"--max-endpoints={max_endpoints} needs about {needed:.0f} MiB")

    def test_config_file_comes_from_the_configmap(self):
        config_path = self.args.get("--config")
        self.assertIsNotNone(config_path, "--config missing")
        configmap = self.one("ConfigMap")
        volumes = {v["name"]: v for v in self.pod["spec"]["volumes"]}
        mount = next((m for m in self.container["volumeMounts"]
                      if config_path.startswith(m["mountPath"].rstrip("/") + "/")), None)
        self.assertIsNotNone(mount, f"no volume is mounted where --config={config_path} is")
        self.assertTrue(mount.get("readOnly"))
        volume = volumes[mount["name"]]
        self.assertEqual(volume["configMap"]["name"], configmap["metadata"]["name"])
        key = config_path[len(mount["mountPath"].rstrip("/")) + 1:]
        self.assertIn(key, configmap["data"])
        endpoints = yaml.safe_load(configmap["data"][key])
        self.assertIsInstance(endpoints, dict)
        self.assertIsInstance(endpoints.get("endpoints"), list)

    def test_image(self):
        image = self.container["image"]
        self.assertRegex(image, r":[A-Za-z0-9_.-]+$", "pin a tag")
        self.assertFalse(image.endswith(":latest"))

    # --- around the workload -----------------------------------------------------------------

    def services(self):
        return {s["metadata"]["name"]: s for s in self.by_kind["Service"]}

    def test_service_ports(self):
        pod_labels = self.pod["metadata"]["labels"]
        client = self.services()["wsvisor"]
        self.assertTrue(labels_match(client["spec"]["selector"], pod_labels))
        ports = {p["name"]: p for p in client["spec"]["ports"]}
        self.assertEqual(ports["grpc"]["port"], 50051)
        self.assertEqual(ports["grpc"]["targetPort"], "grpc")
        self.assertEqual(ports["grpc"].get("appProtocol"), "grpc")
        self.assertEqual(ports["metrics"]["port"], 9464)
        self.assertEqual(ports["metrics"]["targetPort"], "metrics")
        governing = self.services()[self.statefulset["spec"]["serviceName"]]
        self.assertEqual(governing["spec"].get("clusterIP"), "None")
        self.assertTrue(labels_match(governing["spec"]["selector"], pod_labels))

    def test_disruption_budget(self):
        pdb = self.one("PodDisruptionBudget")
        self.assertTrue(labels_match(pdb["spec"]["selector"], self.pod["metadata"]["labels"]))
        replicas = self.statefulset["spec"]["replicas"]
        if "minAvailable" in pdb["spec"]:
            # A budget the pods can never satisfy blocks every node drain.
            self.assertLess(int(pdb["spec"]["minAvailable"]), replicas)
        else:
            self.assertGreaterEqual(int(pdb["spec"]["maxUnavailable"]), 1)

    def test_network_policy(self):
        policy = self.one("NetworkPolicy")["spec"]
        self.assertTrue(labels_match(policy["podSelector"], self.pod["metadata"]["labels"]))
        self.assertEqual(sorted(policy["policyTypes"]), ["Egress", "Ingress"])
        ingress_ports = {p["port"] for rule in policy["ingress"] for p in rule.get("ports", [])}
        self.assertEqual(ingress_ports, {"grpc", "metrics"})
        for rule in policy["ingress"]:
            self.assertTrue(rule.get("from"), "every ingress rule names its clients")
        egress = {(p.get("protocol", "TCP"), p["port"])
                  for rule in policy["egress"] for p in rule.get("ports", [])}
        self.assertLessEqual({("TCP", 443), ("TCP", 80), ("UDP", 53), ("TCP", 53)}, egress)
        upstream_rules = [r for r in policy["egress"]
                          if any(p["port"] == 443 for p in r.get("ports", []))]
        self.assertTrue(all(not r.get("to") for r in upstream_rules),
                        "upstreams are arbitrary hosts: no 'to' on the 443 rule")

    def test_service_monitor_scrapes_one_service_as_job_wsvisor(self):
        monitor = self.one("ServiceMonitor")["spec"]
        endpoint_ports = {e["port"] for e in monitor["endpoints"]}
        self.assertEqual(endpoint_ports, {"metrics"})
        scraped = [s for s in self.by_kind["Service"]
                   if labels_match(monitor["selector"], s["metadata"].get("labels", {}))
                   and any(p["name"] in endpoint_ports for p in s["spec"]["ports"])]
        self.assertEqual(len(scraped), 1, "each pod must be scraped once (duplicate series)")
        # The alert rules select job="wsvisor"; jobLabel names the Service label giving the job.
        job = scraped[0]["metadata"]["labels"].get(monitor.get("jobLabel", ""),
                                                   scraped[0]["metadata"]["name"])
        self.assertEqual(job, "wsvisor")

    def test_prometheus_rule_is_alerts_yml(self):
        rule = self.one("PrometheusRule")
        source = yaml.safe_load(ALERTS.read_text())
        self.assertEqual(rule["spec"]["groups"], source["groups"])

    def test_prometheus_rule_passes_promtool(self):
        promtool = require_tool("promtool", "Debian package prometheus")
        rule = self.one("PrometheusRule")
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as rules:
            yaml.safe_dump({"groups": rule["spec"]["groups"]}, rules, sort_keys=False)
            rules.flush()
            result = subprocess.run([promtool, "check", "rules", rules.name],
                                    capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    # --- wsvisor reads what Kubernetes will give it ------------------------------------------

    def test_wsvisor_starts_with_these_args_and_endpoint_file(self):
        """Runs the real binary with the rendered args, in an empty network namespace (no
        traffic leaves it: upstream dials fail at once), with --data-dir and --config pointed
        at a temporary directory holding the rendered ConfigMap's file."""
        if not WSVISOR_BIN.is_file():
            self.skipTest(f"wsvisor not built at {WSVISOR_BIN}")
        unshare = shutil.which("unshare")
        if not unshare or subprocess.run([unshare, "--net", "true"],
                                         capture_output=True).returncode != 0:
            self.skipTest("cannot create a network namespace (unshare --net needs root)")
        configmap = self.one("ConfigMap")
        mount = {m["name"]: m["mountPath"] for m in self.container["volumeMounts"]}
        config_volume = next(v["name"] for v in self.pod["spec"]["volumes"] if "configMap" in v)
        with tempfile.TemporaryDirectory() as temp:
            config_dir = Path(temp, "config")
            config_dir.mkdir()
            for key, value in configmap["data"].items():
                Path(config_dir, key).write_text(value)
            args = []
            for arg in self.container["args"]:
                if arg.startswith("--data-dir="):
                    arg = f"--data-dir={temp}/data"
                elif arg.startswith("--config="):
                    arg = "--config=" + arg.split("=", 1)[1].replace(
                        mount[config_volume], str(config_dir), 1)
                args.append(arg)
            self.assertNotIn("--data-dir", args, "write flags as --name=value")
            log_path = Path(temp, "wsvisor.log")
            with open(log_path, "w") as log:
                process = subprocess.Popen([unshare, "--net", "--", str(WSVISOR_BIN), *args],
                                           stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if "serving gRPC" in log_path.read_text() or process.poll() is not None:
                        break
                    time.sleep(0.1)
                log_text = log_path.read_text()
                self.assertIsNone(process.poll(), f"wsvisor exited:\n{log_text}")
                self.assertIn("serving gRPC", log_text, log_text)
                wanted = len(yaml.safe_load(configmap["data"][Path(self.args["--config"]).name])
                             ["endpoints"])
                self.assertRegex(log_text, rf"applied: {wanted} added")
            finally:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()


class BaseManifestsTest(RenderedManifests, unittest.TestCase):
    DIRECTORY = KUBERNETES_DIR / "base"
    EXPECTED_NAMESPACE = None


class ExampleOverlayTest(RenderedManifests, unittest.TestCase):
    DIRECTORY = KUBERNETES_DIR / "overlays" / "example"
    EXPECTED_NAMESPACE = "wsvisor"

    def test_overlay_changes_image_and_endpoints(self):
        self.assertTrue(self.container["image"].startswith("registry.example.com/"))
        configmap = self.one("ConfigMap")
        endpoints = yaml.safe_load(configmap["data"]["endpoints.yaml"])["endpoints"]
        self.assertGreater(len(endpoints), 0)

    def test_namespace_enforces_restricted_pod_security(self):
        namespace = self.one("Namespace")
        self.assertEqual(namespace["metadata"]["name"], self.EXPECTED_NAMESPACE)
        labels = namespace["metadata"]["labels"]
        self.assertEqual(labels.get("pod-security.kubernetes.io/enforce"), "restricted")

    def test_operator_objects_carry_the_release_label(self):
        for kind in ("ServiceMonitor", "PrometheusRule"):
            labels = self.one(kind)["metadata"]["labels"]
            self.assertEqual(labels.get("release"), "kube-prometheus-stack", kind)


class SourcesTest(unittest.TestCase):

    def test_yamllint(self):
        yamllint = require_tool("yamllint", "Debian package yamllint")
        result = subprocess.run([yamllint, "--strict", "-c", str(YAMLLINT_CONFIG),
                                 str(KUBERNETES_DIR)], capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_prometheus_rule_is_generated_from_alerts_yml(self):
        result = subprocess.run([sys.executable, str(GENERATOR), "--check"],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_every_source_is_used(self):
        """A manifest left out of kustomization.yaml would silently never be applied."""
        for directory in [KUBERNETES_DIR / "base", *sorted((KUBERNETES_DIR / "overlays").iterdir())]:
            kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
            named = set(kustomization.get("resources", []))
            named |= set(kustomization.get("patchesStrategicMerge", []))
            for generator in kustomization.get("configMapGenerator", []):
                named |= {f.split("=", 1)[-1] for f in generator.get("files", [])}
            present = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
            with self.subTest(directory=directory.name):
                self.assertEqual(present - named, set())


if __name__ == "__main__":
    unittest.main()
