#!/usr/bin/env python3
"""The API key appears nowhere it should not, over the whole test run.

Usage: tests/check_secrets.py ARTIFACTS_DIR   (tests/run.sh runs it last)

Searches what the suites left in ARTIFACTS_DIR (see tests/ktap.py):
  errors.txt       every SQLite error message of the Python suites and of
                   the tests/sql/*.err cases
  rows.txt         every row of every table the Python suites stored
  requests.ndjson  every request the fake Kustomer API received
  output.txt       every line every suite printed
for every key in keys.txt and for the marker "5e3cr3t" that every test key
holds (so a key a suite forgot to declare is found too).  The one allowed
place is the Authorization header a request carried to the server.  Each
part must also be non-empty, so a broken collection cannot pass by
finding nothing.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ktap  # noqa: E402
from ktap import report  # noqa: E402

MARKER = "5e3cr3t"


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


def leaks(line, keys):
    return MARKER in line or any(k in line for k in keys)


def main():
    if len(sys.argv) != 2:
        print("usage: tests/check_secrets.py ARTIFACTS_DIR", file=sys.stderr)
        return 2
    art = sys.argv[1]
    keys = sorted(set(k for k in read(os.path.join(art, "keys.txt")) if k))
    report("secrets: the suites declared their test keys (%d)" % len(keys),
           len(keys) >= 3 and all(MARKER in k for k in keys), keys)

    # minimum counts: far below what the suites produce today
    for fname, what, least in (("errors.txt", "error messages", 50),
                               ("rows.txt", "stored rows", 200),
                               ("output.txt", "lines of suite output", 500)):
        lines = read(os.path.join(art, fname))
        bad = [l for l in lines if leaks(l, keys)]
        report("secrets: no key in %d %s" % (len(lines), what),
               len(lines) >= least and not bad,
               bad[:5] or "only %d collected" % len(lines))

    nreq = nauth = 0
    bad = []
    for line in read(os.path.join(art, "requests.ndjson")):
        try:
            rec = json.loads(line)
        except ValueError:
            bad.append("unreadable record: " + line[:200])
            continue
        nreq += 1
        headers = dict(rec.get("headers") or {})
        auth = headers.pop("authorization", None)
        if auth is not None and leaks(auth, keys):
            if auth.startswith("Bearer ") and auth[7:] in keys:
                nauth += 1
            else:
                bad.append("authorization %r" % auth)
        rest = json.dumps(dict(rec, headers=headers), ensure_ascii=False)
        if leaks(rest, keys):
            bad.append(rest[:300])
    report("secrets: in %d requests to the fake, a key only as the "
           "Authorization header (%d times)" % (nreq, nauth),
           nreq >= 200 and nauth >= 50 and not bad,
           bad[:5] or "too few requests or keys seen")
    return 1 if ktap.FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
