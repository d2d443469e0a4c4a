#!/usr/bin/env python3
"""Joins of predictions and labels (docs/protocol.md, "Joins")."""
import ctypes
import ctypes.util
import os
import struct
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def pred(q, model, label, task=None, **kw):
    e = {"kind": "prediction", "query": q, "model": model, "label": label}
    if task:
        e["task"] = task
    e.update(kw)
    return e


def lab(q, label, task=None, **kw):
    e = {"kind": "label", "query": q, "label": label}
    if task:
        e["task"] = task
    e.update(kw)
    return e


ACCOUNTING = ("joined", "pending", "expired", "evicted")


class JoinTest(harness.DaemonTestCase):

    def assertAccounting(self, t):
        self.assertEqual(t["queries"], sum(t[k] for k in ACCOUNTING), t)

    def test_label_before_prediction_joins(self):
        d = self.daemon()
        d.sync_send(lab("q1", "A"), lab("q2", "B"))
        t = d.task()
        self.assertEqual((t["joined"], t["pending"], t["rows"]), (0, 2, 0), t)
        d.sync_send(pred("q1", "m1", "A"))
        t = d.task()
        self.assertEqual((t["joined"], t["pending"], t["rows"]), (1, 1, 1), t)
        d.sync_send(pred("q2", "m1", "A"), pred("q2", "m2", "B"))
        t = d.task()
        # m2's answer came after q2 joined: late, not a second row.
        self.assertEqual((t["joined"], t["pending"], t["rows"]), (2, 0, 2), t)
        self.assertEqual(t["late_predictions"], 1, t)
        self.assertEqual(t["queries"], 2, t)
        self.assertAccounting(t)

    # A "predictions" map arriving after its label joins with every answer
    # it carries: one event's answers belong to one row.
    def test_label_before_predictions_map_keeps_every_answer(self):
        d = self.daemon()
        sub = d.subscriber()
        msgs = []
        for q in range(30):
            y = "A" if q % 2 else "B"
            msgs += [lab(q, y), {"kind": "prediction", "query": q,
                                 "predictions": {"m1": y, "m2": y, "m3": "A"}}]
        d.sync_send(*msgs)
        t = d.task()
        self.assertEqual((t["joined"], t["rows"], t["pending"]), (30, 30, 0), t)
        _, body = d.recompute_and_receive(sub)
        self.assertEqual(body["coverage"], {"m1": 30, "m2": 30, "m3": 30}, body["coverage"])
        self.assertEqual(t["late_predictions"], 0, t)

    def test_prediction_before_label_joins(self):
        d = self.daemon()
        d.sync_send([pred(i, "m1", "A") for i in range(10)])
        t = d.task()
        self.assertEqual((t["joined"], t["pending"], t["rows"]), (0, 10, 0), t)
        d.sync_send([lab(i, "A") for i in range(10)])
        t = d.task()
        self.assertEqual((t["joined"], t["pending"], t["rows"], t["queries"]), (10, 0, 10, 10), t)
        self.assertAccounting(t)

    def test_duplicates_keep_the_first(self):
        d = self.daemon()
        sub = d.subscriber()
        n = 40
        msgs = []
        for q in range(n):
            truth, wrong = ("A", "B") if q % 2 else ("B", "A")
            # Queries 0..19: predictions first, a duplicate answer of m1.
            # Queries 20..39: labels first, a duplicate label.
            if q < 20:
                msgs += [pred(q, "m1", truth), pred(q, "m1", wrong), pred(q, "m2", "A"),
                         lab(q, truth)]
            else:
                msgs += [lab(q, truth), lab(q, wrong), pred(q, "m1", truth),
                         pred(q, "m2", "A")]
        d.sync_send(*msgs)
        t = d.task()
        self.assertEqual(t["duplicate_predictions"], 20, t)
        self.assertEqual(t["duplicate_labels"], 20, t)
        self.assertEqual(t["joined"], n, t)
        self.assertEqual(t["rows"], n, t)
        self.assertEqual(t["pending"], 0, t)
        self.assertEqual(t["late_predictions"], 20, t)  # m2 after the label-first joins
        self.assertEqual(t["late_labels"], 0, t)
        self.assertAccounting(t)
        # The first answer and the first label were kept: m1 is always right.
        _, body = d.recompute_and_receive(sub)
        self.assertEqual(body["models"][0], "m1", body)
        self.assertEqual(body["combiner"]["weights"][0], 1.0, body["combiner"])

    def test_late_prediction_and_label(self):
        d = self.daemon()
        d.sync_send(pred(1, "m1", "A"), lab(1, "A"))
        t = d.task()
        self.assertEqual((t["joined"], t["rows"]), (1, 1), t)
        d.sync_send(pred(1, "m2", "B"), pred(1, "m1", "B"), lab(1, "B"))
        t = d.task()
        self.assertEqual(t["late_predictions"], 2, t)
        self.assertEqual(t["late_labels"], 1, t)
        self.assertEqual((t["joined"], t["rows"], t["pending"], t["queries"]), (1, 1, 0, 1), t)
        self.assertEqual(t["duplicate_predictions"] + t["duplicate_labels"], 0, t)
        self.assertAccounting(t)

    def test_ttl_expiry(self):
        d = self.daemon({"join": {"ttl": "300ms"}})
        d.sync_send(pred("lonely", "m1", "A"))
        t0 = time.monotonic()
        t = d.task()
        self.assertEqual((t["pending"], t["expired"]), (1, 0), t)
        box = {}

        def expired():
            box["t"] = d.task()
            return box["t"]["expired"] == 1

        harness.wait_for(expired, 3.0, what="the pending query to expire (%r)" % box.get("t"))
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 1.0, "expired after %.2f s with ttl 300ms" % elapsed)
        t = d.task()
        self.assertEqual((t["pending"], t["expired"], t["joined"], t["rows"]), (0, 1, 0, 0), t)
        self.assertAccounting(t)
        # Its label arrives too late: a new pending query, no row.
        d.sync_send(lab("lonely", "A"))
        t = d.task()
        self.assertEqual((t["joined"], t["rows"], t["pending"], t["queries"]), (0, 0, 1, 2), t)
        self.assertAccounting(t)
        # A query completed within the TTL joins.
        d.sync_send(pred("quick", "m1", "A"), lab("quick", "A"))
        t = d.task()
        self.assertEqual((t["joined"], t["rows"]), (1, 1), t)
        self.assertAccounting(t)

    def test_pending_cap_evicts_the_oldest(self):
        d = self.daemon({"join": {"max_pending": 5}})
        d.sync_send(*[pred(q, "m1", "A") for q in range(8)])
        t = d.task()
        self.assertEqual((t["queries"], t["pending"], t["evicted"], t["joined"]),
                         (8, 5, 3, 0), t)
        self.assertAccounting(t)
        # The newest (7) is still pending: its label joins.
        d.sync_send(lab(7, "A"))
        t = d.task()
        self.assertEqual((t["joined"], t["rows"], t["pending"]), (1, 1, 4), t)
        # The oldest (0) was evicted: its label finds no prediction.
        d.sync_send(lab(0, "A"))
        t = d.task()
        self.assertEqual((t["joined"], t["rows"], t["pending"], t["queries"]), (1, 1, 5, 9), t)
        self.assertAccounting(t)

    def test_integer_and_string_queries_do_not_collide(self):
        d = self.daemon()
        d.sync_send(pred(7, "m1", "A"), lab("7", "A"))
        t = d.task()
        self.assertEqual((t["joined"], t["pending"], t["queries"]), (0, 2, 2), t)
        d.sync_send(lab(7, "A"))
        t = d.task()
        self.assertEqual((t["joined"], t["pending"], t["rows"]), (1, 1, 1), t)
        d.sync_send(pred("7", "m1", "B"))
        t = d.task()
        self.assertEqual((t["joined"], t["pending"], t["rows"]), (2, 0, 2), t)
        self.assertEqual(t["late_predictions"] + t["late_labels"], 0, t)
        self.assertAccounting(t)

    def test_integer_and_string_labels_are_the_same(self):
        d = self.daemon()
        sub = d.subscriber()
        msgs = []
        for q in range(20):
            truth = 3 if q % 2 else 4
            # Integers in predictions, their decimal text as truths, and
            # the other way round.
            msgs += [pred(q, "m1", truth), lab(q, str(truth))]
            msgs += [pred(100 + q, "m1", str(truth)), lab(100 + q, truth)]
        d.sync_send(*msgs)
        t = d.task()
        self.assertEqual(t["joined"], 40, t)
        self.assertEqual(t["labels"], 2, "3 and \"3\" are one label: %r" % t)
        _, body = d.recompute_and_receive(sub)
        self.assertEqual(sorted(body["labels"]), ["3", "4"])
        # m1 answered the truth every time, as integer or string.
        self.assertEqual(body["models"], ["m1"], body)
        self.assertEqual(body["combiner"]["weights"], [1.0], body)
        self.assertEqual(body["accuracy"]["in_sample"], 1.0, body["accuracy"])

    def test_tasks_are_separate_namespaces(self):
        d = self.daemon()
        d.sync_send(pred(1, "m1", "A", task="t1"), lab(1, "A", task="t2"))
        st = d.status()
        self.assertEqual(st["tasks"]["t1"]["pending"], 1)
        self.assertEqual(st["tasks"]["t2"]["pending"], 1)
        self.assertNotIn("default", st["tasks"])
        d.sync_send(pred(1, "m1", "A"), lab(1, "A"))
        self.assertEqual(d.task()["joined"], 1)

    def test_sample_rate_keeps_queries_whole(self):
        rate = 0.5
        d = self.daemon({"ingest": {"sample_rate": rate}})
        n = 400
        msgs = []
        for q in range(n):
            key = q if q % 2 else "s%d" % q
            # Label first for some, predictions first for others, from two
            # models in separate events: every event of a query is sampled
            # the same way.
            evs = [pred(key, "m1", "A"), pred(key, "m2", "B"), lab(key, "A")]
            if q % 3 == 0:
                evs.reverse()
            msgs.append(evs)
        d.sync_send(*msgs)
        t = d.task()
        self.assertEqual(t["pending"], 0, "a query split by sampling stays pending: %r" % t)
        kept = t["joined"]
        left = n - kept
        self.assertTrue(0.35 * n < kept < 0.65 * n, t)
        self.assertEqual(t["queries"], kept, t)
        self.assertEqual(t["rows"], kept, t)
        self.assertIn(t["sampled_out"], (left, 3 * left),
                      "sampled_out counts left-out queries or their events: %r" % t)
        self.assertAccounting(t)

        # The documented rule, when libxxhash is at hand: XXH3-64 (seed 0)
        # of task || 0x00 || key below rate * 2^64.
        lib = None
        for name in (ctypes.util.find_library("xxhash"), "libxxhash.so.0", "libxxhash.so"):
            if not name:
                continue
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if lib is None:
            self.skipTest("libxxhash not loadable: the exact rule is not checked")
        lib.XXH3_64bits.restype = ctypes.c_uint64
        lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]

        def kept_by_rule(key):
            k = b"u" + struct.pack(">Q", key) if isinstance(key, int) else b"s" + key.encode()
            buf = b"default\x00" + k
            return lib.XXH3_64bits(buf, len(buf)) < rate * 2.0 ** 64

        expected = sum(1 for q in range(n) if kept_by_rule(q if q % 2 else "s%d" % q))
        self.assertEqual(kept, expected)


if __name__ == "__main__":
    harness.main()
