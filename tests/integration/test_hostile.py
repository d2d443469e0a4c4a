#!/usr/bin/env python3
"""Hostile input on the ingest socket (docs/protocol.md, "Bad input").

Each malformed message is followed by a valid one. The daemon must stay up,
count exactly one rejection for the documented reason, keep nothing of the
bad message (a batch with one bad event is rejected whole) and still join
the valid event that follows."""
import math
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import pack  # noqa: E402

import msgpack  # noqa: E402
import zmq  # noqa: E402


def pred(q, model="m1", label="A", **kw):
    e = {"kind": "prediction", "query": q, "model": model, "label": label}
    e.update(kw)
    return e


def lab(q, label="A", **kw):
    e = {"kind": "label", "query": q, "label": label}
    e.update(kw)
    return e


def good(q):
    """One valid message: a complete query of the two known models."""
    return [pred(q, "m1", "A"), pred(q, "m2", "B"), lab(q, "A")]


def poison(i):
    """Valid events of a fresh query, a fresh model and a fresh label: if
    any of them were kept, joined, models or labels would move."""
    q = "poison-%d" % i
    return [{"kind": "prediction", "query": q, "predictions": {"evil": "Z", "m1": "A"}},
            lab(q, "A")]


def nested(depth):
    """An event whose ignored extra field nests arrays so that the whole
    message is depth containers deep."""
    v = []
    for _ in range(depth - 2):
        v = [v]
    e = pred("deep")
    e["extra"] = v
    return e


def dup_key_map():
    """An event map that gives "query" twice (msgpack-python cannot)."""
    body = b"".join(pack(x) for x in ("kind", "label", "query", "q1", "query", "q2",
                                      "label", "A"))
    return b"\x84" + body


NAN = float("nan")


def packraw(obj):
    """Packs bytes as MessagePack str (not bin), to send names that are not
    UTF-8."""
    return msgpack.packb(obj, use_bin_type=False)


# (name, message bytes, reason)
CASES = [
    ("empty message", b"", "malformed"),
    ("never-used byte 0xc1", b"\xc1", "malformed"),
    ("truncated map", pack(pred("t1"))[:-3], "malformed"),
    ("truncated string header", b"\x81\xa4kind\xd9", "malformed"),
    ("array32 claiming 4G elements", b"\xdd\xff\xff\xff\xff", "malformed"),
    ("map32 claiming 4G pairs", b"\xdf\xff\xff\xff\xff", "malformed"),
    ("str32 claiming 4 GB", b"\xdb\xff\xff\xff\xffabc", "malformed"),
    ("batch header larger than its events", b"\xdc\x00\x05" + pack(pred("b1")), "malformed"),
    ("nesting depth 10", pack(nested(10)), "too_deep"),
    ("nesting depth 10 in a batch", pack([nested(9)] + poison(0)), "too_deep"),
    ("trailing garbage", pack(pred("tg")) + b"\xc0", "trailing_bytes"),
    ("two objects in one message", pack(pred("two")) + pack(lab("two")), "trailing_bytes"),
    ("a bare integer", pack(5), "not_event"),
    ("a string", pack("prediction"), "not_event"),
    ("array of integers", pack([1, 2, 3]), "not_event"),
    ("batch with a non-map", pack(poison(1) + [7]), "not_event"),
    ("empty batch", b"\x90", "empty_batch"),
    ("empty map", b"\x80", "bad_kind"),
    ("kind missing", pack({"query": "k", "model": "m1", "label": "A"}), "bad_kind"),
    ("kind foo", pack(dict(pred("k"), kind="foo")), "bad_kind"),
    ("query float", pack(pred(1.5)), "bad_type"),
    ("query negative", pack(pred(-3)), "bad_type"),
    ("query nil", pack(pred(None)), "bad_type"),
    ("query missing", pack({"kind": "label", "label": "A"}), "no_query"),
    ("query empty", pack(lab("")), "no_query"),
    ("model int", pack(pred("mi", model=5)), "bad_type"),
    ("label float", pack(pred("lf", label=2.5)), "bad_type"),
    ("label a list", pack(lab("ll", label=["A"])), "bad_type"),
    ("predictions a list", pack({"kind": "prediction", "query": "pl",
                                 "predictions": ["m1", "A"]}), "bad_type"),
    ("task int", pack(pred("ti", task=3)), "bad_type"),
    ("prediction without model", pack({"kind": "prediction", "query": "nm", "label": "A"}),
     "no_model"),
    ("label event without label", pack({"kind": "label", "query": "nl"}), "no_label"),
    ("label '?' as truth", pack(lab("lq", label="?")), "no_label"),
    ("ts NaN", pack(pred("tn", ts=NAN)), "bad_ts"),
    ("ts -1", pack(pred("tm", ts=-1.0)), "bad_ts"),
    ("ts +inf", pack(lab("tinf", ts=math.inf)), "bad_ts"),
    ("ts a string", pack(lab("tstr", ts="now")), "bad_ts"),
    ("cost 'x'", pack(pred("cx", cost="x")), "bad_cost"),
    ("cost -1", pack(pred("cm", cost=-1.0)), "bad_cost"),
    ("cost NaN", pack(pred("cn", cost=NAN)), "bad_cost"),
    ("cost 1e308, above ingest.max_cost", pack(pred("cbig", cost=1e308)), "bad_cost"),
    ("duplicate key", dup_key_map(), "duplicate_key"),
    ("model name 300 bytes", pack(pred("long", model="x" * 300)), "name_too_long"),
    ("task name 300 bytes", pack(pred("long", task="t" * 300)), "name_too_long"),
    ("query 300 bytes", pack(pred("q" * 300)), "name_too_long"),
    ("label 300 bytes", pack(lab("ll3", label="L" * 300)), "name_too_long"),
    ("empty model name", pack(pred("em", model="")), "empty_name"),
    ("empty task name", pack(pred("et", task="")), "empty_name"),
    ("empty label", pack(lab("el", label="")), "empty_name"),
    ("empty model in predictions", pack({"kind": "prediction", "query": "ep",
                                         "predictions": {"": "A"}}), "empty_name"),
    ("task not UTF-8", packraw(pred("u1", task=b"caf\xe9")), "bad_name"),
    ("model with a NUL byte", pack(pred("u2", model="m\0a")), "bad_name"),
    ("label a UTF-16 surrogate", packraw(lab("u3", label=b"\xed\xa0\x80")), "bad_name"),
    ("overlong answer in predictions", packraw({"kind": "prediction", "query": "u4",
                                                "predictions": {b"m1": b"\xc0\xaf"}}),
     "bad_name"),
    ("label truncated UTF-8", packraw(lab("u5", label=b"A\xe2\x82")), "bad_name"),
    ("protocol 3", pack(pred("p3", protocol=3)), "bad_protocol"),
    ("protocol a string", pack(pred("p4", protocol="2")), "bad_protocol"),
    ("1025 predictions", pack({"kind": "prediction", "query": "many",
                               "predictions": {"m%d" % i: "A" for i in range(1025)}}),
     "too_many_predictions"),
    ("batch of 10001 events", pack([lab(i) for i in range(10001)]), "batch_too_long"),
    ("batch with one bad event among good ones",
     pack(poison(2) + [pred("bb", kind="foo")] + poison(3)), "bad_kind"),
    ("batch with a 300-byte model at the end",
     pack(poison(4) + [pred("bb2", model="y" * 300)]), "name_too_long"),
]

REJECT_REASONS = {
    "too_big", "malformed", "trailing_bytes", "too_deep", "not_event", "batch_too_long",
    "empty_batch", "bad_kind", "bad_type", "duplicate_key", "no_query", "no_model",
    "no_label", "name_too_long", "empty_name", "bad_name", "bad_protocol", "bad_ts", "bad_cost",
    "too_many_predictions"}
DROP_REASONS = {"too_many_tasks", "too_many_models", "too_many_labels"}

TASK_COUNTERS = ("rows", "pending", "models", "labels", "queries", "joined", "expired",
                 "evicted", "late_predictions", "late_labels", "duplicate_predictions",
                 "duplicate_labels", "sampled_out")


class HostileTest(harness.DaemonTestCase):

    def check_one(self, d, name, msg, reason, q, expect_rejected=True, pusher=None):
        st0 = d.status()
        t0 = st0["tasks"]["default"]
        if pusher is None:
            d.send(msg)
            d.send(good(q))
        else:
            pusher.send(msg)
            pusher.send(pack(good(q)))
        box = {}

        def joined():
            box["st"] = d.status()
            return box["st"]["tasks"]["default"]["joined"] >= t0["joined"] + 1

        self.assertIsNone(d.proc.poll(), "%s: the daemon died" % name)
        harness.wait_for(joined, 10, what="%s: the valid event after it to join" % name)
        st = d.status()
        t = st["tasks"]["default"]
        ctx = "%s: before %r\nafter %r" % (name, st0, st)
        if expect_rejected:
            self.assertEqual(st["messages_in"] - st0["messages_in"], 2, ctx)
        for r, n in st["rejected"].items():
            want = 1 if (expect_rejected and r == reason) else 0
            self.assertEqual(n - st0["rejected"][r], want, "%s: rejected[%s]\n%s" % (name, r, ctx))
        for r, n in st["dropped"].items():
            self.assertEqual(n, st0["dropped"][r], "%s: dropped[%s]\n%s" % (name, r, ctx))
        self.assertEqual(st["events_in"] - st0["events_in"], 3, ctx)
        want = dict((k, t0[k]) for k in TASK_COUNTERS)
        want.update(rows=t0["rows"] + 1, queries=t0["queries"] + 1, joined=t0["joined"] + 1)
        self.assertEqual(dict((k, t[k]) for k in TASK_COUNTERS), want, ctx)
        self.assertEqual(set(st["tasks"]), {"default"}, ctx)

    def test_rejected_messages(self):
        d = self.daemon()
        self.assertTrue(REJECT_REASONS <= set(d.status()["rejected"]), d.status()["rejected"])
        self.assertTrue(DROP_REASONS <= set(d.status()["dropped"]), d.status()["dropped"])
        d.sync_send(good(0))
        self.assertEqual(d.task()["joined"], 1)
        seen = set()
        for i, (name, msg, reason) in enumerate(CASES, start=1):
            with self.subTest(case=name):
                self.check_one(d, name, msg, reason, i)
                seen.add(reason)
        self.assertGreaterEqual(len(CASES), 15)
        # Every decoding reason but too_big (ZeroMQ drops those first) was hit.
        self.assertEqual(REJECT_REASONS - seen, {"too_big"})
        st = d.status()
        self.assertEqual(sum(st["rejected"].values()), len(CASES), st["rejected"])
        self.assertEqual(d.task()["joined"], len(CASES) + 1)
        # A rejected message is logged (at most once a second per reason).
        d.wait_log("rejected")
        d.wait_log("bad_kind")

    def test_accepted_edge_cases(self):
        """What the protocol allows must not be rejected."""
        d = self.daemon()
        d.sync_send(good(0))
        cases = [
            ("unknown keys are ignored", pack(dict(pred("u1"), extra={"x": [1, 2]},
                                                   version=2))),
            ("256-byte names", pack(pred("n" * 256, model="m1", label="A"))),
            ("nil answer: an abstention", pack(pred("ab1", label=None))),
            ("'?' answer: an abstention", pack(pred("ab2", label="?"))),
            ("integer label", pack(pred("il", label=3))),
            ("integer cost and ts", pack(pred("ic", cost=2, ts=1700000000))),
            ("float cost and ts", pack(pred("fc", cost=0.25, ts=1700000000.5))),
            ("zero cost and ts", pack(pred("zc", cost=0, ts=0))),
            ("uint64 query", pack(pred(2 ** 64 - 1))),
            ("batch of one", pack([pred("b1")])),
            ("multi-byte UTF-8 names", pack(pred("mb", model="mod\u00e8le", label="\u00c0\U0001f600"))),
            ("a query id that is not UTF-8", packraw(pred(b"q\xff\x00"))),
            ("protocol 1", pack(pred("p1", protocol=1))),
            ("protocol 2", pack(pred("p2", protocol=2))),
        ]
        for i, (name, msg) in enumerate(cases, start=1):
            with self.subTest(case=name):
                st0 = d.status()
                st = d.sync_send(msg)
                self.assertEqual(st["rejected"], st0["rejected"], name)
                self.assertGreater(st["events_in"], st0["events_in"], name)
        t = d.task()
        self.assertEqual(t["pending"], len(cases), t)
        self.assertEqual(t["queries"], 1 + len(cases), t)
        # The 256-byte query joins like any other.
        d.sync_send(lab("n" * 256, "A"))
        self.assertEqual(d.task()["joined"], 2)

    def test_capacity_drops_are_whole(self):
        d = self.daemon({"ingest": {"max_models": 4, "max_tasks": 3}})
        d.sync_send(good(0))
        base = 1

        def dropped_case(name, msg, reason):
            st0 = d.status()
            d.sync_send(msg, good("after-" + name))
            st = d.status()
            ctx = "%s: %r -> %r" % (name, st0, st)
            for r, n in st["dropped"].items():
                self.assertEqual(n - st0["dropped"][r], 1 if r == reason else 0, ctx)
            self.assertEqual(st["rejected"], st0["rejected"], ctx)
            self.assertEqual(set(st["tasks"]), set(st0["tasks"]), ctx)
            t0, t = st0["tasks"]["default"], st["tasks"]["default"]
            self.assertEqual(t["joined"], t0["joined"] + 1, ctx)
            self.assertEqual(t["queries"], t0["queries"] + 1, ctx)
            self.assertEqual((t["models"], t["labels"], t["pending"]),
                             (t0["models"], t0["labels"], t0["pending"]), ctx)

        # 3 new models in one message: 2 + 3 > 4 (the first two would fit).
        dropped_case("too many models",
                     [{"kind": "prediction", "query": "mm", "predictions":
                       {"n1": "A", "n2": "A", "n3": "A"}}, lab("mm", "A")],
                     "too_many_models")
        # 253 new labels: 2 + 253 > 254.
        dropped_case("too many labels",
                     [pred("ml%d" % i, "m1", "L%d" % i) for i in range(253)] +
                     [lab("ml0", "L0")], "too_many_labels")
        # Three new tasks: 1 + 3 > 3 (the first two would fit).
        dropped_case("too many tasks",
                     [pred(1, task="t1"), lab(1, task="t1"), pred(1, task="t2"),
                      pred(1, task="t3")],
                     "too_many_tasks")
        # Up to the limits is fine: 2 more models, 252 more labels, 2 tasks.
        st = d.sync_send([{"kind": "prediction", "query": "ok", "predictions":
                           {"n1": "A", "n2": "B"}}, lab("ok", "A")],
                         [pred("okl%d" % i, "m1", "K%d" % i) for i in range(252)],
                         [pred(1, task="t1"), pred(1, task="t2")])
        self.assertEqual(sum(st["dropped"].values()), 3, st["dropped"])
        t = st["tasks"]["default"]
        self.assertEqual((t["models"], t["labels"]), (4, 254), t)
        self.assertEqual(set(st["tasks"]), {"default", "t1", "t2"})
        self.assertEqual(t["joined"], base + 4)

    def test_oversized_message(self):
        """Larger than ingest.max_message_bytes: ZeroMQ drops it (and the
        connection); the daemon stays up and a new producer gets through."""
        d = self.daemon({"ingest": {"max_message_bytes": 4096}})
        d.sync_send(good(0))
        big = harness.ZCTX.socket(zmq.PUSH)
        big.setsockopt(zmq.LINGER, 0)
        big.connect(d.ingest)
        try:
            big.send(pack([lab("big%d" % i, "A") for i in range(1000)] + poison(9)))
            time.sleep(0.3)
        finally:
            big.close(0)
        self.assertIsNone(d.proc.poll())
        fresh = harness.ZCTX.socket(zmq.PUSH)
        fresh.setsockopt(zmq.LINGER, 1000)
        fresh.connect(d.ingest)
        try:
            fresh.send(pack(good(1)))
            harness.wait_for(lambda: d.task()["joined"] == 2, 10, what="the event after")
        finally:
            fresh.close()
        t = d.task()
        self.assertEqual((t["queries"], t["pending"], t["labels"], t["models"]), (2, 0, 2, 2), t)

    def test_hostile_control_requests(self):
        d = self.daemon()
        for req in (b"", b"\xc1", b"\xdd\xff\xff\xff\xff", pack([1, 2]), pack({"cmd": 5}),
                    pack({"nocmd": "status"}), pack({"cmd": "launch"}),
                    pack({"cmd": "ensemble", "task": 7}),
                    pack({"cmd": "recompute", "task": "nosuchtask"}),
                    pack({"cmd": "status", "task": "x" * 300})):
            rep = d.request(req)
            self.assertIs(rep.get("ok"), False, (req[:40], rep))
            self.assertIsInstance(rep.get("error"), str, rep)
            self.assertIs(d.status()["ok"], True)


if __name__ == "__main__":
    harness.main()
