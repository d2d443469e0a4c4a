#!/usr/bin/env python3
"""Interoperability with plain Python peers: a python3-zmq PUSH producer
writing python3-msgpack events in every documented shape, and a SUB router
that decodes the published body and combines answers the way
docs/protocol.md tells routers to."""
import collections
import os
import random
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

LABELS = ["A", "B", "C"]


def synthetic_fleet(n, seed=7):
    """Rows (query, truth, {model: answer}) where answers are None (not
    asked), "?" (abstained) or a label. "shift" answers a fixed permutation
    of the truth (a decision table undoes it; no vote can), "good" is right
    70% of the time, "coin" is noise, "flaky" abstains or is missing often."""
    rng = random.Random(seed)
    shift = {"A": "B", "B": "C", "C": "A"}
    rows = []
    for i in range(n):
        y = rng.choice(LABELS)
        ans = {}
        ans["shift"] = shift[y] if rng.random() < 0.8 else rng.choice(LABELS)
        ans["good"] = y if rng.random() < 0.7 else rng.choice(LABELS)
        ans["coin"] = rng.choice(LABELS)
        r = rng.random()
        ans["flaky"] = None if r < 0.1 else "?" if r < 0.3 else (
            y if rng.random() < 0.6 else rng.choice(LABELS))
        q = i if i % 2 else "q-%d" % i
        rows.append((q, y, ans))
    return rows


def most_accurate(models, weights, answers, among):
    best = None
    for m, w, a in zip(models, weights, answers):
        if a in among and (best is None or w > best[0]):
            best = (w, a)
    return best[1]


def weighted_vote(models, weights, answers, fallback, equal=False):
    score = collections.defaultdict(float)
    for w, a in zip(weights, answers):
        if a is not None and a != "?":
            score[a] += 1.0 if equal else w
    if not score:
        return fallback
    top = max(score.values())
    tied = {a for a, s in score.items() if abs(s - top) < 1e-12}
    if len(tied) == 1:
        return next(iter(tied))
    return most_accurate(models, weights, answers, tied)


def agreement_pattern(answers):
    classes, pattern = {}, []
    for a in answers:
        if a is None:
            pattern.append(-2)
        elif a == "?":
            pattern.append(-1)
        else:
            if a not in classes:
                classes[a] = len(classes)
            pattern.append(classes[a])
    by_class = {c: a for a, c in classes.items()}
    return tuple(pattern), by_class


def route(body, answers_by_model, fallback):
    """What a router answers for one query, from the published body alone."""
    models = body["models"]
    comb = body["combiner"]
    weights = comb["weights"]
    answers = [answers_by_model.get(m) for m in models]
    kind = comb["kind"]
    if kind == "vote":
        return weighted_vote(models, weights, answers, fallback, equal=True)
    if kind == "table":
        table = {tuple(e[:-1]): e[-1] for e in comb["table"]}
        key = tuple(answers)
        if key in table:
            return table[key]
    elif kind == "pattern":
        table = {tuple(e[:-1]): e[-1] for e in comb["table"]}
        pattern, by_class = agreement_pattern(answers)
        if pattern in table and table[pattern] in by_class:
            return by_class[table[pattern]]
    return weighted_vote(models, weights, answers, fallback)


class InteropTest(harness.DaemonTestCase):

    def send_fleet(self, d, rows):
        """Every documented shape: single model/label maps, predictions
        maps, batches mixing both, string and integer queries, nil and "?"
        abstentions. (Labels before predictions: test_join.py.)"""
        msgs = []
        for i, (q, y, ans) in enumerate(rows):
            asked = {m: a for m, a in ans.items() if a is not None}
            # nil and "?" are the same abstention on the wire.
            wire = {m: (None if a == "?" and i % 2 else a) for m, a in asked.items()}
            label = {"kind": "label", "query": q, "label": y, "ts": 1.7e9 + i}
            shape = i % 4
            if shape == 0:    # one map per answer, each its own message
                for m, a in wire.items():
                    msgs.append({"kind": "prediction", "query": q, "model": m, "label": a,
                                 "cost": 0.001})
                msgs.append(label)
            elif shape == 1:  # a predictions map, then the label
                msgs.append({"kind": "prediction", "query": q, "predictions": wire})
                msgs.append(label)
            elif shape == 2:  # one batch: answers and label
                msgs.append([{"kind": "prediction", "task": "default", "query": q,
                              "model": m, "label": a} for m, a in wire.items()] + [label])
            else:             # a batch with a predictions map, unknown key
                msgs.append([{"kind": "prediction", "query": q, "predictions": wire,
                              "producer": "python"}, label])
        return d.sync_send(*msgs, timeout=30)

    def test_python_producer_and_router(self):
        rows = synthetic_fleet(3000)
        d = self.daemon()
        router = d.subscriber("ensemble.default")
        st = self.send_fleet(d, rows)
        self.assertEqual(sum(st["rejected"].values()), 0, st["rejected"])
        t = st["tasks"]["default"]
        self.assertEqual((t["joined"], t["rows"], t["pending"]), (len(rows), len(rows), 0), t)
        self.assertEqual(t["models"], 4, t)
        self.assertEqual(t["labels"], 3, t)
        self.assertEqual(t["duplicate_predictions"] + t["late_predictions"], 0, t)

        topic, body = d.recompute_and_receive(router)
        self.assertEqual(topic, "ensemble.default")
        self.assertEqual(body["window_rows"], len(rows))
        self.assertEqual(sorted(body["labels"]), LABELS)
        for m in ("shift", "good", "coin", "flaky"):
            self.assertEqual(body["coverage"][m],
                             sum(1 for _, _, a in rows if a[m] is not None), m)
        self.assertIn("shift", body["models"], "the permuted model carries the most bits")
        self.assertNotIn("coin", body["models"], "noise carries no information")
        steps = body["steps"]
        for i in range(1, len(steps)):
            self.assertGreaterEqual(steps[i]["mi_bits"], steps[i - 1]["mi_bits"] - 1e-12)
            self.assertAlmostEqual(steps[i]["gain_bits"],
                                   steps[i]["mi_bits"] - steps[i - 1]["mi_bits"], places=9)

        # A weighted vote cannot undo the permutation: the daemon must
        # publish a decision table, and a router applying it the documented
        # way gets the daemon's stated accuracy on these rows.
        comb = body["combiner"]
        self.assertIn(comb["kind"], ("table", "pattern"), comb)
        self.assertGreater(len(comb["table"]), 0)
        for e in comb["table"]:
            self.assertEqual(len(e), len(body["models"]) + 1, e)
        fallback = collections.Counter(y for _, y, _ in rows).most_common(1)[0][0]
        right = sum(1 for _, y, ans in rows if route(body, ans, fallback) == y)
        acc = right / len(rows)
        stated = body["accuracy"]["in_sample"]
        self.assertGreater(stated, 0.6, body["accuracy"])
        self.assertAlmostEqual(acc, stated, delta=0.03,
                               msg="router %.4f vs daemon in_sample %.4f" % (acc, stated))
        # And it beats what a plain vote of the same models would do.
        vote = sum(1 for _, y, ans in rows
                   if weighted_vote(body["models"], comb["weights"],
                                    [ans.get(m) for m in body["models"]], fallback) == y)
        print("combiner %s over %s: router %.4f, in_sample %.4f, weighted vote %.4f" % (comb["kind"], body["models"], acc, stated, vote / len(rows)), file=sys.stderr)
        self.assertGreater(acc, vote / len(rows) + 0.05)
        self.assertGreaterEqual(body["accuracy"]["combiner"],
                                body["accuracy"]["best_single"] - 0.05, body["accuracy"])

        # The ensemble command returns the same body, decodable as is.
        rep = d.ctl("ensemble", task="default")
        self.assertEqual(rep["ensemble"], body)

    def test_real_data_router_reproduces_in_sample(self):
        """MMLU-Pro, sent by Python as predictions maps: the published
        combiner applied to the same rows gives the stated accuracy."""
        header, csv_rows = harness.csv_rows(harness.data_file(
            "mmlupro_28llm.csv"))
        models = header[2:]
        rows = []
        for r in csv_rows:
            ans = {m: (r[2 + j] if r[2 + j] != "" else None) for j, m in enumerate(models)}
            rows.append((r[0], r[1], ans))
        d = self.daemon({"select": {"budget": 5}})
        router = d.subscriber("ensemble.")
        batch = []
        for q, y, ans in rows:
            batch.append({"kind": "prediction", "query": q,
                          "predictions": {m: a for m, a in ans.items() if a is not None}})
            batch.append({"kind": "label", "query": q, "label": y})
        st = d.sync_send(*[batch[i:i + 500] for i in range(0, len(batch), 500)], timeout=30)
        self.assertEqual(st["tasks"]["default"]["joined"], len(rows))
        _, body = d.recompute_and_receive(router)
        self.assertEqual(body["budget"], 5)
        self.assertGreater(len(body["models"]), 1, "precondition: a real ensemble")
        fallback = collections.Counter(y for _, y, _ in rows).most_common(1)[0][0]
        acc = sum(1 for _, y, ans in rows if route(body, ans, fallback) == y) / len(rows)
        print("combiner %s over %s: router %.4f, stated %r"
              % (body["combiner"]["kind"], body["models"], acc, body["accuracy"]), file=sys.stderr)
        self.assertAlmostEqual(acc, body["accuracy"]["in_sample"], delta=0.02,
                               msg="router %.4f vs daemon in_sample %r (%s)"
                               % (acc, body["accuracy"], body["combiner"]["kind"]))


if __name__ == "__main__":
    harness.main()
