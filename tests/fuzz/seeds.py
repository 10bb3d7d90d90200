#!/usr/bin/python3
"""Write the libFuzzer seed corpora into build/fuzz/corpus/<target>/.

Sources: the conformance vectors (../shared/conformance/*.json relative to
the repository root: each vector's event and settings, router inputs
included) and every 100th line of sql/sample_events.ndjson.  Seeds are named
by content hash, so rerunning adds nothing twice and keeps what the fuzzers
found.  Usage: tests/fuzz/seeds.py [OUTDIR]  (default build/fuzz/corpus)
"""
import glob
import hashlib
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def vectors():
    """(event, settings) pairs as compact JSON bytes (settings may be None)."""
    for path in sorted(glob.glob(os.path.join(ROOT, "..", "shared", "conformance", "*.json"))):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if not isinstance(data, list):
            continue
        for vec in data:
            if not isinstance(vec, dict):
                continue
            items = [vec] + [i for i in vec.get("inputs", []) if isinstance(i, dict)]
            for item in items:
                if "event" in item:
                    yield item["event"], item.get("settings")


def sample_events(step=100):
    path = os.path.join(ROOT, "sql", "sample_events.ndjson")
    try:
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i % step == 0 and line.strip():
                    yield json.loads(line), None
    except OSError:
        return


def dump(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def numbers(v, out):
    if isinstance(v, bool):
        return
    if isinstance(v, (int, float)):
        try:
            out.add(float(v))
        except OverflowError:
            pass
    elif isinstance(v, dict):
        for x in v.values():
            numbers(x, out)
    elif isinstance(v, list):
        for x in v:
            numbers(x, out)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "fuzz", "corpus")
    seeds = {"fuzz_functions": set(), "fuzz_json": set(), "fuzz_jsnum": set()}
    nums = {0.0, -0.0, 1.0, -1.0, 0.1, 1e21, 1e-7, 123456789012345680000.0,
            5e-324, 1.7976931348623157e308, float("inf"), float("nan")}
    pairs = list(vectors()) + list(sample_events())
    for event, settings in pairs:
        ev = dump(event)
        st = dump(settings) if settings is not None else None
        fn = seeds["fuzz_functions"]
        # flags byte, event, NUL, settings [, NUL, customer id]
        fn.add(b"\x00" + ev + (b"\x00" + st if st is not None else b""))
        if st is not None:
            fn.add(b"\x00" + ev + b"\x00" + st + b"\x00cust123")
            fn.add(b"\x10" + ev + b"\x00" + st + b"\x0042")
        seeds["fuzz_json"].add(ev)
        if st is not None:
            seeds["fuzz_json"].add(st)
        numbers(event, nums)
    for r in nums:
        seeds["fuzz_jsnum"].add(struct.pack("<d", r))
    for target, items in seeds.items():
        d = os.path.join(outdir, target)
        os.makedirs(d, exist_ok=True)
        for data in items:
            name = hashlib.sha1(data).hexdigest()
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print("seeds %s: %d" % (target, len(items)))


if __name__ == "__main__":
    main()
