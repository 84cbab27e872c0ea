#!/usr/bin/python3
"""The image of deploy/docker/Dockerfile, built and run for real with podman (rootful).

What is checked, with the real image:
  - it builds from a clean clone of the repository's committed HEAD, with the Dockerfile as it is;
    the image's size is reported, and its user, entrypoint, volume, ports and revision label are
    the documented ones;
  - it runs as the StatefulSet of deploy/kubernetes/base runs it: the same args, a read-only root
    filesystem, the data volume at /var/lib/wsvisor, /tmp as a size-limited tmpfs (the pod's
    emptyDir), the ConfigMap's file read-only, no capabilities, no privilege escalation, the
    memory and CPU limits, terminationGracePeriodSeconds as the stop timeout, and the container
    ports published on 127.0.0.1. It runs as uid/gid 65532 and can write only to the data volume
    and /tmp;
  - grpc.health.v1 answers SERVING through the published port to a probe made as kubelet's gRPC
    probe makes it (a new plaintext connection, service "", the probe's timeout);
  - an endpoint registered through the published gRPC port by a foreign client (Python grpcio)
    reaches an upstream on the host and turns HEALTHY; /metrics scraped through the published
    port passes `promtool check metrics`;
  - `podman stop` (SIGTERM) ends it within --shutdown-grace, exit status 0, the upstream seeing
    close code 1001; a new container on the same volume restores the endpoint, which reconnects;
  - `podman kill` (SIGKILL) in the middle of four clients' registrations, updates and
    unregistrations loses no acknowledged change (tests/durability/test_crash_restart.py's model),
    over several kills of containers on one volume.

No registry is reachable here, so the base images debian:12 and debian:12-slim are made with
debootstrap from this machine's apt mirror (base_images.py) and cached. Everything the test makes
lives in a private podman store that is removed at the end, passed or failed: containers,
volumes, images, layers and their mounts. Kept for the next run (under $WSVISOR_CONTAINER_CACHE):
the base tarballs and the ccache directory that the build stage compiles with (mounted at
/root/.cache/ccache, ccache's default for root: the Dockerfile does not change).

Skipped (exit status 77, ctest's SKIP_RETURN_CODE) with the reason on one line when: not root;
podman, buildah, runc or debootstrap is missing (scripts/install-container-tools); the engine
cannot start or cannot store an image here (a chroot whose root is not a mount point: nothing
can be built there, buildah stores layers as podman does); or the engine cannot run a container
here, in which case the image is still built, with buildah alone (chroot isolation), and its size
reported. The line quotes the engine's refusal. A build that fails is a failure, not a skip.

Environment (ctest sets the first two):
  WSVISOR_SOURCE_DIR        the repository (default: two levels above this file)
  WSVISOR_CONTAINER_CACHE   base tarballs, ccache, the engine's store while it runs
                            (default: <source>/build/container-cache)
  WSVISOR_BUILD_JOBS        the image's BUILD_JOBS build argument (default: the Dockerfile's)
Run: /usr/bin/python3 tests/container/test_container_image.py -v   (as root)
"""

import fcntl
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "durability"))
sys.path.insert(0, os.path.join(HERE, os.pardir, "deploy"))

import grpc  # noqa: E402  (Debian python3-grpcio)
import yaml  # noqa: E402  (Debian python3-yaml)

import base_images  # noqa: E402
import test_runtime_libraries  # noqa: E402  (tests/deploy: what a runtime image must not hold)
import wsvisor_proc  # noqa: E402
from test_crash_restart import CrashClient, CrashModel  # noqa: E402
from wsvisor_proc import CALL_TIMEOUT_S, list_all, metric_value, report, wait_until  # noqa: E402

SKIP_EXIT_STATUS = 77
SOURCE_DIR = os.path.abspath(os.environ.get("WSVISOR_SOURCE_DIR")
                             or os.path.join(HERE, os.pardir, os.pardir))
CACHE_DIR = os.path.abspath(os.environ.get("WSVISOR_CONTAINER_CACHE")
                            or os.path.join(SOURCE_DIR, "build", "container-cache"))
BASE_DIR = os.path.join(SOURCE_DIR, "deploy", "kubernetes", "base")
DOCKERFILE = "deploy/docker/Dockerfile"
IMAGE = "localhost/wsvisor-container-test:latest"
# The container's ports (the image's EXPOSE, the StatefulSet's `grpc` and `metrics`).
GRPC_PORT = 50051
METRICS_PORT = 9464
BRIDGE_UPSTREAM = os.path.join(HERE, "bridge_upstream.py")

# Bounds of waits that are not what a test measures: generous, two cores and other jobs beside.
ENGINE_CALL_TIMEOUT_S = 120.0
SERVING_TIMEOUT_S = 60.0
HEALTHY_TIMEOUT_S = 30.0
# The crash runs: containers killed on one volume while four clients change the registry.
KILL_RUNS = 3
KILL_CLIENTS = 4
KILL_DELAY_S = (0.2, 0.8)
# Upper bounds of the image: debian:12-slim is about 80 MB, and the libraries wsvisor needs about
# 40 MB more. A compiler or a -dev package in the runtime stage would go far beyond.
MAX_IMAGE_MB = 200


class Skip(Exception):
    """The test cannot run on this machine; the message says why."""


# ----- the engine ---------------------------------------------------------------------------

def engine_ulimits():
    """The open-files and processes limits for containers: this process's hard limits, and no more
    than podman's own (it holds its processes limit at 32768). Podman's defaults for containers
    (1048576 files, 4194304 processes) are above the fixed hard limits of our machines (20,000
    files), and the sandbox refuses to raise a hard limit even for root, so runc would fail with
    "setrlimit RLIMIT_NOFILE: operation not permitted"."""
    def hard(which, ceiling):
        value = resource.getrlimit(which)[1]
        return ceiling if value == resource.RLIM_INFINITY else min(value, ceiling)
    nofile = hard(resource.RLIMIT_NOFILE, 1048576)
    nproc = hard(resource.RLIMIT_NPROC, 32768)
    return [f"nofile={nofile}:{nofile}", f"nproc={nproc}:{nproc}"]


class Podman:
    """The podman and buildah CLIs on a private store under state_dir: nothing the test makes
    touches the machine's own images and containers, and wipe() removes all of it.

    Settings (containers.conf and storage.conf of our own, read by both tools): runc (see
    scripts/install-container-tools for why not crun), the ulimits above, overlay storage (vfs
    where the kernel cannot mount overlay here)."""

    def __init__(self, state_dir):
        self.state_dir = state_dir
        self.store = os.path.join(state_dir, "store")
        self.env = dict(os.environ,
                        CONTAINERS_CONF=os.path.join(state_dir, "containers.conf"),
                        CONTAINERS_STORAGE_CONF=os.path.join(state_dir, "storage.conf"))
        self.driver = None

    def configure(self, driver):
        self.driver = driver
        os.makedirs(self.store, exist_ok=True)
        ulimits = ", ".join(f'"{u}"' for u in engine_ulimits())
        with open(self.env["CONTAINERS_CONF"], "w", encoding="utf-8") as conf:
            conf.write(f'[containers]\ndefault_ulimits = [{ulimits}]\n'
                       f'[engine]\nruntime = "runc"\ntmp_dir = "{self.store}/tmp"\n')
        with open(self.env["CONTAINERS_STORAGE_CONF"], "w", encoding="utf-8") as conf:
            conf.write(f'[storage]\ndriver = "{driver}"\ngraphroot = "{self.store}/graph"\n'
                       f'runroot = "{self.store}/run"\n')

    def __call__(self, *args, check=True, timeout=ENGINE_CALL_TIMEOUT_S, tool="podman"):
        result = subprocess.run([tool, *args], stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=timeout, env=self.env)
        if check and result.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} failed (exit {result.returncode}):\n"
                                 f"{result.stderr.strip()}")
        return result

    def inspect(self, kind, name):
        return json.loads(self(kind, "inspect", name).stdout)[0]

    def wipe(self):
        """Removes every container, volume, image and layer of the private store, then the store
        itself with whatever a killed earlier run left mounted in it. Always safe."""
        if os.path.exists(self.env["CONTAINERS_STORAGE_CONF"]):
            for args in (("rm", "--all", "--force", "--time", "0"),
                         ("volume", "rm", "--all", "--force"),
                         ("rmi", "--all", "--force")):
                self(*args, check=False)
            self("rm", "--all", "--force", check=False, tool="buildah")
        with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
            mounts = [line.split()[4].encode().decode("unicode_escape") for line in mountinfo]
        for mount_point in sorted((m for m in mounts if m.startswith(self.state_dir + "/")),
                                  key=len, reverse=True):
            subprocess.run(["umount", "--lazy", mount_point], capture_output=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)


class Container:
    """One `podman run -d` of the image; published ports read back with `podman port`."""

    def __init__(self, podman, name, options, args):
        self.podman = podman
        self.name = name
        self.podman("run", "--detach", "--name", name, *options, IMAGE, *args)
        self._channel = None

    def published(self, container_port):
        """'127.0.0.1:PORT' where the engine publishes the container's TCP port."""
        output = self.podman("port", self.name, f"{container_port}/tcp").stdout.strip()
        return output.splitlines()[0]

    def state(self):
        return self.podman.inspect("container", self.name)["State"]

    def logs(self):
        result = self.podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def new_channel(self):
        return grpc.insecure_channel(self.published(GRPC_PORT))

    @property
    def channel(self):
        if self._channel is None:
            self._channel = self.new_channel()
        return self._channel

    def close_channel(self):
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def remove(self):
        self.close_channel()
        self.podman("rm", "--force", "--time", "0", self.name, check=False)


# ----- what the StatefulSet says --------------------------------------------------------------

def parse_duration_s(text):
    units = {"ms": 0.001, "s": 1, "m": 60}
    match = re.fullmatch(r"(\d+)(ms|s|m)", text)
    if not match:
        raise AssertionError(f"not a duration this test reads: {text!r}")
    return int(match.group(1)) * units[match.group(2)]


class PodSpec:
    """The wsvisor container of deploy/kubernetes/base/statefulset.yaml, turned into podman run
    options. Fails on anything in the manifest it does not know how to translate, so that the
    test cannot silently run the container differently from the pod."""

    def __init__(self):
        with open(os.path.join(BASE_DIR, "statefulset.yaml"), encoding="utf-8") as manifest:
            statefulset = yaml.safe_load(manifest)
        with open(os.path.join(BASE_DIR, "kustomization.yaml"), encoding="utf-8") as manifest:
            self.kustomization = yaml.safe_load(manifest)
        self.pod = statefulset["spec"]["template"]["spec"]
        self.container = next(c for c in self.pod["containers"] if c["name"] == "wsvisor")
        self.claims = {t["metadata"]["name"] for t in statefulset["spec"]["volumeClaimTemplates"]}
        self.args = list(self.container["args"])
        flags = dict(a.split("=", 1) for a in self.args if "=" in a)
        self.shutdown_grace_s = parse_duration_s(flags["--shutdown-grace"])
        self.grace_period_s = int(self.pod["terminationGracePeriodSeconds"])
        self.startup_probe = self.container["startupProbe"]

    def configmap_files(self, name):
        generator = next(g for g in self.kustomization["configMapGenerator"] if g["name"] == name)
        return [os.path.join(BASE_DIR, f) for f in generator["files"]]

    def run_options(self, volume, configmap_dir):
        """podman run options for a container with `volume` as its claim and configmap_dir
        holding the ConfigMap's files."""
        security = self.container["securityContext"]
        if not security.get("readOnlyRootFilesystem"):
            raise AssertionError("the StatefulSet's root filesystem is no longer read-only")
        # Kubernetes' readOnlyRootFilesystem adds no tmpfs of its own (podman's --read-only does
        # unless told not to): only the pod's volumes are writable.
        options = ["--read-only", "--read-only-tmpfs=false",
                   f"--stop-timeout={self.grace_period_s}"]
        if security.get("allowPrivilegeEscalation") is False:
            options += ["--security-opt", "no-new-privileges"]
        dropped = security.get("capabilities", {}).get("drop", [])
        options += [f"--cap-drop={c}" for c in dropped]
        if security.get("capabilities", {}).get("add"):
            raise AssertionError("the StatefulSet adds capabilities: translate them here")
        limits = self.container["resources"]["limits"]
        memory = re.fullmatch(r"(\d+)Mi", limits["memory"])
        if not memory:
            raise AssertionError(f"memory limit {limits['memory']!r}: not read by this test")
        cpu = str(limits["cpu"])
        cpus = int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
        options += [f"--memory={memory.group(1)}m", f"--cpus={cpus:g}"]
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        for mount in self.container["volumeMounts"]:
            path = mount["mountPath"]
            source = volumes.get(mount["name"])
            if mount["name"] in self.claims:
                options += ["--volume", f"{volume}:{path}"]
            elif source and "configMap" in source:
                options += ["--volume", f"{configmap_dir}:{path}:ro"]
            elif source and "emptyDir" in source:
                size = source["emptyDir"].get("sizeLimit", "64Mi").replace("Mi", "m")
                options += ["--tmpfs", f"{path}:rw,size={size},mode=1777"]
            else:
                raise AssertionError(f"volume mount {mount['name']}: not translated by this test")
        for port in self.container["ports"]:
            options += ["--publish", f"127.0.0.1::{port['containerPort']}/{port['protocol']}"]
        return options


# ----- the test -----------------------------------------------------------------------------

class BridgeUpstream(wsvisor_proc.RecordingUpstream):
    """wsvisor_proc.RecordingUpstream (every connection's open, path, close and close code),
    listening on the container network's gateway: bridge_upstream.py."""

    def __init__(self, address):  # pylint: disable=super-init-not-called
        wsvisor_proc._UpstreamProcess.__init__(  # noqa: SLF001  (its argv is the only change)
            self, [wsvisor_proc.SYSTEM_PYTHON, BRIDGE_UPSTREAM, address])
        self.address = address
        self._lock = threading.Lock()
        self._connections = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def url(self, path=""):
        return f"ws://{self.address}:{self.port}/{path}"


def kubelet_grpc_probe(address, timeout_s):
    """One probe as kubelet's gRPC probe makes it: a new plaintext connection, the health
    service's Check for service "", the probe's timeout. Returns the status, or None when the
    call fails (kubelet counts that as a failed probe)."""
    stubs = wsvisor_proc.load_stubs(wsvisor_proc.Paths.locate())
    channel = grpc.insecure_channel(address, options=[("grpc.primary_user_agent",
                                                       "kube-probe/1.27")])
    try:
        return stubs.health_grpc.HealthStub(channel).Check(
            stubs.health_pb.HealthCheckRequest(service=""), timeout=timeout_s).status
    except grpc.RpcError:
        return None
    finally:
        channel.close()


def elapsed(since):
    return time.monotonic() - since


def last_line(text):
    """The engine's error, on one line: the last line of its stderr (warnings come first)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


class ContainerImageTest(unittest.TestCase):
    """Builds the image once (setUpClass); each test runs its own containers on its own volume."""

    maxDiff = None
    podman = None

    @classmethod
    def setUpClass(cls):
        started = time.monotonic()
        try:
            cls._set_up_engine()
        except Skip as reason:
            raise unittest.SkipTest(str(reason)) from None
        report(f"set-up (base images, clone, build, checks of the image) took "
               f"{elapsed(started):.0f} s")

    @classmethod
    def _set_up_engine(cls):
        if os.geteuid() != 0:
            raise Skip("needs root: rootful podman, and debootstrap for the base images")
        for tool in ("podman", "buildah", "runc", "debootstrap"):
            if shutil.which(tool) is None:
                raise Skip(f"{tool} is not installed (scripts/install-container-tools installs "
                           "the container tools)")
        for tool in ("promtool", wsvisor_proc.PROTOC, wsvisor_proc.GRPC_PYTHON_PLUGIN):
            if shutil.which(tool) is None:
                raise AssertionError(f"{tool} is missing: scripts/install-deps installs it")
        os.makedirs(CACHE_DIR, exist_ok=True)
        # One run at a time per cache: a second one would wipe the first one's store.
        lock = open(os.path.join(CACHE_DIR, "lock"), "w", encoding="utf-8")
        cls.addClassCleanup(lock.close)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AssertionError(f"another container test is running with {CACHE_DIR}") from None

        cls.podman = Podman(os.path.join(CACHE_DIR, "engine"))
        cls.podman.wipe()  # what a killed earlier run may have left
        cls.addClassCleanup(cls.podman.wipe)
        cls.podman.configure("overlay")
        if cls.podman("info", check=False).returncode != 0:
            cls.podman.configure("vfs")  # no overlay mounts in this sandbox
            info = cls.podman("info", check=False)
            if info.returncode != 0:
                raise Skip(f"podman cannot start here: {last_line(info.stderr)}")
        report(f"engine: {cls.podman('--version').stdout.strip()} with runc, "
               f"{cls.podman.driver} storage in {cls.podman.store}, containers' ulimits "
               f"{' '.join(engine_ulimits())}")
        cls.work_dir = tempfile.mkdtemp(prefix="wsvisor-container-")
        cls.addClassCleanup(shutil.rmtree, cls.work_dir, ignore_errors=True)

        refusal = cls._storage_refusal()
        if refusal is not None:
            raise Skip(refusal)

        step = time.monotonic()
        base_images.import_images(["podman"], CACHE_DIR, report=report, env=cls.podman.env)
        report(f"base images ready in {elapsed(step):.0f} s")

        # The engine makes its bridge when the first container starts: note whether it was there.
        network = cls.podman.inspect("network", "podman")
        cls.gateway = network["subnets"][0]["gateway"]
        cls.bridge = network["network_interface"]
        cls.bridge_existed = os.path.exists(f"/sys/class/net/{cls.bridge}")
        cls.addClassCleanup(cls._remove_bridge)
        refusal = cls._engine_refusal()
        context, vcs_ref = cls._clean_clone()
        cls.vcs_ref = vcs_ref
        cls._build(context, vcs_ref, buildah_only=refusal is not None)
        cls._report_image()
        if refusal is not None:
            raise Skip(refusal)
        cls.stubs = wsvisor_proc.load_stubs(wsvisor_proc.Paths.locate())
        cls.pb = cls.stubs.pb
        cls.pod = PodSpec()

    @classmethod
    def _storage_refusal(cls):
        """None if the engine can store an image here (import a one-file layer); else why not, as
        the engine said it. Where it cannot, buildah cannot build either: it stores the base
        images and its layers with the same library. A chroot whose root directory is not a
        mount point is such a place: the engine applies a layer in a mount namespace of its own
        where it makes "/" private, and the kernel refuses that for a directory."""
        layer_dir = tempfile.mkdtemp(prefix="probe-layer-", dir=cls.work_dir)
        with open(os.path.join(layer_dir, "probe"), "w", encoding="utf-8") as probe:
            probe.write("probe\n")
        layer = os.path.join(cls.work_dir, "probe-layer.tar")
        subprocess.run(["tar", "-C", layer_dir, "-cf", layer, "probe"], check=True)
        result = cls.podman("import", layer, "localhost/wsvisor-storage-probe:latest",
                            check=False)
        if result.returncode != 0:
            return (f"podman cannot store an image here, so neither podman nor buildah can "
                    f"build one: podman import: {last_line(result.stderr)}")
        cls.podman("rmi", "localhost/wsvisor-storage-probe:latest")
        return None

    @classmethod
    def _engine_refusal(cls):
        """None if podman runs a container here with a published port; else why not, as the
        engine said it."""
        for what, options in (("run a container", ["--network", "none"]),
                              ("publish a port", ["--publish", "127.0.0.1::9"])):
            result = cls.podman("run", "--rm", "--pull=never", *options, base_images.SLIM_IMAGE,
                                "true", check=False)
            if result.returncode != 0:
                return f"podman cannot {what} here: {last_line(result.stderr)}"
        return None

    @classmethod
    def _clean_clone(cls):
        """A clone of the repository's committed HEAD (the build context), and its short hash."""
        context = os.path.join(cls.work_dir, "src")
        if subprocess.run(["git", "-C", SOURCE_DIR, "rev-parse", "--git-dir"],
                          capture_output=True).returncode != 0:
            raise AssertionError(f"{SOURCE_DIR} is not a git checkout: the test builds a clean "
                                 "clone of it")
        subprocess.run(["git", "clone", "--quiet", SOURCE_DIR, context], check=True,
                       capture_output=True, timeout=300)
        vcs_ref = subprocess.run(["git", "-C", context, "rev-parse", "--short=12", "HEAD"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", SOURCE_DIR, "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True).stdout
        report(f"build context: a clean clone of {vcs_ref}"
               + (" (uncommitted changes of the work tree are not in it)" if dirty else ""))
        return context, vcs_ref

    @classmethod
    def _build(cls, context, vcs_ref, buildah_only):
        """Builds the image; each step's start goes to the test's output with its time."""
        ccache_dir = os.path.join(CACHE_DIR, "ccache")
        os.makedirs(ccache_dir, exist_ok=True)
        arguments = ["--pull=never", "--file", DOCKERFILE, "--tag", IMAGE,
                     "--build-arg", f"VCS_REF={vcs_ref}",
                     "--build-arg", f"CREATED={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
                     # The build stage compiles as root, whose ccache directory is this one.
                     "--volume", f"{ccache_dir}:/root/.cache/ccache"]
        if os.environ.get("WSVISOR_BUILD_JOBS"):
            arguments += ["--build-arg", f"BUILD_JOBS={os.environ['WSVISOR_BUILD_JOBS']}"]
        if buildah_only:
            command = ["buildah", "bud", "--isolation", "chroot", *arguments, context]
        else:
            command = ["podman", "build", *arguments, context]
        log_path = os.path.join(CACHE_DIR, "build.log")
        report(f"building: {' '.join(command[:2])} ... (log: {log_path})")
        started = time.monotonic()
        with open(log_path, "w", encoding="utf-8") as log, subprocess.Popen(
                ["nice", "-n", "10", *command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, env=cls.podman.env) as process:
            try:
                for line in process.stdout:
                    log.write(line)
                    if re.match(r"(\[\d+/\d+\] )?STEP \d+/\d+: (FROM|RUN|COPY) ", line):
                        report(f"[{elapsed(started):4.0f} s] {line.strip()[:110]}")
                status = process.wait()
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        if status != 0:
            with open(log_path, encoding="utf-8") as log:
                tail = log.readlines()[-60:]
            raise AssertionError(f"the image build failed (exit {status}); last lines of "
                                 f"{log_path}:\n{''.join(tail)}")
        cls.build_seconds = elapsed(started)
        report(f"image built in {cls.build_seconds:.0f} s")

    @classmethod
    def _report_image(cls):
        image = cls.podman.inspect("image", IMAGE)
        base = cls.podman.inspect("image", base_images.SLIM_IMAGE)
        cls.image = image
        report(f"image size: {image['Size'] / 1e6:.1f} MB ({len(image['RootFS']['Layers'])} "
               f"layers; debian:12-slim {base['Size'] / 1e6:.1f} MB, "
               f"+{(image['Size'] - base['Size']) / 1e6:.1f} MB on it)")

    @classmethod
    def _remove_bridge(cls):
        """The engine made the bridge for our containers: remove it unless it was there before
        or something else is attached to it now."""
        ports = f"/sys/class/net/{cls.bridge}/brif"
        if not cls.bridge_existed and os.path.isdir(ports) and not os.listdir(ports):
            subprocess.run(["ip", "link", "delete", cls.bridge], capture_output=True)

    # -- helpers

    def setUp(self):
        self._containers = []
        self.configmap_dir = tempfile.mkdtemp(prefix="configmap-", dir=self.work_dir)
        os.chmod(self.configmap_dir, 0o755)  # the ConfigMap's files: readable by uid 65532
        for path in self.pod.configmap_files("wsvisor-endpoints"):
            target = os.path.join(self.configmap_dir, os.path.basename(path))
            shutil.copyfile(path, target)
            os.chmod(target, 0o644)

    def run(self, result=None):
        # On a failure, print the logs of this test's containers (collected by the cleanups).
        result = result if result is not None else self.defaultTestResult()
        problems_before = len(result.failures) + len(result.errors)
        self._logs = []
        outcome = super().run(result)
        if len(result.failures) + len(result.errors) > problems_before:
            for name, log in self._logs:
                sys.stderr.write(f"----- log of container {name} (last 20000 bytes) -----\n"
                                 f"{log[-20000:]}----- end -----\n")
        return outcome

    def volume(self, name):
        self.podman("volume", "create", name)
        self.addCleanup(self.podman, "volume", "rm", "--force", name, check=False)
        return name

    def upstream(self):
        upstream = BridgeUpstream(self.gateway)
        self.addCleanup(upstream.cleanup)
        return upstream

    def start(self, volume):
        """A container run as the StatefulSet runs it, on `volume`; returns once the kubelet-like
        startup probe answers SERVING through the published port."""
        name = f"wsvisor-test-{len(self._containers) + 1}-{os.getpid()}"
        started = time.monotonic()
        container = Container(self.podman, name, self.pod.run_options(volume, self.configmap_dir),
                              self.pod.args)
        self._containers.append(container)
        self.addCleanup(container.remove)
        self.addCleanup(lambda: self._logs.append((name, container.logs())))
        probe = self.pod.startup_probe
        address = container.published(probe["grpc"]["port"])

        def serving():
            if not container.state()["Running"]:
                raise AssertionError(f"container {name} exited before serving: "
                                     f"{container.state()}\n{container.logs()}")
            return kubelet_grpc_probe(address, probe["timeoutSeconds"]) == \
                self.stubs.health_pb.HealthCheckResponse.SERVING
        # Each poll runs `podman inspect`: a slower poll than the default 20 ms.
        wait_until(serving, SERVING_TIMEOUT_S, f"{name} to answer the startup probe with SERVING",
                   interval_s=0.2)
        report(f"{name}: SERVING to the kubelet-like probe on {address} (published from "
               f":{probe['grpc']['port']}) {elapsed(started):.1f} s after podman run")
        return container

    def supervisor(self, container):
        return self.stubs.pb_grpc.SupervisorStub(container.channel)

    def wait_healthy(self, container, endpoint_id):
        supervisor = self.supervisor(container)

        def healthy():
            return supervisor.GetEndpoint(self.pb.GetEndpointRequest(id=endpoint_id),
                                          timeout=CALL_TIMEOUT_S).endpoint.status.health == \
                self.pb.HEALTH_HEALTHY
        wait_until(healthy, HEALTHY_TIMEOUT_S, f"{endpoint_id} to turn HEALTHY")

    def stop(self, container):
        """`podman stop`: SIGTERM, then SIGKILL after the stop timeout (the StatefulSet's
        terminationGracePeriodSeconds). Returns the seconds it took and the exit status."""
        started = time.monotonic()
        self.podman("stop", container.name, timeout=self.pod.grace_period_s + 30)
        took = elapsed(started)
        container.close_channel()
        return took, container.state()["ExitCode"]

    # -- the image

    def test_image_is_the_documented_one(self):
        config = self.image["Config"]
        pod_security = self.pod.pod["securityContext"]
        self.assertEqual(config["User"],
                         f"{pod_security['runAsUser']}:{pod_security['runAsGroup']}")
        self.assertEqual(config["Entrypoint"], ["/usr/local/bin/wsvisor"])
        self.assertEqual(set(config["Volumes"]), {"/var/lib/wsvisor"})
        self.assertEqual(set(config["ExposedPorts"]),
                         {f"{p['containerPort']}/tcp" for p in self.pod.container["ports"]})
        self.assertEqual(config["Labels"]["org.opencontainers.image.revision"], self.vcs_ref)
        self.assertLess(self.image["Size"] / 1e6, MAX_IMAGE_MB)
        # The packages the runtime stage added to debian:12-slim, as dpkg in the image knows them:
        # wsvisor's libraries, no toolchain and no -dev package.
        added = self.packages(IMAGE) - self.packages(base_images.SLIM_IMAGE)
        self.assertIn("libgrpc++1.51", added)
        self.assertEqual(sorted(p for p in added
                                if test_runtime_libraries.BUILD_ONLY_PACKAGES.search(p)), [])
        report(f"the runtime stage added {len(added)} packages to debian:12-slim")

    def packages(self, image):
        return set(self.podman("run", "--rm", "--entrypoint", "dpkg-query", image, "--show",
                               "--showformat=${Package}\\n").stdout.split())

    # -- a pod's life: serve, stop, start again on the same volume

    def test_serves_stops_and_restores_like_the_statefulset_pod(self):
        upstream = self.upstream()
        volume = self.volume(f"wsvisor-data-a-{os.getpid()}")
        first = self.start(volume)
        self.check_identity_and_filesystem(first, volume)

        # A foreign client registers an endpoint through the published port.
        spec = self.pb.EndpointSpec(id="orders", url=upstream.url("orders"),
                                    labels={"team": "red"})
        spec.heartbeat.interval.FromMilliseconds(500)
        response = self.supervisor(first).RegisterEndpoint(
            self.pb.RegisterEndpointRequest(spec=spec), timeout=CALL_TIMEOUT_S)
        self.assertTrue(response.created)
        started = time.monotonic()
        self.wait_healthy(first, "orders")
        report(f"orders ({spec.url}, through {first.published(GRPC_PORT)}): HEALTHY "
               f"{elapsed(started):.2f} s after RegisterEndpoint answered")
        # The upstream's own lines are read by a thread: wait for them rather than race it.
        wait_until(lambda: len(upstream.open_connections("/orders")) == 1, CALL_TIMEOUT_S,
                   "the upstream to report the connection of orders")

        metrics_address = first.published(METRICS_PORT)
        with urllib.request.urlopen(f"http://{metrics_address}/metrics",
                                    timeout=CALL_TIMEOUT_S) as page:
            metrics = page.read().decode("utf-8")
        check = subprocess.run(["promtool", "check", "metrics"], input=metrics,
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(check.returncode, 0, f"promtool check metrics:\n{check.stdout}"
                         f"{check.stderr}")
        self.assertEqual(metric_value(metrics, "wsvisor_endpoint_up", {"endpoint": "orders"}), 1)
        self.assertEqual(metric_value(metrics, "wsvisor_endpoints", {"health": "healthy"}), 1)
        self.assertRegex(metrics, rf'wsvisor_build_info{{[^}}]*revision="{self.vcs_ref}"')
        report(f"/metrics through {metrics_address}: {len(metrics.splitlines())} lines, "
               "promtool check metrics clean")

        took, status = self.stop(first)
        report(f"podman stop: exited with {status} after {took:.2f} s (--shutdown-grace "
               f"{self.pod.shutdown_grace_s:g} s, stop timeout {self.pod.grace_period_s} s)")
        self.assertEqual(status, 0, "wsvisor should exit 0 on SIGTERM, not be killed")
        self.assertLess(took, self.pod.shutdown_grace_s)
        closed = wait_until(lambda: [c for c in upstream.connections("/orders") if c.closed],
                            CALL_TIMEOUT_S, "the upstream to see the connection closed")
        self.assertEqual([c.close_code for c in closed], [1001])
        stopped_at = time.monotonic()

        second = self.start(volume)
        endpoint = self.supervisor(second).GetEndpoint(
            self.pb.GetEndpointRequest(id="orders"), timeout=CALL_TIMEOUT_S).endpoint
        self.assertEqual((endpoint.spec.url, dict(endpoint.spec.labels), endpoint.generation,
                          endpoint.spec.heartbeat.interval.ToMilliseconds()),
                         (spec.url, {"team": "red"}, 1, 500))
        self.wait_healthy(second, "orders")
        wait_until(lambda: len(upstream.connections("/orders", opened_after=stopped_at)) == 1,
                   CALL_TIMEOUT_S, "the upstream to report the new connection of orders")
        report("a new container on the same volume restored orders; it reconnected, HEALTHY")
        took, status = self.stop(second)
        self.assertEqual(status, 0)

    def check_identity_and_filesystem(self, container, volume):
        pid = container.state()["Pid"]
        with open(f"/proc/{pid}/status", encoding="utf-8") as status_file:
            status = dict(line.split(":", 1) for line in status_file)
        uid, gid = self.image["Config"]["User"].split(":")
        self.assertEqual(status["Uid"].split(), [uid] * 4)
        self.assertEqual(status["Gid"].split(), [gid] * 4)
        self.assertEqual(int(status["CapEff"], 16), 0)
        self.assertEqual(status["NoNewPrivs"].strip(), "1")
        # Writable mounts, apart from the kernel's own (/proc, /dev, /sys and the like): the data
        # volume and /tmp. The root filesystem is read-only.
        writable = set()
        with open(f"/proc/{pid}/mountinfo", encoding="utf-8") as mountinfo:
            for line in mountinfo:
                fields = line.split()
                mount_point, options = fields[4], fields[5].split(",")
                fs_type = fields[fields.index("-") + 1]
                if mount_point == "/":
                    self.assertIn("ro", options, f"root filesystem: {line}")
                if "rw" in options and fs_type not in ("proc", "sysfs", "devpts", "mqueue",
                                                      "cgroup", "cgroup2") \
                        and not mount_point.startswith(("/dev", "/proc", "/sys")):
                    writable.add(mount_point)
        self.assertEqual(writable, {"/var/lib/wsvisor", "/tmp"})
        # What a write by the container's user gets where: elsewhere than in those two, the
        # read-only filesystem refuses it (before any permission is looked at).
        probe = self.podman("exec", container.name, "sh", "-c",
                            'for d in / /etc /usr/local/bin /var/lib/wsvisor /tmp; do '
                            'if e=$(touch "$d/.write-probe" 2>&1); then echo "$d: written"; '
                            'rm "$d/.write-probe"; else echo "$d: ${e##*: }"; fi; done')
        self.assertEqual(probe.stdout.splitlines(),
                         ["/: Read-only file system", "/etc: Read-only file system",
                          "/usr/local/bin: Read-only file system", "/var/lib/wsvisor: written",
                          "/tmp: written"])
        # The store is on the volume, owned by the container's user.
        mountpoint = self.podman.inspect("volume", volume)["Mountpoint"]
        store = os.stat(os.path.join(mountpoint, "wsvisor.db"))
        self.assertEqual((store.st_uid, store.st_gid), (int(uid), int(gid)))
        report(f"{container.name}: uid/gid {uid}/{gid}, no capabilities, no new privileges; "
               "read-only root, writable only /var/lib/wsvisor (the volume) and /tmp")

    # -- SIGKILL

    def test_sigkill_loses_nothing_acknowledged(self):
        upstream = self.upstream()
        volume = self.volume(f"wsvisor-data-b-{os.getpid()}")
        seed = int(os.environ.get("WSVISOR_CRASH_SEED") or time.time_ns())
        rng = random.Random(seed)
        model = CrashModel()
        counters = dict.fromkeys(("registered", "unregistered", "updated", "in_flight", "lost",
                                  "resurrected", "wrong_spec", "phantom"), 0)
        problems = []
        container = self.start(volume)
        # A sentinel on the host's upstream: its connection shows how the kill looks from there.
        sentinel = self.pb.EndpointSpec(id="sentinel", url=upstream.url("sentinel"))
        self.supervisor(container).RegisterEndpoint(
            self.pb.RegisterEndpointRequest(spec=sentinel), timeout=CALL_TIMEOUT_S)
        self.wait_healthy(container, "sentinel")
        model.possible["sentinel"] = {(sentinel.url, (), 1)}

        for run in range(KILL_RUNS):
            # Each kill must drop a live connection of the sentinel.
            self.wait_healthy(container, "sentinel")
            lock = threading.Lock()
            # Refused at once inside the container (its own loopback): wsvisor stays idle.
            clients = [CrashClient(self, container, model, lock, run, index,
                                   lambda endpoint_id: f"ws://127.0.0.1:9/{endpoint_id}",
                                   random.Random(rng.random()))
                       for index in range(KILL_CLIENTS)]
            for client in clients:
                client.start()
            time.sleep(rng.uniform(*KILL_DELAY_S))  # the random moment of the crash
            killed_at = time.monotonic()
            self.podman("kill", "--signal", "KILL", container.name)
            for client in clients:
                client.join(timeout=CALL_TIMEOUT_S + 5)
                self.assertFalse(client.is_alive(), "a client did not notice the kill")
                self.assertEqual(client.unexpected, [])
                self.assertIsNotNone(client.error, "a client stopped without an error")
                self.assertGreaterEqual(client.error[0], killed_at,
                                        f"a call failed before the kill: {client.error[1:]}")
                for key, value in client.counters.items():
                    counters[key] += value
            with lock:
                counters["in_flight"] += sum(len(s) > 1 for s in model.possible.values())
            wait_until(lambda: not container.state()["Running"], CALL_TIMEOUT_S,
                       "the killed container to stop")
            self.assertEqual(container.state()["ExitCode"], 128 + signal.SIGKILL)
            container.close_channel()

            container = self.start(volume)
            observed = {e.spec.id: (e.spec.url, tuple(sorted(e.spec.labels.items())), e.generation)
                        for e in list_all(self.supervisor(container), self.pb, page_size=97)}
            problems.extend(f"run {run}: {p}" for p in model.check(observed, counters))

        report(f"podman kill: {KILL_RUNS} containers killed by SIGKILL {KILL_DELAY_S[0]}-"
               f"{KILL_DELAY_S[1]} s into {KILL_CLIENTS} clients' calls "
               f"(WSVISOR_CRASH_SEED={seed})")
        report(f"acknowledged: {counters['registered']} registrations, "
               f"{counters['unregistered']} unregistrations, {counters['updated']} updates; "
               f"{counters['in_flight']} calls in flight at a kill; lost {counters['lost']}, "
               f"resurrected {counters['resurrected']}, wrong spec {counters['wrong_spec']}, "
               f"phantom {counters['phantom']}")
        self.assertEqual(problems[:20], [], f"{len(problems)} problems (first 20 shown)")
        self.assertGreater(counters["registered"], KILL_RUNS, "the clients barely ran")
        # From the upstream: each kill dropped the sentinel's connection without a close frame,
        # and the last container reconnected it.
        self.wait_healthy(container, "sentinel")
        wait_until(lambda: len(upstream.connections("/sentinel")) == KILL_RUNS + 1
                   and len(upstream.open_connections("/sentinel")) == 1, CALL_TIMEOUT_S,
                   f"the upstream to report {KILL_RUNS + 1} sentinel connections, one open")
        codes = [c.close_code for c in upstream.connections("/sentinel") if c.closed]
        self.assertEqual(codes, [1006] * KILL_RUNS)


def main():
    program = unittest.main(exit=False)
    result = program.result
    if not result.wasSuccessful():
        sys.exit(1)
    if result.skipped and result.testsRun <= len(result.skipped):
        for _, reason in result.skipped:
            print(f"SKIP: the container image test did not run: {reason}", flush=True)
        sys.exit(SKIP_EXIT_STATUS)


if __name__ == "__main__":
    main()
