"""Integration-test harness: the real ensembled on free loopback ports.

Every test starts its own daemon in a temporary directory with a generated
configuration, talks to it over its real ZeroMQ sockets (PUSH ingest, SUB
publish, REQ control) and stops it with SIGTERM, asserting a clean exit.

Environment (set by tests/CMakeLists.txt):
  ENSEMBLED     the daemon binary
  ENSEMBLECTL   the ensemblectl binary
  ENS_DATA_DIR  the real-data directory (tests/data)
"""
import os
import re
import sys

# The tests need Debian's python3-zmq and python3-msgpack. When "python3" on
# PATH is another interpreter (pyenv, a venv) without them, re-run the test
# under the system interpreter, which has them.
try:
    import msgpack  # noqa: F401
    import zmq  # noqa: F401
except ImportError:  # pragma: no cover - depends on the machine
    for _py in ("/usr/bin/python3", "/bin/python3"):
        if os.path.exists(_py) and os.path.realpath(_py) != os.path.realpath(sys.executable) \
                and not os.environ.get("ENS_HARNESS_REEXEC"):
            os.environ["ENS_HARNESS_REEXEC"] = "1"
            os.execv(_py, [_py] + sys.argv)
    raise

import atexit
import csv
import math
import signal
import random
import socket
import subprocess
import tempfile
import time
import unittest

import msgpack
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def _default_bin(name):
    return os.path.join(REPO, "build", name)


ENSEMBLED = os.environ.get("ENSEMBLED", _default_bin("ensembled"))
ENSEMBLECTL = os.environ.get("ENSEMBLECTL", _default_bin("ensemblectl"))
DATA_DIR = os.environ.get("ENS_DATA_DIR", os.path.join(REPO, "tests", "data"))

ZCTX = zmq.Context.instance()
# The banner of a sanitizer report (ThreadSanitizer's "WARNING: ThreadSanitizer:
# data race", AddressSanitizer's "==pid==ERROR: AddressSanitizer: ...").
SANITIZER_REPORT = re.compile(r"^(==\d+==)?(WARNING|ERROR): \w+Sanitizer", re.M)
_LIVE = set()  # daemons still running, killed at exit whatever happens


@atexit.register
def _kill_leftovers():
    for p in list(_LIVE):
        if p.poll() is None:
            p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1, drawn at random below the
    kernel's ephemeral range: a port the kernel handed out (bind to port 0)
    is in that range, where any outgoing connection of a parallel test may
    take it before the daemon binds it (a metrics bind once failed so)."""
    low = 20000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            high = int(f.read().split()[0]) - 1
    except (OSError, ValueError, IndexError):
        high = 32767
    if high - low < 1000:
        low, high = 10000, max(high, 11000)
    rng = random.SystemRandom()
    socks, ports = [], []
    try:
        while len(ports) < n:
            port = rng.randint(low, high)
            if port in ports:
                continue
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            socks.append(s)
            ports.append(port)
        return ports
    finally:
        for s in socks:
            s.close()


def wait_for(pred, timeout, interval=0.02, what="condition"):
    """Polls pred() until it returns a truthy value; returns it, or raises
    AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def unpack(buf):
    return msgpack.unpackb(buf, raw=False, strict_map_key=False)


def csv_rows(path):
    """(header, rows) of a wide CSV: item,label,<models...>."""
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        rows = [row for row in r if row]
    return header, rows


def data_file(name):
    return os.path.join(DATA_DIR, name)


def render_config(sections):
    """INI text from {section: {key: value}} (values are str()'d)."""
    out = []
    for sec, kv in sections.items():
        out.append("[%s]" % sec)
        for k, v in kv.items():
            out.append("%s = %s" % (k, v))
        out.append("")
    return "\n".join(out)


class Daemon:
    """One ensembled process on free ports in its own temporary directory."""

    def __init__(self, overrides=None, start_timeout=10.0):
        self.tmp = tempfile.TemporaryDirectory(prefix="ensembled-it-")
        self.dir = self.tmp.name
        ingest, publish, control = free_ports(3)
        self.ingest = "tcp://127.0.0.1:%d" % ingest
        self.publish = "tcp://127.0.0.1:%d" % publish
        self.control = "tcp://127.0.0.1:%d" % control
        self.sections = {
            "ingest": {"bind": self.ingest},
            "publish": {"bind": self.publish, "interval": 0, "every_labels": 0},
            "control": {"bind": self.control},
            # No /metrics unless a test asks: daemons of parallel tests
            # would share the default port.
            "metrics": {"bind": ""},
            "state": {"dir": self.dir},
            # Tests feed a few dozen rows: any coverage lets a model compete
            # unless a test sets select.min_rows itself.
            "select": {"min_rows": 1},
            "log": {"level": "info"},
        }
        for sec, kv in (overrides or {}).items():
            self.sections.setdefault(sec, {}).update(kv)
        self.conf_path = os.path.join(self.dir, "ensembled.conf")
        self.write_config()
        self.log_path = os.path.join(self.dir, "ensembled.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [ENSEMBLED, "-c", self.conf_path, "--foreground"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        _LIVE.add(self.proc)
        self.returncode = None
        self.final_log = None
        self._push = None
        self._subs = []
        try:
            wait_for(self._answers, start_timeout, interval=0.05,
                     what="ensembled to answer status")
        except BaseException:
            self.kill()
            raise AssertionError("ensembled did not start:\n" + self.log())

    # -- configuration --------------------------------------------------
    def write_config(self, sections=None, text=None):
        if text is None:
            text = render_config(sections if sections is not None else self.sections)
        tmp = self.conf_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.conf_path)

    # -- control ---------------------------------------------------------
    def request(self, req, timeout=5.0):
        """One REQ round trip; a fresh socket each time so that a lost reply
        never wedges the REQ state machine. Returns the decoded reply."""
        s = ZCTX.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
        s.setsockopt(zmq.SNDTIMEO, int(timeout * 1000))
        try:
            s.connect(self.control)
            s.send(req if isinstance(req, bytes) else pack(req))
            return unpack(s.recv())
        finally:
            s.close(0)

    def ctl(self, cmd, **kw):
        req = {"cmd": cmd}
        req.update(kw)
        return self.request(req)

    def status(self):
        st = self.ctl("status")
        assert st.get("ok") is True, st
        return st

    def task(self, name="default", st=None):
        st = st or self.status()
        return st["tasks"].get(name)

    def _answers(self):
        if self.proc.poll() is not None:
            raise AssertionError("ensembled exited with %s during start:\n%s"
                                 % (self.proc.returncode, self.log()))
        try:
            return self.request({"cmd": "status"}, timeout=0.3).get("ok") is True
        except zmq.Again:
            return False

    def wait_messages(self, n, timeout=10.0):
        """Waits until the daemon has taken in n messages (accepted or not);
        returns the status then."""
        box = {}

        def done():
            st = self.status()
            box["st"] = st
            return st["messages_in"] >= n

        wait_for(done, timeout, what="messages_in >= %d (have %s)"
                 % (n, box.get("st", {}).get("messages_in")))
        return box["st"]

    # -- ingest ------------------------------------------------------------
    def pusher(self):
        if self._push is None:
            s = ZCTX.socket(zmq.PUSH)
            s.setsockopt(zmq.LINGER, 2000)
            s.setsockopt(zmq.SNDTIMEO, 5000)
            s.connect(self.ingest)
            self._push = s
        return self._push

    def send(self, obj):
        """Sends one message: bytes as they are, anything else msgpack'd."""
        self.pusher().send(obj if isinstance(obj, bytes) else pack(obj))

    def sync_send(self, *objs, timeout=10.0):
        """Sends the messages and waits until the daemon counted all of them."""
        before = self.status()["messages_in"]
        for o in objs:
            self.send(o)
        return self.wait_messages(before + len(objs), timeout)

    # -- publish -----------------------------------------------------------
    def subscriber(self, prefix="ensemble.default", exact=False):
        """A SUB socket on the publish endpoint: subscribed to the prefix, or
        with exact=True to that task's whole topic (the name, then NUL)."""
        s = ZCTX.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SUBSCRIBE, prefix.encode() + (b"\0" if exact else b""))
        s.connect(self.publish)
        self._subs.append(s)
        return s

    @staticmethod
    def recv_pub(sub, timeout=10.0):
        """(topic, body) of the next publication, or AssertionError."""
        if not sub.poll(int(timeout * 1000)):
            raise AssertionError("no publication within %.1f s" % timeout)
        frames = sub.recv_multipart()
        assert len(frames) == 2, "a publication is two frames, got %d" % len(frames)
        assert frames[0].endswith(b"\0"), "a topic ends with NUL: %r" % frames[0]
        return frames[0][:-1].decode(), unpack(frames[1])

    def recompute_and_receive(self, sub, task="default", timeout=30.0, min_version=None):
        """Asks for a recompute and returns the first body published after it
        (bodies with a version <= the one current before are skipped)."""
        cur = self.task(task)
        before = cur["version"] if cur else 0
        rep = self.ctl("recompute", task=task)
        assert rep.get("ok") is True and rep.get("tasks") == 1, rep
        return self.receive_newer(sub, before if min_version is None else min_version - 1,
                                  timeout)

    def receive_newer(self, sub, version, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no publication newer than version %d" % version)
            topic, body = self.recv_pub(sub, left)
            if body.get("version", 0) > version:
                return topic, body

    # -- logs and stop -------------------------------------------------------
    def log(self):
        if self.final_log is not None:
            return self.final_log
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return "(no log)"

    def wait_log(self, needle, timeout=5.0):
        return wait_for(lambda: needle in self.log(), timeout, what="%r in the log" % needle)

    def _close_sockets(self):
        for s in self._subs:
            s.close(0)
        self._subs = []
        if self._push is not None:
            self._push.close(0)
            self._push = None

    def stop(self, timeout=30.0):
        """SIGTERM, wait; returns the exit code (kills on timeout). A stop
        waits for a selection in flight on the thread pool, which under a
        sanitizer on a loaded machine can take several seconds: the default
        timeout is for a daemon that hangs, not a measure of stop time."""
        self._close_sockets()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                self.returncode = "killed after SIGTERM timeout"
        if self.returncode is None:
            self.returncode = self.proc.returncode
        self._finish()
        return self.returncode

    def kill(self):
        self._close_sockets()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.returncode = self.proc.returncode
        self._finish()

    def _finish(self):
        _LIVE.discard(self.proc)
        self._log.close()
        if self.final_log is None:
            self.final_log = self.log_from_file()
        try:
            self.tmp.cleanup()
        except OSError:
            pass

    def log_from_file(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return "(no log)"


class DaemonTestCase(unittest.TestCase):
    """Starts daemons through self.daemon(); stops each after the test and
    asserts it exited 0 and its log holds no sanitizer report (a daemon a test
    killed exits with no status of its own). On failure the daemons' logs go
    to stderr."""

    maxDiff = None

    def setUp(self):
        self._daemons = []

    def daemon(self, overrides=None):
        d = Daemon(overrides)
        self._daemons.append(d)
        return d

    def tearDown(self):
        problems = []
        for d in self._daemons:
            rc = d.returncode if d.returncode is not None else d.stop()
            if rc != 0 and not getattr(d, "expect_nonzero", False):
                problems.append("ensembled exited with %r\n--- log ---\n%s" % (rc, d.log()))
            elif SANITIZER_REPORT.search(d.log()):
                problems.append("ensembled reported a sanitizer error\n--- log ---\n%s" % d.log())
        if problems:
            self.fail("\n".join(problems))

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for i, d in enumerate(getattr(self, "_daemons", [])):
                sys.stderr.write("\n--- ensembled log (%s, daemon %d) ---\n%s\n"
                                 % (self.id(), i, d.log()))
        return out

    def assertClose(self, a, b, tol, msg=None):
        if a is None or b is None or not math.isfinite(a) or not math.isfinite(b) \
                or abs(a - b) > tol:
            self.fail(msg or "%r != %r within %g" % (a, b, tol))


def run_ctl(*args, timeout=120):
    """Runs ensemblectl; returns the CompletedProcess (text)."""
    return subprocess.run([ENSEMBLECTL] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout)


def main():
    unittest.main(verbosity=2)
