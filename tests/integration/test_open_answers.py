#!/usr/bin/env python3
"""Open answers end to end: MMLU-Pro with every label replaced by a random
string per item (the same string for every model of the item), spelled in
random case by some models.

Offline, `ensemblectl select --answers open --normalize fold` on that file
must make choice mode's selection on the original file, with the same
published held-out accuracy. Online, a daemon with `window.answers = open`
fed the file by `ensemblectl replay` must publish that selection with
`answers: open`, no `table` combiner and only class labels; and the
Python client package (python/ensembled), combining the raw answers by the
published rules, must be as accurate on the file as the body says."""
import json
import os
import random
import string
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
import harness  # noqa: E402
import ensembled  # noqa: E402


def relabel(header, rows, seed=5):
    """Every label of an item becomes a random string of its own; odd
    models answer it in upper case with spaces around (fold undoes it)."""
    rng = random.Random(seed)
    out = []
    for row in rows:
        words = {}

        def word(label):
            if label not in words:
                words[label] = "".join(rng.choice(string.ascii_lowercase) for _ in range(10))
            return words[label]

        new = [row[0], word(row[1])]
        for j, cell in enumerate(row[2:]):
            if cell in ("", "?"):
                new.append(cell)
            else:
                new.append(" %s " % word(cell).upper() if j % 2 else word(cell))
        out.append(new)
    return out


def write_csv(path, header, rows):
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for row in rows:
            f.write(",".join(row) + "\n")


def select(path, *extra):
    r = harness.run_ctl("select", "--csv", path, "--budget", 3, "--strategy", "greedy-mi",
                        "--json", *extra, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    published = [e for e in out["evaluation"] if e["combiner"] == "published"]
    return out["selections"][0]["models"], published[0]["accuracy_mean"] if published else None


class OpenAnswersTest(harness.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.header, rows = harness.csv_rows(harness.data_file("mmlupro_28llm.csv"))
        self.rows = rows
        self.open_rows = relabel(self.header, rows)
        # Every item has labels of its own: far more than 254 distinct ones.
        distinct = {c for row in self.open_rows for c in row[1:] if c not in ("", "?")}
        self.assertGreater(len(distinct), 10000)
        self.tmp = tempfile.mkdtemp(prefix="ens-open-")
        self.path = os.path.join(self.tmp, "mmlupro_open.csv")
        write_csv(self.path, self.header, self.open_rows)

    def tearDown(self):
        for name in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, name))
        os.rmdir(self.tmp)
        super().tearDown()

    def test_offline_same_as_choice(self):
        orig = harness.data_file("mmlupro_28llm.csv")
        models_c, acc_c = select(orig, "--splits", 4)
        models_o, acc_o = select(self.path, "--splits", 4, "--answers", "open",
                                 "--normalize", "fold")
        self.assertEqual(models_o, models_c)
        self.assertEqual(acc_o, acc_c)
        # Choice mode cannot read the relabelled file at all.
        r = harness.run_ctl("select", "--csv", self.path, "--budget", 3, "--splits", 0)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("254", r.stderr)

    def test_daemon_publishes_open(self):
        n = 3000
        part = os.path.join(self.tmp, "part.csv")
        write_csv(part, self.header, self.open_rows[:n])
        ref_models, _ = select(part, "--splits", 0, "--answers", "open", "--normalize", "fold")
        d = self.daemon({"window": {"answers": "open", "normalize": "fold"}})
        sub = d.subscriber("ensemble.default")
        r = harness.run_ctl("replay", "--csv", part, "--ingest", d.ingest, "--batch", 50,
                            "--label-lag", 100, "--answers", "open", "--normalize", "fold",
                            timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        harness.wait_for(lambda: (d.task() or {}).get("joined", 0) >= n, 60, what="rows joined")
        t = d.task()
        self.assertEqual(t["rows"], n, t)
        self.assertLessEqual(t["labels"], 11, t)  # classes, not answers
        st = d.status()
        self.assertEqual(sum(st["dropped"].values()), 0, st["dropped"])
        _, body = d.recompute_and_receive(sub)
        self.assertEqual(body["answers"], "open")
        self.assertEqual(body["normalize"], "fold")
        self.assertEqual(body["models"], ref_models)
        self.assertNotEqual(body["combiner"]["kind"], "table")
        for label in body["labels"]:
            self.assertTrue(label == "none" or (label[0] == "c" and label[1:].isdigit()), label)
        # The reference router on the raw answers, by the published rules.
        comb = ensembled.Combiner(body)
        cols = {m: 2 + j for j, m in enumerate(self.header[2:])}
        right = 0
        for row in self.open_rows[:n]:
            answers = {m: row[cols[m]] for m in body["models"] if row[cols[m]] != ""}
            got = comb.combine(answers)
            right += got is not None and got.strip().lower() == row[1]
        acc = right / n
        self.assertGreaterEqual(acc, body["accuracy"]["in_sample"] - 0.01,
                                (acc, body["accuracy"]))


if __name__ == "__main__":
    harness.main()
