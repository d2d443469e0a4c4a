#!/usr/bin/env python3
"""The Prometheus endpoint ([metrics] bind, docs/metrics.md): a real Prometheus
server scrapes it once a second and answers a counter the test drove; the
exposition passes `promtool check metrics` and says what `status` says."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PROMETHEUS = os.environ.get("PROMETHEUS", shutil.which("prometheus") or "prometheus")
PROMTOOL = os.environ.get("PROMTOOL", shutil.which("promtool") or "promtool")

# status key -> metric (with its fixed labels), written out here rather than
# taken from the daemon, so that a renamed or lost figure fails the test.
TOP = {"uptime_s": None,  # moves between the two reads
       "messages_in": "ensembled_messages_received_total",
       "events_in": "ensembled_events_received_total",
       "published": "ensembled_publications_total",
       "future_ts_clamped": "ensembled_future_ts_clamped_total",
       "cache_resends": "ensembled_cache_resends_total",
       "subscriber_drops": "ensembled_subscriber_drops_total",
       "control_replies_dropped": "ensembled_control_replies_dropped_total"}
SUB = {"loop": {"turns": "ensembled_loop_turns_total",
                "longest_turn_ms": 'ensembled_loop_longest_turn_seconds{since="start"}',
                "longest_turn_recent_ms": 'ensembled_loop_longest_turn_seconds{since="recent"}',
                "longest_turn_cpu_ms": "ensembled_loop_longest_turn_cpu_seconds",
                "turns_over_5ms": 'ensembled_loop_slow_turns_total{measure="work"}',
                "turns_over_5ms_cpu": 'ensembled_loop_slow_turns_total{measure="cpu"}',
                "longest_turn_cpu_in": None,  # a section's name, no figure
                "turns_over_5ms_cpu_by": "ensembled_loop_slow_cpu_turns_by_section_total"},
       "security": {"curve_accepted": 'ensembled_curve_handshakes_total{result="accepted"}',
                    "curve_refused": 'ensembled_curve_handshakes_total{result="refused"}',
                    "authorized_keys": "ensembled_curve_authorized_keys",
                    "key_files_skipped": "ensembled_curve_key_files_skipped"},
       "state": {"rows_restored_snapshot": 'ensembled_state_rows_restored{source="snapshot"}',
                 "rows_restored_journal": 'ensembled_state_rows_restored{source="journal"}',
                 "torn_records": 'ensembled_state_bad_records_total{kind="torn"}',
                 "corrupt_records": 'ensembled_state_bad_records_total{kind="corrupt"}',
                 "snapshots": "ensembled_state_snapshots_total",
                 "fsyncs": "ensembled_state_fsyncs_total",
                 "synced_seq": "ensembled_state_synced_row_seq",
                 "write_errors": "ensembled_state_write_errors_total",
                 "records_dropped": "ensembled_state_records_dropped_total"}}
# Figures the journal's fsync timer and the loop's turns move between the
# status and the scrape.
MOVING = {"fsyncs", "synced_seq", "turns", "longest_turn_ms", "longest_turn_recent_ms",
          "longest_turn_cpu_ms", "turns_over_5ms", "turns_over_5ms_cpu"}
BY_REASON = {"rejected": "ensembled_events_rejected_total",
             "dropped": "ensembled_events_dropped_total"}
TASK = {"rows": "ensembled_window_rows", "capacity": "ensembled_window_capacity_rows",
        "pending": "ensembled_join_pending", "models": "ensembled_window_models",
        "labels": "ensembled_window_labels", "queries": "ensembled_queries_total",
        "joined": "ensembled_rows_joined_total", "expired": "ensembled_queries_expired_total",
        "evicted": "ensembled_queries_evicted_total",
        "late_predictions": 'ensembled_late_events_total{kind="prediction"}',
        "late_labels": 'ensembled_late_events_total{kind="label"}',
        "duplicate_predictions": 'ensembled_duplicate_events_total{kind="prediction"}',
        "duplicate_labels": 'ensembled_duplicate_events_total{kind="label"}',
        "sampled_out": "ensembled_queries_sampled_out_total",
        "models_freed": "ensembled_model_slots_freed_total",
        "labels_freed": "ensembled_label_slots_freed_total",
        "version": "ensembled_publication_version",
        "explore_extra_queries_per_query": "ensembled_explore_extra_queries_per_query",
        "ensemble": "ensembled_ensemble_models",  # the set's size
        "last_selection_ms": "ensembled_last_selection_duration_seconds",  # / 1000
        "last_selection_age_s": None}  # moves between the two reads


def rows_batch(n, task="default"):
    batch = []
    for q in range(n):
        truth = "A" if q % 3 else "B"
        other = "B" if truth == "A" else "A"
        batch.append({"kind": "prediction", "task": task, "query": q,
                      "predictions": {"m1": truth, "m2": truth if q % 5 else other,
                                      "m3": other if q % 4 == 0 else truth}})
        batch.append({"kind": "label", "task": task, "query": q, "label": truth})
    return batch


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def parse_exposition(text):
    """{'name{labels}': value} of the sample lines (labels as written)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def with_task(metric, task):
    label = 'task="%s"' % task
    if "{" in metric:
        return metric.replace("{", "{" + label + ",", 1)
    return metric + "{" + label + "}"


class MetricsTest(harness.DaemonTestCase):

    def metrics_daemon(self):
        port, = harness.free_ports(1)
        d = self.daemon({"metrics": {"bind": "127.0.0.1:%d" % port}})
        d.metrics_url = "http://127.0.0.1:%d/metrics" % port
        return d

    def scrape_when(self, d, pred, what):
        """The exposition once pred(samples) holds (it is re-rendered each second)."""
        box = {}

        def ok():
            box["text"] = http_get(d.metrics_url)[2]
            return pred(parse_exposition(box["text"]))
        harness.wait_for(ok, 10, interval=0.2, what=what)
        return box["text"]

    def test_exposition_matches_status_and_passes_promtool(self):
        d = self.metrics_daemon()
        d.sync_send(rows_batch(80))
        d.sync_send(rows_batch(50, task='odd "name"\\'))
        d.sync_send(b"\xc1", b"\xc1", b"\xc1")  # never-used byte: malformed
        d.ctl("recompute")
        harness.wait_for(lambda: d.status()["published"] >= 2, 10, what="two publications")
        st = d.status()
        text = self.scrape_when(
            d, lambda s: s.get("ensembled_publications_total") == st["published"]
            and s.get("ensembled_messages_received_total") == st["messages_in"],
            "the exposition to catch up with status")
        status, ctype, _ = http_get(d.metrics_url)
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + text)
        s = parse_exposition(text)
        self.assertEqual(s['ensembled_build_info{version="%s"}' % st["version"]], 1)
        self.assertEqual(s['ensembled_events_rejected_total{reason="malformed"}'], 3)
        # Every figure of status, under its name, with its value.
        for key, value in st.items():
            if key in ("ok", "version", "tasks"):
                continue
            if key in BY_REASON:
                for reason, n in value.items():
                    self.assertEqual(s['%s{reason="%s"}' % (BY_REASON[key], reason)], n)
            elif key in SUB:
                self.assertEqual(set(value), set(SUB[key]), key)
                for k, v in value.items():
                    if SUB[key][k] is None:
                        continue
                    if isinstance(v, dict):  # counts by section: all of them
                        for section in v:
                            self.assertIn('%s{section="%s"}' % (SUB[key][k], section), s)
                    elif k in MOVING:
                        self.assertIn(SUB[key][k], s, k)
                    else:
                        self.assertEqual(s[SUB[key][k]], v, k)
            else:
                self.assertIn(key, TOP, "status key %r has no metric" % key)
                if TOP[key]:
                    self.assertEqual(s[TOP[key]], value, key)
        escaped = 'odd \\"name\\"\\\\'
        for task, label in (("default", "default"), ('odd "name"\\', escaped)):
            for key, value in st["tasks"][task].items():
                self.assertIn(key, TASK, "task status key %r has no metric" % key)
                if TASK[key] is None:
                    continue
                if key == "ensemble":
                    value = len(value)
                elif key == "last_selection_ms":
                    value = value / 1000
                self.assertAlmostEqual(s[with_task(TASK[key], label)], value, places=9,
                                       msg=key)
            # One histogram observation per selection, each one published.
            count = s['ensembled_selection_duration_seconds_count{task="%s"}' % label]
            self.assertEqual(count, st["tasks"][task]["version"])
            self.assertEqual(
                s['ensembled_selection_duration_seconds_bucket{task="%s",le="+Inf"}' % label],
                count)
        body = d.ctl("ensemble", task="default")["ensemble"]
        for k, v in body["accuracy"].items():
            self.assertAlmostEqual(
                s['ensembled_published_accuracy{task="default",method="%s"}' % k], v)
        for k, v in body["bounds"].items():
            if v is not None:
                self.assertAlmostEqual(
                    s['ensembled_published_bound{task="default",bound="%s"}' % k], v)
        self.assertAlmostEqual(
            s['ensembled_last_publication_timestamp_seconds{task="default"}'], body["ts"])

    def test_other_paths_and_methods_are_refused(self):
        d = self.metrics_daemon()
        base = d.metrics_url[:-len("/metrics")]
        with self.assertRaises(urllib.error.HTTPError) as e:
            http_get(base + "/")
        self.assertEqual(e.exception.code, 404)
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(d.metrics_url, data=b"x"), timeout=5)
        self.assertEqual(e.exception.code, 405)
        self.assertEqual(http_get(d.metrics_url)[0], 200)

    def test_bad_or_busy_bind_ends_the_start(self):
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        in_use = "127.0.0.1:%d" % busy.getsockname()[1]
        with tempfile.TemporaryDirectory() as tmp, busy:
            for bind in ("foo", "127.0.0.1", "localhost:9559", "[::1]9559", "1.2.3.4:0",
                         in_use):
                path = os.path.join(tmp, "e.conf")
                with open(path, "w") as f:
                    f.write(harness.render_config({
                        "ingest": {"bind": "ipc://%s/i" % tmp},
                        "publish": {"bind": "ipc://%s/p" % tmp},
                        "control": {"bind": "ipc://%s/c" % tmp},
                        "metrics": {"bind": bind}, "state": {"dir": tmp}}))
                r = subprocess.run([harness.ENSEMBLED, "-c", path, "--foreground"],
                                   capture_output=True, text=True, timeout=10)
                self.assertEqual(r.returncode, 1, bind + r.stdout + r.stderr)
                self.assertIn("metrics.bind %s" % bind, r.stdout + r.stderr)

    def test_prometheus_scrapes_a_counter_the_test_drove(self):
        d = self.metrics_daemon()
        d.sync_send(*[b"\xc1"] * 7)
        d.sync_send(rows_batch(40))
        self.assertEqual(d.status()["rejected"]["malformed"], 7)
        target = d.metrics_url[len("http://"):-len("/metrics")]
        web, = harness.free_ports(1)
        with tempfile.TemporaryDirectory(prefix="prometheus-it-") as tmp:
            conf = os.path.join(tmp, "prometheus.yml")
            with open(conf, "w") as f:
                f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                        "scrape_configs:\n  - job_name: ensembled\n"
                        "    static_configs:\n      - targets: ['%s']\n" % target)
            log = open(os.path.join(tmp, "prometheus.log"), "wb")
            prom = subprocess.Popen(
                [PROMETHEUS, "--config.file=" + conf, "--storage.tsdb.path=" + tmp + "/data",
                 "--web.listen-address=127.0.0.1:%d" % web],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            try:
                def query(q):
                    url = "http://127.0.0.1:%d/api/v1/query?%s" % (
                        web, urllib.parse.urlencode({"query": q}))
                    try:
                        reply = json.loads(http_get(url)[2])
                    except (OSError, ValueError):
                        return None
                    result = reply.get("data", {}).get("result", [])
                    return float(result[0]["value"][1]) if result else None

                malformed = 'ensembled_events_rejected_total{reason="malformed"}'
                harness.wait_for(lambda: query(malformed) == 7, 60, interval=0.5,
                                 what="Prometheus to report 7 malformed messages")
                self.assertEqual(query('up{job="ensembled"}'), 1)
                # Two more; the next scrapes carry them.
                d.sync_send(b"\xc1", b"\xc1")
                harness.wait_for(lambda: query(malformed) == 9, 30, interval=0.5,
                                 what="Prometheus to report 9 malformed messages")
                self.assertEqual(query('ensembled_rows_joined_total{task="default"}'), 40)
            except AssertionError:
                log.flush()
                with open(log.name, "rb") as f:
                    sys.stderr.write(f.read().decode(errors="replace")[-4000:])
                raise
            finally:
                prom.terminate()
                try:
                    prom.wait(20)
                except subprocess.TimeoutExpired:
                    prom.kill()
                    prom.wait(5)
                log.close()


if __name__ == "__main__":
    harness.main()
