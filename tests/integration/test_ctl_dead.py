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

    def test_send_replay_status_fail_fast(self):
        (port,) = harness.free_ports(1)
        dead = "tcp://127.0.0.1:%d" % port
        self.run_dead("send", "--ingest", dead, "--kind", "label", "--query", "q", "--label", "A",
                      within=30)
        self.run_dead("replay", "--csv", harness.data_file("winogrande_routerbench_11llm.csv"),
                      "--ingest", dead, within=30)
        self.run_dead("status", "--control", dead, "--timeout", 500, within=30)
        self.run_dead("ensemble", "--control", dead, "--timeout", 500, within=30)

    def test_send_to_live_daemon_succeeds(self):
        d = self.daemon()
        r = harness.run_ctl("send", "--ingest", d.ingest, "--kind", "label", "--query", "q1",
                            "--label", "A")
        self.assertEqual(r.returncode, 0, r.stderr)
        harness.wait_for(lambda: d.status()["events_in"] >= 1, 10, what="the event counted")


if __name__ == "__main__":
    harness.main()
