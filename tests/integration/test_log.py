#!/usr/bin/env python3
"""The daemon's logs, parsed back: logfmt lines with their fields (every
line of the log a valid logfmt line), a rate-limit note saying what it held
back, a quiet task's failing selection logged once when it starts and once
when it ends, and the journal's native protocol (sd_journal_send) received
on a socket of the test's own, in a private mount namespace (root only;
skipped otherwise)."""
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MALFORMED = b"\xc1"  # a byte MessagePack never uses
PAIR = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|[^ "]*)(?: |$)')
JOURNAL_SOCKET = "/run/systemd/journal/socket"


def unquote(v):
    if not v.startswith('"'):
        return v
    out, i, s = [], 0, v[1:-1]
    while i < len(s):
        if s[i] != "\\":
            out.append(s[i])
            i += 1
        elif s[i + 1] == "u":
            out.append(chr(int(s[i + 2:i + 6], 16)))
            i += 6
        else:
            out.append({"n": "\n", '"': '"', "\\": "\\"}[s[i + 1]])
            i += 2
    return "".join(out)


def parse_logfmt(line):
    """The pairs of one line, in order; AssertionError if it is not logfmt."""
    pairs, pos = [], 0
    while pos < len(line):
        m = PAIR.match(line, pos)
        if not m:
            raise AssertionError("not logfmt at %d: %r" % (pos, line))
        pairs.append((m.group(1), unquote(m.group(2))))
        pos = m.end()
    return pairs


def records(d):
    """Every line of the daemon's log as a dict; each must be logfmt."""
    out = []
    for line in d.log().splitlines():
        pairs = parse_logfmt(line)
        keys = [k for k, _ in pairs]
        assert keys[:2] == ["time", "level"] and "msg" in keys, line
        out.append(dict(pairs))
    return out


def events(qs, task="default"):
    out = []
    for q in qs:
        truth = "A" if q % 3 else "B"
        out.append({"kind": "prediction", "task": task, "query": q,
                    "predictions": {"m1": truth, "m2": "A"}})
        out.append({"kind": "label", "task": task, "query": q, "label": truth})
    return out


def parse_journal(dgram):
    """One datagram of the journal's native protocol: KEY=VALUE lines, or
    KEY, a newline, a 64-bit little-endian size and that many bytes."""
    rec, i = {}, 0
    while i < len(dgram):
        nl = dgram.index(b"\n", i)
        line = dgram[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            k = line
            (n,) = struct.unpack("<Q", dgram[nl + 1:nl + 9])
            v = dgram[nl + 9:nl + 9 + n]
            assert dgram[nl + 9 + n:nl + 10 + n] == b"\n", dgram
            i = nl + 10 + n
        rec[k.decode()] = v.decode()
    return rec


class LogfmtTest(harness.DaemonTestCase):

    def test_fields_and_what_was_suppressed(self):
        d = self.daemon({"log": {"format": "logfmt"}})
        d.sync_send(*events(range(3)))
        d.sync_send(MALFORMED, MALFORMED, MALFORMED)
        time.sleep(1.2)
        d.sync_send(MALFORMED)
        rejected = {k: v for k, v in d.status()["rejected"].items() if v}
        self.assertEqual(list(rejected.values()), [4], rejected)
        reason = next(iter(rejected))
        harness.wait_for(lambda: len([r for r in records(d) if r.get("reason") == reason]) >= 3,
                         5, what="three lines with reason=%s" % reason)
        recs = [r for r in records(d) if r.get("reason") == reason]
        # The first, the note on the two held back, the fourth.
        self.assertEqual(len(recs), 3, recs)
        for r in recs:
            self.assertEqual((r["level"], r["module"]), ("warning", "ingest"), r)
        first, note, fourth = recs
        self.assertTrue(first["msg"].startswith("ingest: rejected a 1-byte message: " + reason),
                        first)
        self.assertNotIn("suppressed", first)
        self.assertEqual(note["suppressed"], "2", note)
        self.assertEqual(note["suppressed_first"], first["msg"], note)
        self.assertTrue(note["msg"].startswith("ingest: 2 similar messages suppressed in "),
                        note)
        self.assertTrue(note["msg"].endswith(" s, the first: " + first["msg"][len("ingest: "):]),
                        note)
        self.assertEqual(fourth["msg"], first["msg"])
        ready = [r for r in records(d) if " ready: " in r["msg"]]
        self.assertEqual(len(ready), 1)
        self.assertEqual(ready[0]["level"], "notice")

    def test_quiet_task_logged_once_on_change(self):
        d = self.daemon({"publish": {"interval": "0.2s"},
                         "select": {"retire_after": "1s"},
                         "log": {"format": "logfmt"}})
        d.sync_send(*events(range(30)))
        harness.wait_for(lambda: (d.task() or {}).get("version", 0) >= 1, 10,
                         what="a first publication")

        def state(s):
            return [r for r in records(d) if r.get("task") == "default" and r.get("state") == s]
        # Models retire one second after their last answer; rounds every
        # 0.2 s then fail. Two more seconds is several more failing rounds
        # (their count is in the recovery line: at least three).
        harness.wait_for(lambda: state("failing"), 10, what="the failure logged")
        time.sleep(2.0)
        failing = state("failing")
        self.assertEqual(len(failing), 1, failing)
        self.assertEqual(failing[0]["reason"], "no_model_in_pool")
        self.assertEqual(failing[0]["level"], "notice")
        self.assertIn("task default: selection failed: no model in the pool", failing[0]["msg"])
        self.assertEqual(state("ok"), [])
        self.assertEqual([r for r in records(d) if "no model in the pool" in r["msg"]], failing)
        # Answers again: the end of the failure, once.
        d.sync_send(*events(range(100, 130)))
        harness.wait_for(lambda: state("ok"), 10, what="the recovery logged")
        ok = state("ok")
        self.assertEqual(len(ok), 1, ok)
        self.assertEqual(ok[0]["reason"], "no_model_in_pool")
        self.assertGreaterEqual(int(ok[0]["failed_rounds"]), 3, ok)
        self.assertIn("selection works again", ok[0]["msg"])
        # Between the two, no other line on this (a second after these
        # answers the models retire again: a new failure, logged anew).
        recs = [r for r in records(d) if r.get("state")]
        self.assertEqual(recs[:2], [failing[0], ok[0]])


class JournalTest(harness.DaemonTestCase):

    def test_journal_fields(self):
        if os.environ.get("ENS_LOG_JOURNAL_NS") != "1":
            self.run_in_namespace()
            return
        os.makedirs(os.path.dirname(JOURNAL_SOCKET), exist_ok=True)
        journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        journal.bind(JOURNAL_SOCKET)
        journal.settimeout(10)
        d = self.daemon({"log": {"format": "journal"}})
        d.sync_send(*events(range(3)))
        d.sync_send(MALFORMED)
        reason = next(k for k, v in d.status()["rejected"].items() if v)
        got = []
        while not any(r.get("ENSEMBLED_REASON") for r in got):
            got.append(parse_journal(journal.recv(65536)))
        ready = [r for r in got if " ready: " in r["MESSAGE"]]
        self.assertEqual(len(ready), 1, got)
        self.assertEqual(ready[0]["PRIORITY"], "5")
        rej = got[-1]
        self.assertEqual(rej["PRIORITY"], "4", rej)
        self.assertEqual(rej["SYSLOG_IDENTIFIER"], "ensembled")
        self.assertEqual(rej["ENSEMBLED_MODULE"], "ingest")
        self.assertEqual(rej["ENSEMBLED_REASON"], reason)
        self.assertTrue(rej["MESSAGE"].startswith("ingest: rejected a 1-byte message: "), rej)
        # Nothing went to stderr: the journal had it all.
        self.assertNotIn("rejected", d.log())
        self.assertNotIn("ready", d.log())

    def run_in_namespace(self):
        """Runs this test again in a private mount namespace with its own
        /run, where the journal's socket is the test's."""
        if os.geteuid() != 0 or not shutil.which("unshare"):
            self.skipTest("needs root and unshare for a private /run")
        if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
            self.skipTest("unshare -m is not permitted here")
        env = dict(os.environ, ENS_LOG_JOURNAL_NS="1")
        r = subprocess.run(
            ["unshare", "-m", "sh", "-c", 'mount -t tmpfs tmpfs /run && exec "$@"', "sh",
             sys.executable, os.path.abspath(__file__), "JournalTest.test_journal_fields"],
            env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"\nOK\n?$")


if __name__ == "__main__":
    harness.main()
