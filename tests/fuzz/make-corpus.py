#!/usr/bin/python3
"""Writes the seed corpus of fuzz_decode (corpus/decode), fuzz_config
(corpus/config) and fuzz_body (corpus/body; its body seeds only when
ENSEMBLECTL names a built ensemblectl). Needs python3-msgpack (Debian).
Rerun after changing the protocol, the body or the config keys; the files
are checked in."""
import os
import struct

import msgpack

here = os.path.dirname(os.path.abspath(__file__))


def write(kind, name, data):
    d = os.path.join(here, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def p(o):
    return msgpack.packb(o, use_bin_type=True)


pred = {"kind": "prediction", "task": "qa", "query": "q1", "model": "m1", "label": "A"}
lab = {"kind": "label", "task": "qa", "query": "q1", "label": "A", "ts": 1700000000.5}
seeds = {
    "pred_single": p(pred),
    "label_single": p(lab),
    "pred_map": p({"kind": "prediction", "query": 7, "predictions": {"m1": "A", "m2": 3, "m3": None}}),
    "pred_both": p({"kind": "prediction", "query": "q", "model": "m0", "label": "?",
                    "predictions": {"m1": "B"}, "cost": 0.25, "ts": 12}),
    "label_int": p({"kind": "label", "query": 2**64 - 1, "label": -5, "cost": 1.5}),
    "batch": p([pred, lab, {"kind": "label", "query": 9, "label": 1}]),
    "unknown_keys": p({"kind": "label", "query": "x", "label": "y", "extra": [1, {"a": b"bin"}]}),
    "float32": b"\x84\xa4kind\xa5label\xa5query\x01\xa5label\xa1a\xa2ts\xca" + struct.pack(">f", 1.5),
    "ext_types": p({"kind": "label", "query": 1, "label": "z",
                    "x": [msgpack.ExtType(1, b"a"), msgpack.ExtType(2, b"ab" * 100)]}),
    "deep": b"\x91" * 6 + b"\xc0",
    "issue1013_array32": b"\xdd\xff\x00\x00\x00",
    "issue1013_map32": b"\xdf\xff\xff\xff\xff",
    "array16_short": b"\xdc\xff\xff",
    "str32_4g": b"\xdb\xff\xff\xff\xff" + b"a" * 8,
    "trailing": p(lab) + b"\xc0",
    "empty_batch": b"\x90",
    "not_event": p("hello"),
}
# A well-formed duplicate key: a map of 6 pairs with "kind" twice.
dup = b"\x86" + b"".join(p(k) + p(v) for k, v in
                          [("kind", "prediction"), ("query", "q"), ("model", "m"),
                           ("label", "a"), ("kind", "label"), ("ts", 1)])
seeds["dup_key"] = dup


# Non-minimal and wide headers, which msgpack packers never choose for small
# values but which are valid: every str, bin, ext, array, map and integer
# width appears once. (An -O2 build folds these header cases into one
# branch, so coverage alone would not lead the fuzzer to them.)
def hdr(t, fmt, n):
    return bytes([t]) + struct.pack(fmt, n)


def s16(x):
    return hdr(0xDA, ">H", len(x)) + x.encode()


def s32(x):
    return hdr(0xDB, ">I", len(x)) + x.encode()


def s8(x):
    return hdr(0xD9, ">B", len(x)) + x.encode()


seeds["wide_event"] = (
    hdr(0xDF, ">I", 6) + s32("kind") + s16("label") + s16("query") + hdr(0xCD, ">H", 256)
    + s32("label") + hdr(0xD1, ">h", -256) + s8("x1") + hdr(0xC5, ">H", 3) + b"abc"
    + s8("x2") + hdr(0xDC, ">H", 3) + hdr(0xC6, ">I", 2) + b"ab" + hdr(0xC8, ">H", 2) + b"\x05ab"
    + hdr(0xC9, ">I", 1) + b"\x06a" + s8("ts") + hdr(0xCB, ">d", 12.5))
ev1 = (hdr(0xDE, ">H", 5) + s8("kind") + s8("prediction") + s8("query")
       + hdr(0xCE, ">I", 70000) + s8("model") + s8("m") + s8("label") + hdr(0xD2, ">i", -70000)
       + s8("x") + b"\x95" + b"\xd4\x01a" + b"\xd5\x01ab" + b"\xd6\x01abcd" + b"\xd7\x01" + b"a" * 8
       + b"\xd8\x01" + b"a" * 16)
ev2 = (hdr(0xDE, ">H", 4) + s8("kind") + s8("prediction") + s8("query")
       + hdr(0xCF, ">Q", 2**40) + s8("predictions") + hdr(0xDE, ">H", 3) + s8("a")
       + hdr(0xD3, ">q", -2**40) + s8("b") + hdr(0xD0, ">b", -3) + s8("c") + hdr(0xCC, ">B", 200)
       + s8("x") + b"\x92" + hdr(0xC4, ">B", 2) + b"ab" + hdr(0xC7, ">B", 2) + b"\x01ab")
seeds["wide_batch"] = hdr(0xDD, ">I", 2) + ev1 + ev2
for name, data in seeds.items():
    write("decode", name, data)

with open(os.path.join(here, "..", "..", "conf", "ensembled.conf")) as f:
    write("config", "shipped", f.read())
write("config", "tasks", """[ingest]
bind = tcp://127.0.0.1:5557
connect = tcp://a:1, tcp://b:2
sample_rate = 0.5
max_models = 16
[join]
ttl = 250ms
max_pending = 10
[task.qa]
ttl = 1h
budget = 5
strategy = greedy-cost
cost_budget = 2.5
[select]
estimator = miller-madow
budget = 2
[task.other]
rows = 100
max_age = 2d
answers = open
normalize = numeric
[log]
level = debug
""")
write("config", "bad_value", "[select]\nbudget = 0\n")
write("config", "bad_key", "[nope]\nkey = 1\n")
write("config", "syntax", "[ingest\nbind\n")
write("config", "multiline", "[state]\ndir = /var/lib/x\n  continued\n; comment\n# other\n")
write("config", "empty_task", "[task.]\nttl = 1s\n")
write("config", "durations", "[publish]\ninterval = 1.5m\nevery_labels = 0\nmin_improvement_bits = 1e-3\n")

# fuzz_body: byte 0 picks the decoder (0 a publication body, 1 a control
# request). Bodies come from `ensemblectl select --body` (JSON, turned back
# into MessagePack here) when ENSEMBLECTL points at a build, under
# configurations that publish each combiner kind; requests are written out.
ctl = os.environ.get("ENSEMBLECTL")
if ctl:
    import json
    import subprocess
    import tempfile
    data = os.path.join(here, "..", "data", "winogrande_routerbench_11llm.csv")
    confs = {"weighted": "", "topk4": "[select]\nstrategy = top-k\nbudget = 4\nmin_rows = 1\n",
             "caruana": "[select]\nstrategy = caruana\nbudget = 3\nexplore_rate = 0\n",
             "open": "[window]\nanswers = open\nnormalize = fold\n"}
    for name, text in confs.items():
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write(text)
            f.flush()
            out = subprocess.run([ctl, "select", "--csv", data, "--body", "--config", f.name],
                                 check=True, capture_output=True, text=True).stdout
        write("body", "body_" + name, b"\0" + p(json.loads(out)))
for name, req in {"status": {"cmd": "status"}, "ensemble": {"cmd": "ensemble", "task": "qa"},
                  "recompute": {"cmd": "recompute"}, "unknown": {"cmd": "stop", "task": 7}}.items():
    write("body", "req_" + name, b"\1" + p(req))
