#!/usr/bin/env python3
"""scripts/check-structure against small source trees built in a temporary
directory: each rule broken on purpose (an include cycle, an I/O library in
the pure core, an 81-line function) and kept (the same trees just inside the
rules). The cycles of a random include graph are checked against a brute-force
enumeration of every ordering of every subset of modules.
"""
import itertools
import os
import random
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "scripts", "check-structure")


def function(name, lines, comment=True):
    """A C function whose braces (at column 0) span `lines` lines in all."""
    assert lines >= 2
    head = ["/* %s does nothing, at length. */" % name] if comment else []
    body = ["    x += %d;" % i for i in range(lines - 2)]
    return "\n".join(head + ["static int %s(int x)" % name, "{"] + body + ["}", ""])


class Tree:
    """A throwaway source tree: write(path, text), then run the script on it."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="check-structure-")
        self.root = self.tmp.name
        self.write("src/lib/.keep", "")

    def write(self, rel, text):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    def module(self, name, includes_c=(), includes_h=()):
        """src/daemon/<name>.c and .h, including the given modules' headers."""
        self.write("src/daemon/%s.h" % name,
                   "".join('#include "%s.h"\n' % m for m in includes_h))
        self.write("src/daemon/%s.c" % name, '#include "%s.h"\n' % name +
                   "".join('#include "%s.h"\n' % m for m in includes_c))

    def run(self):
        r = subprocess.run([sys.executable, SCRIPT, "--root", self.root],
                           capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout

    def close(self):
        self.tmp.cleanup()


def cycle_lines(out):
    """The module rings of the reported cycles, e.g. ['a -> b -> a']."""
    return sorted(line.split("include cycle: ", 1)[1].split(" (")[0]
                  for line in out.splitlines() if "include cycle: " in line)


def brute_force_cycles(graph):
    """Every elementary cycle of graph as 'a -> b -> ... -> a', smallest node
    first: every ordering of every subset, kept when each edge exists."""
    found = set()
    nodes = sorted(graph)
    for k in range(2, len(nodes) + 1):
        for subset in itertools.combinations(nodes, k):
            first, rest = subset[0], subset[1:]
            for perm in itertools.permutations(rest):
                ring = (first,) + perm + (first,)
                if all(b in graph[a] for a, b in zip(ring, ring[1:])):
                    found.add(" -> ".join(ring))
    return sorted(found)


class CheckStructureTest(unittest.TestCase):

    def setUp(self):
        self.t = Tree()
        self.addCleanup(self.t.close)

    # -- a clean tree ------------------------------------------------------
    def clean_tree(self):
        t = self.t
        # A layered daemon: main -> daemon -> {ingest, state} -> log, with
        # state split over state.c, snapshot.c and an internal header.
        t.module("log")
        t.module("state", includes_c=["log", "state_int"])
        t.write("src/daemon/state_int.h", '#include "state.h"\n')
        t.write("src/daemon/snapshot.c", '#include "state_int.h"\n#include "log.h"\n')
        t.module("ingest", includes_h=["log"])
        t.module("daemon", includes_c=["ingest", "state"], includes_h=["log"])
        t.write("src/daemon/main.c", '#include "daemon.h"\n#include <uv.h>\n#include <zmq.h>\n')
        # The core may include msgpack and its own headers; a commented-out
        # I/O include is no include.
        t.write("include/ensembled/core.h", "#include <msgpack.h>\n")
        t.write("src/lib/core.c", '#include "ensembled/core.h"\n'
                "/* #include <uv.h> was here once\n#include <zmq.h> */\n"
                "// #include <systemd/sd-daemon.h>\n" + function("longest", 80))
        t.write("src/ctl/main.c", function("main_like", 80, comment=False))

    def test_clean_tree_passes(self):
        self.clean_tree()
        rc, out = self.t.run()
        self.assertEqual(rc, 0, out)
        self.assertIn("check-structure: ok", out)

    # -- rule 1 ------------------------------------------------------------
    def test_cycles_are_each_reported_with_their_includes(self):
        self.clean_tree()
        t = self.t
        # log -> daemon closes two cycles through daemon's two paths to log;
        # a .c-only module and a header-only edge count the same.
        t.module("log", includes_h=["daemon"])
        t.module("a", includes_h=["b"])
        t.module("b", includes_c=["a"])
        rc, out = t.run()
        self.assertEqual(rc, 1, out)
        self.assertEqual(cycle_lines(out), [
            "a -> b -> a",
            "daemon -> ingest -> log -> daemon",
            "daemon -> log -> daemon",
            "daemon -> state -> log -> daemon",
        ], out)
        self.assertIn("src/daemon/a.h:1 includes b.h; src/daemon/b.c:2 includes a.h", out)
        self.assertIn("include cycles among the daemon's modules: 4", out)

    def test_internal_header_is_part_of_its_module(self):
        # state_int.h including state.h is no cycle; snapshot.c reaching
        # daemon.h through state_int.h and daemon.c including state.h is.
        self.clean_tree()
        self.t.write("src/daemon/state_int.h", '#include "state.h"\n#include "daemon.h"\n')
        rc, out = self.t.run()
        self.assertEqual(rc, 1, out)
        self.assertEqual(cycle_lines(out), ["daemon -> state -> daemon"], out)
        self.assertIn("src/daemon/state_int.h:2 includes daemon.h", out)

    def test_random_graphs_match_brute_force(self):
        rng = random.Random(20240611)
        names = ["alpha", "beta", "gamma", "delta", "eps", "zeta"]
        for trial in range(12):
            t = Tree()
            try:
                graph = {n: {m for m in names if m != n and rng.random() < 0.35}
                         for n in names}
                for n in names:
                    deps = sorted(graph[n])
                    split = rng.randrange(len(deps) + 1)
                    t.module(n, includes_c=deps[:split], includes_h=deps[split:])
                rc, out = t.run()
                want = brute_force_cycles(graph)
                self.assertEqual(cycle_lines(out), want, "trial %d: %r" % (trial, graph))
                self.assertEqual(rc, 1 if want else 0, out)
            finally:
                t.close()

    # -- rule 2 ------------------------------------------------------------
    def test_io_includes_in_the_core_are_reported(self):
        self.clean_tree()
        t = self.t
        t.write("src/lib/net.c", '#include <stdio.h>\n#include <uv.h>\n#include "zmq.h"\n')
        t.write("include/ensembled/notify.h",
                "#include <stddef.h>\n\n#  include <systemd/sd-daemon.h>\n")
        t.write("src/lib/conf.c",
                '#include "ini.h"\n#include <zmq_utils.h>\n#include <uv/unix.h>\n')
        rc, out = t.run()
        self.assertEqual(rc, 1, out)
        tail = " in the pure core"
        got = sorted(line.strip()[:-len(tail)] for line in out.splitlines() if tail in line)
        self.assertEqual(got, [
            "include/ensembled/notify.h:3: includes <systemd/sd-daemon.h> (libsystemd)",
            'src/lib/conf.c:1: includes "ini.h" (inih)',
            "src/lib/conf.c:2: includes <zmq_utils.h> (ZeroMQ)",
            "src/lib/conf.c:3: includes <uv/unix.h> (libuv)",
            "src/lib/net.c:2: includes <uv.h> (libuv)",
            'src/lib/net.c:3: includes "zmq.h" (ZeroMQ)',
        ], out)
        self.assertIn("check-structure: 6 violations", out)

    # -- rule 3 ------------------------------------------------------------
    def test_81_line_functions_are_reported(self):
        self.clean_tree()
        t = self.t
        # After 3 lines of includes and 81 lines of one function, and a
        # declarator over two lines.
        t.write("src/lib/big.c", "#include <stddef.h>\n\n/* big */\n" + function("big", 81)
                + function("fine", 80))
        two_line = function("wrapped", 120, comment=False).replace(
            "static int wrapped(int x)", "static int\nwrapped(int x)")
        t.write("src/daemon/x.h", "static inline int tiny(void)\n{\n    return 0;\n}\n" + two_line)
        rc, out = t.run()
        self.assertEqual(rc, 1, out)
        got = sorted(line.strip() for line in out.splitlines() if "lines (at most 80)" in line)
        self.assertEqual(got, [
            "src/daemon/x.h:7: wrapped() is 120 lines (at most 80)",
            "src/lib/big.c:6: big() is 81 lines (at most 80)",
        ], out)

    def test_not_a_tree(self):
        with tempfile.TemporaryDirectory() as d:
            r = subprocess.run([sys.executable, SCRIPT, "--root", d], capture_output=True,
                               text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("has no src/", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
