#!/usr/bin/python3
"""End-to-end tests of wsvisor through wsvisorctl: the real binaries, a real WebSocket upstream,
driven the way a user drives them from a shell.

Each test gets its own wsvisor (free port, fresh data directory) and upstream (see
wsvisor_fixtures.py). Run by ctest, or by hand:

  WSVISOR_BIN=build/wsvisor WSVISORCTL_BIN=build/wsvisorctl WSVISOR_SOURCE_DIR=. \\
      /usr/bin/python3 tests/e2e/test_cli_e2e.py -v

Measured figures (time to healthy, to detect a hung upstream, to recover) are printed, not
asserted tightly: the bounds only catch "never" and gross slowness, because the machine is shared.
"""

import json
import os
import re
import shlex
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsvisor_fixtures import (  # noqa: E402  (needs the path above)
    WsvisorTestCase, elapsed_ms, environment_without_server, free_tcp_port, wait_until)

# wsvisorctl's exit statuses (see `wsvisorctl --help`).
EXIT_CALL_FAILED = 1
EXIT_USAGE = 2
EXIT_PROBE_FAILED = 3

# Heartbeat settings of the endpoints under test: fast enough that a hung upstream is noticed in
# well under a second, slow enough not to load the shared machine.
FAST_HEARTBEAT = ("--interval", "200ms", "--timeout", "200ms")

# Time to healthy after registering: connect to a local upstream plus one ping-pong.
HEALTHY_WITHIN_S = 2.0
# A hung upstream is declared dead after interval + timeout (400 ms here); the rest is slack.
DETECTION_WITHIN_S = 10.0
# After SIGCONT the pending reconnect completes, or the next one (backoff starts at 1 s) does.
RECOVERY_WITHIN_S = 15.0
# Bound for events that should be immediate (snapshot, unregistration).
PROMPT_S = 10.0

# One health column of a watch table line: "healthy", or "unhealthy->healthy" on a change.
WATCH_HEALTH = re.compile(r"^(?:(unknown|healthy|unhealthy)->)?(unknown|healthy|unhealthy)$")


def health_in_watch_line(line):
    """The health an endpoint has after the event on this `wsvisorctl watch` table line, or None
    for lines without one (the snapshot marker). Needed because "unhealthy" contains "healthy"."""
    for token in line.split():
        match = WATCH_HEALTH.match(token)
        if match:
            return match.group(2)
    return None


# The header `wsvisorctl watch` prints before its first row (not with -o json).
WATCH_HEADER = ["TIME", "REVISION", "EVENT", "ID", "HEALTH", "PHASE", "LAST", "FAILURE"]


def is_watch_row(line):
    """True for a `wsvisorctl watch` table row: not the header, not the marker line."""
    return not line.startswith("TIME ") and not line.startswith("(")


def revision_in_watch_line(line):
    """The revision a `wsvisorctl watch` row or marker line prints as "#<revision>"."""
    match = re.search(r"#(\d+)\b", line)
    if match is None:
        raise AssertionError(f"no revision in watch line {line!r}")
    return int(match.group(1))


def watch_cells(line):
    """A watch row's cells (split at runs of two or more spaces): the same row printed by two
    watches has the same cells even where their column widths differ."""
    return re.split(r" {2,}", line.strip())


def event_type_is(event_type):
    """A LineReader.wait_for() condition on a `watch -o json` line; a line that is not JSON fails
    the test (json.loads raises)."""
    return lambda line: json.loads(line).get("type") == event_type


def json_lines(text):
    """Parses `-o json` output: one protobuf JSON message per non-empty line."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class CliEndToEndTest(WsvisorTestCase):

    # ----- small wrappers that fail with the command's own output -----

    def ctl_ok(self, *args):
        """Runs wsvisorctl and requires exit 0; returns its stdout."""
        result = self.ctl.run(*args)
        self.assertEqual(result.returncode, 0,
                         f"wsvisorctl {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def register(self, endpoint_id, *flags):
        self.ctl_ok("register", endpoint_id, self.upstream.url, *FAST_HEARTBEAT, *flags)

    def get_endpoint(self, endpoint_id):
        return json.loads(self.ctl_ok("get", endpoint_id, "-o", "json"))

    def specs_by_id(self):
        """Every registered endpoint's spec, by id: what a rejected request must not change.
        (Status is left out: it changes by itself with every heartbeat.)"""
        return {e["spec"]["id"]: e["spec"] for e in json_lines(self.ctl_ok("list", "-o", "json"))}

    def wait_until_health(self, endpoint_id, health, timeout_s):
        """Polls `get -o json` until the endpoint has `health`; returns the elapsed ms."""
        started = time.monotonic()
        wait_until(lambda: self.get_endpoint(endpoint_id)["status"].get("health") == health,
                   timeout_s, f"{endpoint_id} to be {health}")
        return elapsed_ms(started)

    # ----- tests -----

    def test_register_get_and_list_by_selector(self):
        started = time.monotonic()
        self.register("red-1", "--label", "team=red")
        register_ms = elapsed_ms(started)
        healthy_ms = self.wait_until_health("red-1", "HEALTH_HEALTHY", HEALTHY_WITHIN_S)
        print(f"  register took {register_ms:.0f} ms; healthy {healthy_ms:.0f} ms later "
              f"(polling `get`)", flush=True)

        endpoint = self.get_endpoint("red-1")
        self.assertEqual(endpoint["spec"]["id"], "red-1")
        self.assertEqual(endpoint["spec"]["url"], self.upstream.url)
        self.assertEqual(endpoint["spec"]["labels"], {"team": "red"})
        self.assertEqual(endpoint["spec"]["heartbeat"]["interval"], "0.200s")
        self.assertEqual(endpoint["spec"]["heartbeat"]["timeout"], "0.200s")
        self.assertEqual(endpoint["status"]["phase"], "CONNECTION_PHASE_OPEN")

        self.register("red-2", "--label", "team=red")
        self.register("blue-1", "--label", "team=blue")
        red = json_lines(self.ctl_ok("list", "--selector", "team=red", "-o", "json"))
        self.assertEqual([e["spec"]["id"] for e in red], ["red-1", "red-2"])
        not_red = json_lines(self.ctl_ok("list", "-l", "team!=red", "-o", "json"))
        self.assertEqual([e["spec"]["id"] for e in not_red], ["blue-1"])

        table = self.ctl_ok("list").splitlines()
        self.assertEqual(len(table), 1 + 3, f"a header and one row per endpoint: {table}")
        self.assertEqual([row.split()[0] for row in table[1:]], ["blue-1", "red-1", "red-2"])

    def test_get_of_unknown_id_is_not_found(self):
        result = self.ctl.run("get", "no-such-endpoint")
        self.assertEqual(result.returncode, EXIT_CALL_FAILED)
        self.assertIn("NOT_FOUND", result.stderr)
        self.assertEqual(result.stdout, "")

    def test_bad_requests_name_the_field_and_change_nothing(self):
        self.register("kept", "--label", "team=red")
        before = self.specs_by_id()
        cases = [
            # (arguments, exit status, text stderr must contain)
            (["register", "bad", "http://x/"], EXIT_CALL_FAILED, "spec.url"),
            (["register", "x", "ws://127.0.0.1:1/", "--interval", "0s"], EXIT_CALL_FAILED,
             "spec.heartbeat.interval"),
            (["register", "has space", "ws://127.0.0.1:1/"], EXIT_CALL_FAILED, "spec.id"),
            (["register", "x", "ws://h/", "--mode", "nope"], EXIT_USAGE, "--mode"),
        ]
        for args, status, field in cases:
            with self.subTest(args=args):
                result = self.ctl.run(*args)
                self.assertEqual(result.returncode, status, result.stderr)
                self.assertIn(field, result.stderr)
                if status == EXIT_CALL_FAILED:
                    self.assertIn("INVALID_ARGUMENT", result.stderr)
                self.assertEqual(self.specs_by_id(), before, "a rejected request changed the list")

    def test_watch_reports_hung_upstream_and_recovery(self):
        self.register("hang", "--label", "team=red")
        self.wait_until_health("hang", "HEALTH_HEALTHY", HEALTHY_WITHIN_S)

        watcher = self.start_watch("hang")
        snapshot = watcher.wait_for(lambda line: health_in_watch_line(line) is not None, PROMPT_S,
                                    "the endpoint's snapshot")
        self.assertIn("hang", snapshot)
        watcher.wait_for(lambda line: "snapshot complete" in line, PROMPT_S, "the snapshot marker")

        paused = time.monotonic()
        self.upstream.pause()
        line = watcher.wait_for(lambda line: health_in_watch_line(line) == "unhealthy",
                                DETECTION_WITHIN_S, '"unhealthy"')
        detected_ms = elapsed_ms(paused)
        self.assertIn("pong_timeout", line)

        resumed = time.monotonic()
        self.upstream.resume()
        watcher.wait_for(lambda line: health_in_watch_line(line) == "healthy", RECOVERY_WITHIN_S,
                         '"healthy" again')
        recovered_ms = elapsed_ms(resumed)
        print(f"  upstream paused: detected pong_timeout after {detected_ms:.0f} ms (expected at "
              f"most interval + timeout = 400 ms); healthy {recovered_ms:.0f} ms after SIGCONT",
              flush=True)

        self.assertEqual(watcher.interrupt(), 0, f"watch on SIGINT: {watcher.stderr_text()}")

    def test_watch_json_lines_carry_revisions(self):
        self.register("json-1", "--label", "team=red")
        watcher = self.start_watch("-o", "json")
        watcher.wait_for(event_type_is("TYPE_SNAPSHOT_COMPLETE"), PROMPT_S,
                         "TYPE_SNAPSHOT_COMPLETE")
        events = [json.loads(line) for line in watcher.lines]
        self.assertEqual([e["type"] for e in events], ["TYPE_SNAPSHOT", "TYPE_SNAPSHOT_COMPLETE"])
        self.assertEqual(events[0]["endpointId"], "json-1")
        self.assertEqual(events[0]["labels"], {"team": "red"})
        snapshot_revision = int(events[1]["revision"])  # proto3 JSON writes uint64 as a string

        started = time.monotonic()
        self.register("json-2")
        registered = json.loads(watcher.wait_for(
            lambda line: json.loads(line).get("endpointId") == "json-2", PROMPT_S,
            "json-2's registration"))
        self.assertEqual(registered["type"], "TYPE_REGISTERED")
        self.ctl_ok("unregister", "json-2")
        watcher.wait_for(event_type_is("TYPE_UNREGISTERED"), PROMPT_S, "TYPE_UNREGISTERED")
        print(f"  registration to unregistration seen on the watch in {elapsed_ms(started):.0f} ms",
              flush=True)

        self.assertEqual(watcher.interrupt(), 0, f"watch on SIGINT: {watcher.stderr_text()}")
        changes = [json.loads(line) for line in watcher.lines[2:]]
        for change in changes:
            self.assertIn("revision", change)
        revisions = [int(change["revision"]) for change in changes]
        self.assertGreater(revisions[0], snapshot_revision)
        self.assertEqual(revisions, sorted(set(revisions)), "revisions must strictly increase")

    def test_history_shows_each_transition(self):
        self.register("hist")
        self.wait_until_health("hist", "HEALTH_HEALTHY", HEALTHY_WITHIN_S)
        self.upstream.pause()
        self.wait_until_health("hist", "HEALTH_UNHEALTHY", DETECTION_WITHIN_S)
        self.upstream.resume()
        self.wait_until_health("hist", "HEALTH_HEALTHY", RECOVERY_WITHIN_S)

        table = self.ctl_ok("history", "hist").splitlines()
        print("  " + "\n  ".join(table), flush=True)
        self.assertEqual(table[0].split(), ["TIME", "CHANGE", "RTT", "REVISION", "REASON",
                                            "FAILURE"])
        rows = [row.split() for row in table[1:]]
        self.assertEqual([row[1] for row in rows],
                         ["unknown->healthy", "healthy->unhealthy", "unhealthy->healthy"])
        self.assertIn("pong_timeout", table[2], "the failure behind the change to unhealthy")
        revisions = [int(row[3]) for row in rows]
        self.assertEqual(revisions, sorted(set(revisions)))

        history = json.loads(self.ctl_ok("history", "hist", "-o", "json"))
        transitions = history["transitions"]
        # proto3 JSON leaves out enum values that are 0 (HEALTH_UNKNOWN) and writes uint64 as text.
        self.assertEqual([(t.get("previousHealth", "HEALTH_UNKNOWN"), t["health"])
                          for t in transitions],
                         [("HEALTH_UNKNOWN", "HEALTH_HEALTHY"),
                          ("HEALTH_HEALTHY", "HEALTH_UNHEALTHY"),
                          ("HEALTH_UNHEALTHY", "HEALTH_HEALTHY")])
        self.assertEqual([int(t["revision"]) for t in transitions], revisions)
        self.assertEqual(transitions[1]["failure"]["reason"], "FAILURE_REASON_PONG_TIMEOUT")
        self.assertNotIn("failure", transitions[2])
        self.assertNotIn("dropped", history, "nothing was dropped")

        missing = self.ctl.run("history", "no-such-endpoint")
        self.assertEqual(missing.returncode, EXIT_CALL_FAILED)
        self.assertIn("NOT_FOUND", missing.stderr)

    def test_watch_since_replays_the_later_changes_then_streams_live(self):
        """A user copies the revision of a line from one watch and resumes from it in another."""
        first = self.start_watch()
        first.wait_for(lambda line: "snapshot complete" in line, PROMPT_S, "the snapshot marker")
        self.register("r-1")
        copied = first.wait_for(lambda line: "r-1" in line and health_in_watch_line(line) ==
                                "healthy", HEALTHY_WITHIN_S, "r-1 healthy")
        self.register("r-2")
        first.wait_for(lambda line: "r-2" in line and health_in_watch_line(line) == "healthy",
                       HEALTHY_WITHIN_S, "r-2 healthy")
        self.ctl_ok("unregister", "r-1")
        first.wait_for(lambda line: "unregistered" in line, PROMPT_S, "r-1's unregistration")
        since = revision_in_watch_line(copied)

        resumed = self.start_watch("--since", str(since))
        marker = resumed.wait_for(lambda line: line.startswith("(replay complete at #"),
                                  PROMPT_S, "the marker after the replay")
        self.assertTrue(marker.endswith("; live changes follow)"), marker)
        current = revision_in_watch_line(marker)
        self.assertEqual(resumed.lines[0].split(), WATCH_HEADER)
        replayed = [watch_cells(line) for line in resumed.lines[1:-1]]
        # The first watch printed the very same rows (same times, revisions and states) for the
        # changes after the copied revision; nothing is replayed twice or left out.
        missed = [watch_cells(line) for line in first.lines
                  if is_watch_row(line) and since < revision_in_watch_line(line) <= current]
        self.assertTrue(replayed, "r-2's registration at least came after the copied revision")
        self.assertEqual(replayed, missed)

        # Live from here on: a change made after the resumed watch started arrives.
        self.register("r-3")
        live = resumed.wait_for(lambda line: "r-3" in line, PROMPT_S, "r-3's registration")
        self.assertIn("registered", live)
        self.assertGreater(revision_in_watch_line(live), current)
        self.assertEqual(resumed.interrupt(), 0, f"watch on SIGINT: {resumed.stderr_text()}")

    def test_watch_since_a_revision_the_server_does_not_hold_fails(self):
        for since, words in (("1", "is too old"), ("#1", "is too old"),
                             (str(2**63), "is ahead of the current revision")):
            with self.subTest(since=since):
                result = self.ctl.run("watch", "--since", since)
                self.assertEqual(result.returncode, EXIT_CALL_FAILED, result.stderr)
                self.assertEqual(result.stdout, "")
                self.assertTrue(result.stderr.startswith("wsvisorctl: OUT_OF_RANGE: "),
                                result.stderr)
                self.assertIn(f"since_revision {since.lstrip('#')} {words}", result.stderr)
                self.assertIn("resume with since_revision 0", result.stderr)
        print(f"  refused: {result.stderr.strip()}", flush=True)

    def test_unregister_then_get_is_not_found(self):
        self.register("gone")
        self.assertEqual(self.ctl.run("unregister", "gone").returncode, 0)
        result = self.ctl.run("get", "gone")
        self.assertEqual(result.returncode, EXIT_CALL_FAILED)
        self.assertIn("NOT_FOUND", result.stderr)
        again = self.ctl.run("unregister", "gone")
        self.assertEqual(again.returncode, EXIT_CALL_FAILED)
        self.assertIn("NOT_FOUND", again.stderr)

    def test_server_address_from_environment(self):
        self.register("env-1")
        from_environment = self.ctl.run(
            "get", "env-1", "-o", "json", with_server_flag=False,
            env=environment_without_server(WSVISOR_SERVER=self.server.address))
        self.assertEqual(from_environment.returncode, 0, from_environment.stderr)
        self.assertEqual(json.loads(from_environment.stdout)["spec"]["id"], "env-1")

        # --server wins over the environment (port 1: nothing listens there).
        flag_wins = self.ctl.run("get", "env-1", env=environment_without_server(
            WSVISOR_SERVER="127.0.0.1:1"))
        self.assertEqual(flag_wins.returncode, 0, flag_wins.stderr)

    def test_sigterm_ends_open_watch_streams(self):
        """A watcher must not keep wsvisor from stopping, and must learn that the stream ended
        because the server went away (non-zero, so a script can restart it)."""
        self.register("term-1")
        watcher = self.start_watch()
        watcher.wait_for(lambda line: "snapshot complete" in line, PROMPT_S, "the snapshot marker")
        status, took_ms = self.server.stop()
        print(f"  wsvisor with an open watch stopped in {took_ms:.0f} ms", flush=True)
        self.assertEqual(status, 0)
        watcher.process.wait(timeout=PROMPT_S)
        stderr = watcher.stderr_text()
        print(f"  watch ended with exit status {watcher.process.returncode}: {stderr.strip()!r}",
              flush=True)
        self.assertEqual(watcher.process.returncode, EXIT_CALL_FAILED)
        self.assertIn("UNAVAILABLE", stderr)

    # ----- errors that say how to put things right -----

    def test_unreachable_server_names_the_address_and_how_to_give_another(self):
        nowhere = f"127.0.0.1:{free_tcp_port()}"  # nothing listens there
        cases = [
            # (how the address is given, wsvisorctl's arguments, environment, words of the hint)
            ("--server", ["--server", nowhere, "list"], {},
             "Check the address given with --server"),
            ("$WSVISOR_SERVER", ["list"], {"WSVISOR_SERVER": nowhere},
             "The address comes from $WSVISOR_SERVER; --server HOST:PORT overrides it"),
        ]
        for how, args, extra_env, hint in cases:
            with self.subTest(how=how):
                result = self.ctl.run(*args, with_server_flag=False,
                                      env=environment_without_server(**extra_env))
                self.assertEqual(result.returncode, EXIT_CALL_FAILED, result.stderr)
                self.assertEqual(result.stdout, "")
                lines = result.stderr.splitlines()
                print(f"  {how}: {lines}", flush=True)
                self.assertEqual(len(lines), 2, lines)
                self.assertTrue(lines[0].startswith(
                    f"wsvisorctl: UNAVAILABLE: cannot reach wsvisor at {nowhere}: "), lines[0])
                self.assertIn("is wsvisor running there?", lines[1])
                self.assertIn(hint, lines[1])

    def test_a_mistyped_flag_gets_the_nearest_one_and_nothing_is_sent(self):
        cases = [
            (["register", "typo", self.upstream.url, "--intervall", "10s"],
             "unknown flag --intervall for register; did you mean --interval?"),
            (["register", "typo", self.upstream.url, "--unhealty-threshold=3"],
             "unknown flag --unhealty-threshold for register; did you mean "
             "--unhealthy-threshold?"),
            (["list", "--selectr", "team=red"],
             "unknown flag --selectr for list; did you mean --selector?"),
            (["probe", self.upstream.url, "--selector", "a=b"],
             "unknown flag --selector for probe (it is a flag of list and watch)"),
            (["regster", "typo", self.upstream.url],
             "did you mean register?"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                result = self.ctl.run(*args)
                self.assertEqual(result.returncode, EXIT_USAGE, result.stderr)
                self.assertEqual(result.stdout, "")
                self.assertIn(message, result.stderr)
                self.assertIn("Run 'wsvisorctl --help' for usage.", result.stderr)
        self.assertEqual(self.specs_by_id(), {}, "nothing was registered")

    def test_register_again_with_another_spec_names_the_fields_and_the_update_command(self):
        self.ctl_ok("register", "prices", self.upstream.url, "--interval", "5s",
                    "--label", "team=red")
        # The usual mistake: the same command again, without the flags of the first one.
        result = self.ctl.run("register", "prices", self.upstream.url)
        self.assertEqual(result.returncode, EXIT_CALL_FAILED, result.stderr)
        self.assertEqual(result.stdout, "")
        lines = result.stderr.splitlines()
        print("  " + "\n  ".join(lines), flush=True)
        self.assertEqual(lines, [
            "wsvisorctl: ALREADY_EXISTS: endpoint 'prices' is already registered with a "
            "different spec; use UpdateEndpoint or unregister it first. Differences: "
            "spec.labels[team]: stored \"red\", requested unset; spec.heartbeat.interval: "
            "stored 5s, requested 10s (default)",
            "wsvisorctl: each flag left out of register asks for its default, not for the "
            "stored value; to keep the stored spec, nothing needs doing",
            "wsvisorctl: to replace the stored spec with the one asked for: wsvisorctl --server "
            f"{self.server.address} update prices {self.upstream.url}",
        ])
        stored = self.get_endpoint("prices")["spec"]
        self.assertEqual((stored["heartbeat"]["interval"], stored["labels"]),
                         ("5s", {"team": "red"}), "the refused register changed nothing")

        # The suggested command, run as a shell would split it, applies the spec asked for.
        suggested = shlex.split(lines[2].split(": ", 2)[2])
        self.assertEqual(suggested[0], "wsvisorctl")
        applied = self.ctl.run(*suggested[1:], with_server_flag=False)
        self.assertEqual(applied.returncode, 0, applied.stderr)
        stored = self.get_endpoint("prices")["spec"]
        self.assertEqual(stored["heartbeat"]["interval"], "10s")
        self.assertNotIn("labels", stored)
        again = self.ctl.run("register", "prices", self.upstream.url)
        self.assertEqual((again.returncode, again.stdout),
                         (0, "already registered prices (identical spec)\n"), again.stderr)

    def test_an_http_url_is_told_the_websocket_scheme_to_use(self):
        cases = [
            (["register", "web", "http://127.0.0.1:1/feed"], "ws://", "http://"),
            (["register", "web", "https://127.0.0.1:1/feed"], "wss://", "https://"),
            (["probe", "HTTPS://127.0.0.1:1/feed"], "wss://", "https://"),
        ]
        for args, scheme, given in cases:
            with self.subTest(args=args):
                result = self.ctl.run(*args)
                self.assertEqual(result.returncode, EXIT_CALL_FAILED, result.stderr)
                self.assertEqual(result.stdout, "")
                self.assertEqual(result.stderr,
                                 "wsvisorctl: INVALID_ARGUMENT: spec.url: must start with ws:// "
                                 f"or wss:// (use {scheme} in place of {given})\n")
        self.assertEqual(self.specs_by_id(), {}, "nothing was registered")

    def test_watch_prints_a_header_and_marks_the_end_of_the_snapshot(self):
        self.register("w-1")
        watcher = self.start_watch()
        marker = watcher.wait_for(lambda line: line.startswith("("), PROMPT_S, "the marker")
        self.assertEqual(watcher.lines[0].split(), WATCH_HEADER)
        rows = watcher.lines[1:-1]
        self.assertEqual([watch_cells(row)[3] for row in rows], ["w-1"])
        self.assertEqual(watch_cells(rows[0])[2], "snapshot")
        self.assertRegex(marker, r"^\(snapshot complete at #\d+; changes follow\)$")
        self.register("w-2")
        registered = watcher.wait_for(lambda line: "w-2" in line, PROMPT_S, "w-2's registration")
        self.assertEqual(watch_cells(registered)[2], "registered")
        self.assertGreater(revision_in_watch_line(registered), revision_in_watch_line(marker))
        print("  " + "\n  ".join(watcher.lines), flush=True)
        self.assertEqual(watcher.interrupt(), 0, watcher.stderr_text())

    def test_a_failure_from_before_the_connection_opened_is_shown_as_past(self):
        """connection_refused until the upstream starts; then an open connection that is not
        healthy yet (healthy threshold 3) must not show the refusal as its current failure."""
        port = free_tcp_port()
        url = f"ws://127.0.0.1:{port}/"
        watcher = self.start_watch()
        watcher.wait_for(lambda line: "snapshot complete" in line, PROMPT_S, "the snapshot marker")
        self.ctl_ok("register", "late", url, "--interval", "300ms", "--healthy-threshold", "3",
                    "--backoff-initial", "100ms", "--backoff-max", "200ms", "--no-jitter")
        refused = watcher.wait_for(lambda line: "late" in line and "backing_off" in line,
                                   PROMPT_S, "a refused connect")
        self.assertEqual(watch_cells(refused)[-1], "connection_refused: connection refused",
                         "the reason it is backing off is current")

        self.start_upstream("--port", str(port))
        opened = watcher.wait_for(lambda line: "late" in line and "  open  " in line,
                                  RECOVERY_WITHIN_S, "the open connection")
        cells = watch_cells(opened)
        self.assertEqual(cells[4:6], ["unhealthy", "open"], opened)
        self.assertRegex(cells[6], r"^\d+(ms|s) ago: connection_refused: connection refused$")
        healthy = watcher.wait_for(lambda line: "late" in line and
                                   health_in_watch_line(line) == "healthy", RECOVERY_WITHIN_S,
                                   '"healthy"')
        self.assertRegex(watch_cells(healthy)[6], r" ago: connection_refused")
        print("  " + "\n  ".join([refused, opened, healthy]), flush=True)

        # `list` and `get` say the same: open and healthy, the refusal in the past.
        table = self.ctl_ok("list").splitlines()
        self.assertEqual(len(table), 2, table)
        row = watch_cells(table[1])
        self.assertEqual(row[1:3], ["healthy", "open"])
        self.assertRegex(row[-1], r"^\d+(ms|s) ago: connection_refused: connection refused$")
        # -o json keeps its shape: the failure as the server sent it, no age.
        status = self.get_endpoint("late")["status"]
        self.assertEqual(status["lastFailure"]["reason"], "FAILURE_REASON_CONNECTION_REFUSED")
        self.assertEqual(watcher.interrupt(), 0, watcher.stderr_text())

    # ----- probe -----

    def test_probe_of_a_healthy_upstream_prints_every_rtt(self):
        started = time.monotonic()
        result = self.ctl.run("probe", self.upstream.url, "--heartbeats", "3", "--interval",
                              "100ms")
        took_ms = elapsed_ms(started)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        print(f"  probe took {took_ms:.0f} ms end to end: {lines}", flush=True)
        self.assertEqual(len(lines), 5, lines)
        self.assertRegex(lines[0], r"^connected in [0-9.]+(ns|us|ms|s)$")
        for number, line in enumerate(lines[1:4], start=1):
            self.assertRegex(line, rf"^heartbeat {number}: rtt [0-9.]+(ns|us|ms|s)$")
        self.assertRegex(lines[4], r"^OK: 3 heartbeats answered in [0-9.]+m?s \(rtt min .*\)$")
        self.assertEqual(result.stderr, "")

        as_json = json_lines(self.ctl_ok("probe", self.upstream.url, "--heartbeats", "2",
                                         "--interval", "100ms", "-o", "json"))
        self.assertEqual(len(as_json), 1)
        self.assertTrue(as_json[0]["success"])
        self.assertEqual(len(as_json[0]["rtts"]), 2)
        self.assertEqual(as_json[0]["heartbeatsSent"], 2)
        self.assertNotIn("failure", as_json[0])
        self.assertEqual(self.specs_by_id(), {}, "a probe registers nothing")

    def test_probe_of_a_closed_port_fails_with_the_reason_and_registers_nothing(self):
        closed = f"ws://127.0.0.1:{free_tcp_port()}/"
        result = self.ctl.run("probe", closed)
        self.assertEqual(result.returncode, EXIT_PROBE_FAILED, result.stderr)
        self.assertEqual(result.stdout, "FAILED: connection_refused: connection refused\n")
        self.assertEqual(result.stderr, "")

        as_json = json_lines(self.ctl.run("probe", closed, "-o", "json").stdout)
        self.assertEqual(as_json[0]["failure"]["reason"], "FAILURE_REASON_CONNECTION_REFUSED")
        self.assertNotIn("success", as_json[0])  # proto3 JSON leaves false out
        self.assertEqual(self.specs_by_id(), {}, "a probe registers nothing")

    def test_probe_arguments_are_checked_precisely(self):
        cases = [
            # (arguments, exit status, stderr must contain)
            (["probe"], EXIT_USAGE, "probe: missing URL"),
            (["probe", self.upstream.url, "--heartbeats", "three"], EXIT_USAGE,
             '--heartbeats: want a whole number, got "three"'),
            (["probe", self.upstream.url, "--selector", "a=b"], EXIT_USAGE,
             "unknown flag --selector for probe"),
            (["probe", self.upstream.url, "--heartbeats", "101"], EXIT_CALL_FAILED,
             "INVALID_ARGUMENT: heartbeats: must be 1 to 100, got 101"),
            (["probe", "http://127.0.0.1:1/"], EXIT_CALL_FAILED, "INVALID_ARGUMENT: spec.url"),
        ]
        for args, status, message in cases:
            with self.subTest(args=args):
                result = self.ctl.run(*args)
                self.assertEqual(result.returncode, status, result.stderr)
                self.assertIn(message, result.stderr)
                self.assertEqual(result.stdout, "")


if __name__ == "__main__":
    unittest.main(verbosity=2)
