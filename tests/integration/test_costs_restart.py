#!/usr/bin/env python3
"""Answers' costs survive a restart (docs/persistence.md): after a kill -9
(rows from a snapshot's BLOCKs and from the journal's ROWs) and after a
clean SIGTERM (the final snapshot alone), the body the restarted daemon
publishes under greedy-cost has the same per-model costs, expected cost per
query and models as before the stop.

Reference: per model, the mean of the costs its answers carried, computed
here from the events sent, over the rows the window holds (the last
WINDOW of them). Costs are multiples of 1/1024, so every sum is exact in a
double; one model never reports a cost (nil in the body, before and after),
and another only on some answers. After the clean stop the snapshot file is
also read with reliability.py's own decoder and its costs compared with the
events'."""
import os
import signal
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import reliability  # noqa: E402

MODELS = ("m1", "m2", "m3", "m4")
WINDOW = 150
COST_BUDGET = 0.05


def answer(m, q, truth):
    other = "B" if truth == "A" else "A"
    period = {"m1": 7, "m2": 5, "m3": 4, "m4": 3}[m]
    return truth if q % period else other


def cost(m, q):
    """The cost of model m's answer to query q, or None: m1 is expensive,
    m2 and m3 cheap and varying, m3 only on even queries, m4 never."""
    if m == "m1":
        return 1.0 + (q % 3) / 1024
    if m == "m2":
        return (8 + q % 5) / 1024
    if m == "m3":
        return (4 + q % 7) / 1024 if q % 2 == 0 else None
    return None


def events(first, n):
    batch = []
    for q in range(first, first + n):
        truth = "A" if q % 3 else "B"
        for m in MODELS:
            ev = {"kind": "prediction", "query": q, "model": m, "label": answer(m, q, truth)}
            c = cost(m, q)
            if c is not None:
                ev["cost"] = c
            batch.append(ev)
        batch.append({"kind": "label", "query": q, "label": truth})
    return batch


def mean_costs(queries):
    out = {}
    for m in MODELS:
        cs = [cost(m, q) for q in queries if cost(m, q) is not None]
        out[m] = sum(cs) / len(cs) if cs else None
    return out


def rel_close(a, b, rel=1e-12):
    return a is not None and b is not None and abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


class CostsRestartTest(harness.DaemonTestCase):

    def start(self):
        d = reliability.RestartableDaemon({
            "select": {"strategy": "greedy-cost", "budget": 3, "cost_budget": COST_BUDGET},
            "window": {"rows": WINDOW},
            "state": {"fsync_interval": "100ms", "snapshot_interval": "1h"}})
        self._daemons.append(d)
        self.addCleanup(d.cleanup)
        return d

    @staticmethod
    def reload(d, interval):
        applied = d.log().count("reload: configuration from")
        d.sections["state"]["snapshot_interval"] = interval
        d.write_config()
        d.proc.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: d.log().count("reload: configuration from") > applied, 10,
                         what="the reload applied")

    def send_rows(self, d, first, n):
        d.sync_send(events(first, n), timeout=30)
        harness.wait_for(lambda: d.task()["joined"] >= first + n, 30,
                         what="%d rows joined" % (first + n))

    @staticmethod
    def settled_body(d, sub, **kw):
        """A body selected after every row sent so far joined: a selection
        started earlier (by a reload's republication) may still be running
        when the rows are in, and its body answer the first recompute."""
        d.recompute_and_receive(sub, **kw)
        return d.recompute_and_receive(sub)[1]

    def check_body(self, body, queries, what):
        want = mean_costs(queries)
        self.assertEqual(set(body["costs"]), set(MODELS), what)
        for m in MODELS:
            got = body["costs"][m]
            if want[m] is None:
                self.assertIsNone(got, "%s: %s" % (what, m))
            else:
                self.assertTrue(rel_close(got, want[m]),
                                "%s: %s costs %r, events %r" % (what, m, got, want[m]))
        self.assertTrue(body["models"], what)
        self.assertNotIn("m1", body["models"], what)
        exp = sum(want[m] if want[m] is not None else 1.0 for m in body["models"])
        self.assertTrue(rel_close(body["expected_cost"], exp),
                        "%s: expected_cost %r, events %r" % (what, body["expected_cost"], exp))

    def same_body(self, before, after):
        self.assertEqual(after["costs"], before["costs"])
        self.assertEqual(after["expected_cost"], before["expected_cost"])
        self.assertEqual(after["models"], before["models"])

    def test_costs_survive_kill9(self):
        d = self.start()
        sub = d.subscriber()
        # 120 rows, then a snapshot (BLOCKs), then 80 more (journal ROWs):
        # the window of 150 has dropped the first 50.
        self.send_rows(d, 0, 120)
        snaps = d.status()["state"]["snapshots"]
        self.reload(d, "1s")  # state.snapshot_interval is reloadable
        harness.wait_for(lambda: d.status()["state"]["snapshots"] > snaps, 30,
                         what="a snapshot")
        self.reload(d, "1h")
        self.send_rows(d, 120, 80)
        before = self.settled_body(d, sub)
        queries = range(200 - WINDOW, 200)
        self.check_body(before, queries, "before the kill")
        self.assertEqual(d.task()["rows"], WINDOW)

        self.assertEqual(d.status()["state"]["snapshots"], snaps + 1,
                         "one snapshot only: the last rows are the journal's")
        d.kill9()
        d.restart()
        sub = d.subscriber()
        st = d.status()
        self.assertEqual(d.task(st=st)["rows"], WINDOW)
        self.assertGreater(st["state"]["rows_restored_snapshot"], 0, st["state"])
        self.assertGreater(st["state"]["rows_restored_journal"], 0, st["state"])
        after = self.settled_body(d, sub, min_version=before["version"] + 1)
        self.check_body(after, queries, "after the kill")
        self.same_body(before, after)

    def test_costs_survive_sigterm(self):
        d = self.start()
        sub = d.subscriber()
        self.send_rows(d, 0, 180)
        before = self.settled_body(d, sub)
        queries = range(180 - WINDOW, 180)
        self.check_body(before, queries, "before the stop")
        self.assertEqual(d.stop(), 0)

        # The final snapshot, read with an independent decoder: the rows'
        # costs are the events'.
        snap = reliability.read_snapshot(os.path.join(d.dir, "snapshot"))
        (t,) = snap["tasks"]
        names = [n.decode() for n in t["models"]]
        self.assertEqual(len(t["costs"]), WINDOW)
        for i, q in enumerate(queries):
            for j, m in enumerate(names):
                self.assertEqual(t["costs"][i][j], cost(m, q), "row %d, %s" % (i, m))

        d.restart()
        sub = d.subscriber()
        self.assertEqual(d.status()["state"]["rows_restored_snapshot"], WINDOW)
        after = self.settled_body(d, sub, min_version=before["version"] + 1)
        self.check_body(after, queries, "after the restart")
        self.same_body(before, after)


if __name__ == "__main__":
    harness.main()
