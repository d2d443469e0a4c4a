#!/usr/bin/env python3
"""The closed loop (docs/exploration.md): the real ensembled, fed by
`ensemblectl simulate --closed-loop`, a simulated fleet (Gaussian copula)
behind routers that follow the published ensembles and exploration rule.

- drift: a family weak at first (0.55) becomes the best (0.90) half-way; with
  exploration it enters the published ensemble within B labeled queries of
  the change, B = window.rows + 2 * publish.every_labels (the derivation is in
  docs/exploration.md);
- the same with select.explore_rate = 0 fails the documented way: the family
  is never picked, and leaves the pool for lack of coverage;
- a model added mid-run is measured on exploration queries and picked;
- a model that stops answering is retired and leaves the ensemble;
- the cost of exploration, rate * (pool - ensemble size) extra model queries
  per query, is in the body, in status, and is what the routers paid.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import DaemonTestCase, run_ctl  # noqa: E402

WINDOW = 3000       # window.rows: the window turns over in 3000 labeled queries
EVERY = 200         # publish.every_labels
MIN_ROWS = 100      # select.min_rows (the daemon's default)
RATE = 2000         # queries per second: the daemon selects every 0.1 s
DELAY = 100         # labels arrive 100 queries after their predictions
# The bound of docs/exploration.md: once WINDOW labeled queries of the new
# regime are in, every row of the window (and so every exploration row of the
# drifted family) is post-change; the next selection starts within EVERY more
# labels, and one selection may already be running on an older snapshot.
BOUND = WINDOW + 2 * EVERY


def add_bound(rate):
    """A model added mid-run enters the pool once it has MIN_ROWS rows, all
    from exploration queries: MIN_ROWS / rate labeled queries on average,
    4 standard deviations more at worst (negative binomial); then as above,
    at most two publications later (docs/exploration.md)."""
    return int((MIN_ROWS + 4 * (MIN_ROWS * (1 - rate)) ** 0.5) / rate) + 2 * EVERY

# The demo's fleet: three strong models that fail together, two mid-size,
# three weaker independent ones; two-option task.
FLEET = "strong:3:0.80:0.95,mid:2:0.72:0.50,small:3:0.68:0.05"


def overrides(explore_rate, **select):
    sel = {"explore_rate": explore_rate, "min_rows": MIN_ROWS}
    sel.update(select)
    return {
        "window": {"rows": WINDOW},
        "select": sel,
        "publish": {"every_labels": EVERY, "interval": "500ms", "min_improvement_bits": 0.01},
    }


class ClosedLoop(DaemonTestCase):

    def simulate(self, d, *args, timeout=60):
        p = run_ctl("simulate", "--closed-loop", "--ingest", d.ingest, "--publish", d.publish,
                    "--rate", RATE, "--label-delay", DELAY, "--report", 2000, *args,
                    timeout=timeout)
        sys.stderr.write(p.stdout)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        self.assertEqual(len(lines), 1, p.stdout)
        return json.loads(lines[0])

    def body(self, d):
        rep = d.ctl("ensemble", task="default")
        self.assertTrue(rep.get("ok"), rep)
        return rep["ensemble"]

    def drift(self, explore_rate):
        d = self.daemon(overrides(explore_rate))
        out = self.simulate(d, "--families", FLEET + ",late:2:0.55:0.50", "--queries", 10000,
                            "--drift", "late:0.90@5000", "--seed", 7)
        late = out["families"]["late"]
        ch = out["changes"][0]
        self.assertEqual((ch["kind"], ch["family"], ch["query"]), ("drift", "late", 5000))
        return d, out, late, ch

    def test_drift_picked_with_exploration(self):
        d, out, late, ch = self.drift(0.1)
        # Weak, it was never picked before the change ...
        self.assertIsNotNone(late["first_in_ensemble_query"], out)
        self.assertGreater(late["first_in_ensemble_query"], 5000, out)
        # ... and is picked within the bound after it.
        self.assertIsNotNone(ch["picked_after_labels"], out)
        self.assertLessEqual(ch["picked_after_labels"], BOUND, out)
        sys.stderr.write("late family picked %d labeled queries after the change (bound %d)\n"
                         % (ch["picked_after_labels"], BOUND))
        body = self.body(d)
        self.assertTrue(any(m.startswith("late-") for m in body["models"]), body["models"])
        # Exploration keeps every model of the pool measured: none excluded,
        # and a model outside the ensemble has about rate * window rows.
        self.assertEqual(body["excluded"], {})
        for m, rows in body["coverage"].items():
            self.assertGreaterEqual(rows, MIN_ROWS, body["coverage"])

    def test_drift_never_picked_without_exploration(self):
        # The documented failure: routers ask the ensemble only, the late
        # family has no row of its new regime, its old rows leave the window
        # and it leaves the pool for lack of coverage.
        d, out, late, ch = self.drift(0.0)
        self.assertIsNone(late["first_in_ensemble_query"], out)
        self.assertIsNone(ch["picked_query"], out)
        self.assertFalse(late["in_ensemble"], out)
        self.assertEqual(out["exploration_queries"], 0, out)
        body = self.body(d)
        self.assertFalse(any(m.startswith("late-") for m in body["models"]), body["models"])
        for m in ("late-1", "late-2"):
            self.assertEqual(body["excluded"].get(m), "coverage below select.min_rows",
                             body["excluded"])
        # The starved models are still listed for exploration (only
        # exploration could measure them), but at rate 0 nobody explores and
        # exploration costs nothing.
        for m in ("late-1", "late-2"):
            self.assertIn(m, body["explore"]["models"])
        self.assertEqual(body["explore"]["rate"], 0)
        self.assertEqual(body["explore"]["extra_queries_per_query"], 0)

    def test_added_model_is_measured_and_picked(self):
        d = self.daemon(overrides(0.1))
        out = self.simulate(d, "--families", FLEET, "--queries", 8000,
                            "--add", "new:1:0.92:0@4000", "--seed", 11)
        ch = out["changes"][0]
        self.assertEqual((ch["kind"], ch["family"]), ("add", "new"))
        # It reaches select.min_rows rows after min_rows / rate labeled
        # queries of exploration (1000 here), then it is the best model.
        self.assertIsNotNone(ch["picked_after_labels"], out)
        self.assertLessEqual(ch["picked_after_labels"], add_bound(0.1), out)
        sys.stderr.write("added model picked %d labeled queries after it appeared (bound %d)\n"
                         % (ch["picked_after_labels"], add_bound(0.1)))
        body = self.body(d)
        self.assertIn("new-1", body["models"])
        self.assertGreaterEqual(body["coverage"]["new-1"], MIN_ROWS)
        self.assertIn("new-1", body["explore"]["models"])

    def test_silent_model_is_retired(self):
        # solo-1 is the best model, so it is in the ensemble when it stops
        # answering. retire_after (1 s, 2000 queries) is shorter than the
        # window's turnover (3000 labeled queries), so it is retired before
        # its coverage could run out.
        d = self.daemon(overrides(0.1, retire_after="1s"))
        out = self.simulate(d, "--families", FLEET + ",solo:1:0.90:0", "--queries", 8000,
                            "--silence", "solo-1@4000", "--seed", 5)
        self.assertLess(out["families"]["solo"]["first_in_ensemble_query"], 4000, out)
        ch = out["changes"][0]
        self.assertEqual((ch["kind"], ch["model"]), ("silence", "solo-1"))
        self.assertIsNotNone(ch["retired_query"], out)
        self.assertIsNotNone(ch["left_query"], out)
        # It left the ensemble because it was retired, not before.
        self.assertEqual(ch["left_version"], ch["retired_version"], out)
        body = self.body(d)
        self.assertNotIn("solo-1", body["models"])
        self.assertNotIn("solo-1", body["explore"]["models"])
        self.assertTrue(body["excluded"].get("solo-1", "").startswith("retired"), body["excluded"])

    def test_cost_of_exploration(self):
        rate = 0.2
        d = self.daemon(overrides(rate))
        out = self.simulate(d, "--families", FLEET + ",late:2:0.55:0.50", "--queries", 4000,
                            "--seed", 3)
        body = self.body(d)
        pool, k = len(body["explore"]["models"]), len(body["models"])
        # The ensemble's size is the final choice's (a single strong model
        # and the strong trio answer alike here); the cost follows it.
        self.assertEqual(pool, 10)
        self.assertIn(k, (1, 2, 3))
        want = rate * (pool - k)
        self.assertAlmostEqual(body["explore"]["rate"], rate)
        self.assertAlmostEqual(body["explore"]["extra_queries_per_query"], want)
        st = d.task("default")
        self.assertAlmostEqual(st["explore_extra_queries_per_query"], want)
        # What the routers actually paid: the share of exploration queries
        # the hash rule picked (about the rate) times the models outside the
        # ensemble, which had 1 to budget (3) models over the run.
        self.assertAlmostEqual(out["exploration_share"], rate, delta=0.03)
        self.assertGreaterEqual(out["extra_queries_per_query"], rate * (pool - 3) - 0.15)
        self.assertLessEqual(out["extra_queries_per_query"], rate * (pool - 1) + 0.15)


if __name__ == "__main__":
    harness.main()
