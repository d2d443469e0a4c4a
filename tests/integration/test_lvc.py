#!/usr/bin/env python3
"""Last-value cache of the XPUB socket: a subscriber that connects after the
last publication gets it at once, with the same version."""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def rows_batch(n, task="default", offset=0):
    """n joined rows of a two-model, two-label task, as one batch."""
    batch = []
    for q in range(offset, offset + n):
        truth = "A" if q % 3 else "B"
        other = "B" if truth == "A" else "A"
        batch.append({"kind": "prediction", "task": task, "query": q,
                      "predictions": {"m1": truth, "m2": truth if q % 5 else other}})
        batch.append({"kind": "label", "task": task, "query": q, "label": truth})
    return batch


class LastValueCacheTest(harness.DaemonTestCase):

    def test_late_subscribers_get_the_cached_body(self):
        d = self.daemon()
        first = d.subscriber("ensemble.default")
        d.sync_send(rows_batch(60))
        d.sync_send(rows_batch(40, task="other"))
        self.assertEqual(d.task()["joined"], 60)
        _, body = d.recompute_and_receive(first)
        self.assertEqual(body["version"], 1)
        # Publish "other" too, so that the prefix subscription has two topics.
        other_sub = d.subscriber("ensemble.other")
        _, other_body = d.recompute_and_receive(other_sub, task="other")
        self.assertEqual(other_body["task"], "other")
        st0 = d.status()

        # A late router: subscribes after the publication, gets it < 1 s.
        late = d.subscriber("ensemble.default")
        t0 = time.monotonic()
        topic, cached = d.recv_pub(late, timeout=1.0)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(topic, "ensemble.default")
        self.assertEqual(cached["version"], body["version"])
        self.assertEqual(cached, body, "the cached resend is the same body")

        # Prefix "ensemble.": every task's latest body, each once.
        prefix = d.subscriber("ensemble.")
        got = {}
        deadline = time.monotonic() + 1.0
        while len(got) < 2 and time.monotonic() < deadline:
            topic, b = d.recv_pub(prefix, timeout=max(0.01, deadline - time.monotonic()))
            self.assertNotIn(topic, got, "a task's body resent twice for one subscription")
            got[topic] = b
        self.assertEqual(set(got), {"ensemble.default", "ensemble.other"})
        self.assertEqual(got["ensemble.default"], body)
        self.assertEqual(got["ensemble.other"], other_body)

        # Resends are the same version, counted apart from publications:
        # one for the late subscriber, two for the prefix; status and the
        # ensemble command agree.
        self.assertEqual(d.task()["version"], 1)
        self.assertEqual(d.task("other")["version"], 1)
        self.assertEqual(d.ctl("ensemble", task="default")["ensemble"], body)
        st = d.status()
        self.assertEqual(st["published"], st0["published"])
        self.assertEqual(st["cache_resends"], st0["cache_resends"] + 3)

        # Every body says its protocol version.
        self.assertEqual(body["protocol"], 2)

        # A subscriber to an unrelated prefix gets nothing.
        stranger = d.subscriber("ensemble.nosuchtask")
        self.assertFalse(stranger.poll(300), "no body for a topic without a task")

        # The early subscriber sees the resends too, still version 1, and
        # the next publication is version 2.
        while first.poll(100):
            _, again = d.recv_pub(first, 0.1)
            self.assertEqual(again["version"], 1)
        _, nxt = d.recompute_and_receive(first)
        self.assertEqual(nxt["version"], 2)
        latest = d.subscriber("ensemble.default")
        _, cached2 = d.recv_pub(latest, timeout=1.0)
        self.assertEqual(cached2["version"], 2)
        self.assertEqual(cached2, nxt)

    def test_no_body_before_first_publication(self):
        d = self.daemon()
        sub = d.subscriber("ensemble.")
        self.assertFalse(sub.poll(300), "nothing published yet, nothing cached")
        rep = d.ctl("ensemble", task="default")
        self.assertIs(rep["ok"], False)
        self.assertIn("error", rep)


if __name__ == "__main__":
    harness.main()


class ExactTopicTest(harness.DaemonTestCase):

    def test_a_task_topic_matches_that_task_only(self):
        """Topics end with NUL: "med"'s subscriber never gets "medmcqa"'s
        bodies, from the cache or live; the bare prefix gets both."""
        d = self.daemon()
        d.sync_send(rows_batch(40, task="medmcqa"))
        d.sync_send(rows_batch(40, task="med"))
        long_sub = d.subscriber("medmcqa".join(["ensemble.", ""]), exact=True)
        _, long_body = d.recompute_and_receive(long_sub, task="medmcqa")
        self.assertEqual(long_body["task"], "medmcqa")
        med = d.subscriber("ensemble.med", exact=True)
        self.assertFalse(med.poll(300), "no cached body for med yet")
        d.ctl("recompute", task="medmcqa")
        _, again = d.recv_pub(long_sub)
        self.assertEqual(again["task"], "medmcqa")
        self.assertFalse(med.poll(300), "med's subscriber got medmcqa's body")
        topic, body = d.recompute_and_receive(med, task="med")
        self.assertEqual((topic, body["task"]), ("ensemble.med", "med"))
        both = d.subscriber("ensemble.med")
        got = set()
        while both.poll(500):
            got.add(d.recv_pub(both, 0.5)[0])
        self.assertEqual(got, {"ensemble.med", "ensemble.medmcqa"})

