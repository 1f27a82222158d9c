#!/usr/bin/python3
"""corpus.py - make the seed corpora of the fuzz targets (tests/fuzz/corpus/)
and their msgpack-RPC dictionary (tests/fuzz/rpc.dict).

    /usr/bin/python3 tests/fuzz/corpus.py        # rewrites corpus/*/ and rpc.dict

Seeds come from real sessions: the seed-parity operation scripts
(tests/data/parity/*.ops) turned into the wire requests a router sends, cut
into windows of a few dozen operations, plus the example session of
protocol/README.md and the protocol violations the integration tests send.

    corpus/request/  one byte saying how to cut the stream into reads, then
                     a connection's stream of requests (fuzz_request.c)
    corpus/proto/    single messages, requests and replies (fuzz_proto.c)
    corpus/tracker/  operation programs in fuzz_tracker.c's encoding
    corpus/json/     JSON texts for fuzz_json.c: an export document, the
                     edges of the format's rules, and texts it refuses

Files are named by a hash of their content; the output is deterministic.
"""

import glob
import hashlib
import os
import shutil
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
PARITY = os.path.join(HERE, "..", "data", "parity")
WINDOW = 40          # operations per corpus file
MAX_FILE = 2000      # bytes; fuzz_request.c's message limit is 2048

TASKS = ["generate", "embed", "classify", "code", "reasoning"]
KINDS = ["accepted", "accepted_with_edits", "rejected", "inconclusive", "applied",
         "signature_changed", "body_modified", "symbol_added", "modified", "ignored"]
METHODS = ["start", "complete", "fail", "outcome", "query", "ping", "stats"]
ARGS = ["model", "task", "reason", "trace_id", "repo", "files", "latency_ms", "input_tokens",
        "output_tokens", "output", "error", "kind", "confidence", "actions", "success",
        "degrade_threshold", "pending", "limit", "code", "message"]


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def parse_ops(path):
    """The parity scripts' format (tests/data/parity/README.md)."""
    ops, seq = [], None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t")
            op, fields = parts[0], parts[1:]
            if op == "seq":
                seq = ("seq", [])
            elif op == "act":
                seq[1].append((fields[0], fields[1] == "1", float(fields[2]),
                               fields[3] if len(fields) > 3 else ""))
            elif op == "endseq":
                ops.append(seq)
                seq = None
            else:
                ops.append((op, fields))
    return ops


# ---- requests ------------------------------------------------------------

def requests(ops, prefix):
    """The wire calls of a script, with client trace ids (prefix + name) so
    that later operations can name traces without reading replies."""
    out = []

    def tid(name):
        return (prefix + name)[:128] if name else ""

    for op, f in ops:
        if op == "start":
            out.append(("start", {"model": f[1], "task": f[2], "reason": f[3] if len(f) > 3 else "",
                                  "trace_id": tid(f[0])}))
        elif op == "complete":
            out.append(("complete", {"trace_id": tid(f[0]), "latency_ms": int(f[1]),
                                     "input_tokens": int(f[2]), "output_tokens": int(f[3])}))
        elif op == "fail":
            out.append(("fail", {"trace_id": tid(f[0]), "error": f[1] if len(f) > 1 else ""}))
        elif op == "inferred":
            a = {"trace_id": tid(f[0]), "kind": f[1]}
            if f[1] != "inconclusive":
                a["confidence"] = float(f[2])
            out.append(("outcome", a))
        elif op == "code":
            out.append(("outcome", {"trace_id": tid(f[0]), "kind": f[1]}))
        elif op == "seq":
            out.append(("outcome", {"actions": [
                {"trace_id": tid(n), "success": s, "confidence": c, "output": o}
                for n, s, c, o in f]}))
    return out


def stream(calls, first_msgid=1):
    return b"".join(pack([0, first_msgid + i, m, [a] if a is not None else []])
                    for i, (m, a) in enumerate(calls))


EXAMPLE = [
    ("start", {"model": "qwen3-4b", "task": "code", "reason": "cheapest"}),
    ("start", {"model": "qwen3-4b", "task": "code", "trace_id": "r1:7"}),
    ("complete", {"trace_id": "r1:7", "latency_ms": 1200, "input_tokens": 100,
                  "output_tokens": 50, "output": "int f(void);"}),
    ("outcome", {"trace_id": "r1:7", "kind": "accepted", "confidence": 0.9}),
    ("query", {"model": "qwen3-4b"}),
    ("fail", {"trace_id": "r1:7"}),
    ("query", None),
    ("query", {"task": "code", "degrade_threshold": 0}),
    ("query", {"pending": True, "limit": 10, "model": "qwen3-4b"}),
    ("ping", None),
    ("stats", None),
]

CODE = [
    ("start", {"model": "coder", "task": "code", "trace_id": "c-1", "repo": "/tmp",
               "files": ["src/a.c", "include/b.h"]}),
    ("complete", {"trace_id": "c-1", "latency_ms": 12.6, "output": "int a(void) { return 1; }"}),
    ("outcome", {"trace_id": "c-1", "kind": "applied"}),
    ("outcome", {"actions": [{"trace_id": "c-1", "success": False, "confidence": 1.0}]}),
    ("query", {"pending": True}),
    ("start", {"model": "coder", "task": "code", "trace_id": "c-2"}),
    ("outcome", {"actions": [{"trace_id": "c-2", "success": True, "confidence": 0.5, "output": "x"},
                             {"trace_id": "", "success": False, "confidence": 0.2}]}),
]

VIOLATIONS = [
    pack([0, 7, "ping"]), pack([0, 8, "ping", [], 1]), pack([]), pack([0]),
    pack([1, 9, "ping", []]), pack([3, 10, "ping", []]), pack(["0", 12, "ping", []]),
    pack([0, 13, 5, []]), pack([0, 14, b"ping", []]), pack([0, 16, "ping", {}]),
    pack([0, 19, "ping", [5]]), pack([0, 21, "ping", [{}, {}]]),
    pack([0, 2 ** 32, "ping", []]), pack([0, -1, "ping", []]), pack([0, 1.0, "ping", []]),
    pack([2, "ping", 5]), pack([2, 5, []]), pack([2, "ping", [], 1]),
    pack([0, 30, "start", [{5: "m", "task": "generate"}]]),
    pack([0, 31, "start", [{"model": "m", "task": "generate", "modle": "x"}]]),
    pack([0, 32, "complete", [{"trace_id": "a b", "latency_ms": -1}]]),
    pack([0, 33, "outcome", [{"trace_id": "x", "kind": "accepted", "confidence": float("nan")}]]),
    pack([0, 34, "nosuch", []]),
    pack([2, "start", [{"model": "n", "task": "embed", "trace_id": "n-1"}]]),
    pack([2, "complete", [{"trace_id": "nope", "latency_ms": 1}]]),
]

CLOSING = [
    b"\xc1", pack(5), pack("ping"), pack({"0": 1}),
    b"\x94\x00\x01\xa4ping",                                   # cut short
    b"\xdd\xff\xff\xff\xff",                                   # 2^32-1 elements declared
    b"\x94\x00\x02\xa5start\x91\x81\xa5model\xdb\x06\x40\x00\x00",  # 100 MiB str declared
    b"\x91" * 40 + b"\xc0",                                    # nested past msgpack-c's 32
    b"\xc7\x00\x05",
]


def request_corpus():
    files = []
    cuts = [0x00, 0x41, 0x7f, 0xc8]
    for path in sorted(glob.glob(os.path.join(PARITY, "*.ops"))):
        name = os.path.basename(path)[:-4]
        calls = requests(parse_ops(path), "p:")
        for w, i in enumerate(range(0, len(calls), WINDOW)):
            data = stream(calls[i:i + WINDOW])
            while len(data) > MAX_FILE:
                data = data[:len(data) // 2]   # a cut message is a seed too
            files.append(bytes([cuts[w % len(cuts)]]) + data)
            if w >= 3:
                break
    files.append(b"\x00" + stream(EXAMPLE))
    files.append(b"\x43" + stream(EXAMPLE))
    files.append(b"\x00" + stream(CODE))
    files.append(b"\x00" + b"".join(VIOLATIONS) + pack([0, 99, "ping", []]))
    for c in CLOSING:
        files.append(b"\x00" + pack([0, 1, "ping", []]) + c + pack([0, 2, "ping", []]))
    # limits: pending (8), models (4) and too_large (2048) in reach
    files.append(b"\x00" + stream([("start", {"model": "m%d" % (i % 6), "task": "generate"})
                                   for i in range(12)]))
    files.append(b"\x00" + stream([("start", {"model": "big", "task": "generate",
                                              "reason": "r" * 2100})]))
    return files


def proto_corpus():
    files = []
    for m, a in EXAMPLE + CODE:
        files.append(pack([0, 1, m, [a] if a is not None else []]))
    files += VIOLATIONS + CLOSING
    files.append(pack([1, 1, None, {"trace_id": "t-1"}]))
    files.append(pack([1, 2, {"code": "bad_request", "message": "model: required"}, None]))
    files.append(pack([0, 3, "x", [{"s": "abc", "model": "\u00e9t\u00e9", "trace_id": "a:b-c.d_e",
                                    "u": 2 ** 32 - 1, "latency_ms": 12.5, "confidence": 1,
                                    "b": True, "a": [1, 2]}]]))
    files.append(pack([0, 4, "x", [{"u": 2 ** 32, "latency_ms": 1e300, "confidence": 1.5,
                                    "s": "x" * 17, "model": "a\x00b"}]]))
    files.append(b"".join(pack([0, i, "ping", []]) for i in range(5)))
    return files


# ---- tracker programs ----------------------------------------------------

def tracker_program(ops, max_models=0, max_pending=0):
    """fuzz_tracker.c's encoding (see its op table)."""
    out = bytearray([max_models, max_pending])
    slots, models = {}, {}
    uid = 1   # uids[1] = 1000

    def slot(name):
        if name not in slots:
            slots[name] = len(slots) % 12
        return slots[name]

    def model(m):
        if m not in models:
            models[m] = len(models) % 4
        return models[m]

    for n, (op, f) in enumerate(ops):
        if op == "start":
            out += bytes([0, model(f[1]) | TASKS.index(f[2]) << 2, slot(f[0]), uid])
        elif op == "complete":
            lat = min(int(f[1]), 65535)
            out += bytes([4, slot(f[0]), lat >> 8, lat & 0xff, int(f[2]) & 0xfe, uid])
        elif op == "fail":
            out += bytes([6, slot(f[0]), uid])
        elif op in ("inferred", "code"):
            conf = float(f[2]) if op == "inferred" and len(f) > 2 and f[2] else 0.0
            out += bytes([8, slot(f[0]), KINDS.index(f[1]), round(conf * 255), uid])
        elif op == "seq":
            acts = f[:7]
            out += bytes([11, len(acts)])
            for name, success, conf, output in acts:
                b = (0x18 if success else 0) | ((2 if output.strip() else 0) << 5)
                if name:
                    out += bytes([b | 1, slot(name), round(conf * 255)])
                else:
                    out += bytes([b, round(conf * 255)])
            out.append(uid)
        if n % 10 == 9:
            out += bytes([15, 3])      # the clock moves on
        if n % 25 == 24:
            out.append(13)             # collect
    out += bytes([0x8f, 13])           # reload, collect
    return bytes(out)


def tracker_corpus():
    files = []
    for path in sorted(glob.glob(os.path.join(PARITY, "*.ops"))):
        ops = parse_ops(path)
        for w, i in enumerate(range(0, len(ops), WINDOW)):
            limits = [(0, 0), (3, 8), (0, 5), (2, 0)][w % 4]
            files.append(tracker_program(ops[i:i + WINDOW], *limits))
            if w >= 3:
                break
    return files


# ---- JSON texts -------------------------------------------------------------

def json_corpus():
    # Raw strings: the JSON escapes are the text's own.
    export = (
        '{"format": "outcomed-profiles", "version": 1, "exported_at": 1795805556,\n'
        ' "profiles": [\n'
        '  {"model": "gpt-4o", "call_count": 18446744073709551615, "ema_quality": 0.1,\n'
        '   "tasks": {"code": {"success": 3, "failures": 0, "mean": 0.30000000000000004}},\n'
        '   "degraded": false, "latency_p50_ms": null, "cost": 1.2345678901234568e+17},\n'
        r'  {"model": "caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t", "x": 5e-324}' '\n'
        ' ]}\n')
    texts = [
        export,
        "\ufeff[]",
        "{}",
        "[" * 64 + "]" * 64,
        "[" * 65 + "]" * 65,
        "-9223372036854775808",
        "[18446744073709551616, -9223372036854775809, 1e400, -0, -0.0, 1E-7]",
        r'{"a": 1, "b": {"a": 2}, "\u0061": 3}',
        r'"\ud800 lone"',
        r'"\u0000\u001f\u007f"',
        '[1,\n 2,\n "unterminated',
        "[true, false, null, tru]",
        "012",
        "  \n\t 3 4",
    ]
    files = [t.encode("utf-8") for t in texts]
    files.append(b'"\xff\xc0\xaf\xed\xa0\x80"')   # invalid UTF-8 in a string
    files.append(b'["\xc3\xa9\xf0\x9f\x98\x80", x]')
    return files


# ---- output --------------------------------------------------------------

def write(target, files):
    d = os.path.join(HERE, "corpus", target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    seen = set()
    for data in files:
        h = hashlib.sha1(data).hexdigest()[:16]
        if h in seen:
            continue
        seen.add(h)
        with open(os.path.join(d, h), "wb") as f:
            f.write(data)
    return len(seen), sum(len(x) for x in files)


def dict_entry(b):
    return '"' + "".join(chr(c) if 0x20 <= c < 0x7f and chr(c) not in '"\\' else "\\x%02x" % c
                         for c in b) + '"'


def write_dict():
    words = METHODS + ARGS + TASKS + KINDS + ["/tmp", "src/a.c", "..", "t-fuzz-1"]
    lines = ["# rpc.dict - libFuzzer dictionary of msgpack-RPC tokens for fuzz_request",
             "# and fuzz_proto (made by corpus.py: do not edit by hand)."]
    for w in words:
        lines.append("%s=%s" % ("w_" + w.replace("/", "_").replace(".", "_").replace("-", "_"),
                                dict_entry(pack(w))))
    for name, b in [("req", b"\x94\x00"), ("notify", b"\x93\x02"), ("params", b"\x91\x81"),
                    ("params2", b"\x91\x82"), ("nil", b"\xc0"), ("true", b"\xc3"),
                    ("false", b"\xc2"), ("f64", b"\xcb"), ("u32", b"\xce"), ("str8", b"\xd9"),
                    ("arr32", b"\xdd"), ("map32", b"\xdf"), ("nan", pack(float("nan")))]:
        lines.append("t_%s=%s" % (name, dict_entry(b)))
    with open(os.path.join(HERE, "rpc.dict"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    for target, files in (("request", request_corpus()), ("proto", proto_corpus()),
                          ("tracker", tracker_corpus()), ("json", json_corpus())):
        n, size = write(target, files)
        print("corpus/%s: %d files, %d bytes" % (target, n, size))
    write_dict()
    print("rpc.dict written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
