#!/usr/bin/python3
"""wsvisor driven by a foreign gRPC client: Debian's python3-grpcio with stubs generated at test
time by protoc and grpc_python_plugin from our public proto.

Why: wsvisorctl shares generated C++ code with the server, so it cannot catch an API that only
works for itself. A client in another language, built from nothing but the .proto files, sees
what any user sees: field names and defaults on the wire, status codes and their details, the
stream's order, the standard grpc.health.v1 service and server reflection.

The two standard services are described by small local .proto files written below rather than
by grpcio-health-checking / grpcio-reflection, which Debian 12 does not ship. Their package and
field numbers match grpc/grpc's definitions, which is all that matters on the wire; they are
placed under a local Python package so they cannot shadow the installed `grpc` package.

Run by ctest, or by hand (see test_cli_e2e.py for the environment variables).
"""

import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402  (Debian python3-grpcio)
from google.protobuf import descriptor_pb2  # noqa: E402  (Debian python3-protobuf)

from wsvisor_fixtures import WsvisorTestCase, elapsed_ms  # noqa: E402

PROTOC = "/usr/bin/protoc"
GRPC_PYTHON_PLUGIN = "/usr/bin/grpc_python_plugin"
WELL_KNOWN_TYPES_DIR = "/usr/include"  # google/protobuf/duration.proto etc. (libprotobuf-dev)

# Deadline of every unary call, and of each whole watch stream.
CALL_TIMEOUT_S = 10.0
WATCH_TIMEOUT_S = 30.0
HEALTHY_WITHIN_S = 2.0

# Python package of the local copies of the two standard gRPC protos.
LOCAL_PROTO_PACKAGE = "standard_grpc_protos"

HEALTH_PROTO = """\
syntax = "proto3";
// The wire-compatible subset of grpc/grpc's src/proto/grpc/health/v1/health.proto.
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse); }
"""

REFLECTION_PROTO = """\
syntax = "proto3";
// The subset of grpc/grpc's reflection/v1alpha/reflection.proto needed to list services and
// fetch the file that defines a symbol. Fields left out are unknown fields on the wire.
package grpc.reflection.v1alpha;
service ServerReflection {
  rpc ServerReflectionInfo(stream ServerReflectionRequest)
      returns (stream ServerReflectionResponse);
}
message ServerReflectionRequest {
  string host = 1;
  oneof message_request {
    string file_containing_symbol = 4;
    string list_services = 7;
  }
}
message ServerReflectionResponse {
  string valid_host = 1;
  ServerReflectionRequest original_request = 2;
  oneof message_response {
    FileDescriptorResponse file_descriptor_response = 4;
    ListServiceResponse list_services_response = 6;
    ErrorResponse error_response = 7;
  }
}
message FileDescriptorResponse { repeated bytes file_descriptor_proto = 1; }
message ListServiceResponse { repeated ServiceResponse service = 1; }
message ServiceResponse { string name = 1; }
message ErrorResponse { int32 error_code = 1; string error_message = 2; }
"""


def generate_python_stubs(proto_dir, out_dir):
    """Runs protoc with grpc_python_plugin on our API proto and the two local standard protos;
    the generated modules land in out_dir (put it on sys.path to import them)."""
    local_src = os.path.join(out_dir, "src")
    package_dir = os.path.join(local_src, LOCAL_PROTO_PACKAGE)
    os.makedirs(package_dir)
    for name, text in (("health.proto", HEALTH_PROTO), ("reflection.proto", REFLECTION_PROTO)):
        with open(os.path.join(package_dir, name), "w", encoding="utf-8") as proto:
            proto.write(text)
    command = [
        PROTOC, f"-I{proto_dir}", f"-I{local_src}", f"-I{WELL_KNOWN_TYPES_DIR}",
        f"--python_out={out_dir}", f"--grpc_out={out_dir}",
        f"--plugin=protoc-gen-grpc={GRPC_PYTHON_PLUGIN}",
        os.path.join(proto_dir, "wsvisor", "v1", "supervisor.proto"),
        os.path.join(package_dir, "health.proto"),
        os.path.join(package_dir, "reflection.proto"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"protoc failed ({' '.join(command)}):\n{result.stderr}")


class ForeignGrpcClientTest(WsvisorTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for tool in (PROTOC, GRPC_PYTHON_PLUGIN):
            if not os.access(tool, os.X_OK):
                raise RuntimeError(f"{tool} is missing (Debian protobuf-compiler-grpc)")
        stubs_dir = tempfile.mkdtemp(prefix="wsvisor-e2e-stubs-")
        cls.addClassCleanup(shutil.rmtree, stubs_dir, ignore_errors=True)
        started = time.monotonic()
        generate_python_stubs(cls.paths.proto_dir, stubs_dir)
        print(f"\n  generated Python stubs in {elapsed_ms(started):.0f} ms", flush=True)
        sys.path.insert(0, stubs_dir)
        cls.addClassCleanup(sys.path.remove, stubs_dir)
        cls.pb = importlib.import_module("wsvisor.v1.supervisor_pb2")
        cls.pb_grpc = importlib.import_module("wsvisor.v1.supervisor_pb2_grpc")
        cls.health_pb = importlib.import_module(f"{LOCAL_PROTO_PACKAGE}.health_pb2")
        cls.health_grpc = importlib.import_module(f"{LOCAL_PROTO_PACKAGE}.health_pb2_grpc")
        cls.reflection_pb = importlib.import_module(f"{LOCAL_PROTO_PACKAGE}.reflection_pb2")
        cls.reflection_grpc = importlib.import_module(f"{LOCAL_PROTO_PACKAGE}.reflection_pb2_grpc")

    def setUp(self):
        super().setUp()
        self.channel = grpc.insecure_channel(self.server.address)
        self.addCleanup(self.channel.close)
        grpc.channel_ready_future(self.channel).result(timeout=CALL_TIMEOUT_S)
        self.supervisor = self.pb_grpc.SupervisorStub(self.channel)

    # ----- helpers -----

    def spec(self, endpoint_id, **heartbeat):
        """A spec for the test's upstream with a 200 ms heartbeat unless `heartbeat` says else."""
        spec = self.pb.EndpointSpec(id=endpoint_id, url=self.upstream.url)
        spec.heartbeat.interval.FromMilliseconds(200)
        for name, value in heartbeat.items():
            setattr(spec.heartbeat, name, value)
        return spec

    def register(self, spec):
        return self.supervisor.RegisterEndpoint(self.pb.RegisterEndpointRequest(spec=spec),
                                                timeout=CALL_TIMEOUT_S)

    def listed_specs(self):
        response = self.supervisor.ListEndpoints(self.pb.ListEndpointsRequest(),
                                                 timeout=CALL_TIMEOUT_S)
        return [endpoint.spec for endpoint in response.endpoints]

    def assert_status(self, call, code, *details):
        """Runs call(), which must fail with `code` and details containing each of `details`."""
        with self.assertRaises(grpc.RpcError) as raised:
            call()
        self.assertEqual(raised.exception.code(), code, raised.exception.details())
        for text in details:
            self.assertIn(text, raised.exception.details())
        return raised.exception

    # ----- tests -----

    def test_register_get_and_watch_until_healthy(self):
        event_type = self.pb.HealthEvent.Type
        # Watch first: ids not registered yet are watched too, so the stream must show the
        # registration and the first health decision, in order.
        watch = self.supervisor.WatchHealth(self.pb.WatchHealthRequest(ids=["py-1"]),
                                            timeout=WATCH_TIMEOUT_S)
        self.addCleanup(watch.cancel)
        marker = next(watch)
        self.assertEqual(marker.type, event_type.TYPE_SNAPSHOT_COMPLETE)

        started = time.monotonic()
        response = self.register(self.spec("py-1"))
        self.assertTrue(response.created)
        stored = response.endpoint.spec
        self.assertEqual(stored.heartbeat.mode, self.pb.HEARTBEAT_MODE_PING, "default filled in")
        self.assertEqual(stored.heartbeat.timeout.ToMilliseconds(), 200, "defaults to interval")
        self.assertEqual(stored.backoff.initial.ToSeconds(), 1)

        events = []
        for event in watch:
            events.append(event)
            if event.status.health == self.pb.HEALTH_HEALTHY:
                break
        healthy_ms = elapsed_ms(started)
        print(f"  HEALTH_HEALTHY on the stream {healthy_ms:.0f} ms after RegisterEndpoint; "
              f"events: {[event_type.Name(e.type) for e in events]}", flush=True)
        self.assertLess(healthy_ms, HEALTHY_WITHIN_S * 1000)
        self.assertEqual(events[0].type, event_type.TYPE_REGISTERED)
        self.assertEqual(events[-1].type, event_type.TYPE_CHANGED)
        self.assertEqual(events[-1].previous_health, self.pb.HEALTH_UNKNOWN)
        revisions = [e.revision for e in events]
        self.assertGreater(revisions[0], marker.revision)
        self.assertEqual(revisions, sorted(set(revisions)), "revisions must strictly increase")
        watch.cancel()

        got = self.supervisor.GetEndpoint(self.pb.GetEndpointRequest(id="py-1"),
                                          timeout=CALL_TIMEOUT_S).endpoint
        self.assertEqual(got.spec, stored)
        self.assertEqual(got.status.health, self.pb.HEALTH_HEALTHY)
        self.assertEqual(got.status.phase, self.pb.CONNECTION_PHASE_OPEN)
        self.assertTrue(got.status.HasField("last_rtt"))
        self.assertGreaterEqual(got.status.heartbeats_sent, 1)

    def test_snapshot_lists_existing_endpoints(self):
        self.register(self.spec("py-a"))
        self.register(self.spec("py-b"))
        watch = self.supervisor.WatchHealth(self.pb.WatchHealthRequest(), timeout=WATCH_TIMEOUT_S)
        self.addCleanup(watch.cancel)
        snapshot = []
        for event in watch:
            if event.type == self.pb.HealthEvent.TYPE_SNAPSHOT_COMPLETE:
                break
            self.assertEqual(event.type, self.pb.HealthEvent.TYPE_SNAPSHOT)
            snapshot.append(event.endpoint_id)
        self.assertEqual(sorted(snapshot), ["py-a", "py-b"])

    def test_invalid_requests_name_the_field_and_change_nothing(self):
        self.register(self.spec("kept"))
        before = self.listed_specs()

        zero_interval = self.spec("x")
        zero_interval.heartbeat.interval.FromNanoseconds(0)  # set, but zero: not the default
        payload_in_ping_mode = self.spec("x", payload="hello")
        cases = {
            "spec.url": self.pb.EndpointSpec(id="x", url="http://x/"),
            "spec.heartbeat.interval": zero_interval,
            "spec.id": self.pb.EndpointSpec(id="has space", url=self.upstream.url),
            "spec.heartbeat.payload": payload_in_ping_mode,
        }
        for field, spec in cases.items():
            with self.subTest(field=field):
                error = self.assert_status(lambda: self.register(spec),
                                           grpc.StatusCode.INVALID_ARGUMENT, field)
                print(f"  {field}: {error.details()!r}", flush=True)
                self.assertEqual(self.listed_specs(), before)

        # No spec at all is a bad request too, not a crash or an empty endpoint.
        self.assert_status(lambda: self.supervisor.RegisterEndpoint(
            self.pb.RegisterEndpointRequest(), timeout=CALL_TIMEOUT_S),
            grpc.StatusCode.INVALID_ARGUMENT, "spec")
        self.assertEqual(self.listed_specs(), before)

    def test_not_found_and_already_exists(self):
        self.assert_status(lambda: self.supervisor.GetEndpoint(
            self.pb.GetEndpointRequest(id="missing"), timeout=CALL_TIMEOUT_S),
            grpc.StatusCode.NOT_FOUND)
        self.assert_status(lambda: self.supervisor.UnregisterEndpoint(
            self.pb.UnregisterEndpointRequest(id="missing"), timeout=CALL_TIMEOUT_S),
            grpc.StatusCode.NOT_FOUND)

        self.assertTrue(self.register(self.spec("same")).created)
        self.assertFalse(self.register(self.spec("same")).created, "identical spec: idempotent")
        different = self.spec("same")
        different.heartbeat.interval.FromMilliseconds(300)
        self.assert_status(lambda: self.register(different), grpc.StatusCode.ALREADY_EXISTS)

        self.supervisor.UnregisterEndpoint(self.pb.UnregisterEndpointRequest(id="same"),
                                           timeout=CALL_TIMEOUT_S)
        self.assert_status(lambda: self.supervisor.GetEndpoint(
            self.pb.GetEndpointRequest(id="same"), timeout=CALL_TIMEOUT_S),
            grpc.StatusCode.NOT_FOUND)

    def test_sigterm_after_register_unregister_churn_is_prompt(self):
        """Endpoints unregistered while their first connection attempt is still under way must
        not hold up shutdown: once they are gone, SIGTERM has nothing left to wait for. Only a
        client as fast as this one (no process per call) hits that window reliably, so the
        check lives here. The hazard: websocketpp drops the completion of a TCP connect that
        was aborted by closing its socket (transport/asio/endpoint.hpp, handle_connect), so
        neither the fail nor the close handler runs and a count of live connections kept from
        those handlers never comes back down; shutdown then waits the whole --shutdown-grace."""
        churn = 40
        for number in range(churn):
            endpoint_id = f"churn-{number}"
            self.register(self.pb.EndpointSpec(id=endpoint_id, url=self.upstream.url))
            self.supervisor.UnregisterEndpoint(
                self.pb.UnregisterEndpointRequest(id=endpoint_id), timeout=CALL_TIMEOUT_S)
        self.assertEqual(self.listed_specs(), [])
        self.channel.close()
        status, took_ms = self.server.stop()
        print(f"  SIGTERM after {churn} register/unregister pairs: stopped in {took_ms:.0f} ms",
              flush=True)
        self.assertEqual(status, 0)
        # The default --shutdown-grace is 10 s; an idle server needs well under half of it.
        self.assertLess(took_ms, 5000, "shutdown waited for connections that no longer exist "
                        "(see the WARN line of the log printed below)")

    def test_standard_health_service_is_serving(self):
        health = self.health_grpc.HealthStub(self.channel)
        serving = self.health_pb.HealthCheckResponse.SERVING
        response = health.Check(self.health_pb.HealthCheckRequest(service=""),
                                timeout=CALL_TIMEOUT_S)
        self.assertEqual(response.status, serving, "the server as a whole")

    def test_reflection_lists_and_describes_the_supervisor(self):
        reflection = self.reflection_grpc.ServerReflectionStub(self.channel)
        request = self.reflection_pb.ServerReflectionRequest
        responses = list(reflection.ServerReflectionInfo(
            iter([request(list_services=""),
                  request(file_containing_symbol="wsvisor.v1.Supervisor")]),
            timeout=CALL_TIMEOUT_S))
        self.assertEqual(len(responses), 2)

        services = [s.name for s in responses[0].list_services_response.service]
        print(f"  reflection lists {services}", flush=True)
        self.assertIn("wsvisor.v1.Supervisor", services)

        described = responses[1]
        self.assertTrue(described.HasField("file_descriptor_response"),
                        described.error_response.error_message)
        files = [descriptor_pb2.FileDescriptorProto.FromString(blob)
                 for blob in described.file_descriptor_response.file_descriptor_proto]
        served = next(f for f in files if f.package == "wsvisor.v1")
        served_methods = {m.name for s in served.service if s.name == "Supervisor"
                          for m in s.method}
        # What the server describes must be what our .proto declares, method for method.
        declared = self.pb.DESCRIPTOR.services_by_name["Supervisor"]
        self.assertEqual(served_methods, {m.name for m in declared.methods})


if __name__ == "__main__":
    unittest.main(verbosity=2)
