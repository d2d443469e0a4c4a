#!/usr/bin/env python3
"""CURVE: only authorized clients may feed ensembled or read from it.

A producer or subscriber without an authorized key gets nothing through;
with keys, ingest, publish and control work as without CURVE.
"""
import os
import tempfile
import time

import harness
from harness import zmq


class CurveDaemon(harness.Daemon):
    """A daemon with CURVE on; the harness's own requests use an authorized
    client key."""

    def __init__(self):
        self.keys = tempfile.TemporaryDirectory(prefix="ensembled-keys-")
        self.server_pub, server_sec = zmq.curve_keypair()
        self.client_pub, self.client_sec = zmq.curve_keypair()
        auth = os.path.join(self.keys.name, "authorized")
        os.mkdir(auth)
        paths = {}
        for name, key in (("server.key", server_sec), ("server.pub", self.server_pub),
                          ("authorized/client.pub", self.client_pub)):
            paths[name] = os.path.join(self.keys.name, name)
            with open(paths[name], "wb") as f:
                f.write(key + b"\n")
        super().__init__({"security": {
            "curve_secret_key_file": paths["server.key"],
            "curve_public_key_file": paths["server.pub"],
            "authorized_keys_dir": auth}})

    def secure(self, s, authorized=True):
        """Makes s a CURVE client: with the authorized key, or a fresh one."""
        if authorized:
            pub, sec = self.client_pub, self.client_sec
        else:
            pub, sec = zmq.curve_keypair()
        s.curve_serverkey = self.server_pub
        s.curve_publickey = pub
        s.curve_secretkey = sec
        return s

    def request(self, req, timeout=5.0):
        s = self.secure(harness.ZCTX.socket(zmq.REQ))
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
        s.setsockopt(zmq.SNDTIMEO, int(timeout * 1000))
        try:
            s.connect(self.control)
            s.send(harness.pack(req))
            return harness.unpack(s.recv())
        finally:
            s.close(0)

    def _finish(self):
        super()._finish()
        self.keys.cleanup()


def rows(n, prefix):
    """A batch of n joined rows: predictions and labels of two models."""
    out = []
    for i in range(n):
        q = "%s-%d" % (prefix, i)
        y = "AB"[i % 2]
        out.append({"kind": "prediction", "query": q,
                    "predictions": {"m1": y, "m2": "AB"[(i // 3) % 2]}})
        out.append({"kind": "label", "query": q, "label": y})
    return out


class CurveTest(harness.DaemonTestCase):
    def start(self):
        d = CurveDaemon()
        self._daemons.append(d)  # stopped, and its exit code checked, by tearDown
        return d

    def push(self, d, authorized):
        s = harness.ZCTX.socket(zmq.PUSH)
        if authorized is not None:
            d.secure(s, authorized)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(d.ingest)
        return s

    def sub(self, d, authorized):
        s = harness.ZCTX.socket(zmq.SUB)
        if authorized is not None:
            d.secure(s, authorized)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SUBSCRIBE, b"ensemble.")
        s.connect(d.publish)
        return s

    def test_unauthorized_producers_add_nothing(self):
        d = self.start()
        plain, intruder = self.push(d, None), self.push(d, False)
        for s in (plain, intruder):
            s.send(harness.pack(rows(20, "bad")), zmq.NOBLOCK)
        harness.wait_for(lambda: d.status()["security"]["curve_refused"] >= 1, 5,
                         what="a refused handshake")
        time.sleep(0.5)
        st = d.status()
        self.assertEqual(st["messages_in"], 0)
        self.assertEqual(st["events_in"], 0)
        self.assertEqual(st["tasks"], {})
        plain.close(0)
        intruder.close(0)
        good = self.push(d, True)
        good.send(harness.pack(rows(20, "good")))
        harness.wait_for(lambda: (d.task() or {}).get("joined", 0) == 20, 5,
                         what="20 authorized rows joined")
        st = d.status()
        self.assertEqual(d.task(st=st)["rows"], 20)
        self.assertGreaterEqual(st["security"]["curve_accepted"], 1)
        good.close(0)

    def test_unauthorized_subscribers_receive_nothing(self):
        d = self.start()
        good = self.push(d, True)
        good.send(harness.pack(rows(40, "q")))
        harness.wait_for(lambda: (d.task() or {}).get("joined", 0) == 40, 5,
                         what="rows joined")
        good.close(0)
        self.assertTrue(d.ctl("recompute")["ok"])
        harness.wait_for(lambda: d.task()["version"] >= 1, 10,
                         what="a publication")
        intruder, plain, friend = self.sub(d, False), self.sub(d, None), self.sub(d, True)
        poller = zmq.Poller()
        for s in (intruder, plain, friend):
            poller.register(s, zmq.POLLIN)
        got = {}
        deadline = time.time() + 1.5
        while time.time() < deadline:
            for s, _ in poller.poll(100):
                frames = s.recv_multipart()
                got.setdefault(s, []).append(frames)
        self.assertNotIn(intruder, got)
        self.assertNotIn(plain, got)
        self.assertIn(friend, got)
        topic, body = got[friend][0]
        self.assertEqual(topic, b"ensemble.default\0")
        self.assertEqual(harness.unpack(body)["version"], 1)
        for s in (intruder, plain, friend):
            s.close(0)

    def test_unauthorized_control_gets_no_answer(self):
        d = self.start()
        s = harness.ZCTX.socket(zmq.REQ)
        d.secure(s, False)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, 700)
        s.connect(d.control)
        s.send(harness.pack({"cmd": "status"}))
        with self.assertRaises(zmq.Again):
            s.recv()
        s.close(0)
        self.assertTrue(d.status()["ok"])


if __name__ == "__main__":
    harness.main()
