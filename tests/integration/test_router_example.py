#!/usr/bin/env python3
"""examples/router.py, the reference router, against the real daemon.

Its exploration rule is checked against libxxhash itself (through ctypes),
and a whole closed loop over a real data set runs through it: every row
joins, ensembles are published, the router follows them and its combined
answers are as accurate as the daemon says.
"""
import contextlib
import ctypes
import ctypes.util
import importlib.util
import io
import os
import sys

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "router", os.path.join(HERE, "..", "..", "examples", "router.py"))
router = importlib.util.module_from_spec(spec)
spec.loader.exec_module(router)


def libxxhash():
    for name in (ctypes.util.find_library("xxhash"), "libxxhash.so.0"):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        f = lib.XXH3_64bits_withSeed
        f.restype = ctypes.c_uint64
        f.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
        return f
    return None


class RouterExampleTest(harness.DaemonTestCase):
    def test_exploration_rule_is_the_documented_hash(self):
        xxh3 = libxxhash()
        if xxh3 is None:
            self.skipTest("libxxhash not found")
        rate, hits = 0.1, 0
        for q in list(range(1, 3001)) + ["q-%d" % i for i in range(3000)]:
            key = (b"u" + q.to_bytes(8, "big")) if isinstance(q, int) else b"s" + q.encode()
            data = b"medqa\0" + key
            want = xxh3(data, len(data), 1) < rate * 2.0 ** 64
            self.assertEqual(router.explores("medqa", q, rate), want, q)
            hits += want
        self.assertTrue(0.08 < hits / 6000 < 0.12, hits)

    def test_closed_loop_over_real_data(self):
        d = self.daemon({"publish": {"every_labels": 200},
                         "select": {"explore_rate": 0.1, "min_rows": 50}})
        path = harness.data_file("winogrande_routerbench_11llm.csv")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = router.main(["--csv", path, "--ingest", d.ingest, "--publish", d.publish,
                              "--label-delay", "50", "--rate", "1500"])
        self.assertEqual(rc, 0)
        rows = len(harness.csv_rows(path)[1])
        harness.wait_for(lambda: (d.task() or {}).get("joined") == rows, 20,
                         what="every routed query joined")
        t = d.task()
        self.assertEqual(t["pending"], 0)
        self.assertGreaterEqual(t["version"], 3)
        summary = out.getvalue()
        print("router: " + summary.strip(), file=sys.stderr)
        fields = dict(kv.rsplit(" ", 1) for kv in summary.strip().split(", "))
        # Routed by the ensemble on most queries, asking far fewer than the
        # 11 models on average, and as accurate as the best model (0.858).
        self.assertGreater(int(fields["routed by an ensemble"]), rows // 2)
        self.assertLess(float(fields["models asked per query"]), 6.0)
        self.assertGreater(float(fields["accuracy"]), 0.82, summary)


if __name__ == "__main__":
    harness.main()
