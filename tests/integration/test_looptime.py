#!/usr/bin/env python3
"""The daemon's own event-loop figures (status `loop`, docs/overload.md):
present, moving and consistent with one another. No figure is compared
with a time limit: a busy machine decides how long turns take."""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

KEYS = {"turns", "longest_turn_ms", "longest_turn_recent_ms", "turns_over_5ms",
        "longest_turn_cpu_ms", "turns_over_5ms_cpu"}
SECTIONS = {"other", "ingest", "requests", "tasks", "journal", "snapshot", "select", "metrics"}
TICK = 0.1  # the daemon's housekeeping timer: at least one loop turn each


def batch(n, start=0):
    evs = []
    for i in range(start, start + n):
        q = "q%d" % i
        evs.append({"kind": "prediction", "task": "t", "query": q,
                    "predictions": {"a": "x", "b": "y" if i % 3 else "x"}})
        evs.append({"kind": "label", "task": "t", "query": q, "label": "x"})
    return evs


class LoopTimeTest(harness.DaemonTestCase):
    def check(self, lp, uptime_s):
        self.assertEqual(set(lp), KEYS | {"longest_turn_cpu_in", "turns_over_5ms_cpu_by"})
        for k in KEYS:
            self.assertGreaterEqual(lp[k], 0, k)
        # Each slow turn is put down to one section, every section named.
        self.assertIn(lp["longest_turn_cpu_in"], SECTIONS)
        self.assertEqual(set(lp["turns_over_5ms_cpu_by"]), SECTIONS)
        self.assertEqual(sum(lp["turns_over_5ms_cpu_by"].values()), lp["turns_over_5ms_cpu"])
        self.assertGreater(lp["turns"], 0)
        self.assertGreater(lp["longest_turn_ms"], 0)
        self.assertGreater(lp["longest_turn_cpu_ms"], 0)
        # The recent maximum is one of the turns since the start.
        self.assertLessEqual(lp["longest_turn_recent_ms"], lp["longest_turn_ms"])
        # A turn cannot take longer than the daemon has run, and its CPU time
        # is part of its work time (the loop thread does not run while it
        # waits; 1 ms for the few microseconds of the wait's system call).
        self.assertLess(lp["longest_turn_ms"], uptime_s * 1000)
        self.assertLessEqual(lp["longest_turn_cpu_ms"], lp["longest_turn_ms"] + 1.0)
        self.assertLessEqual(lp["turns_over_5ms"], lp["turns"])
        self.assertLessEqual(lp["turns_over_5ms_cpu"], lp["turns"])

    def test_figures_exist_move_and_agree(self):
        d = self.daemon({"publish": {"every_labels": 50}})
        st = d.status()
        self.check(st["loop"], st["uptime_s"])
        d.sync_send(batch(300))
        d.ctl("recompute")
        harness.wait_for(lambda: d.status()["published"] >= 1, 10, what="a publication")
        before = d.status()
        time.sleep(20 * TICK)
        after = d.status()
        self.check(after["loop"], after["uptime_s"])
        # The housekeeping timer alone turns the loop once per TICK: over 20
        # ticks at least 10 turns, however slow the machine.
        self.assertGreaterEqual(after["loop"]["turns"] - before["loop"]["turns"], 10)
        # The maxima and counts since the start never go down.
        for k in ("longest_turn_ms", "longest_turn_cpu_ms", "turns_over_5ms",
                  "turns_over_5ms_cpu"):
            self.assertGreaterEqual(after["loop"][k], before["loop"][k], k)


if __name__ == "__main__":
    harness.main()
