#!/usr/bin/env python3
"""NATS with TLS and a password (docs/scale.md): one nats-server with
JetStream that requires TLS (a certificate signed by a CA made here with
openssl) and a user and password.

- the daemon reads the stream over TLS ([ingest] nats = tls://user:pass@...,
  nats_tls_ca) and puts its body into the bucket; the Python package's
  JetStreamProducer and KVReader do the same over TLS, and the body read
  from the bucket is the daemon's;
- a wrong password, a CA that did not sign the server's certificate, and a
  plain connection are each refused with an error that names the cause:
  the Python side raises NatsError; the daemon does not start, and its log
  names the cause and hides the password.

Skipped, with the reason printed, when nats-server or openssl is missing or
the daemon was built without libnats.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
sys.path.insert(0, os.path.join(harness.REPO, "python"))
import ensembled  # noqa: E402

NATS_SERVER = shutil.which("nats-server") or (
    "/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None)
OPENSSL = shutil.which("openssl")
USER, PASSWORD = "fleet", "s3cret-pass"
STREAM, BUCKET, TASK = "EVENTS", "BODIES", "tls"


def openssl(*args, cwd):
    subprocess.run([OPENSSL] + list(args), cwd=cwd, check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_certs(d):
    """ca.pem signs server.pem (127.0.0.1 and localhost); other-ca.pem
    signs nothing the server holds."""
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=ensembled test %s" % ca, "-keyout", ca + "-key.pem",
                "-out", ca + ".pem", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server-key.pem", "-out", "server.csr", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=d)


@unittest.skipIf(NATS_SERVER is None, "nats-server is not installed (Debian package nats-server)")
@unittest.skipIf(OPENSSL is None, "openssl is not installed (Debian package openssl)")
@unittest.skipIf(os.environ.get("ENS_NATS_BUILT") == "0",
                 "ensembled was built without libnats (Debian package libnats-dev)")
class NatsTlsTest(harness.DaemonTestCase):
    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory(prefix="ensembled-nats-tls-")
        self.addCleanup(tmp.cleanup)
        self.dir = d = tmp.name
        make_certs(d)
        self.ca = os.path.join(d, "ca.pem")
        self.port = harness.free_ports(1)[0]
        conf = os.path.join(d, "nats.conf")
        with open(conf, "w") as f:
            f.write('listen: 127.0.0.1:%d\njetstream { store_dir: "%s" }\n'
                    'tls { cert_file: "%s", key_file: "%s", timeout: 5 }\n'
                    'authorization { user: "%s", password: "%s" }\n'
                    % (self.port, os.path.join(d, "js"), os.path.join(d, "server.pem"),
                       os.path.join(d, "server-key.pem"), USER, PASSWORD))
        log = open(os.path.join(d, "nats.log"), "ab")
        self.server = subprocess.Popen([NATS_SERVER, "-c", conf], stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=log)
        log.close()
        harness._LIVE.add(self.server)
        self.addCleanup(self.stop_server)
        self.url = "tls://%s:%s@127.0.0.1:%d" % (USER, PASSWORD, self.port)
        harness.wait_for(self.connects, 20, interval=0.2, what="nats-server with TLS")
        self.api("STREAM.CREATE." + STREAM, {"name": STREAM, "subjects": ["events.>"],
                                             "storage": "file"})
        self.api("STREAM.CREATE.KV_" + BUCKET,
                 {"name": "KV_" + BUCKET, "subjects": ["$KV.%s.>" % BUCKET],
                  "max_msgs_per_subject": 1, "discard": "new", "allow_rollup_hdrs": True,
                  "deny_delete": True, "allow_direct": True, "storage": "file"})

    def stop_server(self):
        if self.server.poll() is None:
            self.server.kill()
            self.server.wait(10)
        harness._LIVE.discard(self.server)

    def connects(self):
        try:
            ensembled.NatsConnection(self.url, tls_ca=self.ca).close()
            return True
        except (OSError, ensembled.NatsError):
            return False

    def api(self, subject, body):
        c = ensembled.NatsConnection(self.url, tls_ca=self.ca)
        try:
            rep = c.api(subject, body)
        finally:
            c.close()
        self.assertNotIn("error", rep)
        return rep

    def overrides(self, url, ca, task=TASK):
        return {"ingest": {"nats": url, "nats_stream": STREAM, "nats_subject": "events." + task,
                           "nats_tls_ca": ca, "nats_ack_wait": "2s"},
                "publish": {"nats_kv": BUCKET}}

    def test_daemon_and_package_over_tls(self):
        d = self.daemon(self.overrides(self.url, self.ca))
        prod = ensembled.JetStreamProducer(self.url, tls_ca=self.ca)
        self.addCleanup(prod.close)
        n = 120
        for q in range(n):
            prod.publish({"kind": "prediction", "task": TASK, "query": q,
                          "predictions": {"a": "AB"[q % 2], "b": "A", "c": "AB"[q % 3 == 0]}})
            prod.publish({"kind": "label", "task": TASK, "query": q, "label": "AB"[q % 2]})
        harness.wait_for(lambda: (d.task(TASK) or {}).get("rows") == n, 30, interval=0.2,
                         what="%d rows read over TLS" % n)
        st = d.status()
        self.assertEqual(st["nats"]["fetched"], 2 * n)
        d.ctl("recompute", task=TASK)
        kv = ensembled.KVReader(self.url, BUCKET, tls_ca=self.ca)
        self.addCleanup(kv.close)
        box = {}

        def published():
            box["b"] = kv.latest(TASK)
            return box["b"] is not None and box["b"]["stream_seq"] == 2 * n

        harness.wait_for(published, 20, interval=0.1, what="the body in the bucket")
        body = box["b"]
        self.assertEqual(body, dict(d.ctl("ensemble", task=TASK)["ensemble"],
                                    stream_seq=body["stream_seq"], revision=body["revision"]))

    def test_replay_over_tls(self):
        """ensemblectl replay --nats with --nats-tls-ca feeds the daemon
        every row of a CSV; without the CA it exits 1 saying why."""
        task = "replayed"
        csv = harness.data_file("winogrande_routerbench_11llm.csv")
        header, rows = harness.csv_rows(csv)
        want = sum(1 for r in rows[:200] if any(c != "" for c in r[2:]))
        part = os.path.join(self.dir, "part.csv")
        with open(csv) as f, open(part, "w") as out:
            for i, line in enumerate(f):
                if i <= 200:
                    out.write(line)
        d = self.daemon(self.overrides(self.url, self.ca, task))
        cmd = [harness.ENSEMBLECTL, "replay", "--csv", part, "--nats", self.url,
               "--task", task, "--label-lag", "0"]
        r = subprocess.run(cmd + ["--nats-tls-ca", self.ca], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        harness.wait_for(lambda: (d.task(task) or {}).get("rows") == want, 30, interval=0.2,
                         what="%d rows replayed over TLS" % want)
        other = os.path.join(self.dir, "other-ca.pem")
        r = subprocess.run(cmd + ["--nats-tls-ca", other], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, "(?i)--nats .*certificate")

    def test_refusals_name_their_cause(self):
        plain = "nats://%s:%s@127.0.0.1:%d" % (USER, PASSWORD, self.port)
        # Python: a wrong password, a CA that did not sign the server, and
        # no CA at all (the system's CAs do not know this one).
        with self.assertRaisesRegex(ensembled.NatsError, "(?i)authorization") as cm:
            ensembled.NatsConnection("tls://%s:wrong-pass@127.0.0.1:%d" % (USER, self.port),
                                     tls_ca=self.ca)
        self.assertNotIn("wrong-pass", str(cm.exception))
        other = os.path.join(self.dir, "other-ca.pem")
        with self.assertRaisesRegex(ensembled.NatsError, "(?i)TLS .*certificate verify failed"):
            ensembled.NatsConnection(self.url, tls_ca=other)
        with self.assertRaisesRegex(ensembled.NatsError, "(?i)certificate verify failed"):
            ensembled.NatsConnection(plain)
        # The daemon, with a CA that did not sign the server's certificate
        # and with a wrong password: it does not start, and its log names
        # the cause without the password.
        for url, ca, cause in ((self.url, other, "certificate"),
                               ("tls://%s:wrong-pass@127.0.0.1:%d" % (USER, self.port), self.ca,
                                "authorization")):
            with self.assertRaises(AssertionError) as cm:
                self.daemon(self.overrides(url, ca))
            log = str(cm.exception)
            self.assertRegex(log, "did not start|exited with 1")
            self.assertRegex(log, "(?i)ingest.nats .*%s" % cause)
            self.assertNotIn("wrong-pass", log)
            self.assertNotIn(PASSWORD, log)
            self.assertIn("%s:***@127.0.0.1" % USER, log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
