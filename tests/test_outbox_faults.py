#!/usr/bin/python3
"""The outbox under faults, against the local fake Kustomer API.

    /usr/bin/python3 tests/test_outbox_faults.py [SO_PATH]

- heavy drops (every 4th connection closed without a reply): libcurl
  sends a request again by itself when a kept-alive connection died; every
  such resend is counted, so that no window at the fake sees more requests
  than rate_limit * budget, and the summary's requests are the requests the
  fake saw, its resends counted apart;
- a flush killed between a bulk job's POST and its last poll: the next
  flush polls that job instead of creating the customers again (no
  "already exists", no lookups, no PUTs), and sends tracking events while
  it waits for the job;
- the same for a job of bulk updates of customers the map knows: the next
  flush polls it, sends no update again, and each customer is updated once;
- a flush killed during a 429's pause: the next flush (another process)
  waits out the rest of the pause;
- bulk results as a bare array: each row takes its result.

Prints "ok <name>" / "FAIL <name>: <detail>" lines; exit status 1 on failure.
Only 127.0.0.1 is ever contacted.
"""
import json
import os
import signal
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

KEY = ktap.key("faults-key-5e3cr3t")
os.environ["KUSTOMER_FAULTS_KEY"] = KEY
SCALE = float(os.environ.get("KUSTOMER_TEST_SCALE", "1"))


open_db = ktap.open_db


def make_outbox(db, fake, **args):
    settings = {"apiKeyEnv": "KUSTOMER_FAULTS_KEY", "baseEndpoint": fake.base,
                "timeoutMs": 3000}
    a = {"rate_limit": 100, "budget": 0.9, "max_attempts": 8,
         "rate_window": 2, "concurrency": 8}
    a.update(args)
    db.execute("create virtual table out using kustomer_outbox(settings='%s',"
               " %s)" % (json.dumps(settings),
                         ", ".join("%s=%s" % kv for kv in a.items())))


def tracks(n, tag="t"):
    return [json.dumps({"type": "track", "event": "Faulty", "userId":
                        "%s%d" % (tag, i), "properties": {"seqNum": i}})
            for i in range(n)]


def identifies(n, tag="c"):
    return [json.dumps({"type": "identify", "userId": "%s%d" % (tag, i),
                        "traits": {"email": "%s%d@example.com" % (tag, i)}})
            for i in range(n)]


def ours(fake):
    return [r for r in fake.requests()
            if r["headers"].get("user-agent", "").startswith("kustomer-sqlite/")]


def max_in_window(times, window):
    times = sorted(times)
    best = j = 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def t_drops(so, fake, tmp):
    fake.reset(api_key=KEY, drop_every=4, rate_limit=0)
    db = open_db(so, os.path.join(tmp, "drops.db"))
    make_outbox(db, fake, rate_window=4)
    n = max(120, int(300 * SCALE))
    db.executemany("insert into out(event) values (?)",
                   [(e,) for e in tracks(n)])
    s = json.loads(db.execute("select kustomer_flush('out', 120)")
                   .fetchone()[0])
    reqs = ours(fake)
    report("drops: every row sent (%s)" % s, s["sent"] == n, s)
    dropped = sum(1 for r in reqs if r.get("dropped"))
    report("drops: libcurl resent on its own (%d resends, %d drops)"
           % (s.get("resends", -1), dropped),
           s.get("resends", 0) > 0 and dropped > 0, s)
    report("drops: the summary's requests are what the fake saw (%d, %d)"
           % (s["requests"], len(reqs)), s["requests"] == len(reqs),
           (s["requests"], len(reqs)))
    led = sorted(r[0] for r in db.execute("select t from kustomer_requests"))
    report("drops: the ledger holds each request the fake saw, no more "
           "(%d)" % len(led), len(led) == len(reqs), (len(led), len(reqs)))
    # the limiter's window has half a second for a request's way
    peak = max_in_window(led, 4.5)
    report("drops: no 4.5 s window of the ledger over floor(100*0.9)=90 "
           "(peak %d)" % peak, peak <= 90, peak)
    peak = max_in_window([r["ts"] for r in reqs], 4.0)
    report("drops: no 4 s window at the fake over 90 (peak %d, %d "
           "requests)" % (peak, len(reqs)), peak <= 90, peak)
    db.close()


FLUSH_SCRIPT = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.enable_load_extension(True)
db.load_extension(sys.argv[2])
print(db.execute("select kustomer_flush('out')").fetchone()[0], flush=True)
"""


def start_flush(so, path):
    return subprocess.Popen([sys.executable, "-c", FLUSH_SCRIPT, path, so],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(pred, secs=20):
    t0 = time.time()
    while time.time() - t0 < secs:
        if pred():
            return True
        time.sleep(0.02)
    return False


def routes(reqs):
    return Counter("%s %s" % (r["method"], r["path"].split("?")[0].rsplit(
        "/", 1)[0] if r["path"].startswith("/v1/bulk/") else r["path"])
                   for r in reqs)


def t_bulk_kill(so, fake, tmp):
    fake.reset(api_key=KEY, rate_limit=0)
    fake.ctl("POST", "/_fake/config", {"bulk_delay_polls": 100000})
    path = os.path.join(tmp, "bulkkill.db")
    db = open_db(so, path)
    make_outbox(db, fake, rate_limit=1000, rate_window=60, concurrency=4)
    nc = 100
    db.executemany("insert into out(event) values (?)",
                   [(e,) for e in identifies(nc)])
    db.close()
    p = start_flush(so, path)
    ok = wait_for(lambda: sum(1 for r in fake.requests()
                              if r["path"].startswith("/v1/bulk/")) >= 2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    report("bulk kill: killed while its job was polled", ok, "")
    db = open_db(so, path)
    jobs = db.execute("select count(distinct bulk_job), count(*) from "
                      "out_data where bulk_job is not null").fetchone()
    report("bulk kill: the job's id is kept with its %d rows" % jobs[1],
           jobs[0] == 1 and jobs[1] == nc, jobs)
    n0 = len(fake.requests())
    # the job now completes after a few more polls; tracking events wait
    # a read of the job's batches is its poll
    polled = sum(1 for r in fake.requests() if r["method"] == "GET"
                 and r["path"].startswith("/v1/bulk/"))
    fake.ctl("POST", "/_fake/config", {"bulk_delay_polls": polled + 4})
    db.executemany("insert into out(event) values (?)",
                   [(e,) for e in tracks(60, "bk")])
    s = json.loads(db.execute("select kustomer_flush('out', 60)")
                   .fetchone()[0])
    after = fake.requests()[n0:]
    r = routes(after)
    report("bulk kill: the next flush polls that job: no new bulk POST, no "
           "lookup, no PUT (%s)" % dict(r),
           r["POST /v1/customers/bulk"] == 0 and r["PUT /v1/customers"] == 0
           and not any(k.startswith("GET /v1/customers/") for k in r), dict(r))
    rows = db.execute("select count(*), sum(json_extract(event, '$.type')="
                      "'identify' and length(kustomer_id)=24) from out where"
                      " status='sent'").fetchone()
    report("bulk kill: every row sent, each customer with its id (%s)" % s,
           rows == (nc + 60, nc) and s["pending"] == 0, (rows, s))
    ext = Counter(c.get("attributes", c).get("externalId")
                  for c in fake.ctl("GET", "/_fake/customers"))
    report("bulk kill: each customer created once",
           all(ext["c%d" % i] == 1 for i in range(nc)), "")
    polls = [x["ts"] for x in after if x["method"] == "GET"
             and x["path"].startswith("/v1/bulk/")]
    first_track = min(x["ts"] for x in after
                      if x["path"] == "/v1/tracking/identityEvent")
    report("bulk kill: tracking events go out while the job is polled "
           "(first %.2f s before its last poll)" % (max(polls) - first_track),
           first_track < max(polls), (first_track, max(polls)))
    db.close()


def t_bulk_update_kill(so, fake, tmp):
    """The same for a job of updates (PUT /v1/customers/bulk) of customers
    the file's map knows from an earlier flush."""
    fake.reset(api_key=KEY, rate_limit=0)
    fake.ctl("POST", "/_fake/config", {"bulk_delay_polls": 1})
    path = os.path.join(tmp, "bulkupdatekill.db")
    db = open_db(so, path)
    make_outbox(db, fake, rate_limit=1000, rate_window=60, concurrency=4)
    nc = 100
    db.executemany("insert into out(event) values (?)",
                   [(e,) for e in identifies(nc, "u")])
    s = json.loads(db.execute("select kustomer_flush('out', 60)")
                   .fetchone()[0])
    known = db.execute("select count(*) from kustomer_customers where key "
                       "like 'externalId=%'").fetchone()[0]
    report("update kill: the first flush created the customers (%s), the "
           "map knows %d" % (s, known), s["sent"] == nc and known == nc,
           (s, known))
    db.executemany("insert into out(event) values (?)",
                   [(json.dumps({"type": "identify", "userId": "u%d" % i,
                                 "traits": {"email": "u%d@example.com" % i,
                                            "name": "Name %d" % i}}),)
                    for i in range(nc)])
    db.close()
    fake.ctl("POST", "/_fake/config", {"bulk_delay_polls": 100000})
    n0 = len(fake.requests())
    p = start_flush(so, path)
    ok = wait_for(lambda: sum(1 for r in fake.requests()[n0:]
                              if r["path"].startswith("/v1/bulk/")) >= 1)
    p.send_signal(signal.SIGKILL)
    p.wait()
    r0 = routes(fake.requests()[n0:])
    report("update kill: killed while its update job was polled (%s)"
           % dict(r0), ok and r0["PUT /v1/customers/bulk"] == 1
           and r0["POST /v1/customers/bulk"] == 0, dict(r0))
    db = open_db(so, path)
    jobs = db.execute("select count(distinct bulk_job), count(*) from "
                      "out_data where bulk_job is not null and id>?",
                      (nc,)).fetchone()
    report("update kill: the job's id is kept with its %d rows" % jobs[1],
           jobs[0] == 1 and jobs[1] == nc, jobs)
    n1 = len(fake.requests())
    polled = sum(1 for r in fake.requests()[n0:] if r["method"] == "GET"
                 and r["path"].startswith("/v1/bulk/"))
    fake.ctl("POST", "/_fake/config", {"bulk_delay_polls": polled + 4})
    s = json.loads(db.execute("select kustomer_flush('out', 60)")
                   .fetchone()[0])
    r = routes(fake.requests()[n1:])
    report("update kill: the next flush polls that job: no new bulk request,"
           " no lookup, no PUT (%s)" % dict(r),
           r["PUT /v1/customers/bulk"] == 0 and r["POST /v1/customers/bulk"]
           == 0 and r["PUT /v1/customers"] == 0
           and not any(k.startswith("GET /v1/customers/") for k in r)
           and any(k.startswith("GET /v1/bulk/") for k in r), dict(r))
    st = Counter(x[0] for x in db.execute("select status from out"))
    report("update kill: every row sent (%s)" % s,
           st["sent"] == 2 * nc and s["pending"] == 0, (dict(st), s))
    cust = fake.ctl("GET", "/_fake/customers")
    ext = Counter(c.get("attributes", c).get("externalId") for c in cust)
    names = {c.get("attributes", c).get("externalId"):
             c.get("attributes", c).get("name") for c in cust}
    report("update kill: each customer once, updated",
           all(ext["u%d" % i] == 1 and names.get("u%d" % i) == "Name %d" % i
               for i in range(nc)),
           [(k, ext[k], names.get(k)) for k in list(ext)[:3]])
    db.close()


def t_pause_restart(so, fake, tmp):
    fake.reset(api_key=KEY, rate_limit=0, throttle_every=1, retry_after="4")
    path = os.path.join(tmp, "pause.db")
    db = open_db(so, path)
    make_outbox(db, fake, rate_window=60)
    db.executemany("insert into out(event) values (?)",
                   [(e,) for e in tracks(5, "p")])
    db.close()
    p = start_flush(so, path)
    ok = wait_for(lambda: any(r.get("status") == 429
                              for r in fake.requests()))
    t429 = min(r["ts"] for r in fake.requests() if r.get("status") == 429)
    time.sleep(0.5)
    p.send_signal(signal.SIGKILL)
    p.wait()
    fake.ctl("POST", "/_fake/config", {"throttle_every": 0})
    n0 = len(fake.requests())
    db = open_db(so, path)
    s = json.loads(db.execute("select kustomer_flush('out', 30)")
                   .fetchone()[0])
    after = fake.requests()[n0:]
    first = min(r["ts"] for r in after) if after else 0
    report("pause restart: a flush started after a kill waits out the 429's "
           "Retry-After (first request %.2f s after the 429, asked 4 s)"
           % (first - t429), ok and first - t429 >= 3.9, (ok, first - t429))
    report("pause restart: then every row is sent (%s)" % s,
           s["sent"] == 5 and s["pending"] == 0, s)
    db.close()


def t_bare_bulk(so, fake, tmp):
    fake.reset(api_key=KEY, rate_limit=0)
    fake.ctl("POST", "/_fake/config", {"bulk_results": "bare",
                                       "bulk_delay_polls": 2})
    db = open_db(so, os.path.join(tmp, "bare.db"))
    make_outbox(db, fake)
    db.executemany("insert into out(event) values (?)",
                   [(e,) for e in identifies(30, "bare")])
    s = json.loads(db.execute("select kustomer_flush('out', 30)")
                   .fetchone()[0])
    ids = db.execute("select count(*) from out where status='sent' and "
                     "length(kustomer_id)=24").fetchone()[0]
    report("bare bulk results: every row sent with its id (%s)" % s,
           s["sent"] == 30 and ids == 30, (s, ids))
    fake.ctl("POST", "/_fake/config", {"bulk_results": "wrapped"})
    db.close()


def t_budget_said(so, fake, tmp):
    """A flush whose seconds end before the window reopens says when the
    next request may start."""
    fake.reset(api_key=KEY, rate_limit=0)
    db = open_db(so, os.path.join(tmp, "budget.db"))
    make_outbox(db, fake, rate_limit=10, budget=0.5, rate_window=60)
    db.executemany("insert into out(event) values (?)",
                   [(e,) for e in tracks(8, "w")])
    t0 = time.time()
    s = json.loads(db.execute("select kustomer_flush('out', 2)")
                   .fetchone()[0])
    secs = time.time() - t0
    report("budget said: 5 sent within the budget, 3 left, and when the "
           "next may start (%s)" % s, s["sent"] == 5 and s["pending"] == 3
           and 50 < s.get("next_request_in", 0) <= 61 and secs < 4, s)
    db.close()


def run(name, fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # one test's crash must not hide the others
        import traceback
        tb = traceback.format_exc().strip().splitlines()
        report("%s: ran to its end" % name, False,
               "%s: %s (%s)" % (type(e).__name__, e, " | ".join(tb[-3:])))
        return None


def main():
    so = ktap.so_path(sys.argv, ROOT)
    tmp = tempfile.mkdtemp(prefix="kfaults")
    t0 = time.time()
    fake = Fake()
    try:
        run("drops", t_drops, so, fake, tmp)
        run("bulk kill", t_bulk_kill, so, fake, tmp)
        run("update kill", t_bulk_update_kill, so, fake, tmp)
        run("pause restart", t_pause_restart, so, fake, tmp)
        run("bare bulk", t_bare_bulk, so, fake, tmp)
        run("budget said", t_budget_said, so, fake, tmp)
    finally:
        fake.stop()
    print("# test_outbox_faults.py: %.1f s" % (time.time() - t0))
    sys.exit(1 if ktap.FAILED else 0)


if __name__ == "__main__":
    main()
