#!/usr/bin/env python3
"""Peers that never read (docs/overload.md, "Peers that do not read").

- Subscribers that subscribe, re-subscribe and never read: each one holds
  at most publish.max_queued bodies in the daemon; what it misses is
  counted (`subscriber_drops`); a subscriber that reads still gets every
  new version.
- Control clients (DEALER) that pipeline `status` requests and never read:
  each holds at most control.max_queued replies in the daemon; the rest
  are dropped and counted (`control_replies_dropped`); other clients are
  still answered.

The daemon's RSS growth while they do so stays under the bound the
documented caps give for this configuration: peers x max_queued x the
message size, plus a fixed allowance for the allocator. Without the caps
(libzmq's default of 1000 queued messages per peer) the same runs grow by
tens of MiB.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import reliability  # noqa: E402

import zmq  # noqa: E402

SLACK = 8 << 20  # allocator and libzmq per-connection buffers


def rows(task, n, models):
    evs = []
    for i in range(n):
        q = "%s-%d" % (task, i)
        truth = "AB"[i % 2]
        evs.append({"kind": "prediction", "task": task, "query": q,
                    "predictions": {m: (truth if (i + k) % 3 else "AB"[(i + 1) % 2])
                                    for k, m in enumerate(models)}})
        evs.append({"kind": "label", "task": task, "query": q, "label": truth})
    return evs


def deaf_socket(kind):
    """A socket whose own queue and kernel buffer are as small as can be,
    so that what it does not read piles up in the daemon."""
    s = harness.ZCTX.socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVHWM, 1)
    s.setsockopt(zmq.RCVBUF, 4096)
    return s


def settle(d, key, timeout=30):
    """Waits until the status counter `key` stops moving for 1 s."""
    last, since = None, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = d.status()[key]
        if v != last:
            last, since = v, time.monotonic()
        elif time.monotonic() - since > 1.0:
            return v
        time.sleep(0.1)
    return last


class SlowPeersTest(harness.DaemonTestCase):

    def test_subscribers_that_never_read(self):
        queued, peers, resubs = 8, 10, 1000
        d = self.daemon({"publish": {"max_queued": queued}, "select": {"budget": 3}})
        models = ["m%03d" % i for i in range(200)]
        for task in ("a", "b"):
            d.sync_send(rows(task, 40, models))
        reader = d.subscriber("ensemble.")
        for task in ("a", "b"):
            d.recompute_and_receive(reader, task=task)
        body = max(len(harness.pack(d.ctl("ensemble", task=t)["ensemble"])) for t in "ab")
        idle = reliability.rss_bytes(d.proc.pid)
        deaf = []
        for _ in range(peers):
            s = deaf_socket(zmq.SUB)
            s.connect(d.publish)
            for _ in range(resubs):  # each one: both cached bodies again
                s.setsockopt(zmq.SUBSCRIBE, b"ensemble.")
            deaf.append(s)
        settle(d, "cache_resends")
        peak = reliability.rss_bytes(d.proc.pid)
        st = d.status()
        bound = peers * queued * (body + 512) + SLACK
        print("subscribers: body %d bytes, RSS %.1f -> %.1f MiB (bound +%.1f MiB), "
              "%d resends, %d misses" % (body, idle / 2**20, peak / 2**20, bound / 2**20,
                                        st["cache_resends"], st["subscriber_drops"]),
              file=sys.stderr)
        self.assertGreater(st["subscriber_drops"], 0, "no subscriber queue reached its cap")
        self.assertLess(peak - idle, bound)
        # A subscriber that reads still gets the next version.
        while reader.poll(0):
            reader.recv_multipart()
        _, b = d.recompute_and_receive(reader, task="a")
        self.assertEqual(b["version"], d.task("a")["version"])
        for s in deaf:
            s.close(0)

    def test_control_clients_that_never_read(self):
        queued, peers, requests = 16, 5, 1100
        d = self.daemon({"control": {"max_queued": queued}})
        tasks = ["t%02d" % i for i in range(64)]
        for i in range(0, 64, 16):
            d.sync_send(*[rows(t, 2, ["m0", "m1"]) for t in tasks[i:i + 16]])
        reply = len(harness.pack(d.status()))
        idle = reliability.rss_bytes(d.proc.pid)
        req = harness.pack({"cmd": "status"})
        deaf = []
        for _ in range(peers):
            s = deaf_socket(zmq.DEALER)
            s.setsockopt(zmq.SNDTIMEO, 5000)
            s.connect(d.control)
            for _ in range(requests):
                s.send_multipart([b"", req])  # as a REQ client frames it
            deaf.append(s)
        dropped = settle(d, "control_replies_dropped")
        peak = reliability.rss_bytes(d.proc.pid)
        bound = peers * queued * (reply + 512) + SLACK
        print("control: reply %d bytes, RSS %.1f -> %.1f MiB (bound +%.1f MiB), %d replies "
              "dropped of %d" % (reply, idle / 2**20, peak / 2**20, bound / 2**20, dropped,
                                 peers * requests), file=sys.stderr)
        self.assertGreater(dropped, 0, "no client's reply queue reached its cap")
        self.assertLessEqual(dropped, peers * requests)
        self.assertLess(peak - idle, bound)
        # Other clients are answered meanwhile, and a client that reads gets
        # every reply.
        self.assertEqual(len(d.status()["tasks"]), 64)
        live = harness.ZCTX.socket(zmq.DEALER)
        live.setsockopt(zmq.LINGER, 0)
        live.setsockopt(zmq.RCVTIMEO, 5000)
        live.connect(d.control)
        for _ in range(queued):
            live.send_multipart([b"", req])
        for _ in range(queued):
            frames = live.recv_multipart()
            self.assertEqual(frames[0], b"")
            self.assertIs(harness.unpack(frames[-1])["ok"], True)
        live.close(0)
        for s in deaf:
            s.close(0)


if __name__ == "__main__":
    harness.main()
