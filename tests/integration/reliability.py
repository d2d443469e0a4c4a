"""Helpers of the reliability tests (test_crash.py, test_flood.py) on top of
harness.py: a daemon that can be killed and restarted over the same state
directory, a reader of the state directory's snapshot (docs/persistence.md)
and process measurements (RSS from /proc).
"""
import ctypes
import ctypes.util
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


def read_snapshot(path):
    """The decoded snapshot map of docs/persistence.md; raises AssertionError
    if the framing (magic, length, XXH3-64 when libxxhash is loadable) is
    wrong. Each task gets "ts" (list of row times), "y" and "x" (bytes)."""
    with open(path, "rb") as f:
        buf = f.read()
    assert len(buf) >= 20 and buf[:8] == b"ENSSNAP1", "bad snapshot magic"
    plen, csum = struct.unpack_from("<IQ", buf, 8)
    assert plen == len(buf) - 20, "snapshot length %d != %d" % (plen, len(buf) - 20)
    if XXH3 is not None:
        assert XXH3(buf[20:], plen) == csum, "snapshot checksum mismatch"
    snap = harness.unpack(buf[20:])
    assert snap.get("format") == "ensembled-state-1", snap.get("format")
    for t in snap["tasks"]:
        rows = t["rows"]
        n = len(rows["y"])
        t["ts"] = list(struct.unpack("<%dd" % n, rows["ts"]))
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
