#!/usr/bin/python3
"""Runs a rendered cluster-with-etcd for real, inside a network and mount namespace of its own:
three members of Debian's etcd (etcd-server) with the etcd StatefulSet's args, then wsvisor with
the wsvisor StatefulSet's args. It answers whether the names hold together: etcd bootstraps from
--initial-cluster and the advertised URLs, its probe paths answer, and wsvisor reaches the
members named by --store.

Kubernetes is stood in for by what a pod would see:
  - DNS: /etc/hosts (bind-mounted in this mount namespace only) maps each etcd pod's names,
    <pod>.etcd.<namespace>.svc and the short <pod>.etcd that the pod's search list completes, to a
    loopback address of its own (127.0.1.N); the network namespace is empty, so nothing leaves it;
  - the downward API: $(POD_NAME) and $(POD_NAMESPACE) are substituted as the kubelet would;
  - listening on 0.0.0.0: each member listens on its own 127.0.1.N instead (three pods, one
    network namespace); the port stays the rendered one;
  - volumes: temporary directories.

Run by tests/deploy/test_manifests.py as
    unshare --net --mount -- /usr/bin/python3 run_rendered_cluster.py SPEC.json
where SPEC.json holds {"namespace", "etcd": {"service", "replicas", "args", "probes"},
"wsvisor": {"bin", "args", "pod", "config_file", "config_mount", "config_text"}}. Prints one JSON
object: {"members": [...], "probes": {...}, "wsvisor": {...}} and exits 0, or prints why and
exits 1. Everything it starts dies with it.
"""

import base64
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ETCD_BIN = os.environ.get("WSVISOR_ETCD_BIN", "/usr/bin/etcd")
START_TIMEOUT_S = 60.0
WSVISOR_TIMEOUT_S = 60.0
_PR_SET_PDEATHSIG = 1


def die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def substitute(arg: str, env: dict) -> str:
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


def http(url: str, body: bytes = None):
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    with urllib.request.urlopen(request, timeout=2) as response:
        return response.status, response.read()


def wait_for(what: str, check, timeout: float):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as error:  # noqa: BLE001 - kept as the reason if the deadline passes
            last = error
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not within {timeout:.0f}s (last: {last})")


def main(spec_path: str) -> int:
    spec = json.load(open(spec_path))
    namespace = spec["namespace"]
    etcd = spec["etcd"]
    pods = [f"{etcd['statefulset']}-{i}" for i in range(etcd["replicas"])]
    address = {pod: f"127.0.1.{i + 1}" for i, pod in enumerate(pods)}
    processes = []
    temp = tempfile.mkdtemp(prefix="rendered-cluster-")
    try:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        hosts = os.path.join(temp, "hosts")
        with open(hosts, "w") as out:
            out.write("127.0.0.1 localhost\n")
            for pod in pods:
                out.write(f"{address[pod]} {pod}.{etcd['service']}.{namespace}.svc "
                          f"{pod}.{etcd['service']}\n")
        subprocess.run(["mount", "--bind", hosts, "/etc/hosts"], check=True)

        for pod in pods:
            env = {"POD_NAME": pod, "POD_NAMESPACE": namespace}
            args = []
            for arg in etcd["args"]:
                arg = substitute(arg, env).replace("//0.0.0.0:", f"//{address[pod]}:")
                if arg.startswith("--data-dir="):
                    arg = f"--data-dir={temp}/{pod}/data"
                args.append(arg)
            os.makedirs(f"{temp}/{pod}", mode=0o700)
            log = open(f"{temp}/{pod}.log", "w")
            processes.append(subprocess.Popen([ETCD_BIN, *args], stdout=log, stderr=log,
                                              preexec_fn=die_with_parent))

        client_port = etcd["client_port"]

        def cluster_healthy():
            for pod in pods:
                status, body = http(f"http://{address[pod]}:{client_port}/health")
                if status != 200 or json.loads(body).get("health") != "true":
                    return False
            return True

        try:
            wait_for("etcd cluster healthy", cluster_healthy, START_TIMEOUT_S)
        except RuntimeError:
            for pod in pods:
                sys.stderr.write(f"--- {pod}\n" + open(f"{temp}/{pod}.log").read()[-3000:])
            raise

        probes = {}
        for pod in pods:
            for name, path in etcd["probes"].items():
                status, _ = http(f"http://{address[pod]}:{client_port}{path}")
                probes[f"{pod} {name} {path}"] = status
        _, body = http(f"http://{address[pods[0]]}:{client_port}/v3/cluster/member/list", b"{}")
        members = sorted((m["name"], m["peerURLs"], m["clientURLs"])
                         for m in json.loads(body)["members"])

        wsvisor = {"ran": False}
        ws = spec.get("wsvisor")
        if ws:
            env = {"POD_NAME": ws["pod"], "POD_NAMESPACE": namespace}
            config_dir = os.path.join(temp, "wsvisor-config")
            os.makedirs(config_dir)
            with open(os.path.join(config_dir, ws["config_file"]), "w") as out:
                out.write(ws["config_text"])
            args = [substitute(arg, env).replace(ws["config_mount"], config_dir, 1)
                    for arg in ws["args"]]
            log_path = os.path.join(temp, "wsvisor.log")
            with open(log_path, "w") as log:
                process = subprocess.Popen([ws["bin"], *args], stdout=log, stderr=log,
                                           cwd=temp, preexec_fn=die_with_parent)
            processes.append(process)
            try:
                wait_for("wsvisor serving gRPC",
                         lambda: process.poll() is not None
                         or "serving gRPC" in open(log_path).read(), WSVISOR_TIMEOUT_S)
            except RuntimeError:
                pass
            log_text = open(log_path).read()
            exited = process.poll()
            # Keys wsvisor wrote under its prefix, read back from etcd (base64 in the gateway).
            _, body = http(f"http://{address[pods[1]]}:{client_port}/v3/kv/range",
                           json.dumps({"key": "Lw==", "range_end": "MA==",
                                       "keys_only": True}).encode())
            keys = sorted(base64.b64decode(kv["key"]).decode()
                          for kv in json.loads(body).get("kvs", []))
            wsvisor = {"ran": True, "serving": "serving gRPC" in log_text and exited is None,
                       "exit": exited, "keys": keys,
                       "log": log_text[-4000:]}
        print(json.dumps({"members": members, "probes": probes, "wsvisor": wsvisor}))
        return 0
    except Exception as error:  # noqa: BLE001 - reported to the test
        print(json.dumps({"error": str(error)}))
        return 1
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        subprocess.run(["rm", "-rf", temp])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
