#!/usr/bin/python3
"""The Python package (python/ensembled) against the real daemon:

- a router keeps serving with the daemon down: 10,000 reports to a dead
  endpoint all return, the socket never waits (PUSH, send HWM, NOBLOCK), the
  drop counter says exactly what was dropped, and it still routes and
  combines with the last body;
- exact topic matching: the subscriber of task `med` never takes the
  publications of `medmcqa`;
- the last-value cache: a subscriber started late has the body at once;
- reconnect: the daemon restarted on the same endpoints (with its state:
  versions go on; without: they start again) is followed, and versions never
  go backwards.
"""
import os
import random
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import reliability  # noqa: E402
import test_curve  # noqa: E402

sys.path.insert(0, os.path.join(harness.REPO, "python"))
import ensembled  # noqa: E402

MODELS = ["alpha", "beta", "gamma", "delta"]


def rows(task, n, seed):
    """Prediction and label events of n queries: alpha right 85 %, the
    others 65 %, over labels A/B/C."""
    rng = random.Random(seed)
    out = []
    for q in range(n):
        y = rng.choice("ABC")
        preds = {}
        for i, m in enumerate(MODELS):
            right = rng.random() < (0.85 if i == 0 else 0.65)
            preds[m] = y if right else rng.choice([c for c in "ABC" if c != y])
        out.append({"kind": "prediction", "task": task, "query": q, "predictions": preds})
        out.append({"kind": "label", "task": task, "query": q, "label": y})
    return out


def wait_body(sub_or_router, task, timeout=20.0, newer_than=0):
    def got():
        sub_or_router.poll(50)
        b = sub_or_router.get(task) if hasattr(sub_or_router, "get") else sub_or_router.body
        return b is not None and b["version"] > newer_than
    harness.wait_for(got, timeout, interval=0.0, what="a body of %s newer than %d"
                     % (task, newer_than))
    return sub_or_router.get(task) if hasattr(sub_or_router, "get") else sub_or_router.body


def publish(d, task, n=120, seed=1):
    """Feeds a task and has it published once more."""
    d.sync_send(rows(task, n, seed))
    rep = d.ctl("recompute", task=task)
    assert rep.get("ok") is True, rep


class PythonClientTest(harness.DaemonTestCase):
    def test_router_keeps_serving_with_the_daemon_down(self):
        d = self.daemon({"select": {"explore_rate": 0.2, "budget": 2}})
        router = ensembled.Router("default", publish=d.publish, ingest=d.ingest, fleet=MODELS,
                                  queue_max=2000, sndhwm=100)
        try:
            publish(d, "default")
            body = wait_body(router, "default")
            self.assertEqual(body["protocol"], 2)
            d.stop()
            # 10,000 route() calls, each reporting its answers to a daemon
            # that is gone. If a send waited on the socket the test would hang
            # here (until ctest's timeout): every call must return.
            explored = routed = 0
            rng = random.Random(3)
            for q in range(10000):
                cells = {m: rng.choice("AAB?") for m in MODELS}
                answer, asked = router.route(q, lambda m, _q, c=cells: c[m])
                self.assertTrue(set(asked) <= set(MODELS))
                want_explore = ensembled.explores("default", q, body["explore"]["rate"])
                self.assertEqual(len(asked) == len(body["explore"]["models"]), want_explore)
                explored += want_explore
                want = ensembled.Combiner(body).combine({m: cells[m] for m in asked})
                self.assertEqual(answer, want)
                routed += answer is not None
            p = router.producer
            # Every report accounted for: in the socket's pipe (at most its
            # HWM), in the bounded queue (full), or dropped.
            self.assertEqual(p.sent + p.pending + p.dropped, 10000)
            self.assertEqual(p.pending, 2000)
            self.assertLessEqual(p.sent, 100 + 10)
            self.assertEqual(router.dropped, 10000 - 2000 - p.sent)
            self.assertGreater(explored, 1500)
            self.assertGreater(routed, 6000)  # "?" from every asked model: no answer
        finally:
            router.close(timeout=0)
        self.assertEqual(router.dropped, 10000 - router.sent)

    def test_reports_reach_the_daemon(self):
        d = self.daemon()
        p = ensembled.Producer(d.ingest)
        p.prediction("default", 1, model="alpha", label="A")
        p.prediction("default", 2, predictions={"alpha": "B", "beta": "?"})
        p.label("default", 1, "A")
        p.batch([p.label_event("default", 2, "B"),
                 p.prediction_event("default", "q3", predictions={"gamma": 7})])
        p.close(timeout=5)
        self.assertEqual((p.sent, p.dropped), (4, 0))
        st = d.wait_messages(4)
        t = d.task("default", st)
        self.assertEqual(t["joined"], 2)
        self.assertEqual(sum(st["rejected"].values()), 0, st["rejected"])
        # Bad names are refused before anything is sent.
        q = ensembled.Producer(d.ingest)
        for bad in ("caf\udce9", "a\0b", ""):
            with self.assertRaises(ValueError):
                q.prediction(bad, 1, model="alpha", label="A")
            with self.assertRaises(ValueError):
                q.prediction("default", 1, model=bad, label="A")
        self.assertEqual(q.sent + q.pending, 0)
        q.close(timeout=0)

    def test_exact_topic_matching(self):
        d = self.daemon()
        med = ensembled.Subscriber(d.publish, ["med"])
        every = ensembled.Subscriber(d.publish)
        router = ensembled.Router("med", publish=d.publish)
        try:
            publish(d, "medmcqa", seed=2)
            wait_body(every, "medmcqa")
            publish(d, "med", seed=4)
            body = wait_body(med, "med")
            wait_body(router, "med")
            v = every.get("medmcqa")["version"]
            for i in range(2):  # more medmcqa publications, newer versions
                publish(d, "medmcqa", n=20, seed=5 + i)
                v = wait_body(every, "medmcqa", newer_than=v)["version"]
            med.poll(200)
            router.poll(200)
            self.assertEqual(set(med.bodies), {"med"})
            self.assertEqual(med.get("med")["version"], body["version"])
            self.assertEqual(med.rejected, 0)
            self.assertEqual(router.body["task"], "med")
            self.assertEqual(set(every.bodies), {"med", "medmcqa"})
        finally:
            for s in (med, every, router):
                s.close()

    def test_curve(self):
        d = test_curve.CurveDaemon()
        self._daemons.append(d)
        keys = (d.server_pub, d.client_pub, d.client_sec)
        router = ensembled.Router("default", publish=d.publish, ingest=d.ingest, curve=keys)
        p = ensembled.Producer(d.ingest, curve=keys)
        try:
            p.batch(rows("default", 60, 8))
            harness.wait_for(lambda: d.status()["events_in"] >= 120, 10, what="events in")
            self.assertEqual(d.ctl("recompute", task="default").get("ok"), True)
            self.assertEqual(wait_body(router, "default")["task"], "default")
        finally:
            router.close(timeout=0)
            p.close(timeout=0)

    def test_last_value_cache_and_reconnect(self):
        d = reliability.RestartableDaemon()
        try:
            publish(d, "default")
            early = ensembled.Subscriber(d.publish, ["default"], reconnect_ivl_ms=50)
            v1 = wait_body(early, "default")["version"]
            # A subscriber started late gets the current body at once.
            late = ensembled.Subscriber(d.publish, ["default"])
            self.assertEqual(wait_body(late, "default")["version"], v1)
            late.close()

            # An older version (a replayed or stray body) never replaces it.
            frames = [ensembled.topic("default"),
                      msgpack.packb(dict(early.get("default"), version=v1 - 1))]
            self.assertIsNotNone(early._take(frames))
            self.assertFalse(early._accept(*early._take(frames)))
            self.assertEqual(early.stale, 1)
            self.assertEqual(early.get("default")["version"], v1)

            # Restarted with its state: the versions go on from where they were.
            d.stop()
            d.restart()
            publish(d, "default", n=30, seed=6)
            v2 = wait_body(early, "default", newer_than=v1)["version"]
            self.assertGreater(v2, v1)
            self.assertGreaterEqual(early.reconnects, 1)

            # Restarted without its state (versions start again from 1): after
            # the reconnect the new daemon's body is taken.
            d.stop()
            for f in os.listdir(d.dir):
                if f not in ("ensembled.conf", "ensembled.log"):
                    p = os.path.join(d.dir, f)
                    if os.path.isfile(p):
                        os.unlink(p)
            d.restart()
            publish(d, "default", n=60, seed=7)
            harness.wait_for(lambda: early.poll(50) is not None
                             and early.get("default")["version"] < v2, 20, interval=0.0,
                             what="the restarted daemon's body")
            self.assertGreaterEqual(early.restarts, 1)
            early.close()
        finally:
            d.stop()
            d.cleanup()


if __name__ == "__main__":
    harness.main()
