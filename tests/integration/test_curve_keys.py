#!/usr/bin/env python3
"""CURVE key management (docs/security.md):

- a revoked key (its file deleted, then SIGHUP) cuts the connections it
  already has, producer, subscriber and control alike, within a second;
  other clients go on once they have reconnected;
- only regular files of authorized_keys_dir are read, never blocking (a
  FIFO there once blocked the event loop at SIGHUP); what was skipped is
  counted and logged;
- a secret key file open to others is used with a warning; one that cannot
  be read is refused with the OS's reason.
"""
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_curve  # noqa: E402  (CurveDaemon)
from harness import zmq  # noqa: E402


def answers(sock, req, timeout_ms):
    """Sends req on a REQ socket; the reply, or None after timeout_ms (or
    when the request cannot even be sent: no connection takes it)."""
    try:
        sock.send(harness.pack(req), zmq.NOBLOCK)
    except zmq.Again:
        return None
    if not sock.poll(timeout_ms):
        return None
    return harness.unpack(sock.recv())


class KeysTest(harness.DaemonTestCase):

    def start(self):
        d = test_curve.CurveDaemon()
        self._daemons.append(d)
        self.auth = os.path.dirname(os.path.join(d.keys.name, "authorized", "x"))
        return d

    def second_key(self, d):
        pub, sec = zmq.curve_keypair()
        path = os.path.join(self.auth, "second.pub")
        with open(path, "wb") as f:
            f.write(pub + b"\n")
        self.hup(d, 2)
        return pub, sec, path

    def hup(self, d, keys):
        d.proc.send_signal(signal.SIGHUP)

        # A request sent just before a revocation closes every connection
        # is lost with its connection (REQ does not resend): ask again.
        def reloaded():
            try:
                return d.status()["security"]["authorized_keys"] == keys
            except zmq.Again:
                return False
        harness.wait_for(reloaded, 15, what="%d authorized keys after SIGHUP" % keys)

    def client(self, d, kind, pub, sec, endpoint):
        s = harness.ZCTX.socket(kind)
        s.curve_serverkey = d.server_pub
        s.curve_publickey = pub
        s.curve_secretkey = sec
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        return s

    def test_revoked_key_cuts_established_connections(self):
        d = self.start()
        pub, sec, path = self.second_key(d)
        push = self.client(d, zmq.PUSH, pub, sec, d.ingest)
        sub = self.client(d, zmq.SUB, pub, sec, d.publish)
        sub.setsockopt(zmq.SUBSCRIBE, b"ensemble.")
        ctl = self.client(d, zmq.REQ, pub, sec, d.control)
        # The harness's own key: stays authorized.
        friend = self.client(d, zmq.SUB, d.client_pub, d.client_sec, d.publish)
        friend.setsockopt(zmq.SUBSCRIBE, b"ensemble.")

        # Established and working: rows, a publication, a control reply.
        push.send(harness.pack(test_curve.rows(20, "before")))
        harness.wait_for(lambda: (d.task() or {}).get("joined", 0) == 20, 5,
                         what="the second key's rows")
        self.assertIs(answers(ctl, {"cmd": "status"}, 5000)["ok"], True)
        time.sleep(0.3)  # both subscriptions reach the daemon
        d.ctl("recompute")
        for s in (sub, friend):
            self.assertTrue(s.poll(5000), "a subscriber got no publication")
            self.assertEqual(harness.unpack(s.recv_multipart()[1])["version"], 1)

        refused = d.status()["security"]["curve_refused"]
        os.unlink(path)
        self.hup(d, 1)
        t_cut = time.monotonic()
        # Within a second of the reload, the revoked key's connections are
        # gone: its rows no longer arrive, its subscription gets nothing,
        # its control requests no answer. The friend reconnects and goes on.
        try:  # without a connection a PUSH blocks: not this test's business
            push.send(harness.pack(test_curve.rows(20, "after")), zmq.NOBLOCK)
        except zmq.Again:
            pass
        self.assertIsNone(answers(ctl, {"cmd": "status"}, 1000),
                          "a revoked control client was answered")
        self.assertLess(time.monotonic() - t_cut, 1.5)
        time.sleep(0.5)  # the friend's reconnection and subscription
        d.ctl("recompute")
        self.assertTrue(friend.poll(5000), "an authorized subscriber lost its publications")
        got = []
        while friend.poll(300):
            got.append(harness.unpack(friend.recv_multipart()[1])["version"])
        # (the reload itself republishes: version 2, then the recompute's 3)
        self.assertEqual(max(got), d.task()["version"])
        self.assertGreaterEqual(max(got), 3)
        while sub.poll(300):
            self.assertEqual(harness.unpack(sub.recv_multipart()[1])["version"], 1,
                             "a revoked subscriber received a new publication")
        st = d.status()
        self.assertEqual(d.task(st=st)["joined"], 20, "a revoked producer's rows joined")
        self.assertGreater(st["security"]["curve_refused"], refused)
        d.wait_log("a key was revoked")
        for s in (push, sub, ctl, friend):
            s.close(0)

    def test_only_regular_files_read_never_blocking(self):
        d = self.start()
        os.mkfifo(os.path.join(self.auth, "fifo.pub"))
        os.mkdir(os.path.join(self.auth, "subdir.pub"))
        with open(os.path.join(self.auth, "junk.pub"), "w") as f:
            f.write("not a key\n")
        d.proc.send_signal(signal.SIGHUP)
        # A blocking open of the FIFO would stop the loop: status answers.
        harness.wait_for(lambda: d.status()["security"]["key_files_skipped"] == 3, 5,
                         what="three files skipped")
        st = d.status()
        self.assertEqual(st["security"]["authorized_keys"], 1)
        log = d.log()
        self.assertIn("fifo.pub: not a regular file; skipped", log)
        self.assertIn("subdir.pub: not a regular file; skipped", log)
        self.assertIn("junk.pub: not a Z85 key", log)


class SecretKeyTest(harness.DaemonTestCase):

    def run_daemon(self, key_path, auth):
        tmp = tempfile.mkdtemp(prefix="ensembled-key-")
        ingest, publish, control = harness.free_ports(3)
        conf = os.path.join(tmp, "ensembled.conf")
        with open(conf, "w") as f:
            f.write(harness.render_config({
                "ingest": {"bind": "tcp://127.0.0.1:%d" % ingest},
                "publish": {"bind": "tcp://127.0.0.1:%d" % publish},
                "control": {"bind": "tcp://127.0.0.1:%d" % control},
                "metrics": {"bind": ""},  # parallel tests share the default port
                "state": {"dir": os.path.join(tmp, "state")},
                "security": {"curve_secret_key_file": key_path,
                             "authorized_keys_dir": auth}}))
        p = subprocess.Popen([harness.ENSEMBLED, "-c", conf, "--foreground"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return p, "tcp://127.0.0.1:%d" % control

    def keys(self):
        self.dir = tempfile.TemporaryDirectory(prefix="ensembled-keys-")
        self.addCleanup(self.dir.cleanup)
        auth = os.path.join(self.dir.name, "authorized")
        os.mkdir(auth)
        pub, sec = zmq.curve_keypair()
        key = os.path.join(self.dir.name, "server.key")
        with open(key, "wb") as f:
            f.write(sec + b"\n")
        return key, auth

    def test_secret_key_open_to_others_warns(self):
        key, auth = self.keys()
        os.chmod(key, 0o644)
        p, _ = self.run_daemon(key, auth)
        try:
            out = b""
            deadline = time.monotonic() + 10
            while b"ready" not in out and time.monotonic() < deadline:
                line = p.stdout.readline()
                if not line:
                    break
                out += line
            self.assertIn(b"is open to group or others (mode 0644)", out)
            self.assertIn(b"ready", out)
        finally:
            p.send_signal(signal.SIGTERM)
            p.communicate(timeout=30)  # a hang guard: sanitizer builds stop slowly
        self.assertEqual(p.returncode, 0)

    def test_unreadable_secret_key_names_the_os_error(self):
        key, auth = self.keys()
        cases = [(os.path.join(self.dir.name, "missing.key"), b"No such file or directory"),
                 (auth, b"not a regular file")]
        if os.geteuid() != 0:  # root reads a mode-000 file all the same
            os.chmod(key, 0)
            cases.append((key, b"Permission denied"))
        for path, why in cases:
            p, _ = self.run_daemon(path, auth)
            out, _ = p.communicate(timeout=30)
            self.assertEqual(p.returncode, 1, out)
            self.assertIn(b"security.curve_secret_key_file " + path.encode() + b": " + why, out)
            self.assertNotIn(b"not a Z85 key", out)


if __name__ == "__main__":
    harness.main()
