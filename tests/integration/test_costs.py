#!/usr/bin/env python3
"""Real costs: the daemon's greedy-cost spends the mean cost each model's
answers carried over the window, and the body publishes those costs and the
ensemble's cost per query. References computed here from the costs sent:
per model the mean of its answers' costs, and the ensemble's sum of them;
the offline selection is `ensemblectl select --costs FILE`.

Costs are multiples of 1/1024, so that every sum is exact in a double and
the means here are the daemon's to the last bit or two."""
import json
import os
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DATA = "winogrande_routerbench_11llm.csv"
BUDGET = 5
COST_BUDGET = 0.05


def rel_close(a, b, rel=1e-12):
    return a is not None and b is not None and abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


def accuracies(header, rows):
    models = header[2:]
    acc = {}
    for j, m in enumerate(models):
        asked = [r for r in rows if r[2 + j] != ""]
        acc[m] = sum(r[2 + j] == r[1] for r in asked) / max(len(asked), 1)
    return acc


def plan_costs(header, rows):
    """The four most accurate models cost about 1 per answer, the fifth
    reports no cost, the others about 1/256 to 3/256; each answer's cost
    alternates by row around its model's base. Returns (cost of model m on
    row r or None, expensive models, the unpriced model, cheap models)."""
    acc = accuracies(header, rows)
    ranked = sorted(acc, key=lambda m: (-acc[m], m))
    expensive, unpriced, cheap = ranked[:4], ranked[4], ranked[5:]
    base = {m: 1.0 for m in expensive}
    for i, m in enumerate(cheap):
        base[m] = (1 + i % 3) / 256

    def cost(m, r):
        if m == unpriced:
            return None
        step = 0.25 if m in expensive else 1 / 1024
        return base[m] + (step if r % 2 else -step)
    return cost, expensive, unpriced, cheap


def batches(header, rows, cost, per=200):
    """Each row as one prediction event per answer (with its cost, when it
    has one) and then its label, in file order; per rows to a message."""
    models = header[2:]
    out, cur = [], []
    for r, row in enumerate(rows):
        for j, m in enumerate(models):
            if row[2 + j] == "":
                continue
            ev = {"kind": "prediction", "query": r, "model": m, "label": row[2 + j]}
            c = cost(m, r)
            if c is not None:
                ev["cost"] = c
            cur.append(ev)
        cur.append({"kind": "label", "query": r, "label": row[1]})
        if (r + 1) % per == 0:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def mean_costs(header, rows, cost):
    """Per model: the mean of the costs its answers carried (None: none)."""
    means = {}
    for j, m in enumerate(header[2:]):
        cs = [cost(m, r) for r, row in enumerate(rows) if row[2 + j] != ""]
        cs = [c for c in cs if c is not None]
        means[m] = sum(cs) / len(cs) if cs else None
    return means


def greedy_cost_conf(extra=None):
    sel = {"strategy": "greedy-cost", "budget": BUDGET, "cost_budget": COST_BUDGET}
    sel.update(extra or {})
    return {"select": sel}


def small_rows(n, cost, offset=0, models=("m1", "m2", "m3")):
    """n joined rows of a three-model, two-label task, one batch; every
    answer carries cost(model)."""
    batch = []
    for q in range(offset, offset + n):
        truth = "A" if q % 3 else "B"
        other = "B" if truth == "A" else "A"
        answers = {"m1": truth if q % 7 else other, "m2": truth if q % 5 else other,
                   "m3": truth if q % 4 else other}
        for m in models:
            batch.append({"kind": "prediction", "query": q, "model": m, "label": answers[m],
                          "cost": cost(m)})
        batch.append({"kind": "label", "query": q, "label": truth})
    return batch


class CostsTest(harness.DaemonTestCase):

    def write_costs(self, means):
        f = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False)
        self.addCleanup(os.unlink, f.name)
        f.write("model,cost\n")
        for m, c in means.items():
            if c is not None:
                f.write("%s,%r\n" % (m, c))
        f.close()
        return f.name

    def test_cheap_models_win_and_the_body_prices_them(self):
        path = harness.data_file(DATA)
        header, rows = harness.csv_rows(path)
        cost, expensive, unpriced, cheap = plan_costs(header, rows)
        means = mean_costs(header, rows, cost)

        d = self.daemon(greedy_cost_conf())
        sub = d.subscriber("ensemble.default")
        msgs = batches(header, rows, cost)
        d.sync_send(*msgs, timeout=60)
        harness.wait_for(lambda: d.task()["joined"] >= len(rows), 60, what="every row joined")
        st = d.status()
        self.assertEqual(sum(st["rejected"].values()), 0, st["rejected"])
        self.assertEqual(d.task()["rows"], len(rows))

        _, body = d.recompute_and_receive(sub)
        self.assertEqual(body["strategy"], "greedy-cost")
        models = body["models"]
        self.assertGreaterEqual(len(models), 1)
        self.assertTrue(set(models) <= set(cheap), (models, cheap))

        # Per-model costs: the mean of what each model's answers carried;
        # nil for the model that never sent one.
        self.assertEqual(set(body["costs"]), set(header[2:]))
        for m, want in means.items():
            got = body["costs"][m]
            if want is None:
                self.assertIsNone(got, m)
            else:
                self.assertTrue(rel_close(got, want), "%s: body %r, events %r" % (m, got, want))
        self.assertIsNone(body["costs"][unpriced])
        # The ensemble's cost per query: its models' costs summed, within
        # the budget.
        want = sum(means[m] for m in models)
        self.assertTrue(rel_close(body["expected_cost"], want),
                        "expected_cost %r, events %r" % (body["expected_cost"], want))
        self.assertLessEqual(body["expected_cost"], COST_BUDGET + 1e-12)

        # Offline, with the same costs from a file: the same selection.
        costs = self.write_costs(means)
        r = harness.run_ctl("select", "--csv", path, "--budget", BUDGET, "--strategy",
                            "greedy-cost", "--cost-budget", COST_BUDGET, "--costs", costs,
                            "--splits", 0, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        ref = json.loads(r.stdout)["selections"][0]
        self.assertEqual(ref["models"], models)
        for i, step in enumerate(body["steps"]):
            self.assertClose(step["mi_bits"], ref["mi_bits"][i], 1e-9)

        # Without costs (every model at 1.0) the same strategy takes an
        # expensive model: the costs, not the data, kept them out.
        r = harness.run_ctl("select", "--csv", path, "--budget", BUDGET, "--strategy",
                            "greedy-cost", "--cost-budget", BUDGET, "--splits", 0, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        free = json.loads(r.stdout)["selections"][0]["models"]
        self.assertTrue(set(free) & set(expensive), free)

    def test_models_at_a_cent_fit_a_budget_of_five_cents(self):
        # Regression: with every model taken at 1.0, nothing fit in 0.05 and
        # nothing was published.
        d = self.daemon(greedy_cost_conf())
        sub = d.subscriber("ensemble.default")
        d.sync_send(small_rows(120, lambda m: 0.01))
        _, body = d.recompute_and_receive(sub)
        self.assertGreaterEqual(len(body["models"]), 1)
        self.assertEqual(body["costs"], {"m1": 0.01, "m2": 0.01, "m3": 0.01})
        self.assertTrue(rel_close(body["expected_cost"], 0.01 * len(body["models"])),
                        body["expected_cost"])

    def test_answers_at_ten_do_not_fit_a_budget_of_three(self):
        # Regression: with every model taken at 1.0, a model was published
        # although each answer cost 10.
        d = self.daemon(greedy_cost_conf({"cost_budget": 3}))
        sub = d.subscriber("ensemble.default")
        d.sync_send(small_rows(120, lambda m: 10))
        rep = d.ctl("recompute", task="default")
        self.assertTrue(rep.get("ok"), rep)
        d.wait_log("no model fits in the cost budget 3", timeout=30)
        self.assertFalse(sub.poll(1000), "a body was published")
        self.assertEqual(d.task()["version"], 0)

    def test_a_published_set_whose_cost_rose_past_the_budget_is_replaced(self):
        # Window of 120 rows: the second 120 rows, where m1 costs 1, push the
        # first ones (m1 at 0.01) out. m1 is the first pick at first.
        d = self.daemon(greedy_cost_conf({"budget": 1}) | {"window": {"rows": 120}})
        sub = d.subscriber("ensemble.default")
        d.sync_send(small_rows(120, lambda m: 0.01, models=("m1", "m2", "m3")))
        _, first = d.recompute_and_receive(sub)
        self.assertEqual(len(first["models"]), 1)
        top = first["models"][0]
        d.sync_send(small_rows(120, lambda m: 1.0 if m == top else 0.01, offset=1000))
        harness.wait_for(lambda: d.task()["joined"] >= 240, 30, what="240 rows joined")
        _, second = d.recompute_and_receive(sub)
        self.assertEqual(second["costs"][top], 1.0)
        self.assertNotIn(top, second["models"])
        self.assertEqual(second["reason"],
                         "the published set now costs more than select.cost_budget")
        self.assertTrue(second["replaced"])
        self.assertLessEqual(second["expected_cost"], COST_BUDGET)

    def test_offline_costs_file(self):
        path = harness.data_file(DATA)
        header, rows = harness.csv_rows(path)
        cost, _, _, cheap = plan_costs(header, rows)
        means = mean_costs(header, rows, cost)
        costs = self.write_costs(means)
        conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
        self.addCleanup(os.unlink, conf.name)
        conf.write(harness.render_config(greedy_cost_conf({"min_rows": 1})))
        conf.close()
        # --body: the daemon's modules, every answer priced from the file.
        r = harness.run_ctl("select", "--csv", path, "--body", "--config", conf.name,
                            "--costs", costs)
        self.assertEqual(r.returncode, 0, r.stderr)
        body = json.loads(r.stdout)
        for m, want in means.items():
            self.assertEqual(body["costs"][m], want, m)
        self.assertTrue(set(body["models"]) <= set(cheap), body["models"])
        self.assertTrue(rel_close(body["expected_cost"], sum(means[m] for m in body["models"])))
        r = harness.run_ctl("select", "--csv", path, "--budget", BUDGET, "--strategy",
                            "greedy-cost", "--cost-budget", COST_BUDGET, "--costs", costs,
                            "--splits", 0, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["selections"][0]["models"], body["models"])

        # Bad files: an error naming file and line, exit 2.
        m0 = header[2]
        cases = {"nobody,1\n": "model 'nobody' is not a column of the data",
                 "%s,-1\n" % m0: "cost '-1' is not a finite number >= 0",
                 "%s,nan\n" % m0: "cost 'nan' is not a finite number >= 0",
                 "%s,1\n%s,2\n" % (m0, m0): ":2: model '%s' given twice" % m0,
                 "%s 1\n" % m0: "not \"model,cost\""}
        for text, want in cases.items():
            with tempfile.NamedTemporaryFile("w", suffix=".csv") as f:
                f.write(text)
                f.flush()
                r = harness.run_ctl("select", "--csv", path, "--budget", 2, "--strategy",
                                    "greedy-cost", "--cost-budget", 1, "--costs", f.name,
                                    "--splits", 0)
                self.assertEqual(r.returncode, 2, (text, r.stdout, r.stderr))
                self.assertIn(want, r.stderr, text)
                self.assertIn(f.name + ":", r.stderr)


if __name__ == "__main__":
    harness.main()
