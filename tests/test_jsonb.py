#!/usr/bin/python3
"""Events given as JSONB, on whatever SQLite the process runs.

    /usr/bin/python3 tests/test_jsonb.py [SO_PATH]

Where the host SQLite reads JSONB (3.45 and later), every function and
table that takes an event gives for jsonb(event) exactly what it gives for
the event's text (generated events of both tests/gen_events.py profiles and
hand-written ones: escapes, non-ASCII, deep nesting, long numbers), the
outbox stores the event as text, and a blob that is not JSONB is refused
with an error naming the function.  On an older SQLite (Debian 12 has
3.40) every one of them refuses a blob with the error that says JSONB needs
3.45.  To run the first half on a machine whose SQLite is older, point
LD_LIBRARY_PATH at a newer libsqlite3.so.0 (the sqlite3 CLI refuses a
library that is not its own, Python's module does not).

Prints "ok <name>" / "FAIL <name>: <detail>" lines; exit status 1 on failure.
"""
import json
import os
import sqlite3
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import ktap  # noqa: E402
from ktap import report  # noqa: E402

N = int(300 * float(os.environ.get("KUSTOMER_TEST_SCALE", "1")))
PLAIN = '{"apiKey":"k"}'
ADVANCED = '{"apiKey":"k","advancedTransform":true}'

# (name, SQL with ? for the event, settings): one value per call
SCALARS = [
    ("kustomer_request", "select kustomer_request(?, '%s')" % PLAIN),
    ("kustomer_request advanced",
     "select kustomer_request(?, '%s')" % ADVANCED),
    ("kustomer_tracking", "select kustomer_tracking(?, '%s')" % PLAIN),
    ("kustomer_identify", "select kustomer_identify(?, '%s')" % PLAIN),
    ("kustomer_event_name", "select kustomer_event_name(?, '%s')" % ADVANCED),
    ("kustomer_check", "select json_group_array(json_array(path, rule, "
                       "severity, message)) from kustomer_check(?, '%s')"
                       % PLAIN),
]
# the same for a properties object
PROPERTY_SCALARS = [
    ("kustomer_meta", "select kustomer_meta(?, '%s')" % ADVANCED),
    ("kustomer_meta_each", "select json_group_array(json_array(key, value, "
                           "sent)) from kustomer_meta_each(?, '%s')"
                           % ADVANCED),
]
# every place that takes JSON: SQL whose one ? is the blob, and the
# error's beginning
BLOB_CALLS = [
    ("kustomer_request", "select kustomer_request(?, '{}')",
     "kustomer_request(): argument 1 (event)"),
    ("kustomer_tracking", "select kustomer_tracking(?)",
     "kustomer_tracking(): argument 1 (event)"),
    ("kustomer_identify", "select kustomer_identify(?)",
     "kustomer_identify(): argument 1 (event)"),
    ("kustomer_event_name", "select kustomer_event_name(?)",
     "kustomer_event_name(): argument 1 (event)"),
    ("kustomer_meta", "select kustomer_meta(?)",
     "kustomer_meta(): argument 1 (properties)"),
    ("kustomer_check", "select * from kustomer_check(?)",
     "kustomer_check(): argument 1 (event)"),
    ("kustomer_meta_each", "select * from kustomer_meta_each(?)",
     "kustomer_meta_each(): argument 1 (properties)"),
    ("kustomer_process", "select kustomer_process(?, '%s')" % PLAIN,
     "kustomer_process(): argument 1 (event)"),
    ("kustomer_send", "select kustomer_send(?)",
     "kustomer_send(): argument 1 (request)"),
    ("kustomer_outbox", "insert into out(event) values (?)",
     "kustomer_outbox: event"),
]

HAND = [
    '{"type":"track","event":"Order Completed","userId":"u1",'
    '"properties":{"total":12.50,"items":[{"sku":"a","qty":2},null,true],'
    '"ship":{"city":"M\\u00fcnchen","zip":"80331"},"big":1e400,'
    '"small":-0.0,"exp":1.5E+3}}',
    '{"type":"identify","userId":"u2","traits":{"email":"a@example.com",'
    '"name":"\u00c5sa \\"Q\\" \U0001F389","gender":"f","birthday":0,'
    '"tags":["x","y"],"address":{"city":"Oslo"}}}',
    '{"type":"page","name":"Home","anonymousId":"a1","properties":'
    '{"url":"https://example.com/?q=a%20b","tab\\tkey":"\\u0000x"}}',
    '{"type":"screen","name":"S","userId":"u3","properties":' +
    '{"d":' * 200 + '1' + '}' * 200 + '}',
    '{"type":"track","event":"E","userId":"u4","context":{"traits":'
    '{"email":"b@example.com"}},"properties":{"n":12345678901234567890123}}',
]


def gen(profile):
    out = subprocess.run([sys.executable, os.path.join(HERE, "gen_events.py"),
                          "--n", str(N), "--seed", "11", "--profile", profile],
                         check=True, capture_output=True, text=True).stdout
    lines = []
    for line in out.splitlines():
        try:
            if isinstance(json.loads(line), dict):
                lines.append(line)
        except ValueError:
            pass
    return lines


def call(db, sql, arg):
    try:
        return db.execute(sql, (arg,)).fetchall()
    except sqlite3.Error as e:
        return "error: %s" % e


def host_has_jsonb(db):
    try:
        db.execute("select jsonb('{}')").fetchone()
        return True
    except sqlite3.OperationalError:
        return False


def same_as_text(db, events, props):
    """Each function on jsonb(x) against the same on x."""
    for calls, values in ((SCALARS, events), (PROPERTY_SCALARS, props)):
        for name, sql in calls:
            bad = []
            for v in values:
                b = db.execute("select jsonb(?)", (v,)).fetchone()[0]
                want, got = call(db, sql, v), call(db, sql, b)
                if want != got:
                    bad.append((v[:80], want, got))
            report("jsonb-same-as-text " + name, not bad,
                   "%d of %d differ; first: %r" % (len(bad), len(values),
                                                   bad[:1]))


def outbox_stores_text(db, events):
    db.execute("create virtual table out using kustomer_outbox("
               "settings='{\"apiKeyEnv\":\"KUSTOMER_TEST_NO_KEY\"}')")
    db.execute("create virtual table out_t using kustomer_outbox("
               "settings='{\"apiKeyEnv\":\"KUSTOMER_TEST_NO_KEY\"}')")
    for e in events:
        db.execute("insert into out(event) values (jsonb(?))", (e,))
        db.execute("insert into out_t(event) values (?)", (e,))
    got = db.execute("select typeof(event), event = json(event), request, "
                     "status, error from out order by id").fetchall()
    want = db.execute("select 'text', 1, request, status, error from out_t "
                      "order by id").fetchall()
    report("jsonb-outbox-stores-text", got == want and len(got) == len(events),
           "%d rows; first differing: %r" % (
               len(got), next(((g, w) for g, w in zip(got, want) if g != w),
                             None)))


def refused(db, blob, want_tail, label):
    for name, sql, head in BLOB_CALLS:
        got = call(db, sql, blob)
        want = "error: %s %s" % (head, want_tail)
        got = got if isinstance(got, str) else repr(got)
        report("%s %s" % (label, name), got == want,
               "got %r, want %r" % (got, want))


def main():
    so = ktap.so_path(sys.argv, ROOT)
    db = ktap.open_db(so, ":memory:")
    version = db.execute("select sqlite_version()").fetchone()[0]
    print("# SQLite %s" % version)
    if host_has_jsonb(db):
        events = HAND + gen("realistic") + gen("simple")
        props = [r[0] for r in db.execute(
            "select coalesce(value ->> '$.properties', '{}') from "
            "json_each(?) where json_type(value, '$.properties')='object' "
            "or 1", (json.dumps(events),))]
        same_as_text(db, events, props)
        outbox_stores_text(db, HAND + gen("simple")[:50])
        # 0xff: element type 15, which JSONB reserves; '{}' as bytes is a
        # header whose payload runs past the blob's end
        refused(db, b"\xff\x00\xff", "must be JSON text or JSONB, got a blob "
                "that is not JSONB", "jsonb-refused-not-jsonb")
        # the host's json() reads a blob of JSON text as that text
        for name, sql, head in BLOB_CALLS[:-1]:
            text = '{"type":"track","event":"E","userId":"u"}'
            want = call(db, sql, text)
            got = call(db, sql, text.encode())
            report("jsonb-text-bytes " + name, got == want,
                   "got %r, want %r" % (got, want))
    else:
        db.execute("create virtual table out using kustomer_outbox("
                   "settings='{\"apiKeyEnv\":\"KUSTOMER_TEST_NO_KEY\"}')")
        tail = ("must be JSON text, got blob (JSONB needs SQLite 3.45 or "
                "later; this is %s)" % version)
        refused(db, b"\x0c", tail, "jsonb-old-host")
        refused(db, b"{}", tail, "jsonb-old-host-text-bytes")
        n = db.execute("select count(*) from out").fetchone()[0]
        report("jsonb-old-host-outbox-stores-nothing", n == 0, "%d rows" % n)
    db.close()
    sys.exit(1 if ktap.FAILED else 0)


if __name__ == "__main__":
    main()
