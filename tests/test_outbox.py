#!/usr/bin/python3
"""The outbox's delivery against the local fake Kustomer API.

    /usr/bin/python3 tests/test_outbox.py [SO_PATH]

- 10,000 mixed events through a fake that rate-limits (429s), answers 503
  to every 7th request and drops every 23rd connection, with the rate
  window compressed to 4 s: afterwards every row is sent or failed with a
  reason, the fake accepted each sent event exactly once and no failed one,
  and no window saw more requests than the outbox's budget;
- a flush killed with SIGKILL in the middle and run again: nothing lost,
  only requests in flight at the kill sent twice;
- bulk identify: 1,000 new customers in a few dozen requests, each row's
  customer id written back;
- 401 stops the flush with an SQL error and leaves the rows pending;
- kustomer_flush(name, seconds) keeps to its seconds when a 429's reset is
  a minute away or a bulk job never completes, and those rows keep their
  attempts;
- the flush commits its progress in transactions of its own, and refuses
  to run inside a statement that writes;
- no request is made while the flush holds the write lock (another
  connection's writes never wait on one);
- a database file whose views and triggers call kustomer_send,
  kustomer_process, kustomer_flush, kustomer_fetch or use the outbox: SQLite
  refuses each, nothing is sent, the pure functions still work.

Prints "ok <name>" / "FAIL <name>: <detail>" lines; exit status 1 on failure.
Only 127.0.0.1 is ever contacted.
"""
import email.utils
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from test_network import Fake  # noqa: E402
import ktap  # noqa: E402
from ktap import report  # noqa: E402

KEY = ktap.key("outbox-key-5e3cr3t")
OTHER_KEY = ktap.key("another-key-5e3cr3t")
# Under valgrind everything is some 30 times slower: the suite runs on a
# share of the events (KUSTOMER_TEST_SCALE, default 1).
SCALE = float(os.environ.get("KUSTOMER_TEST_SCALE", "1"))
os.environ["KUSTOMER_TEST_KEY"] = KEY


def events(n, seed):
    out = subprocess.run([sys.executable, os.path.join(HERE, "gen_events.py"),
                          "--n", str(n), "--seed", str(seed)],
                         check=True, capture_output=True, text=True).stdout
    return out.splitlines()


open_db = ktap.open_db


def make_outbox(db, fake, name, **args):
    settings = {"apiKeyEnv": "KUSTOMER_TEST_KEY", "baseEndpoint": fake.base,
                "advancedTransform": True, "timeoutMs": 2000}
    a = {"rate_limit": 400, "budget": 0.9, "max_attempts": 8,
         "rate_window": 1, "concurrency": 8}
    a.update(args)
    db.execute("create virtual table %s using kustomer_outbox(settings='%s', %s)"
               % (name, json.dumps(settings),
                  ", ".join("%s=%s" % kv for kv in a.items())))


def load(db, name, lines):
    """Enqueue events; every one made unique and traceable: track/page/
    screen carry properties.seqNum = line number, identify userId c<n>."""
    db.execute("create temp table if not exists src(n integer primary key, e)")
    db.execute("delete from src")
    db.executemany("insert into src(n, e) values (?, ?)",
                   enumerate(lines, 1))
    db.execute("begin")
    db.execute("""insert into %s(id, event) select n,
        case when json_valid(e) and json_extract(e, '$.type') = 'identify'
             then json_set(e, '$.userId', 'c' || n)
             when json_valid(e) then json_set(e, '$.properties.seqNum', n)
             else e end from src order by n""" % name)
    db.execute("commit")


def accepted(fake):
    """The fake's 2xx-answered tracking events by seqNum, and creations."""
    seq, created = Counter(), Counter()
    reqs = fake.requests()
    for r in reqs:
        st = r.get("status")
        if st is None or not 200 <= st < 300:
            continue
        if r["path"] == "/v1/tracking/identityEvent":
            meta = json.loads(r["body"])["event"].get("meta") or {}
            if "seqNum" in meta:
                seq[meta["seqNum"]] += 1
        elif r["path"] == "/v1/customers/bulk":
            for item in json.loads(r["body"]):
                created[item["externalId"]] += 1
        elif r["path"].startswith("/v1/customers"):
            body = json.loads(r["body"] or "{}")
            if "externalId" in body:
                created[body["externalId"]] += 1
    return seq, created, reqs


def customers(fake):
    """externalId -> id of the fake's customers."""
    store = fake.ctl("GET", "/_fake/customers")
    items = store.get("data", store) if isinstance(store, dict) else store
    out = {}
    for c in items:
        attrs = c.get("attributes", c)
        out[attrs.get("externalId")] = c.get("id")
    return out


def max_in_window(times, window):
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def t_faults(so, fake, tmp):
    # Every 1009th request (97th on a small run) is a 429, as when other clients use up the org's
    # budget: the outbox must wait for the reset and not count an attempt.
    fake.reset(api_key=KEY, rate_limit=1600, rate_window=4, fail_every=7,
               fail_status=503, drop_every=23,
               throttle_every=1009 if SCALE >= 1 else 97)
    db = open_db(so, os.path.join(tmp, "faults.db"))
    # WAL: commits without waiting for the disk twice each, as a busy
    # outbox would be set up (the kill test keeps the default journal).
    db.execute("pragma journal_mode=wal")
    make_outbox(db, fake, "out", rate_limit=1600, budget=0.9, rate_window=4)
    n = max(200, int(10000*SCALE))
    lines = events(n, 11)
    load(db, "out", lines)
    t0 = time.time()
    summary = json.loads(db.execute("select kustomer_flush('out', 120)")
                         .fetchone()[0])
    secs = time.time() - t0
    report("faults: flush finished in %.1f s (%s)" % (secs, summary),
           summary["pending"] == 0, summary)
    rows = db.execute("select id, status, error, event from out").fetchall()
    by = Counter(r[1] for r in rows)
    report("faults: every row sent, failed or invalid (%s)" % dict(by),
           set(by) <= {"sent", "failed", "invalid"} and len(rows) == n,
           dict(by))
    report("faults: failed and invalid rows keep their reason",
           all(r[2] for r in rows if r[1] in ("failed", "invalid")),
           [r[:3] for r in rows if r[1] != "sent" and not r[2]][:5])
    seq, _, reqs = accepted(fake)
    sent_ids = {r[0] for r in rows if r[1] == "sent"}
    tracked = {r[0] for r in rows if json_type(r[3]) in
               ("track", "page", "screen")}
    dup = [k for k, c in seq.items() if c > 1]
    report("faults: each sent event accepted exactly once",
           not dup and all(seq[i] == 1 for i in sent_ids & tracked),
           "duplicates %r, missing %r" % (dup[:5], [
               i for i in sent_ids & tracked if seq[i] != 1][:5]))
    # customers: each sent identify is the one customer with its externalId
    store = customers(fake)
    bad = [(i, k) for i, k, ev in db.execute(
              "select id, kustomer_id, event from out where status='sent'")
           if json_type(ev) == "identify"
           and "kustomerId" not in ev and store.get("c%d" % i) != k]
    report("faults: each sent customer exists once, its id written back",
           not bad, bad[:5])
    report("faults: no failed event was accepted",
           all(seq[i] == 0 for i in tracked - sent_ids), "")
    reqs = [r for r in reqs if r["headers"].get("user-agent", "")
            .startswith("kustomer-sqlite/")]
    n429 = sum(1 for r in reqs if r.get("status") == 429)
    n503 = sum(1 for r in reqs if r.get("status") == 503)
    ndrop = sum(1 for r in reqs if r.get("dropped"))
    report("faults: the fake answered 429s (%d), 503s (%d) and dropped %d"
           % (n429, n503, ndrop), n429 > 0 and n503 > 0 and ndrop > 0, "")
    peak = max_in_window([r["ts"] for r in reqs], 4.0)
    report("faults: no 4 s window at the fake over the budget of 1440 "
           "(peak %d)" % peak, peak <= 1440, peak)
    report("faults: every request the fake saw was counted by the outbox",
           db.execute("select count(*) from kustomer_requests").fetchone()[0]
           >= len(reqs), len(reqs))
    db.close()


def json_type(e):
    try:
        return json.loads(e).get("type")
    except (ValueError, AttributeError):
        return None


FLUSH_SCRIPT = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.enable_load_extension(True)
db.load_extension(sys.argv[2])
print(db.execute("select kustomer_flush('out')").fetchone()[0], flush=True)
"""


def t_kill(so, fake, tmp):
    fake.reset(api_key=KEY, slow_ms=40)
    path = os.path.join(tmp, "kill.db")
    db = open_db(so, path)
    make_outbox(db, fake, "out", rate_limit=2000, concurrency=8)
    lines = [l for l in events(3000, 5) if json_type(l) in
             ("track", "page", "screen")][:max(300, int(1500*SCALE))]
    load(db, "out", lines)
    db.close()
    # opened first: under valgrind or a loaded machine that takes longer
    # than the flush has
    other = open_db(so, path)
    p = subprocess.Popen([sys.executable, "-c", FLUSH_SCRIPT, path, so],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # the flush is under way once a row has left pending (not a fixed
    # sleep: the process may take long to start)
    deadline = time.time() + 60
    while time.time() < deadline and p.poll() is None and other.execute(
            "select count(*) from out where status<>'pending'"
            ).fetchone()[0] == 0:
        time.sleep(0.02)
    time.sleep(0.2 if SCALE>=1 else 0.1)
    try:
        other.execute("select kustomer_flush('out')").fetchone()
        report("kill: a second flush at the same time is refused", False,
               "it ran")
    except sqlite3.Error as e:
        report("kill: a second flush at the same time is refused",
               "is being flushed by process %d" % p.pid in str(e), str(e))
    other.close()
    p.send_signal(signal.SIGKILL)
    p.wait()
    db = open_db(so, path)
    mid = Counter(r[0] for r in db.execute("select status from out"))
    report("kill: killed mid-flush (%s)" % dict(mid),
           mid["sent"] > 0 and mid["pending"] + mid["sending"] > 0, dict(mid))
    fake.ctl("POST", "/_fake/config", {"slow_ms": 0})
    summary = json.loads(db.execute("select kustomer_flush('out')")
                         .fetchone()[0])
    after = Counter(r[0] for r in db.execute("select status from out"))
    report("kill: run again, every row delivered (%s)" % summary,
           after["sent"] == len(lines), dict(after))
    seq, _, _ = accepted(fake)
    twice = [k for k, c in seq.items() if c == 2]
    report("kill: each event accepted once, at most the %d in flight twice "
           "(%d were)" % (8, len(twice)),
           all(1 <= seq[i] <= 2 for i in range(1, len(lines) + 1))
           and len(twice) <= 8, (len(twice), [k for k, c in seq.items()
                                              if c > 2][:5]))
    db.close()


def t_bulk(so, fake, tmp):
    fake.reset(api_key=KEY)
    fake.ctl("POST", "/_fake/config", {"bulk_delay_polls": 2})
    db = open_db(so, os.path.join(tmp, "bulk.db"))
    make_outbox(db, fake, "out", rate_limit=1000)
    lines = [json.dumps({"type": "identify", "userId": "b%d" % i,
                         "traits": {"email": "b%d@example.com" % i,
                                    "firstName": "F%d" % i,
                                    "lastName": "L"}})
             for i in range(max(200, int(1000*SCALE)))]
    db.executemany("insert into out(event) values (?)", [(l,) for l in lines])
    summary = json.loads(db.execute("select kustomer_flush('out')")
                         .fetchone()[0])
    n = len(fake.requests())
    report("bulk: %d new customers in %d requests (%s)"
           % (len(lines), n, summary),
           summary["sent"] == len(lines) and n <= len(lines)/20, summary)
    ids = db.execute("select count(distinct kustomer_id) from out where "
                     "status='sent' and length(kustomer_id)=24").fetchone()[0]
    report("bulk: each row has its customer id", ids == len(lines), ids)
    ext = customers(fake)
    report("bulk: the customers exist at Kustomer",
           all("b%d" % i in ext for i in range(len(lines))), len(ext))
    # the fake forgets them: the map's ids are unknown to Kustomer, so the
    # bulk update reports them missing and they are created again
    fake.ctl("POST", "/_fake/reset")
    fake.ctl("POST", "/_fake/config", {"api_key": KEY})
    db.execute("delete from out")
    db.executemany("insert into out(event) values (?)",
                   [(l,) for l in lines[:50]])
    before = json.loads(db.execute("select kustomer_flush('out')")
                        .fetchone()[0])
    report("bulk: customers created again after a reset of the fake",
           before["sent"] == 50, before)
    db.execute("delete from out")
    db.executemany("insert into out(event) values (?)",
                   [(l,) for l in lines[:50]])
    n0 = len(fake.requests())
    again = json.loads(db.execute("select kustomer_flush('out')")
                       .fetchone()[0])
    reqs = fake.requests()[n0:]
    puts = [r for r in reqs if r["method"] == "PUT"]
    looks = [r for r in reqs if r["method"] == "GET"
             and r["path"].startswith("/v1/customers/")]
    report("bulk: customers the map knows are updated in one bulk PUT, no "
           "lookup (%s)" % again,
           again["sent"] == 50 and again["requests"] <= 3
           and [r["path"] for r in puts] == ["/v1/customers/bulk"]
           and not looks, (again, [r["path"] for r in puts], len(looks)))
    known = db.execute("select count(*) from kustomer_customers where "
                       "source='bulk'").fetchone()[0]
    report("bulk: the map has each customer's externalId and e-mail",
           known == 2*len(lines), known)
    # the same customers, the map emptied: bulk create reports them as
    # existing; they are looked up (once each) and updated in bulk
    db.execute("delete from kustomer_customers")
    db.execute("delete from out")
    db.executemany("insert into out(event) values (?)",
                   [(l,) for l in lines[:50]])
    n0 = len(fake.requests())
    third = json.loads(db.execute("select kustomer_flush('out')")
                       .fetchone()[0])
    reqs = fake.requests()[n0:]
    looks = [r for r in reqs if r["method"] == "GET"
             and r["path"].startswith("/v1/customers/")]
    puts = [r for r in reqs if r["method"] == "PUT"]
    report("bulk: existing customers unknown to the map are looked up and "
           "updated in bulk (%s)" % third,
           third["sent"] == 50 and len(looks) == 50 and 1 <= len(puts) <= 3
           and all(r["path"] == "/v1/customers/bulk" for r in puts),
           (third, len(looks), [r["path"] for r in puts]))
    db.close()


def t_unauthorized(so, fake, tmp):
    fake.reset(api_key=OTHER_KEY)
    db = open_db(so, os.path.join(tmp, "auth.db"))
    make_outbox(db, fake, "out")
    db.executemany("insert into out(event) values (?)",
                   [('{"type":"track","event":"E%d","userId":"u"}' % i,)
                    for i in range(20)])
    try:
        db.execute("select kustomer_flush('out')").fetchone()
        report("401: flush stops with an SQL error", False, "no error")
    except sqlite3.Error as e:
        report("401: flush stops with an SQL error", "HTTP 401" in str(e)
               and KEY not in str(e), str(e))
    st = Counter(r[0] for r in db.execute("select status from out"))
    report("401: the rows stay pending", st == Counter({"pending": 20}),
           dict(st))
    report("401: no transaction left open", not db.in_transaction,
           db.in_transaction)
    logged = [r for r in db.execute("select error from out") if r[0]]
    report("401: no stored text holds the key",
           not any(KEY in (r[0] or "") for r in logged), logged[:2])
    db.close()


def t_deadline(so, fake, tmp):
    """Kustomer's 60 s window: a 429 (its reset ~60 s ahead) on the bulk
    POST or on a poll, or a job that stays running, must not hold a
    2-second flush (once it slept until the reset, or polled for 10
    windows)."""
    cases = [("a 429 on the bulk request", {"throttle_every": 1}),
             ("a 429 on a poll", {"throttle_every": 2}),
             ("a bulk job that never completes", {})]
    for i, (name, cfg) in enumerate(cases):
        fake.reset(api_key=KEY, rate_window=60, **cfg)
        fake.ctl("POST", "/_fake/config", {"bulk_delay_polls": 100000})
        db = open_db(so, os.path.join(tmp, "deadline%d.db" % i))
        make_outbox(db, fake, "out", rate_window=60)
        db.executemany("insert into out(event) values (?)",
                       [(json.dumps({"type": "identify", "userId": "d%d" % j,
                                     "traits": {"email": "d%d@x.com" % j}}),)
                        for j in range(3)])
        t0 = time.time()
        summary = json.loads(db.execute("select kustomer_flush('out', 2)")
                             .fetchone()[0])
        secs = time.time() - t0
        # 2 s, plus one request that was in flight (timeoutMs 2000)
        report("deadline: %s: flush(out, 2) took %.1f s" % (name, secs),
               secs < 4.5 and summary["pending"] == 3, summary)
        rows = db.execute("select status, attempts, error from out").fetchall()
        report("deadline: %s: rows pending, no attempt used" % name,
               all(r[0] == "pending" and r[1] == 0 for r in rows), rows)
        db.close()


def t_retry_after(so, fake, tmp):
    """A 429 with Retry-After (seconds or an HTTP-date) is waited out for
    that long, not until x-ratelimit-reset's window end, 60 s ahead,
    which would outlast the flush's 20 s."""
    cases = [("seconds", lambda: "1"),
             ("an HTTP-date", lambda: email.utils.formatdate(time.time() + 2,
                                                             usegmt=True)),
             ("an HTTP-date passed", lambda: email.utils.formatdate(
                 time.time() - 30, usegmt=True))]
    for i, (name, value) in enumerate(cases):
        fake.reset(api_key=KEY, rate_window=60, throttle_every=2,
                   retry_after=value())
        db = open_db(so, os.path.join(tmp, "retryafter%d.db" % i))
        make_outbox(db, fake, "out", rate_window=60, concurrency=1)
        db.executemany("insert into out(event) values (?)",
                       [(json.dumps({"type": "track", "event": "E",
                                     "userId": "r%d" % j}),)
                        for j in range(3)])
        t0 = time.time()
        summary = json.loads(db.execute("select kustomer_flush('out', 20)")
                             .fetchone()[0])
        secs = time.time() - t0
        n429 = sum(1 for r in fake.requests() if r.get("status") == 429)
        report("Retry-After as %s: flushed after %d 429s in %.1f s"
               % (name, n429, secs),
               summary["pending"] == 0 and n429 >= 1 and secs < 15, summary)
        rows = db.execute("select status from out").fetchall()
        report("Retry-After as %s: every row sent" % name,
               rows == [("sent",)] * 3, rows)
        db.close()
    fake.reset(api_key=KEY, retry_after=None)


def t_transactions(so, fake, tmp):
    """The flush commits its progress in transactions of its own: each
    write inside one (a batch's marks are atomic, and a flush of many rows
    does not pay a commit per statement), none left open, and a statement
    that writes cannot run it (it could commit nothing until it ended)."""
    fake.reset(api_key=KEY)
    fake.ctl("POST", "/_fake/config", {"bulk_delay_polls": 1})
    db = open_db(so, os.path.join(tmp, "txn.db"))
    make_outbox(db, fake, "out")
    n = max(40, int(400*SCALE))
    rows = [json.dumps({"type": "identify", "userId": "t%d" % i,
                        "traits": {"email": "t%d@x.com" % i}})
            if i % 4 == 0 else
            json.dumps({"type": "track", "event": "E", "userId": "t%d" % i})
            for i in range(n)]
    db.executemany("insert into out(event) values (?)", [(r,) for r in rows])
    trace = []
    db.set_trace_callback(trace.append)
    summary = json.loads(db.execute("select kustomer_flush('out')")
                         .fetchone()[0])
    db.set_trace_callback(None)
    depth, outside, commits, writes = 0, [], 0, 0
    for sql in trace:
        # statements run inside another one are traced as "-- <sql>"
        sql = sql.strip()
        if sql.startswith("-- "):
            sql = sql[3:].lstrip()
        word = sql.split(None, 1)[0].upper() if sql else ""
        if word == "BEGIN":
            depth += 1
        elif word == "COMMIT":
            depth -= 1
            commits += 1
        elif word in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            writes += 1
            if depth <= 0:
                outside.append(sql)
    report("transactions: %d rows sent (%s)" % (n, summary),
           summary["sent"] == n, summary)
    report("transactions: each of %d writes inside the flush's own "
           "transaction" % writes, writes >= n and not outside, outside[:3])
    # as many commits as writes would be a commit per statement; how many
    # requests finish together (and so share one) depends on the machine
    report("transactions: %d commits for %d writes" % (commits, writes),
           0 < commits < writes and depth == 0, (commits, writes, depth))
    report("transactions: none left open after the flush",
           not db.in_transaction, db.in_transaction)
    db.execute("insert into out(event) values (?)", (rows[1],))
    db.execute("create table log(r)")
    try:
        db.execute("insert into log select kustomer_flush('out')")
        report("transactions: INSERT ... SELECT kustomer_flush() refused",
               False, "no error")
    except sqlite3.Error as e:
        report("transactions: INSERT ... SELECT kustomer_flush() refused",
               "kustomer_flush(): cannot run inside a statement that writes"
               in str(e), str(e))
    left = db.execute("select count(*) from out where status='pending'"
                      ).fetchone()[0]
    report("transactions: the refused flush left its row pending",
           left == 1 and not db.in_transaction, left)
    db.close()


def t_hostile_file(so, fake, tmp):
    """A database file someone else wrote: views and triggers in its schema
    that call the network functions or use the outbox are refused by
    SQLite (SQLITE_DIRECTONLY), even with trusted_schema on, and nothing
    reaches the fake; the pure functions still work there."""
    def q(text):
        return "'" + text.replace("'", "''") + "'"
    fake.reset(api_key=KEY)
    path = os.path.join(tmp, "hostile.db")
    s = q(json.dumps({"apiKeyEnv": "KUSTOMER_TEST_KEY",
                      "baseEndpoint": fake.base}))
    track = q('{"type":"track","event":"E","userId":"u"}')
    identify = q('{"type":"identify","userId":"u",'
                 '"traits":{"email":"u@x.com"}}')
    req = q(json.dumps({"method": "GET", "endpoint": fake.base +
                        "/v1/customers/externalId=u", "headers": {},
                        "params": {}, "body": {"JSON": {}}}))
    fetch = "select id from kustomer_fetch('/v1/customers', %s)" % s
    cases = [
        ("a view calling kustomer_send",
         "create view v_send as select kustomer_send(%s, %s) r" % (req, s),
         "select * from v_send", "unsafe use of kustomer_send()"),
        ("a view calling kustomer_process",
         "create view v_process as select kustomer_process(%s, %s) r"
         % (identify, s),
         "select * from v_process", "unsafe use of kustomer_process()"),
        ("a view calling kustomer_flush",
         "create view v_flush as select kustomer_flush('out') r",
         "select * from v_flush", "unsafe use of kustomer_flush()"),
        ("a view reading kustomer_fetch",
         "create view v_fetch as " + fetch,
         "select * from v_fetch", 'unsafe use of virtual table "kustomer_fetch"'),
        ("a view reading the outbox",
         "create view v_out as select id, status from out",
         "select * from v_out", 'unsafe use of virtual table "out"'),
        ("a trigger calling kustomer_send",
         "create table t1(x); create trigger g1 after insert on t1 begin "
         "select kustomer_send(%s, %s); end" % (req, s),
         "insert into t1 values (1)", "unsafe use of kustomer_send()"),
        ("a trigger calling kustomer_process",
         "create table t2(x); create trigger g2 after insert on t2 begin "
         "select kustomer_process(%s, %s); end" % (identify, s),
         "insert into t2 values (1)", "unsafe use of kustomer_process()"),
        ("a trigger calling kustomer_flush",
         "create table t3(x); create trigger g3 after insert on t3 begin "
         "select kustomer_flush('out'); end",
         "insert into t3 values (1)", "unsafe use of kustomer_flush()"),
        ("a trigger reading kustomer_fetch",
         "create table t4(x); create table log4(r); create trigger g4 after "
         "insert on t4 begin insert into log4 %s; end" % fetch,
         "insert into t4 values (1)",
         'unsafe use of virtual table "kustomer_fetch"'),
        ("a trigger writing to the outbox",
         "create table t5(x); create trigger g5 after insert on t5 begin "
         "insert into out(event) values (%s); end" % track,
         "insert into t5 values (1)", 'unsafe use of virtual table "out"'),
    ]
    w = open_db(so, path)
    make_outbox(w, fake, "out")
    w.execute("insert into out(event) values (%s)" % track)
    for _, ddl, _, _ in cases:
        w.executescript(ddl)
    w.execute("create view v_pure as select kustomer_request(%s, '{}') r, "
              "kustomer_tracking(%s) t, kustomer_event_name(%s) n, "
              "kustomer_meta('{\"a b\":1}', '{\"advancedTransform\":true}') m, "
              "(select count(*) from kustomer_check('{\"type\":\"track\"}')) c"
              % (track, track, track))
    w.close()
    db = open_db(so, path)
    db.execute("pragma trusted_schema=1")
    for name, _, sql, want in cases:
        try:
            db.execute(sql).fetchall()
            report("hostile file: %s is refused" % name, False, "no error")
        except sqlite3.Error as e:
            report("hostile file: %s is refused" % name, want in str(e),
                   str(e))
    report("hostile file: no request reached the fake",
           fake.requests() == [], fake.requests()[:2])
    rows = db.execute("select status, attempts from out").fetchall()
    report("hostile file: the outbox row is untouched",
           rows == [("pending", 0)], rows)
    r = db.execute("select * from v_pure").fetchone()
    report("hostile file: the pure functions work in its views",
           r is not None and json.loads(r[0])["method"] == "POST"
           and json.loads(r[1])["event"]["name"] == "E" and r[2] == "E"
           and r[3] == '{"a-bNum":1}' and r[4] >= 1, r)
    summary = json.loads(db.execute("select kustomer_flush('out')")
                         .fetchone()[0])
    report("hostile file: used directly, the flush delivers",
           summary["sent"] == 1, summary)
    db.close()


def t_lock_free_requests(so, fake, tmp):
    """No request is made while the flush holds the database's write lock:
    customers that exist are looked up while the bulk job's results are
    written, and another connection writing meanwhile waited for those
    lookups (seconds) before they stepped out of that transaction."""
    import threading
    fake.reset(api_key=KEY)
    fake.ctl("POST", "/_fake/config", {"bulk_delay_polls": 0})
    path = os.path.join(tmp, "locks.db")
    db = open_db(so, path)
    make_outbox(db, fake, "out", rate_limit=1000)
    lines = [json.dumps({"type": "identify", "userId": "lk%d" % i,
                         "traits": {"email": "lk%d@x.com" % i}})
             for i in range(2)]
    db.executemany("insert into out(event) values (?)", [(l,) for l in lines])
    db.execute("select kustomer_flush('out')").fetchone()
    # the same customers again, unknown to the map: each is looked up,
    # 600 ms a request
    db.execute("delete from kustomer_customers")
    db.execute("delete from out")
    db.executemany("insert into out(event) values (?)", [(l,) for l in lines])
    fake.ctl("POST", "/_fake/config", {"slow_ms": 600, "slow_every": 1})
    other = sqlite3.connect(path, timeout=30, isolation_level=None,
                            check_same_thread=False)
    other.execute("create table side(x)")
    waits, done = [], threading.Event()

    def writer():
        while not done.is_set():
            t0 = time.time()
            other.execute("insert into side values (1)")
            waits.append(time.time() - t0)
            time.sleep(0.05)
    th = threading.Thread(target=writer)
    th.start()
    try:
        summary = json.loads(db.execute("select kustomer_flush('out')")
                             .fetchone()[0])
    finally:
        done.set()
        th.join()
        other.close()
    gets = [r for r in fake.requests() if r["method"] == "GET"
            and "/v1/customers/" in r["path"]]
    report("locks: existing customers looked up (%d) and updated (%s)"
           % (len(gets), summary), summary["sent"] == 2 and len(gets) >= 2,
           (gets, summary))
    report("locks: another writer never waited on a request "
           "(longest wait %.2f s of %d writes)"
           % (max(waits, default=0), len(waits)),
           len(waits) > 10 and max(waits) < 0.5, sorted(waits)[-3:])
    db.close()


def t_storage_version(so, fake, tmp):
    """An outbox of storage version 1 (no kind, customer_key, bulk_job or
    message_id, next_at)
    is read as it is, upgraded by its first write and delivered; a
    version this extension does not know is refused."""
    fake.reset(api_key=KEY)
    path = os.path.join(tmp, "v1.db")
    db = open_db(so, path)
    make_outbox(db, fake, "out")
    db.executemany("insert into out(event) values (?)", [
        (json.dumps({"type": "identify", "userId": "v1 user",
                     "traits": {"email": "v1@example.com"}}),),
        (json.dumps({"type": "track", "event": "V1", "userId": "v1 user",
                     "properties": {"seqNum": 1}}),)])
    # what version 1 wrote: no kind, customer key or ledger, but
    # <name>_sends with the window's starts
    db.execute("alter table out_data drop column kind")
    db.execute("alter table out_data drop column customer_key")
    db.execute("alter table out_data drop column bulk_job")
    (idx,) = db.execute("select name from sqlite_master where type='index'"
                        " and tbl_name='out_data' and name like '%_msg'"
                        ).fetchone()
    db.execute('drop index "%s"' % idx)
    db.execute("alter table out_data drop column message_id")
    db.execute("alter table out_data rename column next_attempt_at to next_at")
    db.execute("update out_config set v=1 where k='version'")
    db.execute("drop table kustomer_requests")
    db.execute("drop table kustomer_ratelimit")
    db.execute("create table out_sends(t real not null)")
    db.execute("insert into out_sends values (?), (?)",
               (time.time() - 5, time.time() - 4))
    db.close()
    db = open_db(so, path)
    rows = db.execute("select id, status, next_attempt_at from out").fetchall()
    report("version 1: read as it is", [r[1] for r in rows] ==
           ["pending", "pending"], rows)
    db.execute("insert into out(event) values (?)", (json.dumps(
        {"type": "identify", "userId": "v1 other"}),))
    got = db.execute("select id, kind, customer_key from out_data"
                     " order by id").fetchall()
    version = db.execute("select v from out_config where k='version'"
                         ).fetchone()[0]
    report("version 1: upgraded by the first write (kind, customer key)",
           version == 5 and got == [(1, "create", "externalId=v1%20user"),
                                    (2, "track", None),
                                    (3, "create", "externalId=v1%20other")],
           (version, got))
    moved = db.execute("select count(*) from kustomer_requests").fetchone()[0]
    left = db.execute("select count(*) from out_sends").fetchone()[0]
    report("version 1: its sends moved to the file's ledger",
           moved == 2 and left == 0, (moved, left))
    summary = json.loads(db.execute("select kustomer_flush('out')")
                         .fetchone()[0])
    report("version 1: then delivered", summary["sent"] == 3, summary)
    db.execute("alter table out rename to out9")
    db.execute("alter table out9 rename to out")
    report("version 1: renamed with its old table",
           db.execute("select count(*) from sqlite_master where name in"
                      " ('out_sends','out_data','out_config')").fetchone()[0]
           == 3, "")
    db.execute("update out_config set v=9 where k='version'")
    db.close()
    db = open_db(so, path)
    try:
        db.execute("select count(*) from out").fetchone()
        report("version 9: refused", False, "no error")
    except sqlite3.Error as e:
        report("version 9: refused", "kustomer_outbox: out has storage "
               "version 9, which this extension" in str(e) and
               "does not know (it knows 1 to 5)" in str(e), str(e))
    try:
        db.execute("select kustomer_flush('out')").fetchone()
        report("version 9: refused by the flush", False, "no error")
    except sqlite3.Error as e:
        report("version 9: refused by the flush", "kustomer_flush(): out has "
               "storage version 9" in str(e), str(e))
    db.close()


def main():
    so = ktap.so_path(sys.argv, ROOT)
    tmp = tempfile.mkdtemp(prefix="koutbox")
    fake = Fake()
    try:
        t_unauthorized(so, fake, tmp)
        t_bulk(so, fake, tmp)
        t_kill(so, fake, tmp)
        t_faults(so, fake, tmp)
        t_deadline(so, fake, tmp)
        t_retry_after(so, fake, tmp)
        t_transactions(so, fake, tmp)
        t_hostile_file(so, fake, tmp)
        t_lock_free_requests(so, fake, tmp)
        t_storage_version(so, fake, tmp)
    finally:
        fake.stop()
    sys.exit(1 if ktap.FAILED else 0)


if __name__ == "__main__":
    main()
