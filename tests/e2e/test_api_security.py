"""The secured API of the real wsvisor binary: TLS and mutual TLS on the gRPC listener
(--tls-cert, --tls-key, --client-ca), bearer tokens with read and write access
(--auth-token-file, re-read on SIGHUP), and the plaintext health-only listener (--health-listen)
that probes use. Driven by a foreign gRPC client (Debian python3-grpcio) and by wsvisorctl.

What must hold: without the right certificate nothing gets through; without a valid token every
Supervisor call is UNAUTHENTICATED and a read token cannot write (PERMISSION_DENIED); a refused
call changes nothing; health and /metrics answer without certificates or tokens; a bad file
stops start-up with a message naming it.

Certificates are made at test time with the `openssl` command-line tool. Traffic stays on
127.0.0.1; every wait is bounded; every process is stopped however a test ends. Run by ctest, or
by hand: /usr/bin/python3 tests/e2e/test_api_security.py
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest
import urllib.request

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "durability"))

import grpc  # noqa: E402  (Debian python3-grpcio)

import wsvisor_proc  # noqa: E402  (supervisor and health stubs)
from wsvisor_fixtures import (  # noqa: E402
    Paths, Wsvisorctl, WsvisorServer, free_tcp_port, read_log, wait_until)

CALL_TIMEOUT_S = 10.0
EXIT_TIMEOUT_S = 20.0
WRITE_TOKEN = "deploy-0123456789abcdef"
READ_TOKEN = "dashboards-0123456789abcdef"

MAKE_CERTIFICATES = r"""
set -e
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {  # name subject
  key $1.key
  openssl req -x509 -new -key $1.key -out $1.pem -days 30 -subj "$2" 2>/dev/null
}
signed() {  # name ca subject [extensions file]
  key $1.key
  openssl req -new -key $1.key -out $1.csr -subj "/CN=$3" 2>/dev/null
  openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -CAcreateserial -days 30 \
    ${4:+-extfile $4} -out $1.pem 2>/dev/null
}
ca ca /CN=wsvisor-test-ca
ca rogue-ca /CN=rogue-ca
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > server.ext
signed server ca localhost server.ext
signed client ca deployer
signed rogue-client rogue-ca deployer
"""


def make_certificates(test_class):
    """For setUpClass: a CA, a server certificate for localhost and 127.0.0.1, a client
    certificate, and a rogue CA with its own client certificate, in test_class.certs."""
    test_class.certs = tempfile.mkdtemp(prefix="wsvisor-api-certs-")
    test_class.addClassCleanup(shutil.rmtree, test_class.certs, ignore_errors=True)
    made = subprocess.run(["bash", "-c", MAKE_CERTIFICATES], cwd=test_class.certs,
                          capture_output=True, text=True, timeout=60)
    if made.returncode != 0:
        raise AssertionError(f"making certificates with openssl failed:\n{made.stderr}")


def write_file(path, text):
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
    return path


class ApiSecurityTest(unittest.TestCase):
    """One wsvisor per test with mutual TLS, two tokens (write and read) and a health listener."""

    @classmethod
    def setUpClass(cls):
        cls.paths = Paths.from_environment()
        cls.stubs = wsvisor_proc.load_stubs(cls.paths)
        make_certificates(cls)

    def cert(self, name):
        return os.path.join(self.certs, name)

    def read_cert(self, name):
        with open(self.cert(name), "rb") as pem:
            return pem.read()

    def setUp(self):
        self.work_dir = tempfile.mkdtemp(prefix="wsvisor-api-security-")
        self.addCleanup(shutil.rmtree, self.work_dir, ignore_errors=True)
        self.token_file = write_file(
            os.path.join(self.work_dir, "tokens"),
            f"# name access token\ndeployer write {WRITE_TOKEN}\ndashboards read {READ_TOKEN}\n")
        self.write_token_file = write_file(os.path.join(self.work_dir, "write.token"),
                                           WRITE_TOKEN + "\n")
        self.read_token_file = write_file(os.path.join(self.work_dir, "read.token"),
                                          READ_TOKEN + "\n")
        self.health_address = f"127.0.0.1:{free_tcp_port()}"
        self.tls_client_args = ("--tls-ca", self.cert("ca.pem"), "--tls-cert",
                                self.cert("client.pem"), "--tls-key", self.cert("client.key"))
        self.server = WsvisorServer(
            self.paths, self.work_dir,
            extra_args=("--tls-cert", self.cert("server.pem"), "--tls-key",
                        self.cert("server.key"), "--client-ca", self.cert("ca.pem"),
                        "--auth-token-file", self.token_file,
                        "--health-listen", self.health_address),
            ctl_args=(*self.tls_client_args, "--token-file", self.read_token_file))
        self.addCleanup(self._stop_server)
        self.ctl = Wsvisorctl(self.paths, self.server.address, *self.tls_client_args)

    def _stop_server(self):
        status, _ = self.server.stop()
        if status != 0:
            sys.stderr.write(f"----- wsvisor log -----\n{self.server.log_text()}\n")
        self.assertEqual(status, 0, "wsvisor should exit 0 on SIGTERM")

    # ----- helpers --------------------------------------------------------------------------

    def channel(self, client="client", ca="ca.pem", plaintext=False, address=None):
        address = address or self.server.address
        if plaintext:
            channel = grpc.insecure_channel(address)
        else:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=self.read_cert(ca),
                private_key=self.read_cert(f"{client}.key") if client else None,
                certificate_chain=self.read_cert(f"{client}.pem") if client else None)
            channel = grpc.secure_channel(address, credentials)
        self.addCleanup(channel.close)
        return channel

    def supervisor(self, channel=None):
        return self.stubs.pb_grpc.SupervisorStub(channel or self.channel())

    @staticmethod
    def bearer(token):
        return (("authorization", f"Bearer {token}"),)

    def spec(self, endpoint_id):
        return self.stubs.pb.EndpointSpec(id=endpoint_id, url="ws://127.0.0.1:9/")

    def assert_refused(self, call, code, *details):
        with self.assertRaises(grpc.RpcError) as raised:
            call()
        self.assertEqual(raised.exception.code(), code, raised.exception.details())
        for detail in details:
            self.assertIn(detail, raised.exception.details())
        return raised.exception

    def listed_ids(self):
        response = self.supervisor().ListEndpoints(self.stubs.pb.ListEndpointsRequest(),
                                                   metadata=self.bearer(READ_TOKEN),
                                                   timeout=CALL_TIMEOUT_S)
        return sorted(endpoint.spec.id for endpoint in response.endpoints)

    def health(self, channel, service=""):
        stub = self.stubs.health_grpc.HealthStub(channel)
        return stub.Check(self.stubs.health_pb.HealthCheckRequest(service=service),
                          timeout=CALL_TIMEOUT_S).status

    # ----- tests ----------------------------------------------------------------------------

    def test_only_clients_with_a_certificate_from_the_client_ca_get_through(self):
        pb = self.stubs.pb
        list_request = pb.ListEndpointsRequest()
        for name, channel in (
                ("plaintext", self.channel(plaintext=True)),
                ("TLS without a client certificate", self.channel(client=None)),
                ("a client certificate from another CA", self.channel(client="rogue-client"))):
            with self.subTest(name):
                error = self.assert_refused(
                    lambda: self.supervisor(channel).ListEndpoints(
                        list_request, metadata=self.bearer(WRITE_TOKEN), timeout=CALL_TIMEOUT_S),
                    grpc.StatusCode.UNAVAILABLE)
                print(f"  {name}: {error.code().name}: {error.details()}", flush=True)
        # The server's certificate is checked too: a client trusting another CA refuses it.
        self.assert_refused(
            lambda: self.supervisor(self.channel(ca="rogue-ca.pem")).ListEndpoints(
                list_request, metadata=self.bearer(WRITE_TOKEN), timeout=CALL_TIMEOUT_S),
            grpc.StatusCode.UNAVAILABLE)

    def test_every_call_needs_a_valid_token_and_a_read_token_cannot_write(self):
        pb = self.stubs.pb
        supervisor = self.supervisor()
        register = pb.RegisterEndpointRequest(spec=self.spec("guarded"))

        self.assert_refused(lambda: supervisor.ListEndpoints(pb.ListEndpointsRequest(),
                                                             timeout=CALL_TIMEOUT_S),
                            grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
        self.assert_refused(lambda: supervisor.RegisterEndpoint(
            register, metadata=self.bearer("not-a-token-of-this-server"), timeout=CALL_TIMEOUT_S),
            grpc.StatusCode.UNAUTHENTICATED, "not valid")
        self.assert_refused(lambda: supervisor.GetEndpoint(
            pb.GetEndpointRequest(id="guarded"), metadata=(("authorization", "Basic eDp5"),),
            timeout=CALL_TIMEOUT_S), grpc.StatusCode.UNAUTHENTICATED, "Bearer <token>")
        self.assert_refused(lambda: next(supervisor.WatchHealth(pb.WatchHealthRequest(),
                                                                timeout=CALL_TIMEOUT_S)),
                            grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
        for name, call in (
                ("RegisterEndpoint", lambda: supervisor.RegisterEndpoint(
                    register, metadata=self.bearer(READ_TOKEN), timeout=CALL_TIMEOUT_S)),
                ("UpdateEndpoint", lambda: supervisor.UpdateEndpoint(
                    pb.UpdateEndpointRequest(spec=self.spec("guarded")),
                    metadata=self.bearer(READ_TOKEN), timeout=CALL_TIMEOUT_S)),
                ("UnregisterEndpoint", lambda: supervisor.UnregisterEndpoint(
                    pb.UnregisterEndpointRequest(id="guarded"), metadata=self.bearer(READ_TOKEN),
                    timeout=CALL_TIMEOUT_S)),
                # A probe makes wsvisor dial the URL it is given.
                ("ProbeEndpoint", lambda: supervisor.ProbeEndpoint(
                    pb.ProbeEndpointRequest(spec=self.spec("guarded")),
                    metadata=self.bearer(READ_TOKEN), timeout=CALL_TIMEOUT_S))):
            with self.subTest(name):
                self.assert_refused(call, grpc.StatusCode.PERMISSION_DENIED,
                                    f"token 'dashboards' has read access; {name} needs write")
        self.assertEqual(self.listed_ids(), [], "a refused call must change nothing")

        created = supervisor.RegisterEndpoint(register, metadata=self.bearer(WRITE_TOKEN),
                                              timeout=CALL_TIMEOUT_S)
        self.assertTrue(created.created)
        self.assertEqual(self.listed_ids(), ["guarded"])
        got = supervisor.GetEndpoint(pb.GetEndpointRequest(id="guarded"),
                                     metadata=self.bearer(READ_TOKEN), timeout=CALL_TIMEOUT_S)
        self.assertEqual(got.endpoint.spec.url, "ws://127.0.0.1:9/")
        watch = supervisor.WatchHealth(pb.WatchHealthRequest(), metadata=self.bearer(READ_TOKEN),
                                       timeout=CALL_TIMEOUT_S)
        first = next(watch)
        watch.cancel()
        self.assertEqual(first.type, pb.HealthEvent.TYPE_SNAPSHOT)
        self.assertEqual(first.endpoint_id, "guarded")

    def test_health_and_metrics_answer_without_certificates_or_tokens(self):
        serving = self.stubs.health_pb.HealthCheckResponse.SERVING
        plaintext_health = self.channel(plaintext=True, address=self.health_address)
        self.assertEqual(self.health(plaintext_health), serving)
        self.assertEqual(self.health(plaintext_health, "wsvisor.v1.Supervisor"), serving)
        # The health listener serves health only: the API is not reachable through it.
        self.assert_refused(lambda: self.supervisor(plaintext_health).ListEndpoints(
            self.stubs.pb.ListEndpointsRequest(), metadata=self.bearer(WRITE_TOKEN),
            timeout=CALL_TIMEOUT_S), grpc.StatusCode.UNIMPLEMENTED)
        # On the main listener health needs the TLS handshake but no token.
        self.assertEqual(self.health(self.channel()), serving)

        port = wait_until(lambda: self.metrics_port(), 10.0, "the metrics port in the log")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            self.assertEqual(response.status, 200)
            self.assertIn("wsvisor_endpoints", response.read().decode())

    def metrics_port(self):
        for line in self.server.log_text().splitlines():
            if "serving Prometheus metrics on" in line and "(port " in line:
                return int(line.split("(port ")[1].split(")")[0])
        return None

    def test_wsvisorctl_over_mutual_tls_with_a_token(self):
        without_token = self.ctl.run("register", "ctl-1", "ws://127.0.0.1:9/")
        self.assertEqual(without_token.returncode, 1, without_token.stderr)
        self.assertIn("UNAUTHENTICATED: missing bearer token", without_token.stderr)

        read_only = self.ctl.run("--token-file", self.read_token_file, "register", "ctl-1",
                                 "ws://127.0.0.1:9/")
        self.assertEqual(read_only.returncode, 1, read_only.stderr)
        self.assertIn("PERMISSION_DENIED: token 'dashboards' has read access", read_only.stderr)
        read_only_probe = self.ctl.run("--token-file", self.read_token_file, "probe",
                                       "ws://127.0.0.1:9/")
        self.assertEqual(read_only_probe.returncode, 1, read_only_probe.stderr)
        self.assertIn("PERMISSION_DENIED: token 'dashboards' has read access; ProbeEndpoint needs "
                      "write", read_only_probe.stderr)

        registered = self.ctl.run("--token-file", self.write_token_file, "register", "ctl-1",
                                  "ws://127.0.0.1:9/")
        self.assertEqual(registered.returncode, 0, registered.stderr)
        self.assertIn("registered ctl-1", registered.stdout)

        environment = dict(os.environ, WSVISOR_TOKEN_FILE=self.read_token_file)
        environment.pop("WSVISOR_SERVER", None)
        listed = self.ctl.run("list", env=environment)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn("ctl-1", listed.stdout)

        plaintext = Wsvisorctl(self.paths, self.server.address).run(
            "--token-file", self.write_token_file, "list")
        self.assertEqual(plaintext.returncode, 1)
        self.assertIn("UNAVAILABLE", plaintext.stderr)

        missing = self.ctl.run("--token-file", os.path.join(self.work_dir, "nope"), "list")
        self.assertEqual(missing.returncode, 2)
        self.assertIn("--token-file: cannot read", missing.stderr)

    def test_tokens_are_rotated_on_sighup_and_a_bad_file_keeps_the_old_ones(self):
        supervisor = self.supervisor()
        request = self.stubs.pb.ListEndpointsRequest()
        rotated = "rotated-0123456789abcdef"

        def accepted(token):
            try:
                supervisor.ListEndpoints(request, metadata=self.bearer(token),
                                         timeout=CALL_TIMEOUT_S)
                return True
            except grpc.RpcError as error:
                self.assertEqual(error.code(), grpc.StatusCode.UNAUTHENTICATED, error.details())
                return False

        self.assertTrue(accepted(READ_TOKEN))
        write_file(self.token_file, f"dashboards read {rotated}\n")
        os.kill(self.server.pid, signal.SIGHUP)
        wait_until(lambda: not accepted(READ_TOKEN), 10.0, "the old token to be refused")
        self.assertTrue(accepted(rotated))

        write_file(self.token_file, "dashboards read short\n")
        os.kill(self.server.pid, signal.SIGHUP)
        wait_until(lambda: "bearer tokens not reloaded" in self.server.log_text(), 10.0,
                   "the refused reload in the log")
        refusal = [line for line in self.server.log_text().splitlines()
                   if "bearer tokens not reloaded" in line]
        self.assertIn("tokens:1: token of 'dashboards' must be 16-1024 characters", refusal[0])
        self.assertNotIn("short", refusal[0], "the log must not echo a token")
        self.assertTrue(accepted(rotated), "a bad file must keep the tokens in force")


class BadSecurityFilesTest(unittest.TestCase):
    """A mistake in a security flag or file stops start-up with a message naming it."""

    @classmethod
    def setUpClass(cls):
        cls.paths = Paths.from_environment()
        make_certificates(cls)

    def setUp(self):
        self.work_dir = tempfile.mkdtemp(prefix="wsvisor-api-bad-")
        self.addCleanup(shutil.rmtree, self.work_dir, ignore_errors=True)

    def start_fails(self, *args):
        log_path = os.path.join(self.work_dir, "wsvisor.log")
        with open(log_path, "w", encoding="utf-8") as log:
            process = subprocess.run(
                [self.paths.wsvisor, "--listen", f"127.0.0.1:{free_tcp_port()}",
                 "--metrics-listen", "", "--data-dir", os.path.join(self.work_dir, "data"),
                 *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                timeout=EXIT_TIMEOUT_S)
        return process.returncode, read_log(log_path)

    def test_each_mistake_is_named(self):
        cert = os.path.join(self.certs, "server.pem")
        key = os.path.join(self.certs, "server.key")
        other_key = os.path.join(self.certs, "client.key")
        tokens = write_file(os.path.join(self.work_dir, "tokens"), "ci write tooshort\n")
        cases = [
            (("--tls-cert", cert), 2, "--tls-cert and --tls-key go together"),
            (("--client-ca", cert), 2, "--client-ca needs --tls-cert"),
            (("--tls-cert", cert, "--tls-key", other_key), 1,
             f"--tls-key {other_key} does not belong to the certificate in --tls-cert {cert}"),
            (("--tls-cert", os.path.join(self.certs, "missing.pem"), "--tls-key", key), 1,
             "missing.pem: cannot read the file"),
            (("--tls-cert", key, "--tls-key", key), 1, "not a PEM certificate"),
            (("--tls-cert", cert, "--tls-key", key, "--client-ca", key), 1,
             f"--client-ca {key}: not a PEM certificate"),
            (("--auth-token-file", tokens), 1,
             f"{tokens}:1: token of 'ci' must be 16-1024 characters, got 8"),
            (("--auth-token-file", os.path.join(self.work_dir, "none")), 1,
             "cannot read the token file"),
        ]
        # A health port that is taken stops start-up too, instead of serving without probes.
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_address = f"127.0.0.1:{taken.getsockname()[1]}"
        cases.append((("--health-listen", taken_address), 1,
                      f"cannot listen for gRPC health on {taken_address}"))
        for args, status, message in cases:
            with self.subTest(" ".join(args)):
                code, log = self.start_fails(*args)
                self.assertEqual(code, status, log)
                self.assertIn(message, log)
                self.assertNotIn("serving gRPC", log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
