#!/usr/bin/env python3
"""A router that follows ensembled: the reference for router authors.

It subscribes to the daemon's publications, and for each query:
  1. decides whether the query explores (the published rule: XXH3-64 with
     seed 1 of task, a zero byte and the query key, below rate * 2^64);
  2. asks the ensemble's models, or on exploration queries every model it
     serves;
  3. reports every answer it got as a prediction event;
  4. combines the ensemble's answers with the published combiner;
and later reports the query's true label when it learns it.

Wire protocol: docs/protocol.md. Needs Debian's python3-zmq,
python3-msgpack and python3-xxhash.

As a program it replays a wide CSV (item,label,<model>...) as the fleet: the
cells are what each model would answer, so the loop runs on real data:

    examples/router.py --csv tests/data/winogrande_routerbench_11llm.csv \\
        --ingest tcp://127.0.0.1:5557 --publish tcp://127.0.0.1:5558
"""
import argparse
import collections
import csv
import math
import re
import struct
import sys
import time

import msgpack
import xxhash
import zmq


def query_key(query):
    """The join key of a query id: 's' + bytes, or 'u' + 8 big-endian bytes."""
    if isinstance(query, int):
        return b"u" + struct.pack(">Q", query)
    return b"s" + query.encode()


def explores(task, query, rate):
    """Whether this query is an exploration query under the published rate."""
    h = xxhash.xxh3_64_intdigest(task.encode() + b"\0" + query_key(query), seed=1)
    return h < rate * 2.0 ** 64


def is_vote(answer):
    return answer is not None and answer != "?"


def weighted_vote(models, weights, answers, equal=False):
    """The (weighted) vote; ties to the answer of the most accurate voter
    among the tied answers. None when nobody answered."""
    score = collections.defaultdict(float)
    for m, w in zip(models, weights):
        if is_vote(answers.get(m)):
            score[answers[m]] += 1.0 if equal else w
    if not score:
        return None
    best = max(score.values())
    by_accuracy = sorted(range(len(models)), key=lambda i: -weights[i])
    for i in by_accuracy:
        a = answers.get(models[i])
        if is_vote(a) and score[a] >= best - 1e-12:
            return a
    return None


def agreement_pattern(answers_in_order):
    """Class index per answer in order of first appearance; -1 abstained,
    -2 not asked. Returns (pattern, the answer of each class)."""
    classes, pattern = [], []
    for a in answers_in_order:
        if a is None:
            pattern.append(-2)
        elif a == "?":
            pattern.append(-1)
        else:
            if a not in classes:
                classes.append(a)
            pattern.append(classes.index(a))
    return tuple(pattern), classes


_WS = " \t\n\r\f\v"
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


def agreement_key(answer, normalize):
    """Open answers: equal keys for agreeing answers (docs/protocol.md)."""
    if normalize == "fold":
        t = answer.strip(_WS)
        return ("t", "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in t))
    if normalize == "numeric":
        t = answer.strip(_WS)
        if _DECIMAL.match(t) and math.isfinite(float(t)):
            return ("n", float(t) + 0.0)  # -0 agrees with 0
    return ("t", answer)


class Combiner:
    """The published combiner of one ensemble body."""

    def __init__(self, body):
        self.open = body.get("answers") == "open"
        self.normalize = body.get("normalize", "exact")
        self.models = list(body["models"])
        comb = body["combiner"]
        self.kind = comb["kind"]
        self.weights = list(comb["weights"])
        self.table = {}
        for entry in comb.get("table", []):
            self.table[tuple(entry[:-1])] = entry[-1]

    def combine(self, answers):
        """The ensemble's answer from {model: answer}; None if nobody answered."""
        if self.open:
            return self.combine_open(answers)
        return self.combine_keys(answers)

    def combine_open(self, answers):
        """Open answers: combine agreement keys, answer the text of the first
        model (in ensemble order) whose answer has the winning key."""
        keys, text = {}, {}
        for m in self.models:
            a = answers.get(m)
            if is_vote(a):
                keys[m] = agreement_key(a, self.normalize)
                text.setdefault(keys[m], a)
            elif a is not None:
                keys[m] = a
        won = self.combine_keys(keys)
        return text.get(won) if won is not None else None

    def combine_keys(self, answers):
        ordered = [answers.get(m) for m in self.models]
        vote = weighted_vote(self.models, self.weights, answers, equal=self.kind == "vote")
        if self.kind in ("vote", "weighted"):
            return vote
        if self.kind == "table":
            decision = self.table.get(tuple(ordered))
            return decision if decision is not None else vote
        pattern, classes = agreement_pattern(ordered)
        decision = self.table.get(pattern)
        if decision is not None and decision < len(classes):
            return classes[decision]
        return vote


class Router:
    """Follows the publications of one task and routes queries."""

    def __init__(self, ctx, ingest, publish, task="default", fleet=()):
        self.task = task
        self.fleet = list(fleet)
        self.body = None
        self.combiner = None
        self.push = ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 5000)
        self.push.connect(ingest)
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        # The task's whole topic, NUL included: "med" must not get "medmcqa".
        self.sub.setsockopt(zmq.SUBSCRIBE, b"ensemble." + task.encode() + b"\0")
        self.sub.connect(publish)

    def poll(self, timeout_ms=0):
        """Takes every publication waiting (the last one wins)."""
        while self.sub.poll(timeout_ms):
            topic, body = self.sub.recv_multipart()
            body = msgpack.unpackb(body, raw=False, strict_map_key=False)
            if self.body is None or body["version"] >= self.body["version"]:
                self.body = body
                self.combiner = Combiner(body)
            timeout_ms = 0

    def models_to_ask(self, query):
        """The ensemble, or every model on exploration queries (and before the
        first publication, when there is no ensemble yet)."""
        if self.body is None or explores(self.task, query, self.body["explore"]["rate"]):
            known = list(self.body["explore"]["models"]) if self.body else []
            return known + [m for m in self.fleet if m not in known]
        return list(self.body["models"])

    def route(self, query, ask):
        """Asks the chosen models (ask(model, query) -> answer or None),
        reports their answers, returns (the combined answer, models asked)."""
        self.poll()
        asked = self.models_to_ask(query)
        answers = {}
        for m in asked:
            a = ask(m, query)
            if a is not None:
                answers[m] = a
        if answers:
            self.push.send(msgpack.packb({"kind": "prediction", "task": self.task,
                                          "query": query, "predictions": answers}))
        answer = self.combiner.combine(answers) if self.combiner else None
        return answer, asked

    def report_label(self, query, label):
        self.push.send(msgpack.packb({"kind": "label", "task": self.task,
                                      "query": query, "label": label}))

    def close(self):
        self.sub.close(0)
        self.push.close()


def read_fleet(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    models = rows[0][2:]
    data = [(r[1], dict((m, c) for m, c in zip(models, r[2:]) if c != "")) for r in rows[1:]]
    return models, data


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", required=True, help="wide CSV playing the fleet")
    ap.add_argument("--ingest", default="tcp://127.0.0.1:5557")
    ap.add_argument("--publish", default="tcp://127.0.0.1:5558")
    ap.add_argument("--task", default="default")
    ap.add_argument("--label-delay", type=int, default=100, help="queries before a label comes")
    ap.add_argument("--rate", type=float, default=0, help="queries per second (0: unpaced)")
    ap.add_argument("--limit", type=int, default=0, help="stop after this many queries")
    args = ap.parse_args(argv)

    models, data = read_fleet(args.csv)
    if args.limit:
        data = data[:args.limit]
    ctx = zmq.Context()
    router = Router(ctx, args.ingest, args.publish, args.task, models)
    right = asked_total = routed = 0
    start = time.time()
    for i, (label, cells) in enumerate(data):
        answer, asked = router.route(i + 1, lambda m, q, c=cells: c.get(m))
        if router.combiner:
            routed += 1
            right += answer == label
        asked_total += len(asked)
        if i >= args.label_delay:
            router.report_label(i + 1 - args.label_delay, data[i - args.label_delay][0])
        if args.rate:
            time.sleep(max(0.0, start + (i + 1) / args.rate - time.time()))
    for i in range(max(0, len(data) - args.label_delay), len(data)):
        router.report_label(i + 1, data[i][0])
    version = router.body["version"] if router.body else 0
    router.close()
    ctx.term()
    print("queries %d, routed by an ensemble %d, accuracy %.4f, models asked per query %.2f, "
          "last version %d" % (len(data), routed, right / routed if routed else float("nan"),
                               asked_total / max(1, len(data)), version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
