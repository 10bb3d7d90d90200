#!/usr/bin/python3
"""kustomer_events(): archives read as SDKs and pipelines write them.

    /usr/bin/python3 tests/test_events.py [SO_PATH]

Each SDK's body shape (RudderStack's and Segment's {"batch":[..]} with
sentAt and writeKey), NDJSON of messages and of envelopes, JSON arrays,
pretty-printed documents, gzip (one member or several, known by the magic
bytes whatever the name), directories and globs; bad inputs each a row
with its error while the rest is read (malformed and truncated lines, a
truncated gzip, an envelope whose batch is not an array, a line over the
size limit, invalid UTF-8, a binary file, an empty file, a glob matching
nothing, a file that cannot be opened); SQL errors naming the function
for bad arguments; refused in views and triggers (SQLITE_DIRECTONLY);
memory flat over a large gzip'd file (the sqlite3 CLI's peak RSS).

Prints "ok <name>" / "FAIL <name>: <detail>" lines; exit status 1 on failure.
"""
import gzip
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import ktap  # noqa: E402
from ktap import report  # noqa: E402

SQLITE3 = os.environ.get("SQLITE3", "sqlite3")


def connect(so):
    db = ktap.connect(":memory:", isolation_level=None)
    db.enable_load_extension(True)
    db.load_extension(so)
    return db


def rows(db, path, options=None):
    sql = ("select message, file, line, batch_index, error from "
           "kustomer_events(?%s)" % (", ?" if options is not None else ""))
    args = (path,) if options is None else (path, options)
    return db.execute(sql, args).fetchall()


def write(path, data, gz=False):
    if isinstance(data, str):
        data = data.encode()
    if gz:
        data = gzip.compress(data)
    with open(path, "wb") as f:
        f.write(data)
    return path


def msg(i, **kw):
    m = {"type": "track", "event": "E%d" % i, "userId": "u%d" % i,
         "messageId": "m%d" % i, "properties": {"n": i}}
    m.update(kw)
    return json.dumps(m, separators=(",", ":"))


def t_shapes(so, tmp):
    db = connect(so)
    ms = [msg(i) for i in range(6)]
    rudder = {"batch": [json.loads(m) for m in ms[:3]], "sentAt": "2024-05-01T00:00:00.000Z"}
    segment = {"batch": [json.loads(m) for m in ms[3:]], "writeKey": "wk-5ecret",
               "sentAt": "2024-05-01T00:00:00.000Z"}
    # the RudderStack node SDK's bodies are gzip'd (labelled form-urlencoded)
    write(os.path.join(tmp, "rudder.body"), json.dumps(rudder), gz=True)
    write(os.path.join(tmp, "segment.json"), json.dumps(segment, indent=2))
    got = rows(db, os.path.join(tmp, "rudder.body"))
    report("shapes: a gzip'd RudderStack body, named without .gz: its 3 "
           "messages, batch_index 0..2, line 1",
           [(r[2], r[3]) for r in got] == [(1, 0), (1, 1), (1, 2)]
           and [json.loads(r[0]) for r in got] == rudder["batch"], got)
    got = rows(db, os.path.join(tmp, "segment.json"))
    report("shapes: a pretty-printed Segment body: its messages, never its "
           "writeKey", [json.loads(r[0]) for r in got] == segment["batch"]
           and not any("wk-5ecret" in (r[0] or "") for r in got), got)
    # NDJSON of messages, of envelopes, mixed; exact text kept
    spaced = '{"type": "track",  "event": "Spaced",\t"userId":"s"}'
    lines = [ms[0], "", json.dumps({"batch": [json.loads(ms[1]),
                                              json.loads(ms[2])]}),
             spaced, ms[3]]
    write(os.path.join(tmp, "mixed.ndjson"), "\n".join(lines) + "\n")
    got = rows(db, os.path.join(tmp, "mixed.ndjson"))
    report("shapes: NDJSON of messages and envelopes, blank lines skipped",
           [(r[2], r[3]) for r in got] == [(1, None), (3, 0), (3, 1),
                                           (4, None), (5, None)], got)
    report("shapes: the message's text exactly as in the file",
           got[3][0] == spaced and got[0][0] == ms[0], got[3][0])
    write(os.path.join(tmp, "array.json"),
          "[\n" + ",\n".join(ms) + "\n]\n")
    got = rows(db, os.path.join(tmp, "array.json"))
    report("shapes: a JSON array of messages: a row each, line of each",
           [r[0] for r in got] == ms and [r[2] for r in got] ==
           list(range(2, 8)), got)
    crlf = "\r\n".join(ms[:3]) + "\r\n"
    write(os.path.join(tmp, "crlf.ndjson"), crlf)
    got = rows(db, os.path.join(tmp, "crlf.ndjson"))
    report("shapes: CRLF lines", [r[0] for r in got] == ms[:3], got)
    # two gzip members (hourly files concatenated)
    with open(os.path.join(tmp, "two.gz"), "wb") as f:
        f.write(gzip.compress(("\n".join(ms[:3]) + "\n").encode()))
        f.write(gzip.compress(("\n".join(ms[3:]) + "\n").encode()))
    got = rows(db, os.path.join(tmp, "two.gz"))
    report("shapes: a gzip file of two members: both read",
           [r[0] for r in got] == ms, got)
    r = db.execute("select json_extract(message, '$.event'), "
                   "json_type(json_array(message), '$[0]') from "
                   "kustomer_events(?) limit 1",
                   (os.path.join(tmp, "two.gz"),)).fetchone()
    report("shapes: message composes with json_extract and is JSON (its "
           "subtype)", r == ("E0", "object"), r)
    r = db.execute("select json_extract(kustomer_request(message, "
                   "'{\"apiKey\":\"k\"}'), '$.endpoint') from "
                   "kustomer_events(?) limit 1",
                   (os.path.join(tmp, "two.gz"),)).fetchone()
    report("shapes: messages go straight into kustomer_request",
           r and r[0] and "/v1/tracking/identityEvent" in r[0], r)
    db.close()


def t_paths(so, tmp):
    db = connect(so)
    d = os.path.join(tmp, "dir")
    os.makedirs(os.path.join(d, "sub"))
    write(os.path.join(d, "2024-05-01.ndjson.gz"), msg(1) + "\n", gz=True)
    write(os.path.join(d, "2024-05-02.ndjson"), msg(2) + "\n" + msg(3) + "\n")
    write(os.path.join(d, "sub", "deeper.ndjson"), msg(9) + "\n")
    write(os.path.join(d, ".hidden"), msg(8) + "\n")
    got = rows(db, d)
    report("paths: a directory: its files in name order (not its "
           "subdirectories or hidden files)",
           [os.path.basename(r[1]) for r in got] ==
           ["2024-05-01.ndjson.gz", "2024-05-02.ndjson", "2024-05-02.ndjson"],
           got)
    got = rows(db, os.path.join(d, "2024-05-*"))
    report("paths: a glob", len(got) == 3 and all(r[4] is None for r in got),
           got)
    got = rows(db, os.path.join(d, "2023-*.gz"))
    report("paths: a glob matching nothing: one row that says so",
           len(got) == 1 and got[0][0] is None and "no file matches" in
           (got[0][4] or ""), got)
    got = rows(db, os.path.join(tmp, "missing.ndjson"))
    report("paths: a file that cannot be opened: a row with its error",
           len(got) == 1 and "cannot open" in (got[0][4] or "") and
           got[0][1].endswith("missing.ndjson"), got)
    write(os.path.join(tmp, "empty"), "")
    report("paths: an empty file: no row", rows(db, os.path.join(tmp,
                                                                 "empty"))
           == [], "")
    db.close()


def t_bad(so, tmp):
    db = connect(so)
    good = [msg(i) for i in range(3)]
    bad = "\n".join([good[0], '{"type":"track",', "[1,2]", '"x"',
                     '{"batch":{"type":"track"}}', good[1] + " junk",
                     '{"type":"track","event":"\xe9"}', good[2]]) + "\n"
    data = bad.encode("utf-8").replace(b"\xc3\xa9", b"\xe9")   # not UTF-8
    write(os.path.join(tmp, "bad.ndjson"), data)
    got = rows(db, os.path.join(tmp, "bad.ndjson"))
    errs = {r[2]: r[4] for r in got if r[4]}
    report("bad: the good lines are all read (%d rows)" % len(got),
           [r[0] for r in got if r[0]] == [good[0], good[2]] and
           len(got) == 9, got)
    report("bad: a truncated line: malformed JSON",
           "not valid JSON" in (errs.get(2) or ""), errs)
    report("bad: an array of non-objects: a row per element",
           sum(1 for r in got if r[2] == 3) == 2 and
           "not a JSON object" in (errs.get(3) or ""), errs)
    report("bad: a bare string: not an object",
           "not a JSON object" in (errs.get(4) or ""), errs)
    report("bad: an envelope whose batch is not an array",
           "batch is not an array" in (errs.get(5) or ""), errs)
    report("bad: text after the value", "text after" in (errs.get(6) or ""),
           errs)
    report("bad: invalid UTF-8", "UTF-8" in (errs.get(7) or ""), errs)
    long_line = msg(1, properties={"pad": "x" * 5000})
    write(os.path.join(tmp, "long.ndjson"),
          good[0] + "\n" + long_line + "\n" + good[1] + "\n")
    got = rows(db, os.path.join(tmp, "long.ndjson"), '{"maxLineBytes":1000}')
    report("bad: a line over maxLineBytes: its error, the next line read",
           [r[0] for r in got] == [good[0], None, good[1]] and
           "longer than 1000 bytes" in (got[1][4] or "") and got[1][2] == 2,
           got)
    full = gzip.compress(("\n".join(good * 200) + "\n").encode())
    write(os.path.join(tmp, "cut.gz"), full[:len(full) // 2])
    got = rows(db, os.path.join(tmp, "cut.gz"))
    report("bad: a truncated gzip: what it holds, then its error",
           got and got[-1][0] is None and "truncated" in (got[-1][4] or "")
           and all(r[0] for r in got[:-1]), (len(got), got[-1:]))
    write(os.path.join(tmp, "binary"), b"\x7fELF\x00\x01\x02\n" + good[0].encode())
    got = rows(db, os.path.join(tmp, "binary"))
    report("bad: a binary file: one row, not a text file",
           len(got) == 1 and "not a text file" in (got[0][4] or ""), got)
    deep = "[" * 5000 + "]" * 5000
    write(os.path.join(tmp, "deep.ndjson"), deep + "\n" + good[0] + "\n")
    got = rows(db, os.path.join(tmp, "deep.ndjson"))
    report("bad: a deeply nested line: its error, then the next",
           len(got) == 2 and got[0][4] and got[1][0] == good[0], got)
    db.close()


def t_arguments(so, tmp):
    db = connect(so)
    cases = [("select * from kustomer_events(1)", "argument 1 (path) must be"),
             ("select * from kustomer_events('')", "argument 1 (path) is empty"),
             ("select * from kustomer_events('x', '[1]')", "argument 2"),
             ("select * from kustomer_events('x', '{\"bogus\":1}')",
              "unknown option 'bogus'"),
             ("select * from kustomer_events('x', '{\"maxLineBytes\":0}')",
              "maxLineBytes must be"),
             ("select * from kustomer_events", "argument 1 (path) is required")]
    for sql, want in cases:
        try:
            db.execute(sql).fetchall()
            report("arguments: %s is an error" % sql, False, "no error")
        except sqlite3.Error as e:
            report("arguments: %s: %s" % (sql, want), want in str(e) and
                   "kustomer_events()" in str(e), str(e))
    report("arguments: NULL in, nothing out",
           db.execute("select count(*) from kustomer_events(NULL)"
                      ).fetchone()[0] == 0, "")
    path = write(os.path.join(tmp, "one.ndjson"), msg(1) + "\n")
    for label, sql in [("a view", "create view v as select * from "
                        "kustomer_events(%r)" % path),
                       ("a trigger", "create table t(x); create trigger tr "
                        "after insert on t begin select * from "
                        "kustomer_events(%r); end" % path)]:
        try:
            db.executescript(sql)
            db.execute("select * from v" if "view" in label
                       else "insert into t values(1)").fetchall()
            report("directonly: from %s it is refused" % label, False,
                   "it ran")
        except sqlite3.Error as e:
            report("directonly: from %s it is refused" % label,
                   "unsafe use" in str(e), str(e))
    db.close()


def t_memory(so, tmp):
    """A large gzip'd NDJSON file: the CLI's peak RSS does not grow with
    it (chunks are read; a row is copied out)."""
    line = msg(1, properties={"pad": "y" * 900}) + "\n"
    n_small, n_big = 2000, 100000
    for n, name in ((n_small, "small.ndjson.gz"), (n_big, "big.ndjson.gz")):
        plain = os.path.join(tmp, name[:-3])
        with open(plain, "w") as f:
            for _ in range(n // 1000):
                f.write(line * 1000)
        # gzip's own program: fast even when this process runs slowly
        subprocess.run(["gzip", "-1", "-f", plain], check=True)

    def peak(name):
        """The CLI's output and its peak RSS in KB (VmHWM, read while it
        runs: after exec it is the CLI's own, not this process's)."""
        p = subprocess.Popen(
            [SQLITE3, ":memory:", "-cmd", ".load " + so,
             "select count(*), sum(length(message)) from kustomer_events('%s')"
             % os.path.join(tmp, name)], stdout=subprocess.PIPE, text=True)
        hwm = 0
        while p.poll() is None:
            try:
                with open("/proc/%d/status" % p.pid) as f:
                    for ln in f:
                        if ln.startswith("VmHWM:"):
                            hwm = max(hwm, int(ln.split()[1]))
            except OSError:
                pass
            time.sleep(0.005)
        return p.stdout.read().strip(), hwm

    # (the small file's figure is for the eye: a run that short may end
    # before its peak is read)
    small, rss_small = peak("small.ndjson.gz")
    big, rss_big = peak("big.ndjson.gz")
    mb = n_big * len(line) / 1e6
    report("memory: %.0f MB of NDJSON read with a peak RSS of %.1f MB "
           "(%.1f MB for %.1f MB)" % (mb, rss_big / 1024, rss_small / 1024,
                                      n_small * len(line) / 1e6),
           big.startswith("%d|" % n_big) and 0 < rss_big < 40 * 1024,
           (small, big, rss_small, rss_big))


def main():
    so = ktap.so_path(sys.argv, ROOT)
    tmp = tempfile.mkdtemp(prefix="kevents")
    for name, fn in [("shapes", t_shapes), ("paths", t_paths), ("bad", t_bad),
                     ("arguments", t_arguments), ("memory", t_memory)]:
        try:
            fn(so, tmp)
        except Exception as e:  # one test's crash must not hide the others
            report("%s: ran to its end" % name, False, repr(e))
    sys.exit(1 if ktap.FAILED else 0)


if __name__ == "__main__":
    main()
