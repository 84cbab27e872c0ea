#!/usr/bin/python3
"""wsvisor with --store etcd://... over TLS (--store-ca, --store-cert, --store-key) against a real
etcd that serves clients over TLS only and requires client certificates (--client-cert-auth).
Every certificate is made by openssl at test time (tests/support/etcd_cluster.py).

The promise under test: with the right files, registrations are in etcd and come back after a
SIGKILL; without a client certificate, or with a CA that does not verify etcd, start-up fails
within --store-connect-timeout with a message that says why; an unusable file fails at once,
naming the flag and the file.

Run by ctest (label durability), or by hand from the repository root:
  WSVISOR_BIN=build/wsvisor WSVISORCTL_BIN=build/wsvisorctl WSVISOR_SOURCE_DIR=$PWD \\
      /usr/bin/python3 tests/durability/test_etcd_tls.py -v
"""

import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, os.pardir, "support"))

from etcd_cluster import EtcdCluster, make_certificate_authority  # noqa: E402
from test_etcd_store import cheap_spec, summary  # noqa: E402
from wsvisor_proc import CALL_TIMEOUT_S, DurabilityTestCase, list_all, report  # noqa: E402

# Bounds how long a start-up that cannot reach etcd takes, and so the test.
CONNECT_TIMEOUT = "2s"
FAILED_START_TIMEOUT_S = 20


class EtcdTlsTest(DurabilityTestCase):

    def setUp(self):
        super().setUp()
        self.etcd = EtcdCluster(members=1, tls=True)
        self.addCleanup(self.etcd.close)
        self.store = "etcd://" + ",".join(self.etcd.endpoints) + "/tls"
        tls = self.etcd.tls
        self.client_flags = ("--store-cert", tls.client_cert, "--store-key", tls.client_key)

    def start(self, *tls_args):
        fresh = os.path.join(self.work_dir, f"data-{time.monotonic_ns()}")
        return self.wsvisor("--store", self.store, *tls_args, data_dir=fresh)

    def failed_start(self, *tls_args):
        """Starts a wsvisor that must not come up; returns its log."""
        process = self.wsvisor("--store", self.store, "--store-connect-timeout", CONNECT_TIMEOUT,
                               *tls_args, start=False).spawn()
        status = process.wait_exit(timeout_s=FAILED_START_TIMEOUT_S)
        log = process.log_text()
        report(f"exit {status} after {time.monotonic() - process.started_at:.1f} s")
        self.assertEqual(status, 1, log)
        self.assertNotIn("serving gRPC", log)
        return log

    def test_registrations_come_back_after_kill_9_over_mutual_tls(self):
        closed = self.closed_port()
        server = self.start("--store-ca", self.etcd.tls.ca, *self.client_flags)
        server.supervisor.RegisterEndpoint(
            self.pb.RegisterEndpointRequest(
                spec=cheap_spec(self.pb, "over-tls", closed.url("over-tls"), {"t": "1"})),
            timeout=CALL_TIMEOUT_S)
        before = {e.spec.id: summary(e) for e in list_all(server.supervisor, self.pb)}
        self.assertIn("connecting to the etcd store " + self.store + " over TLS",
                      server.log_text())
        server.kill9()

        restarted = self.start("--store-ca", self.etcd.tls.ca, *self.client_flags)
        after = {e.spec.id: summary(e) for e in list_all(restarted.supervisor, self.pb)}
        self.assertEqual(after, before)
        self.assertEqual(sorted(after), ["over-tls"])

    def test_without_a_client_certificate_start_up_fails_clearly(self):
        log = self.failed_start("--store-ca", self.etcd.tls.ca)
        self.assertIn(f"cannot use the etcd store {self.store}: no answer within 2000 ms", log)
        self.assertIn(f"{self.etcd.endpoints[0]}: not connected over TLS", log)

    def test_a_ca_that_does_not_verify_etcd_fails_clearly(self):
        other_ca, _ = make_certificate_authority(self.work_dir, "other-ca")
        log = self.failed_start("--store-ca", other_ca, *self.client_flags)
        self.assertIn(f"cannot use the etcd store {self.store}: no answer within 2000 ms", log)
        # gRPC's reason reaches the log: the certificate of etcd could not be verified.
        self.assertIn("not connected over TLS", log)
        self.assertIn("certificate verify failed", log)

    def test_an_unusable_file_fails_at_once_naming_the_flag_and_file(self):
        missing = os.path.join(self.work_dir, "missing.pem")
        not_pem = os.path.join(self.work_dir, "not.pem")
        with open(not_pem, "w", encoding="utf-8") as out:
            out.write("not a certificate\n")
        cases = [
            (("--store-ca", missing), f"--store-ca {missing}: cannot read the file"),
            (("--store-ca", not_pem), f"--store-ca {not_pem}: not a PEM certificate"),
            (("--store-ca", self.etcd.tls.ca, "--store-cert", not_pem, "--store-key",
              self.etcd.tls.client_key), f"--store-cert {not_pem}: not a PEM certificate"),
            (("--store-ca", self.etcd.tls.ca, "--store-cert", self.etcd.tls.client_cert,
              "--store-key", self.etcd.tls.server_key),
             f"--store-key {self.etcd.tls.server_key} does not belong to the certificate"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                self.assertIn(message, self.failed_start(*args))


if __name__ == "__main__":
    unittest.main()
