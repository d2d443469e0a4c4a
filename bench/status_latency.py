#!/usr/bin/env python3
"""Benchmark: `status` latency while producers flood the daemon.

Not a test (a busy machine decides wall-clock figures): it prints them and
a ratio. The daemon is started as the integration tests start it
(tests/integration/harness.py, ENSEMBLED names the binary); `status` is
timed first on the idle daemon, then while ENS_FLOOD_PRODUCERS (10)
producers of tests/integration/test_flood.py push batches of
ENS_FLOOD_BATCH (100) events for ENS_FLOOD_SECONDS (20) seconds, one
request every 0.2 s on a fresh REQ socket, connect included.

Goal (docs/overload.md): `status` p99 under flood below 100 ms, which the
drain's 2 ms budget per loop turn is meant to give. The last line is
`status_p99_flood_over_idle: R`, the p99 under flood over the idle p99.
"""
import multiprocessing
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("ENS_FLOOD_SECONDS", "20")
import harness  # noqa: E402
import reliability  # noqa: E402
import test_flood  # noqa: E402

GOAL_P99 = 0.100


def timed(d, n, interval, stop=None):
    lat = []
    while len(lat) < n and not (stop and stop.is_set()):
        try:
            dt, _ = reliability.timed_status(d.control, harness.ZCTX, timeout=5)
        except Exception:  # a timeout counts as 5 s
            dt = 5.0
        lat.append(dt)
        time.sleep(interval)
    return lat


def summary(name, lat):
    p = reliability.percentile
    print("%s: %d requests, p50 %.1f ms, p99 %.1f ms, max %.1f ms"
          % (name, len(lat), p(lat, 50) * 1000, p(lat, 99) * 1000, max(lat) * 1000))
    return p(lat, 99)


def main():
    d = harness.Daemon({
        "join": {"max_pending": test_flood.MAX_PENDING, "ttl": "%gs" % test_flood.TTL},
        "window": {"rows": test_flood.WINDOW_ROWS},
        "publish": {"interval": "10s", "every_labels": 1000},
        "state": {"snapshot_interval": "10s", "fsync_interval": "1s"},
        "log": {"level": "notice"},
    })
    try:
        idle = summary("idle", timed(d, 100, 0.02))
        mp = multiprocessing.get_context("spawn")
        out = mp.Queue()
        procs = [mp.Process(target=test_flood.producer,
                            args=(d.ingest, i, test_flood.SECONDS, test_flood.BATCH, 1000 + i,
                                  out), daemon=True)
                 for i in range(test_flood.PRODUCERS)]
        for p in procs:
            p.start()
        stop = threading.Event()
        lat = []
        sampler = threading.Thread(
            target=lambda: lat.extend(timed(d, 10 ** 9, 0.2, stop)), daemon=True)
        sampler.start()
        results = [out.get(timeout=test_flood.SECONDS + 60) for _ in procs]
        stop.set()
        sampler.join(10)
        for p in procs:
            p.join(10)
        events = sum(r["events"] for r in results)
        print("flood: %d producers x %.0f s, %d events sent"
              % (test_flood.PRODUCERS, test_flood.SECONDS, events))
        flood = summary("flood", lat)
        print("goal: p99 under flood below %.0f ms: %s"
              % (GOAL_P99 * 1000, "met" if flood < GOAL_P99 else "NOT met"))
        print("status_p99_flood_over_idle: %.1f" % (flood / idle))
    finally:
        d.stop()


if __name__ == "__main__":
    main()
