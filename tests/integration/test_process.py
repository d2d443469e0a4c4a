#!/usr/bin/env python3
"""The process: SIGHUP reloads, SIGTERM/SIGINT stop, --check-config, exit
codes (ensembled --help, conf/ensembled.conf)."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DATA = "mmlupro_28llm.csv"  # greedy-mi picks 3 models from it with budget 3


class ProcessTest(harness.DaemonTestCase):

    def fill(self, d):
        path = harness.data_file(DATA)
        r = harness.run_ctl("replay", "--csv", path, "--ingest", d.ingest, "--batch", 100,
                            "--label-lag", 0)
        self.assertEqual(r.returncode, 0, r.stderr)
        _, rows = harness.csv_rows(path)
        harness.wait_for(lambda: d.task() and d.task()["joined"] == len(rows), 30,
                         what="the replay to join")
        return len(rows)

    def test_sighup_reload(self):
        d = self.daemon({"select": {"budget": 3}})
        sub = d.subscriber()
        nrows = self.fill(d)
        _, body = d.recompute_and_receive(sub)
        self.assertEqual(body["budget"], 3)
        self.assertGreater(len(body["models"]), 1, "precondition: budget 3 picks > 1 model")

        # A smaller budget (and a [restart] key changed alongside).
        d.sections["select"]["budget"] = 1
        d.sections["window"] = {"rows": 1000}
        d.write_config()
        d.proc.send_signal(signal.SIGHUP)
        _, body2 = d.receive_newer(sub, body["version"], timeout=30)
        self.assertEqual(body2["version"], body["version"] + 1)
        self.assertEqual(body2["budget"], 1)
        self.assertLessEqual(len(body2["models"]), 1, body2)
        self.assertEqual(len(body2["models"]), 1, body2)
        self.assertIs(body2["replaced"], True)
        self.assertEqual(body2["reason"], "the budget is now smaller than the published set")
        self.assertEqual(d.task()["ensemble"], body2["models"])
        d.wait_log("applied")
        d.wait_log("window.rows")
        t = d.task()
        self.assertEqual(t["capacity"], 50000, "window.rows needs a restart")
        self.assertEqual(t["rows"], nrows)

        # A bad configuration: the daemon keeps running with the old one.
        with open(d.conf_path) as f:
            good_text = f.read()
        d.write_config(text=good_text.replace("[select]", "[select]\nbudgett = 2"))
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log("keeping")
        self.assertIsNone(d.proc.poll())
        st = d.status()
        self.assertIs(st["ok"], True)
        _, body3 = d.recompute_and_receive(sub)
        self.assertEqual(body3["budget"], 1, "the running configuration was kept")
        self.assertLessEqual(len(body3["models"]), 1)
        self.assertEqual(body3["window_rows"], nrows)

        # A good configuration again applies again.
        d.sections["select"]["budget"] = 2
        d.write_config()
        d.proc.send_signal(signal.SIGHUP)
        _, body4 = d.receive_newer(sub, body3["version"], timeout=30)
        self.assertEqual(body4["budget"], 2)
        self.assertLessEqual(len(body4["models"]), 2)

    def stop_within_a_second(self, sig):
        d = self.daemon()
        d.sync_send([{"kind": "prediction", "query": 1, "model": "m", "label": "A"},
                     {"kind": "label", "query": 1, "label": "A"}])
        d._close_sockets()
        t0 = time.monotonic()
        d.proc.send_signal(sig)
        try:
            rc = d.proc.wait(1.0)
        except subprocess.TimeoutExpired:
            self.fail("ensembled did not stop within 1 s of signal %d" % sig)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(rc, 0, d.log())
        d.returncode = rc
        d._finish()
        self.assertIn("stopping", d.log())

    def test_sigterm_exits_0_within_a_second(self):
        self.stop_within_a_second(signal.SIGTERM)

    def test_sigint_exits_0_within_a_second(self):
        self.stop_within_a_second(signal.SIGINT)

    # Only the event loop's thread takes SIGHUP, SIGINT and SIGTERM: every
    # other thread (libuv's pool, the HTTP server's, ZeroMQ's) blocks them.
    # A SIGTERM parked on a thread blocked for good was once never handled.
    def test_only_the_loop_thread_takes_stop_signals(self):
        port = harness.free_ports(1)[0]
        d = self.daemon({"metrics": {"bind": "127.0.0.1:%d" % port}})
        self.fill(d)
        d.ctl("recompute")  # the pool's threads exist
        wanted = (1 << (signal.SIGHUP - 1)) | (1 << (signal.SIGINT - 1)) | \
            (1 << (signal.SIGTERM - 1))
        tasks = os.listdir("/proc/%d/task" % d.proc.pid)
        self.assertGreaterEqual(len(tasks), 4)
        for tid in tasks:
            with open("/proc/%d/task/%s/status" % (d.proc.pid, tid)) as f:
                blocked = int(re.search(r"SigBlk:\s*([0-9a-f]+)", f.read()).group(1), 16)
            if int(tid) == d.proc.pid:
                self.assertEqual(blocked & wanted, 0, "the loop's thread blocks a stop signal")
            else:
                self.assertEqual(blocked & wanted, wanted, "thread %s takes stop signals" % tid)
        self.assertEqual(d.stop(timeout=10), 0)

    def test_sigterm_during_selection(self):
        d = self.daemon()
        self.fill(d)
        d.ctl("recompute")
        t0 = time.monotonic()
        rc = d.stop(timeout=5)
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 5)


class ConfigTest(harness.unittest.TestCase):

    def check(self, path):
        return subprocess.run([harness.ENSEMBLED, "-c", path, "--check-config"],
                              capture_output=True, text=True, timeout=10)

    def test_shipped_config_is_valid(self):
        r = self.check(os.path.join(harness.REPO, "conf", "ensembled.conf"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_bad_configs_name_file_and_line(self):
        cases = [
            ("[select]\nbudget = 3\nbogus_key = 1\n", 3),
            ("[ingest]\nsample_rate = 1\n\n[select]\nbudget = 0\n", 5),
            ("[join]\nttl = ten minutes\n", 2),
            ("[select]\nstrategy = best\n", 2),
            ("[nosuchsection]\nbudget = 3\n", 2),
            ("[publish]\ninterval = 10s\nthis is not ini\n", 3),
        ]
        with tempfile.TemporaryDirectory() as tmp:
            for i, (text, line) in enumerate(cases):
                path = os.path.join(tmp, "bad%d.conf" % i)
                with open(path, "w") as f:
                    f.write(text)
                with self.subTest(config=text):
                    r = self.check(path)
                    self.assertEqual(r.returncode, 1, r.stderr)
                    self.assertRegex(r.stderr, re.escape("%s:%d" % (path, line)))
            # A missing file is a bad configuration too.
            r = self.check(os.path.join(tmp, "missing.conf"))
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("missing.conf", r.stderr)

    def test_bad_config_at_start_exits_1(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bad.conf")
            with open(path, "w") as f:
                f.write("[select]\nbogus = 1\n")
            r = subprocess.run([harness.ENSEMBLED, "-c", path], capture_output=True, text=True,
                               timeout=10)
            self.assertEqual(r.returncode, 1)
            self.assertIn("%s:2" % path, r.stderr)

    # A socket that cannot be bound ends the daemon with exit code 1 (not an
    # abort on handles a half-done start never initialised).
    def test_port_in_use_exits_1(self):
        ingest, publish, control = harness.free_ports(3)
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", publish))
        busy.listen(1)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "e.conf")
                with open(path, "w") as f:
                    f.write(harness.render_config({
                        "ingest": {"bind": "tcp://127.0.0.1:%d" % ingest},
                        "publish": {"bind": "tcp://127.0.0.1:%d" % publish},
                        "control": {"bind": "tcp://127.0.0.1:%d" % control},
                        "state": {"dir": tmp}}))
                r = subprocess.run([harness.ENSEMBLED, "-c", path, "--foreground"],
                                   capture_output=True, text=True, timeout=10)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn("publish.bind", r.stdout + r.stderr)
        finally:
            busy.close()

    # The metrics port taken: the error says so in the OS's words.
    def test_metrics_port_in_use_names_the_cause(self):
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        try:
            ingest, publish, control = harness.free_ports(3)
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "e.conf")
                with open(path, "w") as f:
                    f.write(harness.render_config({
                        "ingest": {"bind": "tcp://127.0.0.1:%d" % ingest},
                        "publish": {"bind": "tcp://127.0.0.1:%d" % publish},
                        "control": {"bind": "tcp://127.0.0.1:%d" % control},
                        "metrics": {"bind": "127.0.0.1:%d" % port},
                        "state": {"dir": tmp}}))
                r = subprocess.run([harness.ENSEMBLED, "-c", path, "--foreground"],
                                   capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("metrics.bind 127.0.0.1:%d: cannot listen: " % port, r.stdout + r.stderr)
            self.assertIn("Address already in use", r.stdout + r.stderr)
        finally:
            busy.close()

    def test_usage_exit_codes(self):
        r = subprocess.run([harness.ENSEMBLED, "--help"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage", r.stdout)
        r = subprocess.run([harness.ENSEMBLED], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        r = subprocess.run([harness.ENSEMBLED, "--no-such-option"], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    harness.main()
