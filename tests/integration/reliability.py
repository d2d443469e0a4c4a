"""Helpers of the reliability tests (test_crash.py, test_flood.py) on top of
harness.py: a daemon that can be killed and restarted over the same state
directory, a reader of the state directory's snapshot (docs/persistence.md)
and process measurements (RSS from /proc).
"""
import ctypes
import ctypes.util
import math
import os
import signal
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class RestartableDaemon(harness.Daemon):
    """A harness.Daemon whose temporary directory (configuration, log and
    state.dir) outlives the process: kill9() and stop() end the process,
    restart() starts a new one on the same ports and state. cleanup()
    removes the directory; call it once, at the very end."""

    def __init__(self, overrides=None, start_timeout=10.0):
        self.incarnation = 0
        super().__init__(overrides, start_timeout)
        self.incarnation = 1

    def _finish(self):
        # Unlike harness.Daemon: keep the directory (and the log open-able).
        harness._LIVE.discard(self.proc)
        if not self._log.closed:
            self._log.close()

    def kill9(self):
        """SIGKILL: no handler runs, nothing is flushed by the daemon."""
        self._close_sockets()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.returncode = self.proc.returncode
        self._finish()
        return self.returncode

    def restart(self, start_timeout=20.0):
        assert self.proc.poll() is not None, "restart() of a running daemon"
        self._log = open(self.log_path, "ab")
        self._log.write(b"\n--- restart %d ---\n" % self.incarnation)
        self._log.flush()
        self.proc = subprocess.Popen(
            [harness.ENSEMBLED, "-c", self.conf_path, "--foreground"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        harness._LIVE.add(self.proc)
        self.returncode = None
        self.final_log = None
        self.incarnation += 1
        try:
            harness.wait_for(self._answers, start_timeout, interval=0.02,
                             what="ensembled to answer status after a restart")
        except BaseException:
            self.kill9()
            raise

    def cleanup(self):
        if self.proc.poll() is None:
            self.kill9()
        self.final_log = self.log_from_file()
        try:
            self.tmp.cleanup()
        except OSError:
            pass


# ---- state directory ------------------------------------------------------

def _xxh3():
    for name in (ctypes.util.find_library("xxhash"), "libxxhash.so.0", "libxxhash.so"):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            f = lib.XXH3_64bits
            f.restype = ctypes.c_uint64
            f.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
            return f
        except (OSError, AttributeError):
            continue
    return None


XXH3 = _xxh3()


def read_records(buf):
    """The records of a state file (docs/persistence.md): a list of
    (kind, fields) in file order. Raises AssertionError on a damaged frame:
    the daemon writes snapshots atomically, so a test never expects one."""
    out, off = [], 0
    while off < len(buf):
        assert buf[off:off + 4] == b"\xe5JRC", "bad record magic at %d" % off
        check, plen = struct.unpack_from("<QI", buf, off + 4)
        payload = buf[off + 16:off + 16 + plen]
        assert len(payload) == plen, "truncated record at %d" % off
        if XXH3 is not None:
            assert XXH3(buf[off + 12:off + 16 + plen], plen + 4) == check, \
                "record checksum mismatch at %d" % off
        out.append(_parse_record(payload))
        off += 16 + plen
    return out


def _name(p, o):
    (n,) = struct.unpack_from("<H", p, o)
    return p[o + 2:o + 2 + n]


def _block_costs(rest, n, nm, x):
    """A BLOCK's costs (after its answers: the ordinary bytes, a flag per
    model, then the flagged models' costs of the answers present, row by
    row): per row a list of nm costs, None where there is none; or None
    when the block has no costs."""
    if len(rest) <= n:
        return None
    flags, o = rest[n:n + nm], n + nm
    rows = []
    for i in range(n):
        row = [None] * nm
        for j in range(nm):
            if flags[j] and x[i * nm + j] != 0xFF:
                (c,) = struct.unpack_from("<d", rest, o)
                o += 8
                row[j] = None if math.isnan(c) else c
        rows.append(row)
    assert o == len(rest), "BLOCK costs: %d bytes left" % (len(rest) - o)
    return rows


def _parse_record(p):
    kind = p[0]
    if kind == 1:
        fmt, seq, journal = struct.unpack_from("<IQQ", p, 1)
        return "header", {"format": fmt, "seq": seq, "journal": journal}
    if kind == 2:
        (task,) = struct.unpack_from("<I", p, 1)
        return "task", {"task": task, "name": _name(p, 5)}
    if kind in (3, 4):
        task, ident = struct.unpack_from("<II", p, 1)
        return ("model" if kind == 3 else "label"), {"task": task, "id": ident,
                                                      "name": _name(p, 9)}
    if kind == 6:
        task, version = struct.unpack_from("<IQ", p, 1)
        return "version", {"task": task, "version": version}
    if kind == 7:
        task, n, nm = struct.unpack_from("<IQI", p, 1)
        o = 17
        y, ts, x = p[o:o + n], p[o + n:o + 9 * n], p[o + 9 * n:o + 9 * n + n * nm]
        return "block", {"task": task, "y": y, "x": x, "nmodels": nm,
                         "ts": list(struct.unpack("<%dd" % n, ts)),
                         "costs": _block_costs(p[o + 9 * n + n * nm:], n, nm, x)}
    return "other", {"kind": kind}


def read_snapshot(path):
    """The snapshot of docs/persistence.md as a map: seq, journal, and tasks
    (name, version, models, labels, y, x, ts, costs: per row a cost or None
    per model) in file order."""
    with open(path, "rb") as f:
        recs = read_records(f.read())
    assert recs and recs[0][0] == "header", "a snapshot starts with its header"
    snap = dict(recs[0][1], tasks=[])
    by_id = {}
    for kind, r in recs[1:]:
        if kind == "task":
            by_id[r["task"]] = {"name": r["name"].decode("utf-8", "replace"),
                                "models": [], "labels": [], "version": 0,
                                "y": b"", "x": b"", "ts": []}
            snap["tasks"].append(by_id[r["task"]])
        elif kind in ("model", "label"):
            by_id[r["task"]][kind + "s"].append(r["name"])
        elif kind == "version":
            by_id[r["task"]]["version"] = r["version"]
        elif kind == "block":  # a task's rows may come in several blocks
            t = by_id[r["task"]]
            costs = r["costs"] or [[None] * r["nmodels"]] * len(r["y"])
            t.update(y=t["y"] + r["y"], x=t["x"] + r["x"], ts=t["ts"] + r["ts"],
                     costs=t.get("costs", []) + costs)
    return snap


def journal_numbers(state_dir):
    out = []
    for name in os.listdir(state_dir):
        if name.startswith("journal.") and name[8:].isdigit():
            out.append(int(name[8:]))
    return sorted(out)


# ---- process measurements -------------------------------------------------

def rss_bytes(pid):
    """VmRSS of a live process, in bytes (None once it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def timed_status(endpoint, ctx, timeout=5.0):
    """(seconds, reply) of one status round trip on a fresh REQ socket."""
    import zmq
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
    s.setsockopt(zmq.SNDTIMEO, int(timeout * 1000))
    try:
        s.connect(endpoint)
        t0 = time.monotonic()
        s.send(harness.pack({"cmd": "status"}))
        rep = harness.unpack(s.recv())
        return time.monotonic() - t0, rep
    finally:
        s.close(0)
