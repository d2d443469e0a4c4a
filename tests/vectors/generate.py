#!/usr/bin/python3
"""Writes the router test vectors (tests/vectors/*.json) from the rules of
docs/protocol.md, implemented here once more, on their own: this script
shares no code with src/lib/router.c or the Python package, so that the
vectors are an outside reference for both.

    /usr/bin/python3 tests/vectors/generate.py        # rewrites the files
    /usr/bin/python3 tests/vectors/generate.py --check  # exits 1 if they differ

Needs Debian's python3-xxhash. Every file is a JSON object with a
"description" of its fields and a list of "cases".
"""
import json
import math
import os
import random
import re
import struct
import sys

import xxhash

HERE = os.path.dirname(os.path.abspath(__file__))
ABSTAIN, MISSING = "?", None


# --- exploration -----------------------------------------------------------

def explore_hash(task, query):
    key = b"u" + struct.pack(">Q", query) if isinstance(query, int) else b"s" + query
    return xxhash.xxh3_64_intdigest(task + b"\0" + key, seed=1)


def explore_cases():
    tasks = [b"default", b"med", b"medmcqa", "caf\u00e9".encode(), b"t"]
    queries = [0, 1, 42, 1000, 2**32, 2**63, 2**64 - 1, b"q1", b"", b"\xff\x00binary",
               "\u00e9l\u00e8ve-7".encode(), b"x" * 300]
    rates = [0.0, 0.05, 0.5, 1.0]
    cases = []
    for t in tasks:
        for q in queries:
            h = explore_hash(t, q)
            for r in rates:
                cases.append(explore_case(t, q, h, r))
    # At the threshold: rate * 2^64 equal to the hash rounded to a double, and
    # one double either side. Where the rounding went up, the hash is below
    # the threshold although a comparison of the hash as a double says it is
    # not: the rule compares exactly.
    for i in range(12):
        t, q = tasks[i % len(tasks)], 1000 + i
        h = explore_hash(t, q)
        at = float(h) / 2.0**64
        for r in [at, math.nextafter(at, 0.0), math.nextafter(at, 1.0)]:
            cases.append(explore_case(t, q, h, r))
    return cases


def explore_case(task, query, h, rate):
    c = {"task_hex": task.hex()}
    if isinstance(query, int):
        c["query_uint"] = str(query)
    else:
        c["query_hex"] = query.hex()
    # Python compares an int with a float exactly.
    c.update({"rate": rate, "hash": "%016x" % h, "explores": h < rate * 2.0**64})
    return c


# --- agreement patterns and combiners --------------------------------------

def pattern(answers):
    classes, out = [], []
    for a in answers:
        if a is MISSING:
            out.append(-2)
        elif a == ABSTAIN:
            out.append(-1)
        else:
            if a not in classes:
                classes.append(a)
            out.append(classes.index(a))
    return out, classes


def vote(answers, weights, weighted):
    totals = {}
    for a, w in zip(answers, weights):
        if a is not MISSING and a != ABSTAIN:
            totals[a] = totals.get(a, 0.0) + (w if weighted else 1.0)
    if not totals:
        return None
    top = max(totals.values())
    tied = [i for i, a in enumerate(answers)
            if a is not MISSING and a != ABSTAIN and totals[a] >= top - 1e-12]
    # The heaviest voter among the tied; the earlier one on equal weights.
    best = tied[0]
    for i in tied[1:]:
        if weights[i] > weights[best]:
            best = i
    return answers[best]


def combine(case):
    kind, answers, weights = case["kind"], case["answers"], case["weights"]
    fallback = vote(answers, weights, kind != "vote")
    if kind == "table":
        for entry in case["table"]:
            if list(entry[:-1]) == list(answers):
                return entry[-1]
    elif kind == "pattern":
        pat, classes = pattern(answers)
        for entry in case["table"]:
            if list(entry[:-1]) == pat and 0 <= entry[-1] < len(classes):
                return classes[entry[-1]]
    return fallback


# Open answers: agreement instead of equality. Written here from the rules of
# docs/protocol.md ("Open answers"), apart from the package and the library.
SPACE = " \t\n\r\f\v"
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def agree_key(a, normalize):
    if normalize == "fold":
        return ("text", "".join(c.lower() if c.isascii() else c for c in a.strip(SPACE)))
    if normalize == "numeric" and NUMBER.fullmatch(a.strip(SPACE)):
        v = float(a.strip(SPACE))
        if math.isfinite(v):
            return ("number", 0.0 if v == 0 else v)
    return ("text", a)


def combine_open(case):
    """Each answer that agrees with an earlier one takes that one's text;
    then the rules as for choice tasks."""
    first, canon = {}, []
    for a in case["answers"]:
        if a is MISSING or a == ABSTAIN:
            canon.append(a)
        else:
            canon.append(first.setdefault(agree_key(a, case["normalize"]), a))
    return combine(dict(case, answers=canon))


def open_cases(rng, n):
    c = []

    def add(note, kind, normalize, answers, weights, table=()):
        c.append({"note": note, "kind": kind, "mode": "open", "normalize": normalize,
                  "labels": [], "weights": weights, "table": [list(e) for e in table],
                  "answers": answers})

    add("open, fold: case and spaces agree; the first model's text", "vote", "fold",
        ["Paris", " paris ", "Lyon"], [0.5, 0.5, 0.9])
    add("open, exact: case differs, so the heavier one wins", "weighted", "exact",
        ["Paris", "paris", "Lyon"], [0.4, 0.4, 0.9])
    add("open, numeric: 3, 3.0 and 3e0 agree", "weighted", "numeric",
        ["3.0", "4", "3", "3e0"], [0.3, 0.8, 0.3, 0.3])
    add("open, numeric: -0 agrees with 0", "vote", "numeric", ["-0", "1", "0"], [0.5, 0.9, 0.5])
    add("open, numeric: 1e400 is no finite number, only its own text", "vote", "numeric",
        ["1e400", "inf", "1e400", "2"], [0.5, 0.5, 0.5, 0.9])
    add("open, numeric: non-numbers agree by exact text", "vote", "numeric",
        ["three", "Three", "three"], [0.5, 0.9, 0.5])
    add("open, pattern: agreeing answers form one class", "pattern", "fold",
        ["x", " X", "y", "Y"], [0.9, 0.5, 0.5, 0.5], [[0, 0, 1, 1, 1]])
    add("open, pattern with abstention and missing", "pattern", "exact",
        ["a", "?", None, "b"], [0.9, 0.9, 0.9, 0.6], [[0, -1, -2, 1, 1]])
    add("open, nobody answered", "weighted", "fold", ["?", None], [0.5, 0.6])
    pool = ["3", "3.0", " 3 ", "three", "Three", "-0", "0", ".5", "0.50", "1e400", "caf\u00e9",
            "CAF\u00e9", ABSTAIN, MISSING]
    for i in range(n):
        kind = ["vote", "weighted", "pattern"][i % 3]
        k = rng.randint(1, 5)
        weights = [rng.choice([0.5, 0.625, 0.75]) for _ in range(k)]
        answers = [rng.choice(pool) for _ in range(k)]
        normalize = ["exact", "fold", "numeric"][rng.randrange(3)]
        table = []
        if kind == "pattern":
            canon = [a if a is MISSING or a == ABSTAIN else agree_key(a, normalize)
                     for a in answers]
            keys = [pattern(canon)[0]] + [pattern([rng.choice(pool) for _ in range(k)])[0]
                                          for _ in range(3)]
            for key in keys if rng.random() < 0.5 else keys[1:]:
                if key not in [e[:-1] for e in table]:
                    table.append(list(key) + [rng.randint(0, max(0, k - 1))])
        add("open random %d" % i, kind, normalize, answers, weights, table)
    return c


def hand_cases():
    L = ["A", "B", "C"]
    c = []

    def add(note, kind, answers, weights, table=(), labels=L):
        c.append({"note": note, "kind": kind, "labels": list(labels), "weights": weights,
                  "table": [list(e) for e in table], "answers": answers})

    add("majority wins over a heavier minority", "vote", ["A", "A", "B"], [0.6, 0.6, 0.9])
    add("the same answers weighted: the heavier minority wins", "weighted", ["A", "A", "B"],
        [0.4, 0.4, 0.9])
    add("vote tie: the answer of the most accurate tied voter", "vote", ["A", "B"], [0.6, 0.8])
    add("vote tie on equal weights: the earlier model", "vote", ["B", "A"], [0.7, 0.7])
    add("abstentions and missing answers do not vote", "vote", ["?", None, "C"], [0.9, 0.9, 0.5])
    add("nobody answered: no decision", "weighted", [None, "?", None], [0.5, 0.6, 0.7])
    add("weighted tie: the heaviest tied voter", "weighted", ["A", "B", "B"], [0.8, 0.4, 0.4])
    add("table hit", "table", ["A", "B"], [0.9, 0.6], [["A", "B", "B"], ["B", "A", "A"]])
    add("table hit with abstention and nil", "table", ["?", None], [0.9, 0.6],
        [["?", None, "C"], ["A", "B", "B"]])
    add("table miss: weighted vote", "table", ["A", "C"], [0.9, 0.6], [["A", "B", "B"]])
    add("table decides where nobody votes", "table", ["?", "?"], [0.9, 0.6], [["?", "?", "B"]])
    add("answer outside the labels matches no entry", "table", ["Z", "B"], [0.9, 0.6],
        [["A", "B", "A"]])
    add("pattern hit: minority class", "pattern", ["B", "A", "A"], [0.7, 0.6, 0.6],
        [[0, 1, 1, 0]])
    add("pattern with abstention and missing", "pattern", ["C", "?", None, "A"],
        [0.5, 0.9, 0.9, 0.6], [[0, -1, -2, 1, 1]])
    add("pattern entry naming a class not present: weighted vote", "pattern", ["A", "A"],
        [0.6, 0.7], [[0, 0, 1]])
    add("pattern miss: weighted vote", "pattern", ["A", "B", "B"], [0.9, 0.3, 0.3],
        [[0, 0, 0, 0]])
    add("integer labels as decimal text", "table", ["3", "10"], [0.6, 0.6],
        [["3", "10", "10"]], labels=["3", "10"])
    add("UTF-8 labels", "vote", ["\u00e9t\u00e9", "hiver", "\u00e9t\u00e9"], [0.5, 0.9, 0.5],
        labels=["\u00e9t\u00e9", "hiver"])
    return c


def random_cases(rng, n):
    L = ["A", "B", "C"]
    cells = L + [ABSTAIN, MISSING]
    out = []
    for i in range(n):
        kind = ["vote", "weighted", "table", "pattern"][i % 4]
        k = rng.randint(1, 5)
        # Few distinct weights, so that ties between voters are common.
        weights = [rng.choice([0.5, 0.625, 0.75]) for _ in range(k)]
        answers = [rng.choice(cells) for _ in range(k)]
        table = []
        if kind == "table":
            keys = [answers] + [[rng.choice(cells) for _ in range(k)] for _ in range(4)]
            for key in keys if rng.random() < 0.5 else keys[1:]:
                if key not in [e[:-1] for e in table]:
                    table.append(list(key) + [rng.choice(L)])
        elif kind == "pattern":
            pat, classes = pattern(answers)
            keys = [pat] + [pattern([rng.choice(cells) for _ in range(k)])[0] for _ in range(4)]
            for key in keys if rng.random() < 0.5 else keys[1:]:
                if key not in [e[:-1] for e in table]:
                    table.append(list(key) + [rng.randint(0, max(0, k - 1))])
        out.append({"note": "random %d" % i, "kind": kind, "labels": L, "weights": weights,
                    "table": table, "answers": answers})
    return out


def combine_cases():
    cases = hand_cases() + random_cases(random.Random(14), 400)
    for c in cases:
        c["expect"] = combine(c)
    opened = open_cases(random.Random(16), 150)
    for c in opened:
        c["expect"] = combine_open(c)
    return cases + opened


def pattern_cases():
    rng = random.Random(15)
    lists = [[], ["A"], ["?"], [None], ["A", "A"], ["A", "B", "A", "C", "B"],
             ["?", "A", None, "A", "?", "B"], ["B", "?", "B", None, "caf\u00e9", "B"]]
    lists += [[rng.choice(["A", "B", "C", "D", "?", None]) for _ in range(rng.randint(1, 8))]
              for _ in range(100)]
    return [{"answers": a, "pattern": pattern(a)[0]} for a in lists]


# --- topics and names -------------------------------------------------------

def topic(task):
    return b"ensemble." + task + b"\0"


def topic_cases():
    tasks = [b"med", b"medmcqa", b"me", b"default", "caf\u00e9".encode(), b"caf"]
    cases = []
    for sub in [None] + tasks:
        prefix = b"ensemble." if sub is None else topic(sub)
        for t in tasks:
            c = {"subscribe_task_hex": None if sub is None else sub.hex(),
                 "subscription_hex": prefix.hex(), "task_hex": t.hex(),
                 "topic_hex": topic(t).hex(), "match": topic(t).startswith(prefix)}
            cases.append(c)
    return cases


def valid_name(b):
    if b"\0" in b:
        return False
    try:
        b.decode("utf-8", errors="strict")  # Python refuses overlong forms and surrogates
    except UnicodeDecodeError:
        return False
    return True


def name_cases():
    names = [b"med", "caf\u00e9".encode(), b"caf\xe9", b"a\x00b", b"\x00",
             "\U0001F600".encode(), b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80",
             b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xed\xa0\x80", b"\xed\x9f\xbf",
             b"\xee\x80\x80", b"\xc2", b"\xe2\x82", b"\xe2\x82\xac", b"\x80", b"\xbf",
             b"\xfe", b"\xff", b"\xf8\x88\x80\x80\x80", b"\xc1\xbf", b"\xc2\x80",
             b"\x7f", "\u65e5\u672c".encode(), b"ok\xe2\x82", b"\xf0\x9f\x98"]
    return [{"hex": n.hex(), "valid": valid_name(n)} for n in names]


FILES = {
    "explore.json": ("Exploration: the query explores iff hash (XXH3-64 with seed 1 of task, "
                     "0x00, then 'u' and the id as 8 big-endian bytes or 's' and its bytes; "
                     "16 hex digits) < rate * 2^64, compared exactly. task_hex: the task's "
                     "bytes; query_uint (decimal text) or query_hex (bytes).", explore_cases),
    "combine.json": ("Combiners: answers per model in ensemble order (null: missing, \"?\": "
                     "abstained); weights per model; table entries as on the wire (labels, "
                     "\"?\" or null, then the decision label) or patterns (class indices, -1, "
                     "-2, then the decided class); expect: the decision, null when nobody "
                     "voted and no entry decided. Cases with mode \"open\" are open-answer tasks: "
                     "answers agree under normalize (exact, fold, numeric) and the decision "
                     "is the first agreeing answer's text.", combine_cases),
    "pattern.json": ("Agreement patterns: each distinct answer gets the next class index "
                     "in order; \"?\" is -1 and a missing answer (null) -2.", pattern_cases),
    "topics.json": ("Topic matching: a subscription (ensemble.<task> and a NUL byte, or "
                    "\"ensemble.\" for every task when subscribe_task_hex is null) receives "
                    "topic_hex iff it is a byte prefix of it (ZeroMQ's rule).", topic_cases),
    "names.json": ("Names (task, model, label): valid iff UTF-8 in shortest form, no "
                   "surrogates, at most U+10FFFF, and no NUL byte.", name_cases),
}


def render(name):
    desc, fn = FILES[name]
    return json.dumps({"description": desc, "cases": fn()}, indent=1, ensure_ascii=True) + "\n"


def main(argv):
    check = "--check" in argv
    bad = 0
    for name in sorted(FILES):
        path = os.path.join(HERE, name)
        text = render(name)
        if check:
            with open(path) as f:
                if f.read() != text:
                    print("%s: differs from what generate.py writes" % path)
                    bad = 1
        else:
            with open(path, "w") as f:
                f.write(text)
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
