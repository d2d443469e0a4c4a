#!/usr/bin/env python3
"""Offline and online agree: for each shared data set and three configs, the
body `ensemblectl select --body` prints for a CSV equals the body the daemon
publishes after `ensemblectl replay --label-lag 0` of the same CSV, in every
field but `ts`, `version` and the ages in `freshness` (which depend on when
the rows arrived; their keys must agree)."""
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CONFIGS = {
    "defaults": {},
    "plugin-budget5": {"select": {"estimator": "plugin", "budget": 5, "explore_rate": 0.2}},
    "caruana-mm": {"select": {"strategy": "caruana", "budget": 2, "estimator": "miller-madow",
                              "min_rows": 200},
                   "publish": {"min_improvement_bits": 0.5}},
}


class BodyAgreementTest(harness.DaemonTestCase):

    def agree(self, data, config):
        path = harness.data_file(data)
        _, rows = harness.csv_rows(path)
        d = self.daemon(CONFIGS[config])
        r = harness.run_ctl("replay", "--csv", path, "--ingest", d.ingest, "--batch", 50,
                            "--label-lag", 0, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        harness.wait_for(lambda: (d.task() or {}).get("joined", 0) >= len(rows), 120,
                         what="%d rows joined" % len(rows))
        sub = d.subscriber("ensemble.default")
        _, online = d.recompute_and_receive(sub, timeout=120)

        r = harness.run_ctl("select", "--csv", path, "--body", "--config", d.conf_path,
                            timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        offline = json.loads(r.stdout)

        self.assertEqual(sorted(online), sorted(offline))
        for key in ("ts", "version"):
            online.pop(key)
            offline.pop(key)
        self.assertEqual(sorted(online.pop("freshness")), sorted(offline.pop("freshness")))
        for key in online:
            self.assertEqual(online[key], offline[key], "%s/%s: %s differs" % (data, config, key))
        self.assertEqual(online["window_rows"], len(rows))
        return online


def _make(data, config):
    def test(self):
        body = self.agree(data, config)
        self.assertGreaterEqual(len(body["models"]), 1)
    test.__doc__ = "%s under the %s config" % (data, config)
    return test


for _data in ("winogrande_routerbench_11llm.csv", "mmlupro_28llm.csv"):
    for _config in CONFIGS:
        setattr(BodyAgreementTest, "test_%s_%s" % (_data.split("_")[0], _config.replace("-", "_")),
                _make(_data, _config))


if __name__ == "__main__":
    harness.main()
