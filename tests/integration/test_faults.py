#!/usr/bin/env python3
"""Fault injection against the real daemon (docs/persistence.md, "Damage
and faults"): wall-clock steps, a full disk, and kill -9 during snapshots
and during a full disk.

- Clock steps: the daemon runs under libfaketime (Debian `libfaketime`),
  whose offset the test changes while the daemon runs; the monotonic clock
  is left alone, as a real step (NTP, an operator's `date -s`) leaves it.
  With the wall clock stepped forward 11 minutes, queries pending under
  join.ttl = 10m must still join; stepped back 1 hour, periodic
  publications, snapshots and fdatasyncs must go on at their intervals.
  Skipped when libfaketime is not installed (scripts/install-deps).
- Disk full: state.dir on a tmpfs of its own, filled with a filler file
  until writes fail, then freed. A tmpfs gives a real ENOSPC on every
  write and rename, the fault itself, where `prlimit --fsize` would give
  EFBIG (and SIGXFSZ) per file only. Mounting needs CAP_SYS_ADMIN: the
  test is skipped without it.
- 20 kill -9 cycles over that tmpfs, of four kinds in turn: at a random
  point; while a snapshot is being written (the test waits for
  snapshot.tmp to appear and kills at once; a kill that leaves
  snapshot.tmp behind provably hit the write); while the disk is full;
  after a disk-full episode ended. After each restart the window holds
  every row the daemon reported durable before the kill (`synced_seq` of
  `status`: the rows covered by the last completed fdatasync or
  snapshot), and the final snapshot holds each row at most once, and of
  each incarnation a prefix of the rows sent to it.
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import reliability  # noqa: E402
import test_crash  # noqa: E402  (its Producer and row identities)

FAKETIME_LIBS = ("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                 "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
                 "/usr/lib/faketime/libfaketimeMT.so.1")
FAKETIME = next((p for p in FAKETIME_LIBS if os.path.exists(p)), None)


class EnvDaemon(reliability.RestartableDaemon):
    """A RestartableDaemon started (and restarted) with extra environment."""

    def __init__(self, overrides, env):
        self.extra_env = env
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            super().__init__(overrides)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def restart(self, start_timeout=20.0):
        saved = {k: os.environ.get(k) for k in self.extra_env}
        os.environ.update(self.extra_env)
        try:
            super().restart(start_timeout)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def drain(sub):
    """(version, ts) of the publications a subscriber has received
    (non-blocking)."""
    out = []
    while sub.poll(0):
        body = harness.unpack(sub.recv_multipart()[-1])
        out.append((body.get("version", 0), body.get("ts")))
    return out


@unittest.skipIf(FAKETIME is None, "libfaketime is not installed (scripts/install-deps)")
class ClockStepTest(harness.DaemonTestCase):

    def setUp(self):
        super().setUp()
        fd, self.offset_file = tempfile.mkstemp(prefix="ensembled-faketime-")
        os.close(fd)
        self.addCleanup(os.unlink, self.offset_file)
        self.set_offset("+0")

    def set_offset(self, spec):
        """The daemon's wall clock from now on: real time + spec ("-1h")."""
        tmp = self.offset_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(spec + "\n")
        os.replace(tmp, self.offset_file)

    def activity(self, d, sub, seconds, first_row):
        """Feeds one joined row every 50 ms for `seconds` (so that the
        journal has something to sync) and returns the publications, and
        the snapshots and fdatasyncs the daemon completed, meanwhile, and
        how far the last publication's time stamp is from real time."""
        st0 = d.status()["state"]
        drain(sub)
        versions = []
        end = time.monotonic() + seconds
        i = first_row
        while time.monotonic() < end:
            q = "r%d" % i
            d.send([{"kind": "prediction", "query": q, "predictions": {"m0": "A", "m1": "B"}},
                    {"kind": "label", "query": q, "label": "A"}])
            i += 1
            time.sleep(0.05)
            versions += drain(sub)
        st1 = d.status()["state"]
        versions += drain(sub)
        skew = versions[-1][1] - time.time() if versions else None
        return (len(set(versions)), st1["snapshots"] - st0["snapshots"],
                st1["fsyncs"] - st0["fsyncs"], skew)

    def test_wall_clock_steps(self):
        d = EnvDaemon({
            "publish": {"interval": "300ms", "every_labels": 0},
            "join": {"ttl": "10m"},
            "state": {"fsync_interval": "100ms", "snapshot_interval": "400ms"},
        }, {"LD_PRELOAD": FAKETIME, "FAKETIME_TIMESTAMP_FILE": self.offset_file,
            "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            # libfaketime comes before the sanitizer runtime in ASan builds.
            "ASAN_OPTIONS": "verify_asan_link_order=0:" + os.environ.get("ASAN_OPTIONS", "")})
        self._daemons.append(d)
        self.addCleanup(d.cleanup)
        sub = d.subscriber()
        pubs, snaps, syncs, skew = self.activity(d, sub, 2.0, 0)
        self.assertGreaterEqual(pubs, 3, "no periodic publications before any step")
        self.assertClose(skew, 0, 30)

        # Half of 40 queries pending, then the wall clock jumps 11 minutes
        # ahead: their 10-minute time-to-live has not passed.
        d.sync_send(*[{"kind": "prediction", "query": "p%d" % i,
                       "predictions": {"m0": "A", "m1": "A"}} for i in range(40)])
        self.assertEqual(d.task()["pending"], 40)
        self.set_offset("+11m")
        pubs, snaps, syncs, skew = self.activity(d, sub, 1.5, 1000)
        self.assertClose(skew, 660, 30, "the daemon's clock did not step (libfaketime)")
        t = d.task()
        self.assertEqual(t["expired"], 0, "a forward step of the wall clock expired queries")
        self.assertEqual(t["pending"], 40)
        joined = t["joined"]
        d.sync_send(*[{"kind": "label", "query": "p%d" % i, "label": "A"} for i in range(40)])
        self.assertEqual(d.task()["joined"], joined + 40)

        # Stepped back one hour: publications (every 300 ms), snapshots
        # (every 400 ms) and fdatasyncs (every 100 ms while rows come in)
        # go on. 3 s leaves each a wide margin on a busy machine.
        self.set_offset("-49m")
        pubs, snaps, syncs, skew = self.activity(d, sub, 3.0, 2000)
        print("after the backward step, in 3 s: %d publications, %d snapshots, %d fdatasyncs"
              % (pubs, snaps, syncs), file=sys.stderr)
        self.assertGreaterEqual(pubs, 3, "periodic publications stopped after a backward step")
        self.assertGreaterEqual(snaps, 2, "snapshots stopped after a backward step")
        self.assertGreaterEqual(syncs, 3, "fdatasyncs stopped after a backward step")
        self.assertClose(skew, -2940, 30, "the daemon's clock did not step (libfaketime)")
        self.assertEqual(d.task()["expired"], 0)
        self.assertEqual(d.stop(), 0)


class FutureTimeTest(harness.DaemonTestCase):

    def test_label_from_the_future_is_taken_as_now(self):
        """A label ts a day ahead would keep its row in the window past
        window.max_age; beyond ingest.max_future it is replaced by the
        arrival time and counted. One a minute ahead is within the
        tolerance and kept as sent."""
        d = self.daemon({"window": {"max_age": "2s"}, "ingest": {"max_future": "5m"}})
        now = time.time()
        d.sync_send([
            {"kind": "prediction", "query": "past", "predictions": {"m0": "A"}},
            {"kind": "label", "query": "past", "label": "A", "ts": now - 1},
            {"kind": "prediction", "query": "far", "predictions": {"m0": "A"}},
            {"kind": "label", "query": "far", "label": "A", "ts": now + 86400},
            {"kind": "prediction", "query": "near", "predictions": {"m0": "A"}},
            {"kind": "label", "query": "near", "label": "A", "ts": now + 60},
        ])  # in time order: the window leaves from its oldest row
        st = d.status()
        self.assertEqual(st["future_ts_clamped"], 1)
        self.assertEqual(d.task(st=st)["rows"], 3)
        # Past max_age from arrival, the day-ahead row is gone like the one
        # sent a second ago; the one a minute ahead stays until its time.
        harness.wait_for(lambda: d.task()["rows"] == 1, 10,
                         what="the rows older than window.max_age to leave")
        d.wait_log("ahead of the clock")


def can_mount_tmpfs():
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = tempfile.mkdtemp(prefix="ensembled-tmpfs-probe-")
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", probe], check=True)
        return ok
    finally:
        os.rmdir(probe)


class Tmpfs:
    """A tmpfs of its own (size bytes) that the test can fill and free."""

    def __init__(self, size):
        self.path = tempfile.mkdtemp(prefix="ensembled-tmpfs-")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % size, "tmpfs",
                        self.path], check=True)
        self.filler = os.path.join(self.path, "filler")

    def fill(self):
        """Takes every free byte (the daemon's next writes fail)."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for n in (1 << 20, 65536, 4096, 512, 1):
                while True:
                    try:
                        if os.write(fd, b"\0" * n) < n:
                            break
                    except OSError:
                        break
        finally:
            os.close(fd)

    def free(self):
        if os.path.exists(self.filler):
            os.unlink(self.filler)

    def full(self):
        return os.path.exists(self.filler)

    def close(self):
        subprocess.run(["umount", self.path], check=False)
        os.rmdir(self.path)


@unittest.skipUnless(can_mount_tmpfs(), "mounting a tmpfs needs root (CAP_SYS_ADMIN)")
class DiskFullTest(harness.DaemonTestCase):

    def start(self, fs, snapshot_interval="300ms"):
        d = reliability.RestartableDaemon({
            "window": {"rows": 1000000},
            "join": {"max_pending": 100000, "ttl": "10m"},
            "select": {"budget": 2},
            "publish": {"interval": 0, "every_labels": 200},
            "state": {"dir": os.path.join(fs.path, "state"), "fsync_interval": "100ms",
                      "snapshot_interval": snapshot_interval},
        })
        self._daemons.append(d)
        self.addCleanup(d.cleanup)
        return d

    def state_dir(self, d):
        return d.sections["state"]["dir"]

    def wait_write_error(self, d):
        errors = d.status()["state"]["write_errors"]
        harness.wait_for(lambda: d.status()["state"]["write_errors"] > errors, 10,
                         what="a failed write on the full disk")

    def test_disk_full_then_freed_keeps_every_row(self):
        """Rows joined during and after a disk-full episode survive a kill -9.
        No periodic snapshot: the journal alone must hold them, across the
        record the full disk cut."""
        fs = Tmpfs(8 << 20)
        self.addCleanup(fs.close)
        d = self.start(fs, snapshot_interval="1h")
        rng = random.Random(7)
        prod = test_crash.Producer(d.ingest, 0, rng, pace=0.002)
        prod.start()
        time.sleep(0.5)
        fs.fill()
        self.wait_write_error(d)
        time.sleep(1.0)  # journal writes and snapshots fail meanwhile
        fs.free()
        time.sleep(1.0)  # rows join after the episode, written without error
        prod.halt.set()
        prod.join(10)
        sent = len(prod.sent)
        harness.wait_for(lambda: d.task()["rows"] == sent, 20, what="every row sent to join")
        harness.wait_for(lambda: d.status()["state"]["synced_seq"] >= sent, 5,
                         what="the rows to be synced")
        st = d.status()
        self.assertGreater(st["state"]["write_errors"], 0)
        d.kill9()
        d.restart()
        self.assertEqual(d.task()["rows"], sent,
                         "rows joined before and after the full disk, synced, are lost")
        self.assertEqual(d.stop(), 0)
        snap = reliability.read_snapshot(os.path.join(self.state_dir(d), "snapshot"))
        ids = [int(v - test_crash.TS0) for v in snap["tasks"][0]["ts"]]
        self.assertEqual(ids, list(range(sent)), "rows missing, repeated or reordered")

    def test_kill9_cycles_with_snapshots_and_full_disk(self):
        kills = int(os.environ.get("ENS_FAULT_KILLS", "20"))
        seed = int(os.environ.get("ENS_CRASH_SEED", str(int(time.time()))))
        print("seed %d (ENS_CRASH_SEED), %d kills" % (seed, kills), file=sys.stderr)
        rng = random.Random(seed)
        fs = Tmpfs(32 << 20)
        self.addCleanup(fs.close)
        d = self.start(fs)
        kinds = ("random", "snapshot", "full", "after-full")
        incarnations, synced, restored = [], [], []
        next_row = 0
        tmp_left = 0  # snapshot kills that left snapshot.tmp: killed mid-write
        for k in range(kills + 1):
            rows_now = (d.task() or {}).get("rows", 0)
            if k > 0:
                restored.append(rows_now)
                self.assertGreaterEqual(
                    rows_now, synced[-1],
                    "restart %d (after a %s kill): rows synced before the kill are lost"
                    % (k, kinds[(k - 1) % 4]))
                self.assertLessEqual(rows_now, next_row, "restart %d: more rows than sent" % k)
            prod = test_crash.Producer(d.ingest, next_row, random.Random(rng.random()),
                                       pace=rng.choice((0.001, 0.003)))
            prod.start()
            if k == kills:
                break
            kind = kinds[k % 4]
            time.sleep(rng.uniform(0.2, 0.8))
            if kind == "snapshot":
                # synced_seq only grows: read just before the wait, it is a
                # lower bound of the rows durable at the kill.
                synced.append(d.status()["state"]["synced_seq"])
                tmp = os.path.join(self.state_dir(d), "snapshot.tmp")
                deadline = time.monotonic() + 3
                while not os.path.exists(tmp) and time.monotonic() < deadline:
                    pass
                d.kill9()
                tmp_left += os.path.exists(tmp)
            else:
                if kind in ("full", "after-full"):
                    fs.fill()
                    self.wait_write_error(d)
                    time.sleep(rng.uniform(0.1, 0.5))
                    if kind == "after-full":
                        fs.free()
                        time.sleep(rng.uniform(0.3, 0.8))
                synced.append(d.status()["state"]["synced_seq"])
                d.kill9()
            prod.stop()
            incarnations.append(prod.sent)
            next_row = prod.next
            fs.free()
            d.restart()
        time.sleep(0.3)
        prod.linger = -1
        prod.stop()
        incarnations.append(prod.sent)
        start_rows = restored[-1]
        harness.wait_for(lambda: d.task()["rows"] == start_rows + len(prod.sent), 20,
                         what="the last rows to join")
        rows_before = d.task()["rows"]
        self.assertEqual(d.stop(), 0)
        snap = reliability.read_snapshot(os.path.join(self.state_dir(d), "snapshot"))
        ids = [int(v - test_crash.TS0) for v in snap["tasks"][0]["ts"]]
        self.assertEqual(len(ids), rows_before)
        self.assertEqual(len(set(ids)), len(ids), "a row restored twice")
        kept, total = set(ids), 0
        for k, sent in enumerate(incarnations):
            mine = [i for i in sent if i in kept]
            self.assertEqual(mine, sent[:len(mine)],
                             "incarnation %d: a row is missing between kept rows" % k)
            total += len(mine)
            if k < len(restored):
                self.assertEqual(restored[k], total, "restart %d: rows restored twice or "
                                 "lost later" % (k + 1))
        self.assertEqual(total, len(ids))
        print("%d kills, %d rows kept, %d snapshot kills left snapshot.tmp behind"
              % (kills, len(ids), tmp_left), file=sys.stderr)
        self.assertGreaterEqual(tmp_left, 1, "no kill hit a snapshot being written")


if __name__ == "__main__":
    harness.main()
