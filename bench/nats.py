#!/usr/bin/env python3
"""Benchmark: events/s through the NATS JetStream intake against the direct
ZeroMQ intake, in the same run, on the same daemon binary and data.

Not a test (a busy machine decides wall-clock figures): it prints them and
a ratio. Both sides take the same ENS_NATS_BENCH_EVENTS (200,000) events,
the winogrande CSV replayed as often as needed under distinct tasks,
ENS_NATS_BENCH_BATCH (100) events per message, label right after its
prediction. What is timed is the daemon's intake alone:

  ZeroMQ  the daemon runs, connected to one PUSH socket, and is stopped
          (SIGSTOP); every message is pushed; the daemon is continued
          (SIGCONT) and timed until status counts every event in.
  NATS    the daemon runs, its durable consumer bound to the stream (one
          nats-server, file storage), and is stopped; `ensemblectl replay
          --nats` fills the stream; the daemon is continued and timed until
          every event is in and every message acknowledged (nats.acked).

Both with state.dir on and state.fsync_interval 50 ms; status is polled
every 5 ms.

The last line is `nats_over_zmq_events_per_s: R`. The daemon is started as
the integration tests start it (tests/integration/harness.py; ENSEMBLED and
ENSEMBLECTL name the binaries).
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
sys.path.insert(0, os.path.join(harness.REPO, "python"))
import ensembled  # noqa: E402

EVENTS = int(os.environ.get("ENS_NATS_BENCH_EVENTS", "500000"))
BATCH = int(os.environ.get("ENS_NATS_BENCH_BATCH", "100"))
CSV = harness.data_file("winogrande_routerbench_11llm.csv")


def replays():
    """How many replays of the CSV (2 events per row) make EVENTS."""
    _, rows = harness.csv_rows(CSV)
    return max(1, EVENTS // (2 * len(rows))), 2 * len(rows)


def replay(extra, task):
    r = subprocess.run([harness.ENSEMBLECTL, "replay", "--csv", CSV, "--task", task,
                        "--label-lag", "0", "--batch", str(BATCH)] + extra,
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise SystemExit("replay failed: " + r.stderr)


def drain_rate(d, total, key):
    """Continues the stopped daemon d and returns (events per second, s):
    the time from SIGCONT until status counts all total events in (and key
    messages acknowledged), polled every 5 ms."""
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGCONT)
    while True:
        try:
            st = d.status()
        except harness.zmq.Again:  # a busy machine: ask again
            continue
        now = time.monotonic()
        if st["events_in"] >= total and (key is None or st["nats"]["acked"] >= key):
            return total / (now - t0), now - t0
        time.sleep(0.005)


def messages(n):
    """The messages replay --label-lag 0 --batch BATCH sends for tasks
    t0 .. t<n-1>, packed."""
    header, rows = harness.csv_rows(CSV)
    out = []
    for i in range(n):
        batch = []
        for r, row in enumerate(rows):
            preds = {m: (c if c != "?" else "?") for m, c in zip(header[2:], row[2:]) if c != ""}
            q = "row-%d" % (r + 1)
            batch.append({"kind": "prediction", "task": "t%d" % i, "query": q,
                          "predictions": preds})
            batch.append({"kind": "label", "task": "t%d" % i, "query": q, "label": row[1]})
        for k in range(0, len(batch), BATCH):
            out.append(harness.pack(batch[k:k + BATCH]))
    return out


def zmq_run(n):
    state = tempfile.TemporaryDirectory(prefix="bench-nats-zmq-")
    d = harness.Daemon({"state": {"dir": state.name, "fsync_interval": "50ms"},
                        "ingest": {"max_tasks": 4096}})
    per = replays()[1]
    msgs = messages(n)
    push = d.pusher()
    push.setsockopt(harness.zmq.SNDHWM, 0)
    d.proc.send_signal(signal.SIGSTOP)
    for m in msgs:
        push.send(m)
    rate = drain_rate(d, n * per, None)
    d.stop()
    state.cleanup()
    return n * per, rate


def nats_run(n):
    server = shutil.which("nats-server") or "/usr/sbin/nats-server"
    tmp = tempfile.TemporaryDirectory(prefix="bench-nats-")
    port = harness.free_ports(1)[0]
    conf = os.path.join(tmp.name, "n.conf")
    with open(conf, "w") as f:
        f.write("listen: 127.0.0.1:%d\njetstream { store_dir: \"%s\" }\n"
                % (port, os.path.join(tmp.name, "js")))
    ns = subprocess.Popen([server, "-c", conf], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        harness.wait_for(lambda: _stream(port), 20, interval=0.2, what="the stream")
        url = "nats://127.0.0.1:%d" % port
        per = replays()[1]
        msgs = n * ((per + BATCH - 1) // BATCH)
        state = tempfile.TemporaryDirectory(prefix="bench-nats-state-")
        d = harness.Daemon({"state": {"dir": state.name, "fsync_interval": "50ms"},
                            "ingest": {"nats": url, "nats_subject": "events.>",
                                       "max_tasks": 4096}})
        d.proc.send_signal(signal.SIGSTOP)
        for i in range(n):
            replay(["--nats", url, "--subject", "events.t%d" % i], "t%d" % i)
        rate = drain_rate(d, n * per, msgs)
        d.stop()
        state.cleanup()
        return n * per, rate
    finally:
        ns.kill()
        ns.wait()
        tmp.cleanup()


def _stream(port):
    try:
        c = ensembled.NatsConnection("nats://127.0.0.1:%d" % port)
        rep = c.api("STREAM.CREATE.EVENTS", {"name": "EVENTS", "subjects": ["events.>"],
                                             "storage": "file", "num_replicas": 1})
        c.close()
        return "error" not in rep
    except (OSError, ensembled.NatsError, ValueError):
        return False


def main():
    n = replays()[0]
    ze, (zr, zs) = zmq_run(n)
    ne, (nr, nsecs) = nats_run(n)
    print("events: %d per side, %d per message" % (ze, BATCH))
    print("zmq_events_per_s: %.0f (over %.2f s)" % (zr, zs))
    print("nats_events_per_s: %.0f (over %.2f s)" % (nr, nsecs))
    print("nats_over_zmq_events_per_s: %.3f" % (nr / zr))


if __name__ == "__main__":
    main()
