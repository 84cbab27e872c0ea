#!/usr/bin/python3
"""End-to-end tests of wsvisor's health model through wsvisorctl, against a real foreign
upstream (Python websockets): flap detection, several outstanding heartbeats, and the
connect-only heartbeat mode NONE.

The flapping upstream is made by pausing and resuming the upstream process (SIGSTOP/SIGCONT)
every 300 ms. Those 300 ms are the stimulus, not a wait for a result: every verdict is awaited
on the watch stream with a deadline. Run by ctest, or by hand:

  WSVISOR_BIN=build/wsvisor WSVISORCTL_BIN=build/wsvisorctl WSVISOR_SOURCE_DIR=. \\
      /usr/bin/python3 tests/e2e/test_health_semantics.py -v
"""

import datetime
import json
import os
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsvisor_fixtures import WsvisorTestCase, wait_until  # noqa: E402  (needs the path above)

# Flapping scenario: 100 ms heartbeats, an upstream paused and resumed every 300 ms, and a flap
# policy of "more than 4 changes within 10 s; quiet for 2 s to settle".
FLAP_TOGGLE_S = 0.3
FLAP_MAX_TOGGLES = 60  # 18 s of toggling at most; FLAPPING is expected after about 6
FLAP_WINDOW_S = 10
FLAP_QUIET_S = 2
FLAPPING_ARGS = ("--interval", "100ms", "--timeout", "100ms", "--connect-timeout", "250ms",
                 "--backoff-initial", "50ms", "--backoff-max", "100ms", "--no-jitter",
                 "--flap-threshold", "4", "--flap-window", f"{FLAP_WINDOW_S}s",
                 "--flap-quiet-period", f"{FLAP_QUIET_S}s")
# Bound for events that should come promptly (a verdict, a snapshot).
PROMPT_S = 10.0


def json_event(line):
    return json.loads(line)


def event_time_s(event):
    """The event's time (RFC 3339 with up to 9 fractional digits) in seconds since the epoch."""
    text = event["time"].rstrip("Z")
    whole, _, fraction = text.partition(".")
    return (datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.timezone.utc)
            .timestamp() + float("0." + (fraction or "0")))


def health_of(event):
    return event.get("status", {}).get("health", "HEALTH_UNKNOWN")


class Toggler:
    """Pauses and resumes the upstream every FLAP_TOGGLE_S in a thread, a bounded number of times,
    until stopped; always leaves it running."""

    def __init__(self, upstream):
        self._upstream = upstream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.toggles = 0

    def start(self):
        self._thread.start()

    def _run(self):
        paused = False
        while self.toggles < FLAP_MAX_TOGGLES and not self._stop.wait(FLAP_TOGGLE_S):
            if paused:
                self._upstream.resume()
            else:
                self._upstream.pause()
            paused = not paused
            self.toggles += 1
        self._upstream.resume()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self._upstream.resume()


class HealthModelTest(WsvisorTestCase):

    def register(self, endpoint_id, *args):
        result = self.ctl.run("register", endpoint_id, self.upstream.url, *args)
        self.assertEqual(result.returncode, 0, result.stderr)

    def get_status(self, endpoint_id):
        result = self.ctl.run("get", endpoint_id, "-o", "json")
        self.assertEqual(result.returncode, 0, result.stderr)
        return json.loads(result.stdout)["status"]

    def test_a_bouncing_upstream_is_flapping_and_healthy_after_the_quiet_period(self):
        watch = self.start_watch("bouncy", "-o", "json")
        self.register("bouncy", *FLAPPING_ARGS)
        watch.wait_for(lambda l: health_of(json_event(l)) == "HEALTH_HEALTHY", PROMPT_S,
                       "bouncy HEALTHY")

        toggler = Toggler(self.upstream)
        self.addCleanup(toggler.stop)
        started = time.monotonic()
        toggler.start()
        line = watch.wait_for(lambda l: health_of(json_event(l)) == "HEALTH_FLAPPING",
                              FLAP_TOGGLE_S * FLAP_MAX_TOGGLES, "bouncy FLAPPING")
        flapping_after = time.monotonic() - started
        toggler.stop()
        event = json_event(line)
        self.assertEqual(event["status"]["transitionReason"], f"5 changes within {FLAP_WINDOW_S}s")
        self.assertIn(event["status"]["underlyingHealth"], ("HEALTH_HEALTHY", "HEALTH_UNHEALTHY"))
        # Five changes of 300 ms each at the least; within the window by definition.
        self.assertLess(flapping_after, FLAP_WINDOW_S + 1, "FLAPPING within its window")
        print(f"  FLAPPING {flapping_after * 1000:.0f} ms after the bouncing began "
              f"({toggler.toggles} toggles)", flush=True)

        # Bouncing stopped with the upstream running: HEALTHY once no change for the quiet period.
        line = watch.wait_for(lambda l: health_of(json_event(l)) == "HEALTH_HEALTHY",
                              FLAP_QUIET_S + PROMPT_S, "bouncy HEALTHY after the quiet period")
        event = json_event(line)
        self.assertEqual(event["previousHealth"], "HEALTH_FLAPPING")
        self.assertEqual(event["status"]["transitionReason"], f"no change for {FLAP_QUIET_S}s")
        status = self.get_status("bouncy")
        self.assertEqual(status["health"], "HEALTH_HEALTHY")
        # It left FLAPPING only once its health had not changed for the quiet period: the last
        # change of the underlying health came at least that long before.
        last_change_s = None
        underlying = None
        for line in watch.lines:
            seen = json_event(line)
            now_underlying = seen.get("status", {}).get("underlyingHealth")
            if health_of(seen) == "HEALTH_FLAPPING" and now_underlying != underlying:
                last_change_s = event_time_s(seen)
            underlying = now_underlying
        self.assertIsNotNone(last_change_s)
        quiet_s = event_time_s(event) - last_change_s
        self.assertGreaterEqual(quiet_s, FLAP_QUIET_S - 0.001)
        self.assertLess(quiet_s, FLAP_QUIET_S + 1.0, "HEALTHY soon after the quiet period")
        print(f"  HEALTHY {quiet_s * 1000:.0f} ms after the last change (quiet period "
              f"{FLAP_QUIET_S} s)", flush=True)

    def test_with_a_timeout_longer_than_the_interval_several_pings_are_outstanding(self):
        self.register("patient", "--interval", "100ms", "--timeout", "1500ms")
        wait_until(lambda: self.get_status("patient")["health"] == "HEALTH_HEALTHY", PROMPT_S,
                   "patient HEALTHY")
        watch = self.start_watch("patient", "-o", "json")
        watch.wait_for(lambda l: json_event(l).get("type") == "TYPE_SNAPSHOT_COMPLETE", PROMPT_S,
                       "the snapshot")
        sent_before = int(self.get_status("patient").get("heartbeatsSent", "0"))
        self.upstream.pause()
        paused_at = time.monotonic()
        line = watch.wait_for(lambda l: health_of(json_event(l)) == "HEALTH_UNHEALTHY",
                              PROMPT_S, "patient UNHEALTHY")
        detected_after = time.monotonic() - paused_at
        status = json_event(line)["status"]
        self.assertEqual(status["lastFailure"]["reason"], "FAILURE_REASON_PONG_TIMEOUT")
        # Pings kept going out every 100 ms while the first unanswered one waited 1.5 s.
        sent = int(self.get_status("patient").get("heartbeatsSent", "0")) - sent_before
        self.assertGreaterEqual(sent, 5, "pings sent while others were outstanding")
        self.assertGreaterEqual(detected_after, 1.3, "judged by the 1.5 s timeout")
        print(f"  {sent} pings sent while paused; UNHEALTHY after {detected_after * 1000:.0f} ms",
              flush=True)

    def test_mode_none_is_healthy_while_open_and_unhealthy_when_the_peer_goes(self):
        self.register("connect-only", "--mode", "none")
        wait_until(lambda: self.get_status("connect-only")["health"] == "HEALTH_HEALTHY",
                   PROMPT_S, "connect-only HEALTHY")
        status = self.get_status("connect-only")
        self.assertEqual(status["transitionReason"], "connection open")
        self.assertNotIn("heartbeatsSent", status)  # nothing is ever sent
        self.assertNotIn("lastRtt", status)
        spec = json.loads(self.ctl.run("get", "connect-only", "-o", "json").stdout)["spec"]
        self.assertEqual(spec["heartbeat"]["mode"], "HEARTBEAT_MODE_NONE")
        self.assertNotIn("interval", spec["heartbeat"])

        # The documented blind spot: a hung peer is not seen.
        watch = self.start_watch("connect-only", "-o", "json")
        watch.wait_for(lambda l: json_event(l).get("type") == "TYPE_SNAPSHOT_COMPLETE", PROMPT_S,
                       "the snapshot")
        # A PING endpoint on the same upstream notices the pause; by then the NONE endpoint has
        # had longer than that to notice anything, and has not.
        self.register("pinged", "--interval", "100ms", "--timeout", "100ms")
        wait_until(lambda: self.get_status("pinged")["health"] == "HEALTH_HEALTHY", PROMPT_S,
                   "pinged HEALTHY")
        self.upstream.pause()
        wait_until(lambda: self.get_status("pinged")["health"] == "HEALTH_UNHEALTHY", PROMPT_S,
                   "pinged UNHEALTHY")
        status = self.get_status("connect-only")
        self.assertEqual(status["health"], "HEALTH_HEALTHY")
        self.assertNotIn("heartbeatsSent", status)
        # A peer that goes away is: stopping the upstream closes its connections.
        self.upstream.stop()
        line = watch.wait_for(lambda l: health_of(json_event(l)) == "HEALTH_UNHEALTHY",
                              PROMPT_S, "connect-only UNHEALTHY")
        self.assertTrue(json_event(line)["status"]["transitionReason"].startswith(
            "connection lost: "), line)

    def test_none_mode_refuses_heartbeat_settings(self):
        result = self.ctl.run("register", "bad", self.upstream.url, "--mode", "none",
                              "--interval", "1s")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("spec.heartbeat.interval: must be unset in NONE mode", result.stderr)
        self.assertEqual(self.ctl.run("get", "bad").returncode, 1, "nothing was registered")


if __name__ == "__main__":
    unittest.main(verbosity=2)
