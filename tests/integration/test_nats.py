#!/usr/bin/env python3
"""The NATS JetStream intake (docs/scale.md) on a three-node JetStream
cluster on loopback, its stream replicated three times.

The producer is `ensemblectl replay --nats`: the winogrande CSV, one
prediction message and one label message per row (label right after its
prediction, or 20 rows later in (a)), paced so that the stream keeps growing while the test breaks
things. The reference is the CSV itself: every row with at least one answer
joins once, so the window must end with exactly that many rows, whatever
happened in between.

(a) the daemon killed with SIGKILL ten times while the producer streams:
    after the last restart the window holds every row exactly once;
(b) one NATS node killed mid-stream: nothing lost;
(c) the daemon stopped (SIGTERM) for 10 s while the producer keeps
    publishing: after the restart the window holds every row;
(d) two replicas (each its own durable) publishing to the key-value bucket,
    one killed: the bucket's stream_seq never goes backwards.

Skipped, with the reason printed, only when nats-server is not installed or
the daemon was built without libnats (ENS_NATS_BUILT=0 from CMake).
"""
import base64
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
sys.path.insert(0, os.path.join(harness.REPO, "python"))
import ensembled  # noqa: E402

NATS_SERVER = shutil.which("nats-server") or (
    "/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None)
CSV = harness.data_file("winogrande_routerbench_11llm.csv")
STREAM = "EVENTS"
ACK_WAIT = "2s"


def expected_rows():
    """Rows of the CSV that replay sends a prediction for (some answer)."""
    header, rows = harness.csv_rows(CSV)
    return sum(1 for r in rows if any(c != "" for c in r[2:]))


class Cluster:
    """Three nats-server processes with JetStream, routed to each other."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ensembled-nats-")
        ports = harness.free_ports(6)
        self.client = ports[:3]
        self.route = ports[3:]
        self.procs = [None, None, None]
        for i in range(3):
            self.start(i)
        self.urls = ",".join("nats://127.0.0.1:%d" % p for p in self.client)

    def _config(self, i):
        routes = ", ".join("nats-route://127.0.0.1:%d" % p
                           for j, p in enumerate(self.route) if j != i)
        path = os.path.join(self.tmp.name, "n%d.conf" % i)
        with open(path, "w") as f:
            f.write("server_name: n%d\nlisten: 127.0.0.1:%d\n"
                    "jetstream { store_dir: \"%s\" }\n"
                    "cluster { name: ens, listen: 127.0.0.1:%d, routes: [%s] }\n"
                    % (i, self.client[i], os.path.join(self.tmp.name, "js%d" % i),
                       self.route[i], routes))
        return path

    def start(self, i):
        log = open(os.path.join(self.tmp.name, "n%d.log" % i), "ab")
        self.procs[i] = subprocess.Popen([NATS_SERVER, "-c", self._config(i)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        harness._LIVE.add(self.procs[i])
        log.close()

    def kill(self, i):
        p = self.procs[i]
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        harness._LIVE.discard(p)

    def api(self, subject, body=None, node=0):
        c = ensembled.NatsConnection("nats://127.0.0.1:%d" % self.client[node])
        try:
            return c.api(subject, body)
        finally:
            c.close()

    def create(self, subject, body, what):
        """Retries a JetStream API create until the cluster has a meta
        leader and enough peers (a few seconds after start)."""
        box = {}

        def made():
            try:
                rep = self.api(subject, body)
            except (OSError, ensembled.NatsError, ValueError) as e:
                box["last"] = str(e)
                return False
            box["last"] = rep
            return "error" not in rep

        harness.wait_for(made, 30, interval=0.25, what="%s (last: %s)" % (what, box.get("last")))

    def make_stream(self):
        self.create("STREAM.CREATE." + STREAM,
                    {"name": STREAM, "subjects": ["events.>"], "storage": "file",
                     "num_replicas": 3}, "the stream")

    def make_bucket(self, bucket):
        """A key-value bucket as JetStream holds one: a stream of the last
        value per key, replicated three times."""
        self.create("STREAM.CREATE.KV_" + bucket,
                    {"name": "KV_" + bucket, "subjects": ["$KV.%s.>" % bucket],
                     "max_msgs_per_subject": 1, "discard": "new", "allow_rollup_hdrs": True,
                     "deny_delete": True, "allow_direct": True, "storage": "file",
                     "num_replicas": 3}, "the bucket")

    def kv_get(self, bucket, key):
        """(revision, value bytes) of key, or None."""
        rep = self.api("STREAM.MSG.GET.KV_" + bucket, {"last_by_subj": "$KV.%s.%s" % (bucket, key)})
        if "message" not in rep:
            return None
        return rep["message"]["seq"], base64.b64decode(rep["message"].get("data", ""))

    def close(self):
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)
            harness._LIVE.discard(p)
        self.tmp.cleanup()


@unittest.skipIf(NATS_SERVER is None,
                 "nats-server is not installed (Debian package nats-server; "
                 "scripts/install-deps installs it)")
@unittest.skipIf(os.environ.get("ENS_NATS_BUILT") == "0",
                 "ensembled was built without libnats (Debian package libnats-dev; "
                 "scripts/install-deps installs it)")
class NatsTest(harness.DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.cluster = Cluster()
        self.addCleanup(self.cluster.close)
        self.cluster.make_stream()
        self.state = tempfile.TemporaryDirectory(prefix="ensembled-nats-state-")
        self.addCleanup(self.state.cleanup)
        self.want = expected_rows()

    def overrides(self, task, durable="ensembled", state=None):
        return {"ingest": {"nats": self.cluster.urls, "nats_stream": STREAM,
                           "nats_subject": "events." + task, "nats_durable": durable,
                           "nats_ack_wait": ACK_WAIT},
                "state": {"dir": state or self.state.name, "fsync_interval": "50ms"}}

    def producer(self, task, rate, label_lag=0):
        return subprocess.Popen(
            [harness.ENSEMBLECTL, "replay", "--csv", CSV, "--nats", self.cluster.urls,
             "--subject", "events." + task, "--task", task, "--label-lag", str(label_lag),
             "--rate", str(rate)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def finish_producer(self, p):
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, err.decode())

    def stream_messages(self, task):
        rep = self.cluster.api("STREAM.INFO." + STREAM,
                               {"subjects_filter": "events." + task})
        return rep["state"]["messages"]

    def wait_rows(self, d, task, want, timeout=60):
        box = {}

        def done():
            t = d.task(task)
            box["rows"] = t["rows"] if t else 0
            return box["rows"] >= want

        try:
            harness.wait_for(done, timeout, interval=0.2, what="rows == %d" % want)
        except AssertionError:
            raise AssertionError("window holds %s rows, want %d" % (box.get("rows"), want))
        # Redeliveries after ack_wait must not add any.
        time.sleep(3)
        self.assertEqual(d.task(task)["rows"], want, "rows counted twice")

    def test_a_kill9_ten_times(self):
        task = "killed"
        # 2 messages per row: about 12 s of streaming for the kills. Labels
        # come 20 rows late, so that every kill finds predictions pending:
        # acknowledged before their labels joined them, they would be lost.
        prod = self.producer(task, 220, label_lag=20)
        rng = random.Random(int(os.environ.get("ENS_NATS_SEED", time.time())))
        for k in range(10):
            d = self.daemon(self.overrides(task))
            time.sleep(rng.uniform(0.3, 1.2))
            d.kill()
            d.expect_nonzero = True
        self.finish_producer(prod)
        self.assertEqual(self.stream_messages(task), 2 * self.want)
        d = self.daemon(self.overrides(task))
        self.wait_rows(d, task, self.want)
        st = d.status()
        self.assertEqual(st["tasks"][task]["pending"], 0)
        self.assertEqual(d.stop(), 0)

    def test_b_nats_node_killed(self):
        task = "nodekill"
        d = self.daemon(self.overrides(task))
        prod = self.producer(task, 400)
        time.sleep(2)
        self.cluster.kill(1)
        self.finish_producer(prod)
        self.assertEqual(self.stream_messages(task), 2 * self.want)
        self.wait_rows(d, task, self.want)
        # The last messages are acknowledged once their rows are durable
        # (the journal's next sync), a moment after the rows count.
        harness.wait_for(lambda: d.status()["nats"]["held"] == 0, 10,
                         what="every message acknowledged")
        self.assertEqual(d.stop(), 0)

    def test_c_daemon_down_10s(self):
        task = "down"
        d = self.daemon(self.overrides(task))
        prod = self.producer(task, 160)
        time.sleep(2)
        self.assertEqual(d.stop(), 0)
        time.sleep(10)
        self.assertIsNone(prod.poll(), "the producer should still be publishing")
        d = self.daemon(self.overrides(task))
        self.finish_producer(prod)
        self.wait_rows(d, task, self.want)
        self.assertEqual(d.stop(), 0)

    def test_d_replicas_kv_never_back(self):
        task = "replicated"
        bucket = "ENSEMBLES"
        self.cluster.make_bucket(bucket)
        states = [tempfile.TemporaryDirectory(prefix="ensembled-nats-r%d-" % i) for i in range(2)]
        for s in states:
            self.addCleanup(s.cleanup)
        reps = []
        for i in range(2):
            o = self.overrides(task, durable="replica%d" % i, state=states[i].name)
            o["publish"] = {"nats_kv": bucket, "every_labels": 40}
            reps.append(self.daemon(o))
        prod = self.producer(task, 300)
        seen = []  # (revision, stream_seq, version, replica) in reading order

        def read():
            got = self.cluster.kv_get(bucket, task)
            if got:
                body = harness.unpack(got[1])
                self.assertEqual(body["task"], task)
                seen.append((got[0], body["stream_seq"], body["version"]))

        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            read()
            time.sleep(0.05)
        self.assertTrue(seen, "no body in the bucket after 3 s")
        at_kill = seen[-1][1]
        reps[0].kill()
        reps[0].expect_nonzero = True
        while prod.poll() is None:
            read()
            time.sleep(0.05)
        self.finish_producer(prod)
        self.wait_rows(reps[1], task, self.want)
        reps[1].ctl("recompute", task=task)
        harness.wait_for(lambda: read() or seen[-1][1] == 2 * self.want, 20, interval=0.1,
                         what="the bucket at the stream's last position (%d)" % (2 * self.want))
        for a, b in zip(seen, seen[1:]):
            self.assertLessEqual(a[0], b[0], "the bucket's revision went back")
            self.assertLessEqual(a[1], b[1], "the bucket's stream_seq went back: %r" % (seen,))
        self.assertGreater(seen[-1][1], at_kill, "the surviving replica published nothing")
        st = reps[1].status()
        self.assertGreater(st["nats_kv"]["puts"], 0)
        self.assertEqual(st["nats_kv"]["errors"], 0)
        self.assertEqual(reps[1].stop(), 0)

    def test_e_python_package(self):
        """The Python package's JetStreamProducer feeds the daemon through
        the stream (a retried publish stored once) and its KVReader reads
        the published body from the bucket."""
        task, bucket, n = "pyclient", "PYBODIES", 150
        self.cluster.make_bucket(bucket)
        o = self.overrides(task)
        o["publish"] = {"nats_kv": bucket}
        port = harness.free_ports(1)[0]
        o["metrics"] = {"bind": "127.0.0.1:%d" % port}
        d = self.daemon(o)
        header, rows = harness.csv_rows(CSV)
        prod = ensembled.JetStreamProducer(self.cluster.urls)
        self.addCleanup(prod.close)
        sent = 0
        for i, r in enumerate(rows[:n]):
            answers = {m: a for m, a in zip(header[2:], r[2:]) if a != ""}
            if not answers:
                continue
            pred = {"kind": "prediction", "task": task, "query": i, "predictions": answers}
            seq = prod.publish(pred, msg_id="p%d" % i)
            self.assertEqual(prod.publish(pred, msg_id="p%d" % i), seq, "stored twice")
            prod.publish({"kind": "label", "task": task, "query": i, "label": r[1]})
            sent += 1
        self.assertEqual(self.stream_messages(task), 2 * sent)
        with self.assertRaises(ValueError):
            prod.publish({"kind": "label", "task": "t\0x", "query": 1, "label": "A"})
        self.wait_rows(d, task, sent)
        d.ctl("recompute", task=task)
        kv = ensembled.KVReader(self.cluster.urls, bucket)
        self.addCleanup(kv.close)
        box = {}

        def published():
            box["b"] = kv.latest(task)
            return box["b"] is not None and box["b"]["stream_seq"] == 2 * sent

        harness.wait_for(published, 20, interval=0.1, what="the body at stream_seq %d" % (2 * sent))
        body = box["b"]
        self.assertEqual((body["task"], body["window_rows"]), (task, sent))
        self.assertEqual(body["protocol"], 2)
        self.assertEqual(body, dict(d.ctl("ensemble", task=task)["ensemble"],
                                    stream_seq=body["stream_seq"], revision=body["revision"]))
        # The intake's and the bucket's counters on /metrics, as status says
        # (the endpoint serves a status taken every scrape interval: wait
        # until both agree, the stream being quiet).
        def agree():
            st = d.status()
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
                got = dict(line.rsplit(" ", 1) for line in r.read().decode().splitlines()
                           if line and not line.startswith("#"))
            box["want"] = want = {
                'ensembled_nats_messages_total{stage="fetched"}': st["nats"]["fetched"],
                'ensembled_nats_messages_total{stage="acked"}': st["nats"]["acked"],
                "ensembled_nats_stream_position": st["nats"]["position"],
                'ensembled_nats_kv_puts_total{result="stored"}': st["nats_kv"]["puts"],
                'ensembled_nats_kv_puts_total{result="error"}': 0}
            box["got"] = {k: got.get(k) for k in want}
            return all(got.get(k) is not None and float(got[k]) == v for k, v in want.items())

        harness.wait_for(agree, 20, interval=0.5, what="/metrics to agree with status")
        self.assertEqual(box["want"]["ensembled_nats_stream_position"], 2 * sent)
        self.assertGreater(box["want"]['ensembled_nats_kv_puts_total{result="stored"}'], 0)
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    harness.main()
