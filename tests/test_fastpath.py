#!/usr/bin/python3
"""The fast paths against the full parse, on generated events.

    /usr/bin/python3 tests/test_fastpath.py [SO_PATH]

For events of both tests/gen_events.py profiles (realistic and simple,
with a share of deliberately flawed ones), every function gives the same
result for the event as for the same event with one more top-level member
whose number is longer than the scan takes, which makes cJSON parse it
all (as tests/sql/tree.sql does for hand-written events): kustomer_request
with and without advancedTransform and with setIdentityEmail,
kustomer_tracking (errors compared by message) and kustomer_check's rows.
One check per profile and function; a failure names the first events that
differ.

Prints "ok <name>" / "FAIL <name>: <detail>" lines; exit status 1 on failure.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import ktap  # noqa: E402
from ktap import report  # noqa: E402

N = int(1500 * float(os.environ.get("KUSTOMER_TEST_SCALE", "1")))
FULL = ',"zz":1.' + "0" * 70 + "}"
SETTINGS = [
    ("plain", '{"apiKey":"k"}'),
    ("advanced", '{"apiKey":"k","advancedTransform":true}'),
    ("identity-email", '{"apiKey":"k","setIdentityEmail":true,'
                       '"disableEmailAsTrackingProperty":true}'),
]


def events(profile):
    out = subprocess.run([sys.executable, os.path.join(HERE, "gen_events.py"),
                          "--n", str(N), "--seed", "3", "--flawed", "0.15",
                          "--profile", profile],
                         check=True, capture_output=True, text=True).stdout
    lines = []
    for line in out.splitlines():
        try:
            ok = isinstance(json.loads(line), dict)
        except ValueError:
            ok = False
        if ok and line.endswith("}"):
            lines.append(line)
    return lines


def call(db, sql, args):
    try:
        return db.execute(sql, args).fetchone()[0]
    except Exception as e:  # an SQL error is a result to compare too
        return "error: %s" % e


def compare(name, db, lines, sql, extra=()):
    bad = []
    for i, line in enumerate(lines):
        full = line[:-1] + FULL
        a = call(db, sql, (line,) + tuple(extra))
        b = call(db, sql, (full,) + tuple(extra))
        if a != b:
            bad.append("event %d: %r vs %r" % (i, a, b))
    report("%s (%d events)" % (name, len(lines)), not bad,
           "; ".join(bad[:2]))


def main():
    so = ktap.so_path(sys.argv, ROOT)
    db = ktap.connect(":memory:", isolation_level=None)
    db.enable_load_extension(True)
    db.load_extension(so)
    for profile in ("realistic", "simple"):
        lines = events(profile)
        for label, settings in SETTINGS:
            compare("fastpath %s: kustomer_request %s" % (profile, label), db,
                    lines, "select kustomer_request(?, ?)", (settings,))
        compare("fastpath %s: kustomer_tracking" % profile, db, lines,
                "select kustomer_tracking(?)")
        compare("fastpath %s: kustomer_tracking advanced" % profile, db,
                lines, "select kustomer_tracking(?, ?)", (SETTINGS[1][1],))
        compare("fastpath %s: kustomer_check advanced" % profile, db, lines,
                "select group_concat(path || ' ' || rule || ' ' || message,"
                " char(10)) from kustomer_check(?, ?)", (SETTINGS[1][1],))
    sys.exit(1 if ktap.FAILED else 0)


if __name__ == "__main__":
    main()
