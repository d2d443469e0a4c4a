#!/usr/bin/env python3
"""Replays the real data sets through `ensemblectl replay` (labels 100 rows
after their predictions) and checks that every row joins and that the
daemon's published ensemble is the one `ensemblectl select` computes offline
on the same file."""
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

COMBINER_KINDS = {"vote", "weighted", "table", "pattern"}


class ReplayTest(harness.DaemonTestCase):

    def replay_and_compare(self, name):
        path = harness.data_file(name)
        header, rows = harness.csv_rows(path)
        models = header[2:]
        nrows = len(rows)
        self.assertGreater(nrows, 0)

        d = self.daemon()
        sub = d.subscriber("ensemble.default")
        r = harness.run_ctl("replay", "--csv", path, "--ingest", d.ingest, "--batch", 50,
                            "--label-lag", 100, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)

        box = {}

        def all_joined():
            t = d.task()
            box["t"] = t
            return t is not None and t["joined"] >= nrows

        harness.wait_for(all_joined, 60, what="%d rows joined (last status %r)"
                         % (nrows, box.get("t")))
        t = d.task()
        self.assertEqual(t["joined"], nrows, t)
        self.assertEqual(t["queries"], nrows, t)
        self.assertEqual(t["pending"], 0, t)
        self.assertEqual(t["rows"], nrows, t)
        self.assertEqual(t["expired"], 0, t)
        self.assertEqual(t["evicted"], 0, t)
        self.assertEqual(t["models"], len(models), t)
        self.assertEqual(t["duplicate_predictions"] + t["duplicate_labels"]
                         + t["late_predictions"] + t["late_labels"], 0, t)
        st = d.status()
        self.assertEqual(sum(st["rejected"].values()), 0, st["rejected"])
        self.assertEqual(sum(st["dropped"].values()), 0, st["dropped"])

        # Offline reference: the same selection on the whole file.
        r = harness.run_ctl("select", "--csv", path, "--budget", 3, "--strategy", "greedy-mi",
                            "--splits", 0, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        ref = json.loads(r.stdout)["selections"][0]
        self.assertEqual(ref["strategy"], "greedy-mi")

        topic, body = d.recompute_and_receive(sub)
        self.assertEqual(topic, "ensemble.default")
        self.assertEqual(body["models"], ref["models"], body)
        self.assertEqual(len(body["steps"]), len(ref["models"]))
        for i, step in enumerate(body["steps"]):
            self.assertEqual(step["model"], ref["models"][i])
            self.assertClose(step["mi_bits"], ref["mi_bits"][i], 1e-9,
                             "step %d: daemon %r, ensemblectl %r"
                             % (i, step["mi_bits"], ref["mi_bits"][i]))
            self.assertEqual(step["rows"], ref["rows"][i])

        # The body as docs/protocol.md describes it.
        self.assertEqual(body["task"], "default")
        self.assertEqual(body["version"], 1)
        self.assertEqual(body["strategy"], "greedy-mi")
        self.assertEqual(body["estimator"], "heldout")
        self.assertEqual(body["budget"], 3)
        self.assertLessEqual(len(body["models"]), 3)
        self.assertEqual(body["window_rows"], nrows)
        # The alphabet: every label seen, truths and answers ("?" abstains).
        file_labels = {c for row in rows for c in row[1:] if c not in ("", "?")}
        self.assertEqual(set(body["labels"]), file_labels)
        self.assertEqual(len(body["labels"]), len(file_labels))
        comb = body["combiner"]
        self.assertIn(comb["kind"], COMBINER_KINDS)
        self.assertEqual(len(comb["weights"]), len(body["models"]))
        for w in comb["weights"]:
            self.assertTrue(0.0 <= w <= 1.0, comb["weights"])
        self.assertIsInstance(comb["table"], list)
        acc = body["accuracy"]
        for k in ("combiner", "majority_vote", "best_single", "in_sample"):
            self.assertIsNotNone(acc[k], acc)
            self.assertTrue(0.0 <= acc[k] <= 1.0, acc)
        self.assertGreaterEqual(acc["combiner"], acc["best_single"] - 0.05, acc)
        self.assertEqual(set(body["coverage"]), set(models))
        for j, m in enumerate(models):
            asked = sum(1 for row in rows if row[2 + j] != "")
            self.assertEqual(body["coverage"][m], asked, m)
        self.assertIs(body["replaced"], True)
        self.assertEqual(body["reason"], "first selection")
        self.assertGreater(body["ts"], 1.5e9)

        # status reports the published set and version.
        t = d.task()
        self.assertEqual(t["ensemble"], body["models"])
        self.assertEqual(t["version"], 1)
        rep = d.ctl("ensemble", task="default")
        self.assertIs(rep["ok"], True)
        self.assertEqual(rep["ensemble"], body)

    def test_winogrande(self):
        self.replay_and_compare("winogrande_routerbench_11llm.csv")

    def test_mmlupro(self):
        self.replay_and_compare("mmlupro_28llm.csv")


if __name__ == "__main__":
    harness.main()
