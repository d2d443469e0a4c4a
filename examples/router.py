#!/usr/bin/python3
"""A router that follows ensembled, written with the ensembled package
(python/): for each query it asks the models the published exploration rule
names, reports their answers (never blocking on the daemon), combines the
ensemble's answers with the published combiner, and later reports the
query's true label.

As a program it replays a wide CSV (item,label,<model>...) as the fleet: the
cells are what each model would answer, so the loop runs on real data:

    examples/router.py --csv tests/data/winogrande_routerbench_11llm.csv \\
        --ingest tcp://127.0.0.1:5557 --publish tcp://127.0.0.1:5558

Needs Debian's python3-zmq, python3-msgpack and python3-xxhash; finds the
package in the checkout when it is not installed.
"""
import argparse
import csv
import os
import sys
import time

try:
    import ensembled
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import ensembled

explores = ensembled.explores  # the published rule: explores(task, query, rate)


def read_fleet(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    models = rows[0][2:]
    data = [(r[1], {m: c for m, c in zip(models, r[2:]) if c != ""}) for r in rows[1:]]
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
    data = data[:args.limit] if args.limit else data
    router = ensembled.Router(args.task, publish=args.publish, ingest=args.ingest, fleet=models)
    right = asked_total = routed = 0
    start = time.time()
    for i, (label, cells) in enumerate(data):
        answer, asked = router.route(i + 1, lambda m, q, c=cells: c.get(m))
        if router.combiner:
            routed += 1
            right += answer == label
        asked_total += len(asked)
        if i >= args.label_delay:
            router.report(i + 1 - args.label_delay, label=data[i - args.label_delay][0])
        if args.rate:
            time.sleep(max(0.0, start + (i + 1) / args.rate - time.time()))
    for i in range(max(0, len(data) - args.label_delay), len(data)):
        router.report(i + 1, label=data[i][0])
    version = router.body["version"] if router.body else 0
    router.close(timeout=5.0)
    print("queries %d, routed by an ensemble %d, accuracy %.4f, models asked per query %.2f, "
          "last version %d, reports dropped %d"
          % (len(data), routed, right / routed if routed else float("nan"),
             asked_total / max(1, len(data)), version, router.dropped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
