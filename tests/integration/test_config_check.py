#!/usr/bin/env python3
"""ensembled --check-config refuses what the start would refuse, every
error at once with file:line; the start refuses a bind beyond loopback
without CURVE unless security.allow_plaintext = yes."""
import os
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class CheckConfigTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ensembled-cc-")
        self.dir = self.tmp.name
        self.path = os.path.join(self.dir, "e.conf")

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, text):
        with open(self.path, "w") as f:
            f.write(text)

    def run_daemon(self, *args):
        return subprocess.run([harness.ENSEMBLED, "-c", self.path] + list(args),
                              capture_output=True, text=True, timeout=20)

    def safe(self, extra=""):
        """Sockets on ipc:// in the temporary directory, no metrics."""
        return ("[ingest]\nbind = ipc://%s/i\n[publish]\nbind = ipc://%s/p\n"
                "[control]\nbind = ipc://%s/c\n[metrics]\nbind =\n%s"
                % (self.dir, self.dir, self.dir, extra))

    def test_each_case_and_all_at_once(self):
        d = self.dir
        self.write(self.safe(
            "[state]\ndir = %s/none/state\n"                        # line 10
            "[security]\ncurve_secret_key_file = %s/missing.key\n"  # line 12
            "authorized_keys_dir = %s\n"
            "[select]\nbudget = 3\nbudget = 4\n" % (d, d, d)))       # line 16
        # ingest.bind = foo, set on line 2, replaced by a bad endpoint.
        with open(self.path) as f:
            text = f.read().replace("bind = ipc://%s/i" % d, "bind = foo")
        self.write(text)
        r = self.run_daemon("--check-config")
        self.assertEqual(r.returncode, 1, r.stderr)
        p = self.path
        self.assertEqual(r.stderr.splitlines(), [
            "ensembled: %s:2: ingest.bind: foo: not a ZeroMQ endpoint the daemon uses "
            "(tcp://HOST:PORT or ipc://PATH)" % p,
            "ensembled: %s:10: state.dir %s/none/state: does not exist and cannot be created: "
            "%s/none: No such file or directory" % (p, d, d),
            "ensembled: %s:12: security.curve_secret_key_file %s/missing.key: "
            "No such file or directory" % (p, d),
            "ensembled: %s:16: [select] budget: set again (first at line 15)" % p,
        ])

    def test_directory_as_config(self):
        r = subprocess.run([harness.ENSEMBLED, "-c", self.dir, "--check-config"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "ensembled: %s: not a regular file\n" % self.dir)

    def test_valid_config_passes(self):
        self.write(self.safe("[state]\ndir = %s/state\n" % self.dir))
        r = self.run_daemon("--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "%s: configuration ok\n" % self.path)

    def test_start_refuses_plaintext_beyond_loopback(self):
        ingest, = harness.free_ports(1)
        conf = self.safe("[state]\ndir = %s/state\n" % self.dir).replace(
            "bind = ipc://%s/i" % self.dir, "bind = tcp://0.0.0.0:%d" % ingest)
        self.write(conf)
        r = self.run_daemon("--foreground")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("%s:2: ingest.bind: tcp://0.0.0.0:%d binds beyond loopback without "
                      "CURVE" % (self.path, ingest), r.stderr)
        # Said on purpose, it starts (and stops cleanly on SIGTERM).
        self.write(conf + "[security]\nallow_plaintext = yes\n")
        self.assertEqual(self.run_daemon("--check-config").returncode, 0)
        proc = subprocess.Popen([harness.ENSEMBLED, "-c", self.path, "--foreground"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            harness.wait_for(lambda: os.path.exists(os.path.join(self.dir, "c")), 10,
                             what="the control socket")
        finally:
            proc.terminate()
            out = proc.communicate(timeout=10)[0].decode()
        self.assertEqual(proc.returncode, 0, out)
        self.assertIn("ready: ingest tcp://0.0.0.0:%d" % ingest, out)

    def test_start_reads_the_key_from_systemd_credentials(self):
        keys = os.path.join(self.dir, "keys")
        creds = os.path.join(self.dir, "creds")
        authorized = os.path.join(self.dir, "authorized")
        for p in (keys, creds, authorized):
            os.mkdir(p)
        r = subprocess.run([harness.ENSEMBLECTL, "keygen", os.path.join(keys, "server")],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        # What LoadCredential=server.key:KEYS/server.key does before the start.
        with open(os.path.join(keys, "server.key")) as f, \
                open(os.path.join(creds, "server.key"), "w") as g:
            g.write(f.read())
        self.write(self.safe("[state]\ndir = %s/state\n[security]\n"
                             "curve_secret_key_file = credential:server.key\n"
                             "curve_public_key_file = %s/server.pub\n"
                             "authorized_keys_dir = %s\n" % (self.dir, keys, authorized)))
        r = self.run_daemon("--check-config")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no $CREDENTIALS_DIRECTORY", r.stderr)
        env = dict(os.environ, CREDENTIALS_DIRECTORY=creds)
        r = subprocess.run([harness.ENSEMBLED, "-c", self.path, "--check-config"], env=env,
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        proc = subprocess.Popen([harness.ENSEMBLED, "-c", self.path, "--foreground"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            harness.wait_for(lambda: os.path.exists(os.path.join(self.dir, "c"))
                             or proc.poll() is not None, 10, what="the control socket")
        finally:
            proc.terminate()
            out = proc.communicate(timeout=10)[0].decode()
        self.assertEqual(proc.returncode, 0, out)
        self.assertIn("ready", out)
        # A daemon that got no credential says so, rather than "not a Z85 key".
        os.remove(os.path.join(creds, "server.key"))
        r = subprocess.run([harness.ENSEMBLED, "-c", self.path, "--foreground"], env=env,
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("security.curve_secret_key_file credential:server.key: "
                      "No such file or directory", r.stdout + r.stderr)


if __name__ == "__main__":
    harness.main()
