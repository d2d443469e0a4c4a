#!/usr/bin/env python3
"""ensemblectl health: monitoring-plugin exit codes (0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN) from reachability, publication ages and the share
of refused messages, each against figures the test sets up itself."""
import os
import re
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MALFORMED = b"\xc1"  # a byte MessagePack never uses


def events(n, task="default", offset=0):
    """2n messages: a prediction and a label for each of n queries."""
    out = []
    for q in range(offset, offset + n):
        truth = "A" if q % 3 else "B"
        out.append({"kind": "prediction", "task": task, "query": q,
                    "predictions": {"m1": truth, "m2": "A"}})
        out.append({"kind": "label", "task": task, "query": q, "label": truth})
    return out


class HealthTest(harness.DaemonTestCase):

    def health(self, d, *args, timeout=30):
        control = d.control if d else "tcp://127.0.0.1:%d" % harness.free_ports(1)[0]
        r = subprocess.run([harness.ENSEMBLECTL, "health", "--control", control,
                            "--timeout", "1000"] + list(args),
                           capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout.strip(), r.stderr

    def published(self, d, task="default"):
        """Publishes task now; returns its body's ts."""
        before = (d.task(task) or {}).get("version") or 0
        d.ctl("recompute", task=task)
        harness.wait_for(lambda: d.task(task)["version"] > before, 10, what="a publication")
        return d.ctl("ensemble", task=task)["ensemble"]["ts"]

    def test_unreachable_daemon_is_critical(self):
        rc, out, _ = self.health(None)
        self.assertEqual(rc, 2, out)
        self.assertTrue(out.startswith("ENSEMBLED CRITICAL - status:"), out)

    def test_bad_options_are_unknown(self):
        for args in (["--bogus"], ["--warn-age", "x"], ["--crit-refused", "2"], ["extra"]):
            rc, out, err = self.health(None, *args)
            self.assertEqual(rc, 3, args)
            self.assertIn("usage: ensemblectl health", err)

    def test_publication_age_against_thresholds(self):
        d = self.daemon()
        d.sync_send(*events(30))
        ts = self.published(d)
        rc, out, _ = self.health(d)
        self.assertEqual(rc, 0, out)
        self.assertTrue(out.startswith("ENSEMBLED OK - 1 task published"), out)
        m = re.search(r"'age_default'=([0-9.e+-]+)s;60;300", out)
        self.assertIsNotNone(m, out)
        age = float(m.group(1))
        self.assertAlmostEqual(age, time.time() - ts, delta=1.0)
        # Older than the warning threshold, then than the critical one.
        time.sleep(max(0.0, 1.2 - (time.time() - ts)))
        rc, out, _ = self.health(d, "--warn-age", "1")
        self.assertEqual(rc, 1, out)
        self.assertIn("ENSEMBLED WARNING - task default: last publication", out)
        rc, out, _ = self.health(d, "--warn-age", "0.5", "--crit-age", "1")
        self.assertEqual(rc, 2, out)
        self.assertIn("ENSEMBLED CRITICAL - task default", out)
        # A fresh publication is OK again under the same thresholds.
        self.published(d)
        rc, out, _ = self.health(d, "--warn-age", "1", "--crit-age", "2")
        self.assertEqual(rc, 0, out)

    def test_task_never_published_is_a_warning(self):
        # A task with a prediction and no label has no rows, so no selection.
        d = self.daemon()
        d.sync_send({"kind": "prediction", "task": "quiet", "query": 1,
                     "predictions": {"m1": "A"}})
        rc, out, _ = self.health(d)
        self.assertEqual(rc, 1, out)
        self.assertIn("task quiet: nothing published yet", out)
        rc, out, _ = self.health(d, "--task", "nosuch")
        self.assertEqual(rc, 2, out)
        self.assertIn("task nosuch: unknown to the daemon", out)

    def test_refused_share_against_thresholds(self):
        d = self.daemon()
        d.sync_send(*events(45))  # 90 good messages
        d.sync_send(*[MALFORMED] * 10)  # 10 refused: 10 % of 100
        self.published(d)
        st = d.status()
        self.assertEqual(st["messages_in"], 100)
        self.assertEqual(st["rejected"]["malformed"], 10)
        rc, out, _ = self.health(d, "--warn-refused", "0.05", "--crit-refused", "0.2")
        self.assertEqual(rc, 1, out)
        self.assertIn("10 of 100 messages refused (10.00 %)", out)
        self.assertIn("'refused_share'=0.1;0.05;0.2", out)
        rc, out, _ = self.health(d, "--warn-refused", "0.05", "--crit-refused", "0.08")
        self.assertEqual(rc, 2, out)
        rc, out, _ = self.health(d, "--warn-refused", "0.1", "--crit-refused", "0.2")
        self.assertEqual(rc, 0, out)  # at the threshold is not over it

    def test_window_measures_between_two_reads(self):
        d = self.daemon()
        d.sync_send(*events(100))  # 200 good messages
        self.published(d)
        box = {}

        def check():
            box["r"] = self.health(d, "--window", "2")
        t = threading.Thread(target=check)
        t.start()
        time.sleep(0.5)
        d.sync_send(MALFORMED, *events(1, offset=500))  # 1 refused of 3 in the window
        t.join()
        rc, out, _ = box["r"]
        self.assertEqual(rc, 2, out)
        self.assertIn("1 of 3 messages refused", out)
        # Since the start the share is 1/203, under the default 1 %.
        rc, out, _ = self.health(d)
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    harness.main()
