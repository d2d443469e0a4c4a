#!/usr/bin/env python3
"""ensemblectl against an endpoint where nothing listens: every command that
talks to the daemon exits non-zero with one clear line, within its timeout,
instead of queueing the message and reporting success or waiting forever."""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class DeadEndpointTest(harness.DaemonTestCase):

    def run_dead(self, *args, within):
        t0 = time.monotonic()
        r = harness.run_ctl(*args, timeout=60)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.returncode, 1, (args, r.stdout, r.stderr))
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("ensembled running", lines[0])
        self.assertLess(elapsed, within, "%s took %.1f s" % (args[0], elapsed))
        return r

    def test_every_daemon_command_fails_fast(self):
        # Each command with a short --timeout, then with its default (a few
        # seconds): the bound is the timeout plus 10 s of start-up slack.
        (port,) = harness.free_ports(1)
        dead = "tcp://127.0.0.1:%d" % port
        csv = harness.data_file("winogrande_routerbench_11llm.csv")
        commands = [
            ("send", "--ingest", dead, "--kind", "label", "--query", "q", "--label", "A"),
            ("replay", "--csv", csv, "--ingest", dead),
            ("status", "--control", dead),
            ("status", "--control", dead, "--json"),
            ("ensemble", "--control", dead),
            ("recompute", "--control", dead),
            ("watch", "--publish", dead),
            ("watch", "--publish", dead, "--json", "--task", "default"),
        ]
        for args in commands:
            with self.subTest(args=args[0]):
                self.run_dead(*args, "--timeout", 500, within=0.5 + 10)
                self.run_dead(*args, within=5 + 10)

    def test_health_fails_fast(self):
        # health keeps the monitoring-plugin codes: CRITICAL (2), one line.
        (port,) = harness.free_ports(1)
        t0 = time.monotonic()
        r = harness.run_ctl("health", "--control", "tcp://127.0.0.1:%d" % port, "--timeout", 500,
                            timeout=60)
        self.assertEqual(r.returncode, 2, (r.stdout, r.stderr))
        self.assertEqual(len(r.stdout.strip().splitlines()), 1, r.stdout)
        self.assertIn("CRITICAL", r.stdout)
        self.assertLess(time.monotonic() - t0, 0.5 + 10)

    def test_watch_tells_no_daemon_from_nothing_published(self):
        d = self.daemon()
        r = harness.run_ctl("watch", "--publish", d.publish, "--timeout", 500, "--idle", 1500,
                            timeout=60)
        # The daemon answered: not the dead-endpoint line, but "nothing yet".
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("nothing is published yet", r.stderr)
        self.assertNotIn("ensembled running", r.stderr)
        self.assertIn("no publication within 1500 ms", r.stderr)

    def test_send_to_live_daemon_succeeds(self):
        d = self.daemon()
        r = harness.run_ctl("send", "--ingest", d.ingest, "--kind", "label", "--query", "q1",
                            "--label", "A")
        self.assertEqual(r.returncode, 0, r.stderr)
        harness.wait_for(lambda: d.status()["events_in"] >= 1, 10, what="the event counted")


if __name__ == "__main__":
    harness.main()
