#!/usr/bin/python3
"""The runtime stage of deploy/docker/Dockerfile has every shared library the binaries load.

No Docker engine runs here, so the image is never built in CI. Instead: the build stage and this
machine are both Debian 12 with the same packages, so `ldd` of the binaries built here, mapped to
Debian packages with `dpkg -S`, is the list the runtime stage must install. The test fails when a
new library is linked and the Dockerfile was not updated (and when the Dockerfile installs a
package that no binary needs any more).

Environment: WSVISOR_BIN, WSVISORCTL_BIN (default build/wsvisor, build/wsvisorctl),
WSVISOR_SOURCE_DIR (default: the repository holding this file).
Run: /usr/bin/python3 -m unittest tests/deploy/test_runtime_libraries.py
"""

import os
import re
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dockerfile_model  # noqa: E402

SOURCE_DIR = Path(os.environ.get("WSVISOR_SOURCE_DIR", Path(__file__).resolve().parents[2]))
DOCKERFILE = SOURCE_DIR / "deploy" / "docker" / "Dockerfile"
BINARIES = {
    "wsvisor": Path(os.environ.get("WSVISOR_BIN", SOURCE_DIR / "build" / "wsvisor")),
    "wsvisorctl": Path(os.environ.get("WSVISORCTL_BIN", SOURCE_DIR / "build" / "wsvisorctl")),
}

# Packages every debian:12-slim image already has, so the runtime stage need not install them.
# None is Essential or Priority: required itself (all are Priority: optional in bookworm); each is
# in the image because a package that is depends on it. test_base_image_allow_list re-checks
# these reasons against this machine's dpkg database, and they match the published package list
# of the slim image (debuerreotype's docker-debian-artifacts, bookworm/slim/rootfs.manifest).
BASE_IMAGE_PACKAGES = {
    # Pre-Depends of dpkg (Essential: yes).
    "libc6": ("dpkg", "Pre-Depends"),
    "zlib1g": ("dpkg", "Pre-Depends"),
    # Depends of apt (Priority: required; the slim image keeps apt).
    "libgcc-s1": ("apt", "Depends"),
    "libstdc++6": ("apt", "Depends"),
}

# Packages the runtime stage installs that no binary links: each needs a reason.
NON_LIBRARY_RUNTIME_PACKAGES = {
    # The system trust store (/etc/ssl/certs) used for wss:// upstreams without --ca-file.
    "ca-certificates",
}

# Nothing of the toolchain belongs in the runtime image.
BUILD_ONLY_PACKAGES = re.compile(
    r"(-dev|-dbg|-doc)$|^(build-essential|cmake|ninja-build|ccache|g\+\+.*|gcc.*|clang.*|"
    r"protobuf-compiler.*|pkg-config|git|googletest|python3.*)$")


def ldd_paths(binary: Path):
    """Resolved paths of the shared libraries `ldd` lists, failing on any 'not found'."""
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True)
    paths = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if "not found" in line:
            raise AssertionError(f"{binary}: {line}")
        match = re.match(r"^\S+ => (/\S+) \(0x[0-9a-f]+\)$", line)
        if match:
            paths.append(match.group(1))
            continue
        match = re.match(r"^(/\S+) \(0x[0-9a-f]+\)$", line)  # the dynamic loader
        if match:
            paths.append(match.group(1))
            continue
        if line.startswith("linux-vdso") or line.startswith("linux-gate"):
            continue  # provided by the kernel
        raise AssertionError(f"{binary}: cannot read ldd line {line!r}")
    return paths


def path_spellings(path: str):
    """The path as ldd printed it, its /usr twin (Debian 12 merged /lib into /usr/lib, but dpkg
    records the path the package ships), and the file the symlinks lead to."""
    spellings = [path]
    if path.startswith("/usr/"):
        spellings.append(path[len("/usr"):])
    else:
        spellings.append("/usr" + path)
    real = os.path.realpath(path)
    for candidate in (real, real[len("/usr"):] if real.startswith("/usr/") else "/usr" + real):
        if candidate not in spellings:
            spellings.append(candidate)
    return spellings


def owning_packages(paths):
    """{path: Debian package (no :arch suffix) that ships it}, from one `dpkg -S` call."""
    spellings = {path: path_spellings(path) for path in paths}
    every = sorted({s for group in spellings.values() for s in group})
    # dpkg -S exits 1 when some spellings are unknown (the usual case); the others still print.
    result = subprocess.run(["dpkg", "-S", *every], capture_output=True, text=True)
    shipped_by = {}
    for line in result.stdout.splitlines():
        if line.startswith("diversion by"):
            continue
        owners, _, shipped = line.rpartition(": ")
        names = {name.strip().split(":", 1)[0] for name in owners.split(",")}
        shipped_by.setdefault(shipped.strip(), set()).update(names)
    owners = {}
    for path, group in spellings.items():
        found = [shipped_by[s] for s in group if s in shipped_by]
        if not found:
            raise AssertionError(f"no Debian package ships {path} (tried {group})")
        if len(found[0]) != 1:
            raise AssertionError(f"{path} belongs to several packages: {sorted(found[0])}")
        owners[path] = next(iter(found[0]))
    return owners


def dpkg_field(package: str, field: str) -> str:
    return subprocess.run(["dpkg-query", "-W", "-f", "${" + field + "}", package],
                          capture_output=True, text=True, check=True).stdout.strip()


def dependency_names(relation_field: str):
    """'libc6 (>= 2.34), gpgv | gpgv2' -> {'libc6', 'gpgv', 'gpgv2'}"""
    names = set()
    for alternative in re.split(r"[,|]", relation_field):
        word = alternative.strip().split(" ", 1)[0].split(":", 1)[0]
        if word:
            names.add(word)
    return names


class RuntimeStageTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        for name, path in BINARIES.items():
            if not path.is_file():
                raise unittest.SkipTest(f"{name} not built at {path} (set {name.upper()}_BIN)")
        cls.stages = dockerfile_model.parse(DOCKERFILE.read_text())
        cls.runtime = cls.stages[-1]
        cls.installed = cls.runtime.apt_installed_packages()
        libraries = {name: ldd_paths(binary) for name, binary in BINARIES.items()}
        owners = owning_packages({lib for libs in libraries.values() for lib in libs})
        cls.needed = {}  # package -> the libraries it provides, over both binaries
        for name, libs in libraries.items():
            for lib in libs:
                cls.needed.setdefault(owners[lib], set()).add(f"{name}: {lib}")

    def test_every_linked_library_is_installed_or_in_the_base_image(self):
        missing = {pkg: sorted(libs) for pkg, libs in self.needed.items()
                   if pkg not in self.installed and pkg not in BASE_IMAGE_PACKAGES}
        self.assertEqual(missing, {},
                         "add these packages to the apt-get install of the runtime stage "
                         f"(line {self.runtime.line} of {DOCKERFILE})")

    def test_runtime_installs_only_what_the_binaries_need(self):
        extra = set(self.installed) - set(self.needed) - NON_LIBRARY_RUNTIME_PACKAGES
        self.assertEqual(extra, set(), "no binary links these packages: remove them, or say why "
                         "in NON_LIBRARY_RUNTIME_PACKAGES")

    def test_no_build_package_in_runtime_stage(self):
        self.assertTrue(self.installed, "the runtime stage installs no package: parse error?")
        build_only = [p for p in self.installed if BUILD_ONLY_PACKAGES.search(p)]
        self.assertEqual(build_only, [])

    def test_base_image_allow_list(self):
        """Each allow-listed package really comes with dpkg or apt (this machine is Debian 12)."""
        if not Path("/etc/debian_version").read_text().startswith("12"):
            self.skipTest("the allow-list reasons are about Debian 12's package relations")
        self.assertEqual(dpkg_field("dpkg", "Essential"), "yes")
        self.assertEqual(dpkg_field("apt", "Priority"), "required")
        for package, (parent, field) in BASE_IMAGE_PACKAGES.items():
            with self.subTest(package=package):
                self.assertIn(package, dependency_names(dpkg_field(parent, field)),
                              f"{package} is not a {field} of {parent} any more")

    def test_stages(self):
        self.assertGreaterEqual(len(self.stages), 2, "multi-stage build expected")
        self.assertEqual(self.stages[0].base, "debian:12")
        self.assertEqual(self.runtime.base, "debian:12-slim")
        build_runs = " ".join(run.args for stage in self.stages[:-1] for run in stage.all("RUN"))
        self.assertIn("scripts/install-deps", build_runs)
        self.assertRegex(build_runs, r"scripts/build\b.*-DWSVISOR_BUILD_TESTS=OFF")

    def test_binaries_are_copied_from_the_build_stage(self):
        copies = " ".join(c.args for c in self.runtime.all("COPY"))
        build_name = self.stages[0].name
        self.assertIn(f"--from={build_name}", copies)
        for name in BINARIES:
            self.assertRegex(copies, rf"/{name}\b")
        self.assertRegex(copies, r"/usr/local/bin/?$")

    def test_runs_as_numeric_non_root_user(self):
        user = self.runtime.last("USER")
        self.assertIsNotNone(user, "the runtime stage must set USER")
        uid, _, gid = user.args.partition(":")
        # runAsNonRoot can only verify a numeric user; a name would need /etc/passwd lookups.
        self.assertRegex(uid, r"^[0-9]+$")
        self.assertNotEqual(int(uid), 0)
        if gid:
            self.assertRegex(gid, r"^[0-9]+$")
            self.assertNotEqual(int(gid), 0)

    def test_entrypoint_and_default_args(self):
        entrypoint = self.runtime.last("ENTRYPOINT")
        self.assertIsNotNone(entrypoint)
        self.assertEqual(entrypoint.exec_form(), ["/usr/local/bin/wsvisor"])
        cmd = self.runtime.last("CMD").exec_form()
        args = dict(zip(cmd[::2], cmd[1::2]))
        self.assertEqual(args.get("--listen"), "0.0.0.0:50051")
        self.assertEqual(args.get("--metrics-listen"), "0.0.0.0:9464")
        self.assertEqual(args.get("--data-dir"), "/var/lib/wsvisor")

    def test_volume_ports_and_labels(self):
        self.assertIn("/var/lib/wsvisor", self.runtime.last("VOLUME").args)
        self.assertEqual(sorted(self.runtime.last("EXPOSE").args.split()), ["50051", "9464"])
        labels = " ".join(label.args for label in self.runtime.all("LABEL"))
        for key in ("title", "description", "version", "revision", "created", "licenses"):
            self.assertIn(f"org.opencontainers.image.{key}=", labels)


if __name__ == "__main__":
    unittest.main()
