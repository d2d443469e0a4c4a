#!/usr/bin/python3
"""The Python package (python/ensembled) against the router test vectors
(tests/vectors/*.json), the same files the C library is checked against:
exploration hashes and decisions, agreement patterns, every combiner kind,
topic matching and name validity. No daemon."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import harness  # noqa: E402,F401  (re-runs under the system Python if needed)

sys.path.insert(0, os.path.join(REPO, "python"))
import ensembled  # noqa: E402


def cases(name):
    with open(os.path.join(REPO, "tests", "vectors", name)) as f:
        out = json.load(f)["cases"]
    assert out, name
    return out


class VectorsTest(unittest.TestCase):
    def test_explore(self):
        n = 0
        for c in cases("explore.json"):
            task = bytes.fromhex(c["task_hex"])
            q = int(c["query_uint"]) if "query_uint" in c else bytes.fromhex(c["query_hex"])
            h = ensembled.explore_hash(task, q)
            self.assertEqual("%016x" % h, c["hash"], c)
            self.assertEqual(ensembled.explores(task, q, c["rate"]), c["explores"], c)
            if "query_hex" in c:
                try:
                    s = bytes.fromhex(c["query_hex"]).decode("utf-8")
                except UnicodeDecodeError:
                    s = None
                if s is not None:  # a str id hashes as its UTF-8 bytes
                    self.assertEqual(ensembled.explore_hash(task, s), h)
            n += 1
        self.assertGreater(n, 200)

    def test_pattern(self):
        for c in cases("pattern.json"):
            self.assertEqual(list(ensembled.agreement_pattern(c["answers"])[0]), c["pattern"], c)

    def test_combine(self):
        kinds = set()
        for c in cases("combine.json"):
            models = ["m%d" % i for i in range(len(c["weights"]))]
            body = {"models": models, "labels": c["labels"],
                    "combiner": {"kind": c["kind"], "weights": c["weights"],
                                 "table": c["table"]}}
            if c.get("mode") == "open":
                body.update(answers="open", normalize=c["normalize"])
            answers = {m: a for m, a in zip(models, c["answers"]) if a is not None}
            got = ensembled.Combiner(body).combine(answers)
            self.assertEqual(got, c["expect"], c)
            kinds.add(c["kind"])
        self.assertEqual(kinds, {"vote", "weighted", "table", "pattern"})

    def test_topics(self):
        for c in cases("topics.json"):
            task = bytes.fromhex(c["task_hex"]).decode("utf-8")
            t = ensembled.topic(task)
            self.assertEqual(t.hex(), c["topic_hex"])
            self.assertEqual(ensembled.task_of_topic(t), task)
            sub = ensembled.TOPIC_PREFIX if c["subscribe_task_hex"] is None else \
                ensembled.topic(bytes.fromhex(c["subscribe_task_hex"]).decode("utf-8"))
            self.assertEqual(sub.hex(), c["subscription_hex"])
            self.assertEqual(t.startswith(sub), c["match"], c)

    def test_names(self):
        for c in cases("names.json"):
            self.assertEqual(ensembled.name_valid(bytes.fromhex(c["hex"])), c["valid"], c)


class InstallTest(unittest.TestCase):
    def test_pip_install(self):
        """pip install ./python works offline over Debian's modules."""
        with tempfile.TemporaryDirectory() as tmp:
            venv = os.path.join(tmp, "venv")
            r = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv],
                               capture_output=True, text=True)
            if r.returncode != 0:
                self.skipTest("no venv module: " + r.stderr.strip()[-200:])
            py = os.path.join(venv, "bin", "python")
            src = os.path.join(tmp, "src")
            # A copy, so that the build leaves nothing in the checkout.
            subprocess.run(["cp", "-r", os.path.join(REPO, "python"), src], check=True)
            r = subprocess.run([py, "-m", "pip", "install", "--no-index", "--no-build-isolation",
                                src], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            r = subprocess.run([py, "-c", "import ensembled; print(ensembled.__file__)"],
                               capture_output=True, text=True, cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.startswith(venv), r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
