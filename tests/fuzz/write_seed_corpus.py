#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets into tests/fuzz/corpus/<target>/ (see README.md).

The seeds are kept in the repository; run this again after changing the examples below, the API
or the config examples in docs/config.md and deploy/. Files it does not write (reproducers of
fixed findings, added by hand) are left alone.

Uses Debian's /usr/bin/python3 with python3-protobuf and /usr/bin/protoc, like the end-to-end
tests.
"""

import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def write(target, name, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


# --- fuzz_websocket_url: one URL per file -------------------------------------------------------

URLS = {
    "plain": "ws://example.com/",
    "secure": "wss://feed.example.com/ws",
    "port": "ws://127.0.0.1:9000/stream",
    "port-max": "wss://example.com:65535/",
    "port-zero": "ws://example.com:0/",
    "port-too-big": "ws://example.com:65536/",
    "port-empty": "ws://example.com:/",
    "port-letters": "ws://example.com:80a/",
    "no-path": "ws://example.com",
    "query-only": "ws://example.com?token=abc",
    "query-after-port": "wss://example.com:8443?v=2&x=y",
    "path-and-query": "wss://feed.example.com:8443/stream?v=2",
    "ipv6": "ws://[::1]:8080/ws",
    "ipv6-default-port": "wss://[2001:db8::1]/",
    "ipv6-mapped": "ws://[::ffff:192.0.2.1]/",
    "ipv6-unterminated": "ws://[::1/",
    "ipv6-trailing": "ws://[::1]x/",
    "ipv6-empty": "ws://[]/",
    "userinfo": "ws://user:pass@example.com/",
    "at-in-path": "ws://example.com/a@b",
    "fragment": "ws://example.com/#top",
    "space": "ws://exa mple.com/",
    "http": "http://example.com/",
    "no-scheme": "example.com/ws",
    "empty-host": "ws:///path",
    "underscore-host": "ws://my_host.internal/",
    "bad-host-char": "ws://exa%mple.com/",
    "colon-in-query": "ws://example.com/?a=b:c",
    "long-host": "ws://" + "a" * 254 + "/",
}


def write_urls():
    for name, url in URLS.items():
        write("fuzz_websocket_url", name, url)


# --- fuzz_config_file: YAML files ----------------------------------------------------------------

CONFIGS = {
    "empty": "",
    "no-endpoints": "endpoints: []\n",
    "null-endpoints": "endpoints:\n",
    "minimal": "endpoints:\n  - id: echo\n    url: ws://echo.example.com/\n",
    "every-field": """\
endpoints:
  - id: prices
    url: wss://feed.example.com/ws
    labels: {team: red, env: prod}
    headers: [{name: Authorization, value: "Bearer x"}, {name: X-Trace}]
    subprotocols: [v2.prices, v1.prices]
    heartbeat: {mode: text, interval: 250ms, timeout: 1s, unhealthy_threshold: 3,
                healthy_threshold: 2, payload: ping, expect: "pong.*"}
    backoff: {initial: 500ms, multiplier: 2, jitter: 0.1, max: 1m, reset_after: 30s}
    connect_timeout: 5s
    max_message_bytes: 4096
    tls: {ca_file: /etc/ca.pem, server_name: feed.example.com, insecure_skip_verify: false,
          client_cert_file: /etc/c.pem, client_key_file: /etc/c.key}
""",
    "passive-long-interval": """\
endpoints:
  - id: slow
    url: ws://slow.example.com/
    heartbeat: {mode: passive, interval: 1h}
""",
    "no-jitter": """\
endpoints:
  - id: exact
    url: ws://exact.example.com/
    backoff: {initial: 1.5s, no_jitter: true, max: 1h}
""",
    "durations": """\
endpoints:
  - id: d
    url: ws://d.example.com/
    heartbeat: {interval: 1m30s, timeout: 100000us}
    connect_timeout: 2562047h
""",
    "unknown-key": "endpoints:\n  - id: a\n    url: ws://a/\n    hearbeat: {}\n",
    "bad-duration": "endpoints:\n  - id: a\n    url: ws://a/\n    connect_timeout: 10\n",
    "bad-number": "endpoints:\n  - id: a\n    url: ws://a/\n    max_message_bytes: -1\n",
    "bad-yaml": "endpoints: [\n  - id: a\n",
    "not-a-list": "endpoints: {id: a}\n",
    "anchors": """\
defaults: &hb {mode: ping, interval: 5s}
endpoints:
  - {id: a, url: "ws://a/", heartbeat: *hb}
  - {id: b, url: "ws://b/", heartbeat: *hb}
""",
    "tags-and-documents": "--- !!map\nendpoints: !!seq\n  - id: !!str 1\n    url: ws://one/\n...\n",
    # Found by fuzzing: bytes that are not UTF-8 were accepted, stored, and then kept wsvisor
    # from starting (a stored spec must parse as a proto3 message).
    "latin1-url-path": b"endpoints:\n  - id: a\n    url: ws://a/caf\xe9\n",
    "latin1-label-value": b"endpoints:\n  - id: a\n    url: ws://a/\n    labels: {env: pr\xf6d}\n",
    "surrogate-escape": 'endpoints:\n  - id: a\n    url: ws://a/\n    labels: {env: "\\ud800"}\n',
    "utf8-values": """\
endpoints:
  - id: cafe
    url: "ws://a/caf\u00e9"
    labels: {owner: "\u00e9quipe \U0001F600"}
    heartbeat: {mode: text, payload: "\u2764", expect: "\u2764+"}
""",
}


def write_configs():
    for name, text in CONFIGS.items():
        write("fuzz_config_file", name, text)
    # The examples that people copy: docs/config.md and the Kubernetes overlay's ConfigMap.
    with open(os.path.join(ROOT, "docs", "config.md")) as f:
        blocks = re.findall(r"```yaml\n(.*?)```", f.read(), re.S)
    for i, block in enumerate(blocks):
        write("fuzz_config_file", f"docs-config-{i}", block)
    example = os.path.join(ROOT, "deploy", "kubernetes", "overlays", "example", "endpoints.yaml")
    shutil.copyfile(example, os.path.join(CORPUS, "fuzz_config_file", "deploy-example"))


# --- fuzz_reply_matcher: payload, expression and reply for FuzzedDataProvider ---------------------

def provider_string(text):
    """The bytes that FuzzedDataProvider::ConsumeRandomLengthString() reads back as `text`: a
    backslash is doubled, and a backslash followed by another byte ends the string."""
    return text.replace("\\", "\\\\") + "\\;"


REPLIES = {
    # name: (payload, expect, reply)
    "equal": ("heartbeat", "", "heartbeat"),
    "not-equal": ("heartbeat", "", "heartbeat2"),
    "default-payload": ("", "", "heartbeat"),
    "literal": ("ping", "pong", "pong"),
    "prefix": ("ping", "pong.*", "pong 1700000000"),
    "alternatives": ("ping", "pong|ok", "ok"),
    "json": ('{"op":"ping"}', r'\{"op":"pong"(,"ts":\d+)?\}', '{"op":"pong","ts":17}'),
    "classes": ("hb", r"[A-Za-z_]\w*\s+\d{1,3}", "alive  42"),
    "lookahead": ("hb", r"(?=.*ok).*", "all ok"),
    "negative-lookahead": ("hb", r"(?!err).*", "error"),
    "nested-groups": ("hb", "((((((((((a))))))))))*", "a" * 64),
    "backtracking": ("hb", "(x+x+)+y", "x" * 40),
    "anchors": ("hb", r"^pong$", "pong"),
    "escapes": ("hb", r"\x41\u0042\t\.", "AB\t."),
    "bracket-class": ("hb", "[[:alpha:]]+[^0-9]", "abc!"),
    "lazy": ("hb", "a*?b+?", "aab"),
    "long-reply": ("hb", ".*", "z" * 4097),
    "invalid-expression": ("hb", "(unclosed", "x"),
    "back-reference": ("hb", r"(a)\1", "aa"),
    # Found by fuzzing and review: counts and back-reference numbers that overflowed in libstdc++,
    # counted repetitions and lookaheads that made one match take seconds to minutes.
    "huge-count": ("hb", "a{99999999999999999999}", "a"),
    "huge-back-reference": ("hb", r"(a)\99999999999999999999", "a"),
    "truncated-count": ("hb", "a{4294967297}", "a"),
    "counts-expanding": ("hb", "(?:a*){24000}", "a" * 4096),
    "counts-within-limit": ("hb", "(?:(?:a){20}){20}", "a" * 400),
    "lookahead-in-loop": ("hb", "(?:(?=.*a)a)*", "a" * 4096),
    "nested-lookahead": ("hb", "(?:(?=(?:(?=.*a)a)*)a)*", "a" * 4096),
    "leading-lookaheads": ("hb", "^(?=.*ok)(?!.*err).*$", "all ok"),
}


def write_replies():
    for name, (payload, expect, reply) in REPLIES.items():
        data = provider_string(payload) + provider_string(expect) + reply
        write("fuzz_reply_matcher", name, data)


# --- fuzz_request_validation: serialized UpdateEndpointRequest / RegisterEndpointRequest ----------

def import_messages(out_dir):
    subprocess.run(["/usr/bin/protoc", f"-I{os.path.join(ROOT, 'proto')}", "-I/usr/include",
                    f"--python_out={out_dir}",
                    os.path.join(ROOT, "proto", "wsvisor", "v1", "supervisor.proto")],
                   check=True)
    sys.path.insert(0, out_dir)
    return importlib.import_module("wsvisor.v1.supervisor_pb2")


def write_requests(pb):
    def register(**fields):
        request = pb.RegisterEndpointRequest()
        request.spec.id = fields.pop("id", "echo-1")
        request.spec.url = fields.pop("url", "ws://echo.example.com/ws")
        for setter in fields.values():
            setter(request.spec)
        return request

    def minimal(spec):
        pass

    def full(spec):
        spec.url = "wss://feed.example.com:8443/stream?v=2"
        spec.labels["team"] = "red"
        spec.labels["env"] = "prod"
        spec.headers.add(name="Authorization", value="Bearer x")
        spec.headers.add(name="X-Key", value="k", secret=True)
        spec.subprotocols.extend(["v2.prices", "v1.prices"])
        spec.heartbeat.mode = pb.HEARTBEAT_MODE_TEXT
        spec.heartbeat.interval.FromMilliseconds(250)
        spec.heartbeat.timeout.FromSeconds(1)
        spec.heartbeat.unhealthy_threshold = 3
        spec.heartbeat.healthy_threshold = 2
        spec.heartbeat.payload = "ping"
        spec.heartbeat.expect = "pong.*"
        spec.backoff.initial.FromMilliseconds(500)
        spec.backoff.multiplier = 2.0
        spec.backoff.jitter = 0.1
        spec.backoff.max.FromSeconds(60)
        spec.backoff.reset_after.FromSeconds(30)
        spec.connect_timeout.FromSeconds(5)
        spec.max_message_bytes = 4096
        spec.tls.ca_file = "/etc/ca.pem"
        spec.tls.server_name = "feed.example.com"
        spec.tls.client_cert_file = "/etc/c.pem"
        spec.tls.client_key_file = "/etc/c.key"

    # Found by fuzzing: the default timeout (2 x interval) was beyond the limit, so the stored
    # spec failed validation on restart.
    def passive_hour(spec):
        spec.heartbeat.mode = pb.HEARTBEAT_MODE_PASSIVE
        spec.heartbeat.interval.FromSeconds(3600)

    def ping_limits(spec):
        spec.heartbeat.mode = pb.HEARTBEAT_MODE_PING
        spec.heartbeat.interval.FromMilliseconds(10)
        spec.heartbeat.timeout.FromSeconds(3600)
        spec.heartbeat.unhealthy_threshold = 100
        spec.connect_timeout.FromMilliseconds(100)
        spec.max_message_bytes = 125

    def no_jitter(spec):
        spec.backoff.no_jitter = True
        spec.backoff.initial.FromSeconds(3600)

    def nanos(spec):
        spec.heartbeat.interval.seconds = 1
        spec.heartbeat.interval.nanos = 500000000

    # Found by fuzzing: seconds x 10^9 overflowed int64 nanoseconds.
    def huge_duration(spec):
        spec.heartbeat.interval.seconds = 315576000000

    def overflowing_duration(spec):
        spec.backoff.reset_after.seconds = 20000000000

    def nanos_out_of_range(spec):
        spec.connect_timeout.seconds = 9223372035
        spec.connect_timeout.nanos = 2147483647

    def negative_duration(spec):
        spec.backoff.max.seconds = -1

    def unknown_mode(spec):
        spec.heartbeat.mode = 7

    def reserved_header(spec):
        spec.headers.add(name="Sec-WebSocket-Key", value="x")

    def header_crlf(spec):
        spec.headers.add(name="X-A", value="a\r\nX-B: b")

    def tls_on_ws(spec):
        spec.tls.insecure_skip_verify = True

    def ipv6(spec):
        spec.url = "wss://[::1]:9443/"
        spec.tls.insecure_skip_verify = True

    def redacted(spec):
        spec.headers.add(name="Cookie", value="<redacted>")

    def nan_jitter(spec):
        spec.backoff.jitter = float("nan")

    requests = {
        "minimal": register(s=minimal),
        "every-field": register(s=full),
        "passive-hour": register(s=passive_hour),
        "ping-limits": register(s=ping_limits),
        "no-jitter": register(s=no_jitter),
        "nanos": register(s=nanos),
        "huge-duration": register(s=huge_duration),
        "overflowing-duration": register(s=overflowing_duration),
        "nanos-out-of-range": register(s=nanos_out_of_range),
        "negative-duration": register(s=negative_duration),
        "unknown-mode": register(s=unknown_mode),
        "reserved-header": register(s=reserved_header),
        "header-crlf": register(s=header_crlf),
        "tls-on-ws": register(s=tls_on_ws),
        "ipv6": register(s=ipv6),
        "redacted-secret": register(s=redacted),
        "nan-jitter": register(s=nan_jitter),
        "bad-id": register(id="Not An Id"),
        "bad-url": register(url="http://example.com/"),
        "no-spec": pb.RegisterEndpointRequest(),
    }
    for name, request in requests.items():
        write("fuzz_request_validation", name, request.SerializeToString())
    update = pb.UpdateEndpointRequest(spec=register(s=full).spec, expected_generation=3)
    write("fuzz_request_validation", "update-every-field", update.SerializeToString())


def main():
    write_urls()
    write_configs()
    write_replies()
    with tempfile.TemporaryDirectory(prefix="wsvisor-fuzz-seeds-") as out_dir:
        write_requests(import_messages(out_dir))


if __name__ == "__main__":
    main()
