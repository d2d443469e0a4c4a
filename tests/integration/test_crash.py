#!/usr/bin/env python3
"""Crash safety (docs/persistence.md): rows are streamed while the daemon is
killed with SIGKILL at random points and restarted over the same state.dir,
at least 20 times; then a clean SIGTERM and restart.

Every row is identified by its time stamp (row i carries ts = TS0 + i on its
label), so the final snapshot tells exactly which rows the daemon kept.
Rows are sent in order on one PUSH connection per incarnation, and a new
connection after each restart, so the rows an incarnation joined are a
prefix of what was sent to it. Asserted:

- after each restart, the window holds at least every row that a status
  reply counted before the kill (a crash of the daemon loses nothing
  written to the journal, and every joined row is written at once), and at
  most the rows sent;
- the final snapshot holds every row at most once, only rows that were
  sent, and of each incarnation a prefix of what was sent to it; the row
  count after every restart equals the rows the final snapshot holds from
  the incarnations before it (no row restored twice, none lost later);
- the version published after each restart is higher than every version
  seen before the kill;
- snapshots and journal rotation really happened during the loop;
- a clean SIGTERM and restart keeps exactly the rows there were.

Environment: ENS_CRASH_KILLS (default 22), ENS_CRASH_SEED (default: time).
"""
import os
import random
import re
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import reliability  # noqa: E402

import zmq  # noqa: E402

TS0 = 1_000_000.0   # row i has ts TS0 + i: exact in a double
MODELS = ("m0", "m1", "m2", "m3")
ACC = (0.85, 0.75, 0.7, 0.6)
ROWS_PER_MSG = 10
FSYNC = 0.1


def row_events(i, rng):
    truth = rng.choice("AB")
    preds = {}
    for m, acc in zip(MODELS, ACC):
        if rng.random() < 0.9:  # a model is sometimes not asked
            preds[m] = truth if rng.random() < acc else ("B" if truth == "A" else "A")
    if not preds:
        preds[MODELS[0]] = truth
    q = "q%d" % i
    return [{"kind": "prediction", "query": q, "predictions": preds, "ts": TS0 + i},
            {"kind": "label", "query": q, "label": truth, "ts": TS0 + i}]


class Producer(threading.Thread):
    """Streams rows next, next+1, ... to one incarnation on its own PUSH
    socket until stopped; `sent` lists the rows whose message was queued."""

    def __init__(self, endpoint, first, rng, pace):
        super().__init__(daemon=True)
        self.endpoint, self.next, self.rng, self.pace = endpoint, first, rng, pace
        self.sent = []
        self.linger = 0  # -1 on a clean finish: deliver everything queued
        self.halt = threading.Event()
        self.error = None

    def run(self):
        s = harness.ZCTX.socket(zmq.PUSH)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDTIMEO, 200)
        s.connect(self.endpoint)
        try:
            while not self.halt.is_set():
                rows = list(range(self.next, self.next + ROWS_PER_MSG))
                events = []
                for i in rows:
                    events += row_events(i, self.rng)
                try:
                    s.send(harness.pack(events))
                except zmq.Again:
                    continue  # not queued: the same rows are tried again
                self.sent.extend(rows)
                self.next += ROWS_PER_MSG
                time.sleep(self.pace)
        except Exception as e:  # pragma: no cover - reported by the test
            self.error = e
        finally:
            # After a kill, what was not delivered is lost with the
            # connection, never delivered to the next incarnation.
            s.close(self.linger)

    def stop(self):
        self.halt.set()
        self.join(10)
        assert not self.is_alive(), "producer thread did not stop"
        if self.error:
            raise self.error


class CrashTest(harness.DaemonTestCase):

    def versions_seen(self, sub):
        """Every version a subscriber has already received (non-blocking)."""
        out = []
        while sub.poll(0):
            frames = sub.recv_multipart()
            out.append(harness.unpack(frames[-1]).get("version", 0))
        return out

    def test_kill9_loop_then_clean_stop(self):
        kills = int(os.environ.get("ENS_CRASH_KILLS", "22"))
        seed = int(os.environ.get("ENS_CRASH_SEED", str(int(time.time()))))
        print("seed %d (ENS_CRASH_SEED), %d kills" % (seed, kills), file=sys.stderr)
        rng = random.Random(seed)
        t_start = time.monotonic()

        d = reliability.RestartableDaemon({
            "window": {"rows": 1000000},
            "join": {"max_pending": 100000, "ttl": "10m"},
            "select": {"budget": 2},
            "publish": {"interval": 0, "every_labels": 50},
            "state": {"fsync_interval": "100ms", "snapshot_interval": "300ms"},
        })
        self._daemons.append(d)
        self.addCleanup(d.cleanup)

        next_row = 0
        incarnations = []   # per incarnation: rows sent to it, in order
        restored = []       # window rows right after each restart
        acked = []          # window rows in the last status before each kill
        max_version = 0
        journals_seen = set()

        for k in range(kills + 1):
            final = k == kills
            st = d.status()
            t = d.task()
            rows_now = t["rows"] if t else 0
            if k > 0:
                restored.append(rows_now)
                self.assertGreaterEqual(
                    rows_now, acked[-1],
                    "restart %d: the window lost rows a status counted before the kill" % k)
                self.assertLessEqual(
                    rows_now, next_row,
                    "restart %d: more rows than were ever sent (a row restored twice)" % k)
                if acked[-1] > 0:
                    # Restored tasks publish at once, above every version
                    # seen before the kill.
                    sub = d.subscriber()
                    _, body = d.receive_newer(sub, 0, timeout=30)
                    self.assertGreater(body["version"], max_version,
                                       "restart %d: version went backwards" % k)
                    self.assertEqual(body["window_rows"], rows_now)
                    rep = d.ctl("ensemble", task="default")
                    self.assertGreater(rep["ensemble"]["version"], max_version)
                    _, body2 = d.recompute_and_receive(sub)
                    self.assertGreater(body2["version"], body["version"])
                    max_version = max(max_version, body2["version"])
            sub = d.subscriber()
            prod = Producer(d.ingest, next_row, random.Random(rng.random()),
                            pace=rng.choice((0.0005, 0.002, 0.005)))
            prod.start()
            if final:
                break
            # Kill at a random point: right away (while restoring and
            # publishing), or after streaming a while (snapshots, journal
            # rotation, fsyncs and selections all happen meanwhile).
            time.sleep(rng.choice((0.0, 0.05)) if rng.random() < 0.2 else rng.uniform(0.1, 1.2))
            st = d.status()
            t = d.task(st=st)
            acked.append(t["rows"] if t else 0)
            max_version = max([max_version, t["version"] if t else 0] + self.versions_seen(sub))
            time.sleep(rng.uniform(0, 0.3))
            max_version = max([max_version] + self.versions_seen(sub))
            d.kill9()
            prod.stop()
            incarnations.append(prod.sent)
            next_row = prod.next
            journals_seen.update(reliability.journal_numbers(d.dir))
            d.restart()

        # Clean stop: everything sent to the last incarnation is delivered
        # and joined, then SIGTERM, restart: exactly the same rows.
        time.sleep(0.5)
        prod.linger = -1
        prod.stop()
        incarnations.append(prod.sent)
        before = len(prod.sent)
        start_rows = restored[-1] if restored else 0
        harness.wait_for(lambda: d.task()["rows"] == start_rows + before, 20,
                         what="the last rows to join")
        rows_before = d.task()["rows"]
        ver_before = d.task()["version"]
        self.assertEqual(d.stop(), 0, "SIGTERM must exit 0")
        d.restart()
        t = d.task()
        self.assertEqual(t["rows"], rows_before, "a clean stop lost or duplicated rows")
        sub = d.subscriber()
        _, body = d.receive_newer(sub, 0, timeout=30)
        self.assertGreater(body["version"], max(ver_before, max_version))
        self.assertEqual(d.stop(), 0)

        # The final snapshot: which rows survived, exactly.
        snap = reliability.read_snapshot(os.path.join(d.dir, "snapshot"))
        self.assertEqual(len(snap["tasks"]), 1)
        ts = snap["tasks"][0]["ts"]
        ids = [int(v - TS0) for v in ts]
        self.assertTrue(all(TS0 + i == v for i, v in zip(ids, ts)), "a row time was altered")
        self.assertEqual(len(ids), rows_before)
        self.assertEqual(len(set(ids)), len(ids), "a row is in the window twice")
        kept = set(ids)
        total = 0
        for k, sent in enumerate(incarnations):
            mine = [i for i in sent if i in kept]
            self.assertEqual(mine, sent[:len(mine)],
                             "incarnation %d: a row is missing between kept rows" % k)
            total += len(mine)
            if k < len(acked):
                self.assertGreaterEqual(total, acked[k],
                                        "incarnation %d: rows acknowledged before the kill"
                                        " are gone by the end" % k)
                self.assertEqual(restored[k], total,
                                 "restart %d restored %d rows, the incarnations before it"
                                 " kept %d" % (k + 1, restored[k], total))
        self.assertEqual(total, len(ids), "rows that were never sent")
        self.assertEqual(sorted(ids), ids, "rows out of order")

        # The loop really exercised snapshots and journal rotation: restarts
        # restored from a snapshot, some from a snapshot plus journals.
        log = d.log_from_file()
        restores = [(int(a), int(b)) for a, b in re.findall(
            r"restored (\d+) rows from the snapshot and (\d+) from journals", log)]
        self.assertEqual(len(restores), kills + 2, "one restore line per start")
        self.assertGreaterEqual(sum(1 for a, b in restores[1:-1] if a > 0), 3, restores)
        self.assertGreaterEqual(sum(1 for a, b in restores[1:-1] if a > 0 and b > 0), 1,
                                restores)
        self.assertGreater(max(journals_seen), kills + 3, journals_seen)
        elapsed = time.monotonic() - t_start
        print("%d kills, %d rows sent, %d kept, last version %d, journals up to %d, "
              "%d torn tails discarded, %.1f s"
              % (kills, next_row + before, len(ids), body["version"], max(journals_seen),
                 log.count("discarding a torn tail"), elapsed), file=sys.stderr)

    def test_snapshots_under_sustained_ingest(self):
        """state.snapshot_interval is honoured while rows stream in with
        state.fsync_interval 100ms: a due snapshot is never starved by the
        journal's fdatasync (each snapshot rotates the journal)."""
        d = reliability.RestartableDaemon({
            "state": {"fsync_interval": "100ms", "snapshot_interval": "300ms"}})
        self._daemons.append(d)
        self.addCleanup(d.cleanup)
        rng = random.Random(1)
        prod = Producer(d.ingest, 0, rng, pace=0.005)
        prod.start()
        time.sleep(3.0)
        prod.stop()
        journals = reliability.journal_numbers(d.dir)
        # Each snapshot rotates the journal: ~10 in 3 s; 3 is plenty.
        self.assertGreaterEqual(max(journals), 4,
                                "journals %s: no snapshot in 3 s of ingest" % journals)


if __name__ == "__main__":
    harness.main()
