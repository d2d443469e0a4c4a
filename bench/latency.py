#!/usr/bin/env python3
"""Benchmark: the event loop's longest turn at 64 tasks x 256 models x
50,000 rows (819 million window cells), with selections, snapshots and a
flood of producers going on.

Not a test (a busy machine decides wall-clock figures): it prints them.

1. bench/latency_state (LATENCY_STATE, default build/bench/latency_state)
   writes a state directory whose snapshot holds ENS_LATENCY_TASKS (64)
   tasks of ENS_LATENCY_MODELS (256) models and ENS_LATENCY_ROWS (50,000)
   rows, each row answered by ENS_LATENCY_STATE_ASKED models (8, as the
   producers' queries are: the windows a flood leaves; 256: every model
   answered every row); the daemon (ENSEMBLED, started as the integration tests start it)
   restores it, which takes seconds where filling it through ZeroMQ would
   take a quarter of an hour.
2. With every task selecting every `publish.interval` (5 s), a snapshot
   every `state.snapshot_interval` (15 s) and /metrics rendered each
   second, `status` is timed idle (no producer; 100 requests), then while
   ENS_LATENCY_PRODUCERS (10) producer processes push batches of 100
   events (prediction and label, 8 models of 256 per query) into the 64
   tasks for ENS_LATENCY_SECONDS (60) seconds, one request every 0.2 s.
3. The daemon's own loop figures (`status` -> `loop`, docs/overload.md):
   the longest turn since the start and the turns over 5 ms, by work time
   (what a request waits) and by the loop thread's CPU time (what the
   daemon itself spent; the difference went to waiting for a core).

Last lines: `longest_loop_turn_cpu_ms: C`, `longest_loop_turn_ms: X` and
`status_p99_flood_over_idle: R`.
Needs about 3 GiB of memory and 2 GiB of disk (in TMPDIR).
"""
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
import reliability  # noqa: E402
sys.path.insert(0, HERE)
from status_latency import summary, timed  # noqa: E402

TASKS = int(os.environ.get("ENS_LATENCY_TASKS", "64"))
MODELS = int(os.environ.get("ENS_LATENCY_MODELS", "256"))
ROWS = int(os.environ.get("ENS_LATENCY_ROWS", "50000"))
PRODUCERS = int(os.environ.get("ENS_LATENCY_PRODUCERS", "10"))
SECONDS = float(os.environ.get("ENS_LATENCY_SECONDS", "60"))
STATE_GEN = os.environ.get("LATENCY_STATE",
                           os.path.join(os.path.dirname(harness.ENSEMBLED), "bench",
                                        "latency_state"))
BATCH = 100
ASKED = 8  # models answering each query
STATE_ASKED = int(os.environ.get("ENS_LATENCY_STATE_ASKED", str(ASKED)))
NICE = 10  # as the flood test's producers: measure the daemon, not the scheduler


def producer(endpoint, idx, seconds, out):
    """Batches of BATCH queries, each with its predictions and its label
    (one in four labels a batch later), as fast as send() takes them."""
    import msgpack
    import zmq
    os.nice(NICE)
    rng = random.Random(idx)
    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.setsockopt(zmq.LINGER, -1)
    s.connect(endpoint)
    labels = "ABC"
    names = ["model%03d" % m for m in range(MODELS)]
    late, n, events = [], 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        evs, later = late, []
        for _ in range(BATCH // 2):
            task = "task%02d" % rng.randrange(TASKS)
            q = "p%d-%d" % (idx, n)
            n += 1
            truth = rng.choice(labels)
            preds = {names[m]: (truth if rng.random() < 0.7 else rng.choice(labels))
                     for m in rng.sample(range(MODELS), ASKED)}
            evs.append({"kind": "prediction", "task": task, "query": q, "predictions": preds})
            label = {"kind": "label", "task": task, "query": q, "label": truth}
            (later if rng.random() < 0.25 else evs).append(label)
        late = later
        s.send(msgpack.packb(evs, use_bin_type=True))
        events += len(evs)
    s.close()
    ctx.term()
    out.put(events)


def rss_peak_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def loop_line(st, what):
    lp = st["loop"]
    print("%s: %d turns, longest %.2f ms (last 10-20 s: %.2f ms), %d over 5 ms; "
          "CPU time: longest %.2f ms, %d over 5 ms; %d snapshots, %d publications"
          % (what, lp["turns"], lp["longest_turn_ms"], lp["longest_turn_recent_ms"],
             lp["turns_over_5ms"], lp.get("longest_turn_cpu_ms", float("nan")),
             lp.get("turns_over_5ms_cpu", -1), st["state"]["snapshots"], st["published"]))
    by = lp.get("turns_over_5ms_cpu_by")
    if by is not None:
        print("%s: longest CPU turn in %s; over 5 ms of CPU by section: %s"
              % (what, lp["longest_turn_cpu_in"],
                 ", ".join("%s %d" % kv for kv in sorted(by.items()) if kv[1]) or "none"))


def main():
    state = tempfile.TemporaryDirectory(prefix="ensembled-latency-")
    t0 = time.monotonic()
    subprocess.run([STATE_GEN, state.name, str(TASKS), str(MODELS), str(ROWS),
                    str(min(STATE_ASKED, MODELS))], check=True)
    print("state: %d tasks x %d models x %d rows (%d answers a row) written in %.1f s"
          % (TASKS, MODELS, ROWS, min(STATE_ASKED, MODELS), time.monotonic() - t0))
    metrics_port = harness.free_ports(1)[0]
    t0 = time.monotonic()
    d = harness.Daemon({
        "ingest": {"max_tasks": TASKS, "max_models": MODELS},
        "window": {"rows": ROWS},
        "join": {"ttl": "5s"},
        "select": {"min_rows": 100},
        "publish": {"interval": "5s", "every_labels": 0},
        "state": {"dir": state.name, "snapshot_interval": "15s", "fsync_interval": "1s"},
        "metrics": {"bind": "127.0.0.1:%d" % metrics_port},
        "log": {"level": "notice"},
    }, start_timeout=600)
    try:
        st = d.status()
        cells = sum(t["rows"] * t["models"] for t in st["tasks"].values())
        print("restored: %d tasks, %d window cells, in %.1f s; RSS peak %.0f MiB"
              % (len(st["tasks"]), cells, time.monotonic() - t0, rss_peak_mib(d.proc.pid)))
        time.sleep(20)  # a first round of selections and a snapshot
        idle = summary("idle", timed(d, 100, 0.05))
        loop_line(d.status(), "loop before the flood")
        mp = multiprocessing.get_context("spawn")
        out = mp.Queue()
        procs = [mp.Process(target=producer, args=(d.ingest, i, SECONDS, out), daemon=True)
                 for i in range(PRODUCERS)]
        for p in procs:
            p.start()
        stop = threading.Event()
        lat = []
        sampler = threading.Thread(
            target=lambda: lat.extend(timed(d, 10 ** 9, 0.2, stop)), daemon=True)
        sampler.start()
        events = sum(out.get(timeout=SECONDS + 120) for _ in procs)
        stop.set()
        sampler.join(10)
        for p in procs:
            p.join(10)
        print("flood: %d producers x %.0f s, %d events sent" % (PRODUCERS, SECONDS, events))
        flood = summary("flood", lat)
        st = d.status()
        loop_line(st, "loop after the flood")
        print("events_in %d; RSS peak %.0f MiB" % (st["events_in"], rss_peak_mib(d.proc.pid)))
        with open("/proc/loadavg") as f:
            print("load average (1 min) at the end: %s" % f.read().split()[0])
        lp = st["loop"]
        print("turns_over_5ms: %d of %d" % (lp["turns_over_5ms"], lp["turns"]))
        print("longest_loop_turn_cpu_ms: %.2f" % lp.get("longest_turn_cpu_ms", float("nan")))
        print("longest_loop_turn_ms: %.2f" % lp["longest_turn_ms"])
        print("status_p99_flood_over_idle: %.1f" % (flood / idle))
    finally:
        d.stop(timeout=600)  # the final snapshot is ~1 GB
        state.cleanup()


if __name__ == "__main__":
    main()
