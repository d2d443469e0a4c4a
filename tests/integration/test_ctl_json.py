#!/usr/bin/env python3
"""Every JSON output of ensemblectl parses, as strict JSON (no NaN, no
Infinity), with task and model names outside ASCII, and prints its reals in
the fewest digits that read back exactly; status has a human view, --task
and --json."""
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import unicodedata

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TASK = "médecine-日本"
MODELS = ["modèle-α", "模型", "plain", "émoji-🙂"]


def strict_loads(text):
    """json.loads that refuses what JSON does not have (NaN, Infinity)."""
    def refuse(name):
        raise ValueError("not JSON: " + name)
    return json.loads(text, parse_constant=refuse)


def write_csv(path, rows=400, seed=7):
    """A wide CSV: each model right with its own accuracy, else the other label."""
    rng = random.Random(seed)
    acc = [0.9, 0.8, 0.7, 0.6]
    with open(path, "w", encoding="utf-8") as f:
        f.write("item,label," + ",".join(MODELS) + "\n")
        for i in range(rows):
            y = rng.choice("AB")
            other = "B" if y == "A" else "A"
            cells = [y if rng.random() < a else other for a in acc]
            f.write("q%d,%s,%s\n" % (i, y, ",".join(cells)))


# A JSON real: a number token with a fraction or an exponent, outside strings
# (the names here hold no digits after a quote-free boundary).
REAL = re.compile(r'(?<![\w"])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?')


def long_reals(text):
    """The reals of text printed with more digits than the shortest form
    that reads back as the same double (Python's repr): 0.85699999999999998
    where 0.857 says the same."""
    out = []
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    for m in REAL.finditer(text):
        tok = m.group(0)
        if not re.search(r"[.eE]", tok):
            continue
        mant = re.split(r"[eE]", tok.lstrip("-"))[0].replace(".", "").strip("0")
        best = re.split(r"e", repr(abs(float(tok))))[0].replace(".", "").strip("0")
        if len(mant) > len(best):
            out.append(tok)
    return out


class CtlJsonTest(harness.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.TemporaryDirectory(prefix="ctl-json-")
        self.csv = os.path.join(self.tmp.name, "fleet.csv")
        write_csv(self.csv)

    def tearDown(self):
        self.tmp.cleanup()
        super().tearDown()

    def check_json(self, r, what):
        self.assertEqual(r.returncode, 0, (what, r.stderr))
        lines = r.stdout.strip().splitlines()
        self.assertTrue(lines, what)
        docs = [strict_loads(line) for line in lines]
        self.assertEqual(long_reals(r.stdout), [], what)
        return docs

    def assertSame(self, got, ref, path):
        if isinstance(ref, float) and ref == ref and abs(ref) != float("inf"):
            self.assertEqual(got, ref, path)
        elif isinstance(ref, float) or ref is None:
            self.assertIsNone(got, path)
        elif isinstance(ref, dict):
            self.assertEqual(set(got), {k for k in ref}, path)
            for k in ref:
                self.assertSame(got[k], ref[k], path + "." + k)
        elif isinstance(ref, list):
            self.assertEqual(len(got), len(ref), path)
            for i, (g, r) in enumerate(zip(got, ref)):
                self.assertSame(g, r, "%s[%d]" % (path, i))
        else:
            self.assertEqual(got, ref, path)

    def test_offline_outputs_parse(self):
        r = harness.run_ctl("select", "--csv", self.csv, "--budget", 2, "--splits", 2,
                            "--strategy", "all", "--json")
        (doc,) = self.check_json(r, "select --json")
        names = {m for s in doc["selections"] for m in s["models"]}
        self.assertTrue(names <= set(MODELS), names)
        self.assertIn("modèle-α", names)
        r = harness.run_ctl("floor", "--csv", self.csv, "--max-k", 3, "--splits", 2, "--json")
        (doc,) = self.check_json(r, "floor --json")
        self.assertEqual([m["name"] for m in doc["models"]], MODELS)
        r = harness.run_ctl("select", "--csv", self.csv, "--body", "--task", TASK)
        (doc,) = self.check_json(r, "select --body")
        self.assertEqual(doc["task"], TASK)

    def test_names_outside_utf8_stay_valid_json(self):
        # The daemon refuses such names on the wire, but a CSV may hold
        # any bytes: the writer puts U+FFFD for the byte that is not UTF-8.
        path = os.path.join(self.tmp.name, "latin1.csv")
        with open(path, "wb") as f:
            f.write(b"item,label,caf\xe9,ok\nq1,A,A,B\nq2,B,B,B\nq3,A,A,A\nq4,B,A,B\n")
        for args in (("select", "--csv", path, "--budget", 1, "--splits", 0, "--json"),
                     ("floor", "--csv", path, "--json")):
            r = subprocess.run([harness.ENSEMBLECTL] + [str(a) for a in args],
                               capture_output=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            doc = strict_loads(r.stdout.decode("utf-8"))
            self.assertIn("caf\ufffd", json.dumps(doc, ensure_ascii=False))

    def test_daemon_outputs_parse(self):
        d = self.daemon()
        r = harness.run_ctl("replay", "--csv", self.csv, "--ingest", d.ingest, "--task", TASK,
                            "--label-lag", 0)
        self.assertEqual(r.returncode, 0, r.stderr)
        harness.wait_for(lambda: (d.task(TASK) or {}).get("rows", 0) >= 400, 20,
                         what="the rows joined")
        d.ctl("recompute", task=TASK)
        harness.wait_for(lambda: d.task(TASK)["version"] >= 1, 20, what="a publication")

        r = harness.run_ctl("status", "--control", d.control, "--json")
        (st,) = self.check_json(r, "status --json")
        self.assertEqual(st["tasks"][TASK]["rows"], 400)
        self.assertEqual(sorted(st["tasks"][TASK]["ensemble"]),
                         sorted(d.task(TASK)["ensemble"]))

        r = harness.run_ctl("status", "--control", d.control, "--json", "--task", TASK)
        (only,) = self.check_json(r, "status --json --task")
        self.assertEqual(list(only["tasks"]), [TASK])

        r = harness.run_ctl("ensemble", "--control", d.control, "--task", TASK)
        (ens,) = self.check_json(r, "ensemble")
        body = ens["ensemble"]
        self.assertEqual(body["task"], TASK)
        self.assertTrue(set(body["models"]) <= set(MODELS))
        # Every figure as the daemon sent it (MessagePack, read by Python),
        # to the last bit.
        self.assertSame(body, d.ctl("ensemble", task=TASK)["ensemble"], "body")

        r = harness.run_ctl("recompute", "--control", d.control, "--task", TASK)
        self.check_json(r, "recompute")

        r = harness.run_ctl("watch", "--publish", d.publish, "--task", TASK, "--count", 1,
                            "--json", timeout=60)
        (pub,) = self.check_json(r, "watch --json")
        self.assertEqual(pub["task"], TASK)

    def test_status_human_view(self):
        d = self.daemon()
        r = harness.run_ctl("replay", "--csv", self.csv, "--ingest", d.ingest, "--task", TASK,
                            "--label-lag", 0)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = harness.run_ctl("replay", "--csv", self.csv, "--ingest", d.ingest, "--task", "other",
                            "--label-lag", 0)
        self.assertEqual(r.returncode, 0, r.stderr)
        harness.wait_for(lambda: all((d.task(t) or {}).get("rows", 0) >= 400
                                     for t in (TASK, "other")), 20, what="the rows joined")
        r = harness.run_ctl("status", "--control", d.control)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertTrue(lines[0].startswith("ensembled "), lines[0])
        header = next(i for i, l in enumerate(lines) if l.startswith("TASK"))
        self.assertIn("PENDING", lines[header])
        rows = {l.split()[0]: l for l in lines[header + 1:]}
        self.assertEqual(set(rows), {TASK, "other"})
        self.assertIn("400/", rows[TASK])
        # The table's columns line up on a terminal: counted in columns
        # (two for East Asian wide characters), not in bytes.
        def column(line, needle):
            head = line[:line.index(needle)]
            return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in head)
        self.assertEqual(column(rows[TASK], "400/"), column(rows["other"], "400/"))

        r = harness.run_ctl("status", "--control", d.control, "--task", "other")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(TASK, r.stdout)
        self.assertIn("other", r.stdout)

        r = harness.run_ctl("status", "--control", d.control, "--task", "nope")
        self.assertEqual(r.returncode, 1)
        self.assertIn("nope", r.stderr)

    def test_watch_shows_the_body_ts(self):
        d = self.daemon()
        # A body published long ago (its ts) and received now: watch prints
        # the former. Events carry no ts of the body; the body's ts is
        # when the daemon published, so compare with what the daemon says.
        r = harness.run_ctl("replay", "--csv", self.csv, "--ingest", d.ingest, "--label-lag", 0)
        self.assertEqual(r.returncode, 0, r.stderr)
        harness.wait_for(lambda: (d.task() or {}).get("rows", 0) >= 400, 20,
                         what="the rows joined")
        d.ctl("recompute", task="default")
        harness.wait_for(lambda: d.task()["version"] >= 1, 20, what="a publication")
        ts = d.ctl("ensemble", task="default")["ensemble"]["ts"]
        time.sleep(2.2)
        r = harness.run_ctl("watch", "--publish", d.publish, "--count", 1, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(time.strftime("%H:%M:%S", time.localtime(ts))),
                        (r.stdout, ts))


if __name__ == "__main__":
    harness.main()
