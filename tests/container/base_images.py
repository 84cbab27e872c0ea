#!/usr/bin/python3
"""Local stand-ins for the base images of deploy/docker/Dockerfile, made without a registry.

No container registry is reachable from our machines, so `FROM debian:12` and
`FROM debian:12-slim` cannot be pulled. This module makes both the way Debian's official images
are made (debuerreotype): a `debootstrap --variant=minbase` of bookworm from the mirror that this
machine's apt uses, apt sources for bookworm, -updates and -security, the official images' apt and
dpkg settings (no .deb kept after an install, no translations), and for the slim one dpkg
excludes for documentation, manuals and locales with those files removed.

The root filesystems are cached as tarballs under a directory the caller names (the test uses the
build directory), keyed by the apt sources and this recipe, so only the first run pays for
debootstrap (about a minute). `import_images()` imports them into a container store under the
names the Dockerfile uses (docker.io/library/debian:12 and :12-slim).

Run alone, as root:
  /usr/bin/python3 tests/container/base_images.py CACHE_DIR           prints the two tarballs
  /usr/bin/python3 tests/container/base_images.py CACHE_DIR podman    also imports them (or docker)
"""

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

SUITE = "bookworm"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
FULL_IMAGE = "docker.io/library/debian:12"
SLIM_IMAGE = "docker.io/library/debian:12-slim"

# debuerreotype-minimizing-config: what the official images add to apt and dpkg.
_MINIMIZING_CONFIG = {
    "etc/apt/apt.conf.d/docker-clean": (
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache "";\n'
        'Dir::Cache::srcpkgcache "";\n'),
    "etc/apt/apt.conf.d/docker-no-languages": 'Acquire::Languages "none";\n',
    "etc/apt/apt.conf.d/docker-gzip-indexes": (
        'Acquire::GzipIndexes "true";\n'
        'Acquire::CompressionTypes::Order:: "gz";\n'),
    "etc/apt/apt.conf.d/docker-autoremove-suggests":
        'Apt::AutoRemove::SuggestsImportant "false";\n',
    "etc/dpkg/dpkg.cfg.d/docker-apt-speedup": "force-unsafe-io\n",
}

# debuerreotype-slimify: what debian:12-slim leaves out, as dpkg path filters (also applied to
# packages installed later) and as the files removed from the root now.
_SLIM_EXCLUDES = [
    "/usr/share/doc/*",
    "/usr/share/groff/*",
    "/usr/share/info/*",
    "/usr/share/linda/*",
    "/usr/share/lintian/*",
    "/usr/share/locale/*",
    "/usr/share/man/*",
]
_SLIM_INCLUDES = ["/usr/share/doc/*/copyright"]

# Bump when the recipe changes, so that cached tarballs are made again.
_RECIPE_VERSION = "1"


class BaseImageError(RuntimeError):
    pass


def apt_sources(sources_dir="/etc/apt"):
    """The Debian bookworm entries of this machine's apt sources, as (uri, suite, components)
    tuples in file order: one-line entries of sources.list and sources.list.d/*.list, and deb822
    entries of sources.list.d/*.sources. Other vendors' entries (other suites) are left out."""
    entries = []
    files = [os.path.join(sources_dir, "sources.list")]
    files += sorted(glob.glob(os.path.join(sources_dir, "sources.list.d", "*.list")))
    files += sorted(glob.glob(os.path.join(sources_dir, "sources.list.d", "*.sources")))
    for path in files:
        try:
            with open(path, encoding="utf-8") as source:
                text = source.read()
        except FileNotFoundError:
            continue
        if path.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[0].isspace():
                        continue
                    name, value = line.split(":", 1)
                    fields[name.strip().lower()] = value.split()
                if "deb" not in fields.get("types", []) or fields.get("enabled") == ["no"]:
                    continue
                for uri in fields.get("uris", []):
                    for suite in fields.get("suites", []):
                        entries.append((uri, suite, tuple(fields.get("components", []))))
        else:
            for line in text.splitlines():
                line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(line) >= 4 and line[0] == "deb":
                    entries.append((line[1], line[2], tuple(line[3:])))
    debian = [(uri.rstrip("/"), suite, components) for uri, suite, components in entries
              if suite == SUITE or suite.startswith(SUITE + "-") or suite.startswith(SUITE + "/")]
    if not any(suite == SUITE for _, suite, _ in debian):
        raise BaseImageError(f"no '{SUITE}' entry in the apt sources under {sources_dir}: "
                             "cannot tell which Debian mirror to debootstrap from")
    return debian


def sources_file(entries):
    """deb822 text for the image's /etc/apt/sources.list.d/debian.sources: one stanza per mirror
    and component list, as the official images have."""
    stanzas = {}
    for uri, suite, components in entries:
        stanzas.setdefault((uri, components), []).append(suite)
    text = []
    for (uri, components), suites in stanzas.items():
        text.append(f"Types: deb\nURIs: {uri}\nSuites: {' '.join(suites)}\n"
                    f"Components: {' '.join(components)}\nSigned-By: {KEYRING}\n")
    return "\n".join(text)


def _write(root, relative, text):
    path = os.path.join(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)


def _run(command, log, what):
    started = time.monotonic()
    result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise BaseImageError(f"{what} failed (exit {result.returncode}); see {log.name}")
    return time.monotonic() - started


def _slimify(root):
    """debian:12-slim from a copy of the debian:12 root: the dpkg filters, then the files they
    name removed (copyright files kept)."""
    rules = [f"path-exclude {p}" for p in _SLIM_EXCLUDES]
    rules += [f"path-include {p}" for p in _SLIM_INCLUDES]
    _write(root, "etc/dpkg/dpkg.cfg.d/docker", "\n".join(rules) + "\n")
    for pattern in _SLIM_EXCLUDES:
        directory = os.path.join(root, pattern.strip("/").rsplit("/", 1)[0])
        if not os.path.isdir(directory):
            continue
        for dirpath, dirnames, filenames in os.walk(directory, topdown=False):
            for name in filenames:
                path = os.path.join(dirpath, name)
                if name == "copyright" and os.path.dirname(dirpath) == os.path.join(
                        root, "usr/share/doc"):
                    continue
                os.unlink(path)
            for name in dirnames:
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    os.unlink(path)
                elif not os.listdir(path):
                    os.rmdir(path)


def _tar(root, tarball, log):
    partial = tarball + ".partial"
    _run(["tar", "--numeric-owner", "--xattrs", "-C", root, "-cf", partial, "."], log,
         f"tar of {root}")
    os.replace(partial, tarball)


def ensure_tarballs(cache_dir, report=print):
    """The (debian:12, debian:12-slim) root tarballs, made and cached in cache_dir if missing.
    Needs root (debootstrap)."""
    entries = apt_sources()
    key = hashlib.sha256((_RECIPE_VERSION + repr(entries)).encode()).hexdigest()[:12]
    full = os.path.join(cache_dir, f"debian-12-{key}.tar")
    slim = os.path.join(cache_dir, f"debian-12-slim-{key}.tar")
    if os.path.exists(full) and os.path.exists(slim):
        report(f"base images: cached root tarballs {os.path.basename(full)}, "
               f"{os.path.basename(slim)}")
        return full, slim
    if shutil.which("debootstrap") is None:
        raise BaseImageError("debootstrap is not installed (scripts/install-container-tools)")
    os.makedirs(cache_dir, exist_ok=True)
    for stale in glob.glob(os.path.join(cache_dir, "debian-12-*.tar*")):
        os.unlink(stale)  # another recipe or other sources: not used again
    mirror = next(uri for uri, suite, _ in entries if suite == SUITE)
    work = tempfile.mkdtemp(prefix="debootstrap-", dir=cache_dir)
    root = os.path.join(work, "root")
    try:
        with open(os.path.join(cache_dir, "debootstrap.log"), "w", encoding="utf-8") as log:
            took = _run(["debootstrap", "--variant=minbase", f"--keyring={KEYRING}", SUITE, root,
                         mirror], log, f"debootstrap --variant=minbase {SUITE} from {mirror}")
            report(f"base images: debootstrap --variant=minbase {SUITE} from {mirror} took "
                   f"{took:.0f} s")
            # The sources the official images carry, at this machine's mirrors.
            os.unlink(os.path.join(root, "etc/apt/sources.list"))
            _write(root, "etc/apt/sources.list.d/debian.sources", sources_file(entries))
            for relative, text in _MINIMIZING_CONFIG.items():
                _write(root, relative, text)
            # What debootstrap leaves behind that an image should not carry: the package lists
            # and downloaded packages, and this machine's resolver and host name (the engine
            # mounts its own).
            for pattern in ("var/lib/apt/lists/*", "var/cache/apt/archives/*.deb",
                            "var/cache/apt/*.bin", "var/log/*.log"):
                for path in glob.glob(os.path.join(root, pattern)):
                    if os.path.isfile(path):
                        os.unlink(path)
            for relative in ("etc/resolv.conf", "etc/hostname"):
                _write(root, relative, "")
            _tar(root, full, log)
            _slimify(root)
            _tar(root, slim, log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(f"base images: made {os.path.basename(full)} "
           f"({os.path.getsize(full) / 2**20:.0f} MiB), {os.path.basename(slim)} "
           f"({os.path.getsize(slim) / 2**20:.0f} MiB)")
    return full, slim


def import_images(engine_command, cache_dir, report=print, env=None):
    """Imports the two root tarballs with `<engine_command> import` (a list such as ["podman"];
    `env` its environment) as debian:12 and debian:12-slim, with the official images' CMD."""
    full, slim = ensure_tarballs(cache_dir, report)
    for tarball, name in ((full, FULL_IMAGE), (slim, SLIM_IMAGE)):
        result = subprocess.run([*engine_command, "import", "--change", 'CMD ["bash"]', tarball,
                                 name], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                env=env)
        if result.returncode != 0:
            raise BaseImageError(f"importing {name} failed: {result.stderr.strip()}")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(f"usage: {sys.argv[0]} CACHE_DIR [podman|docker]")
    if len(sys.argv) == 3:
        import_images([sys.argv[2]], sys.argv[1])
        print(f"imported as {FULL_IMAGE} and {SLIM_IMAGE}")
    else:
        print("\n".join(ensure_tarballs(sys.argv[1])))
