#!/usr/bin/python3
"""The sync (kustomer_sync, kustomer_pull) end to end, against the local
fake Kustomer API.

    /usr/bin/python3 tests/test_sync.py [SO_PATH]

- backfill: after a pull, every main table holds exactly the fake's store
  ((id, updated_at, _deleted) against GET /_fake/dump), and the link and
  item child rows exactly what the records hold; the summary, the ledger
  and the fake's record agree on the requests made;
- incremental: mutations, additions and soft deletes at the fake, pulled
  with a few requests; equality again, deleted records _deleted=1;
- ties: more records at one millisecond than fit a page are read by page
  number within that millisecond only, never past the page cap; more
  than 100 pages of them end the stream with an error naming the instant;
- a page shift scripted between two pages of one pull changes nothing;
- the archive phase reads records older than two years;
- the budget: no window of rate_window seconds has more request starts
  than floor(rate_limit * budget) (nor searches than floor(search_limit *
  budget)); no 429; external usage makes the pull pause until the reset;
- errors: refused key, missing key variable, bad arguments, a foreign
  table in the way (prefix=), a persistent failure of one stream;
- durability: pulls in a sqlite3 process killed with SIGKILL at random
  moments (and mid-request) keep what they committed, and a last pull
  completes the tables;
- security: views and triggers cannot pull, nor a transaction or a
  writing statement, nor a second process; the key is nowhere in the file;
- work sessions: an active session that ends is read again;
- resync: a record gone from Kustomer is marked deleted by the pass
  (unless start_date is set).

Runs Debian's /usr/bin/python3 (its sqlite3 module can load extensions).
Prints "ok <name>" / "FAIL <name>: <detail>" lines; exit status 1 on failure.
Only 127.0.0.1 is ever contacted.
"""
import datetime
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import ktap  # noqa: E402  (kept for tests/check_secrets.py)
import test_network  # noqa: E402
from ktap import report  # noqa: E402

# Every test key holds "5e3cr3t", which tests/check_secrets.py also looks for.
KEY = ktap.key("sync-key-5e3cr3t-do-not-log")
OTHER_KEY = ktap.key("sync-other-5e3cr3t")
LITERAL_KEY = ktap.key("sync-literal-5e3cr3t")
ENV = "KUSTOMER_SYNC_TEST_KEY"
UNSET_ENV = "KUSTOMER_SYNC_TEST_UNSET_KEY"
os.environ[ENV] = KEY
os.environ.pop(UNSET_ENV, None)
SQLITE3 = os.environ.get("SQLITE3", "sqlite3")

# The fake's clock, pinned near the generated data (which starts at
# 2025-01-01): nothing generated is older than two years, so nothing is
# archived unless a test seeds it so.
NOW = "2025-06-01T00:00:00.000Z"
MAX_PAGE = 3                 # the main fake's search page cap
PAGE = 7                     # the search page size of most syncs
SEED = ["--seed-customers", "30", "--seed-messages-per-conversation", "2",
        "--seed-notes", "1", "--seed-companies", "5",
        "--seed-klasses", "order:4,device:2", "--seed-users", "3",
        "--seed-teams", "2"]
# main tables: table -> the dump's type
MAIN = [("customer", "customer"), ("conversation", "conversation"),
        ("message", "message"), ("note", "note"), ("company", "company"),
        ("kobject", "kobject"), ("kobject_order", "kobject_order"),
        ("kobject_device", "kobject_device"),
        ("work_session", "work_session")]
# link tables: (table, parent type, parent column, other column, attribute)
LINKS = [("conversation_tag", "conversation", "conversation_id", "tag_id",
          "tags"),
         ("conversation_assigned_user", "conversation", "conversation_id",
          "user_id", "assignedUsers"),
         ("conversation_assigned_team", "conversation", "conversation_id",
          "team_id", "assignedTeams"),
         ("customer_tag", "customer", "customer_id", "tag_id", "tags"),
         ("customer_watcher", "customer", "customer_id", "user_id",
          "watchers"),
         ("message_shortcut", "message", "message_id", "shortcut_id",
          "shortcuts"),
         ("note_user_mention", "note", "note_id", "user_id", "userMentions"),
         ("kobject_tag", "kobject", "kobject_id", "tag_id", "tags")]
# item tables: (table, parent type, parent column, attribute, item field
# (None: the items are strings, in column "name"), column)
ITEMS = [("customer_email", "customer", "customer_id", "emails", "email",
          "email"),
         ("customer_phone", "customer", "customer_id", "phones", "phone",
          "phone"),
         ("company_email", "company", "company_id", "emails", "email",
          "email"),
         ("conversation_channel", "conversation", "conversation_id",
          "channels", None, "name"),
         ("work_session_channel", "work_session", "work_session_id",
          "channels", None, "name"),
         ("message_attachment", "message", "message_id", "attachments", "id",
          "id")]
# search streams: state stream -> dump type
SEARCH_STREAMS = {"customer": "customer", "conversation": "conversation",
                  "message": "message", "note": "note", "company": "company",
                  "kobject:order": "kobject_order",
                  "kobject:device": "kobject_device"}
FAST = {"rate_limit": 100000, "search_limit": 100000}


# ---- the fake ------------------------------------------------------------

class Fake(test_network.Fake):
    """The fake Kustomer API with its clock pinned and the test key."""

    BASE_CONFIG = {"slow_ms": 0, "slow_every": 1, "api_key": KEY,
                   "hang_after": 0, "fail_every": 0, "drop_every": 0,
                   "throttle_every": 0}

    def __init__(self, *args, **config):
        super().__init__("--api-key", KEY, "--now", NOW, *args)
        self.config = dict(self.BASE_CONFIG, **config)

    def reset(self, **config):
        """Store, clock, record and counters back to the start; the
        config back to this fake's own."""
        self.keep_record()
        self.ctl("POST", "/_fake/reset")
        self.ctl("POST", "/_fake/config", dict(self.config, **config))

    def dump(self, t):
        return self.ctl("GET", "/_fake/dump?type=" + t)

    def count(self):
        return self.ctl("GET", "/_fake/stats")["requests"]

    def now(self):
        return self.ctl("GET", "/_fake/clock")["now"]


def searches(reqs):
    """The search requests of a record: (path, page, body as JSON)."""
    out = []
    for r in reqs:
        path = r["path"]
        if r["method"] != "POST" or "/search" not in path:
            continue
        q = dict(kv.split("=", 1) for kv in path.split("?", 1)[1].split("&")
                 ) if "?" in path else {}
        try:
            body = json.loads(r["body"])
        except ValueError:
            body = None
        out.append((path, int(q.get("page", "1")), body, r))
    return out


def bounds(body):
    """The gte/lte/gt of a search body's criteria (on any key)."""
    out = {}
    crit = body.get("and") if isinstance(body, dict) else None
    if isinstance(crit, dict):
        crit = [crit]
    for c in crit or []:
        for _, ops in c.items():
            if isinstance(ops, dict):
                out.update(ops)
    return out


# ---- the database ----------------------------------------------------------

open_db = ktap.open_db


def q(text):
    return "'" + text.replace("'", "''") + "'"


def settings(fake, **extra):
    s = {"baseEndpoint": fake.base, "apiKeyEnv": ENV}
    s.update(extra)
    return json.dumps(s)


def create_sql(fake, name="ks", sets=None, **args):
    a = {"settings": q(sets if sets is not None else settings(fake))}
    a.update(args)
    return "create virtual table %s using kustomer_sync(%s)" % (
        name, ", ".join("%s=%s" % (k, q(v) if isinstance(v, str) and
                                   k != "settings" else v)
                        for k, v in a.items()))


def make_sync(db, fake, name="ks", **args):
    a = dict(FAST, page_size=PAGE, list_page_size=2)
    a.update(args)
    db.execute(create_sql(fake, name, **a))


def pull(db, name="ks", *extra):
    marks = ", ".join(["?"] * (1 + len(extra)))
    r = db.execute("select kustomer_pull(%s)" % marks,
                   (name,) + tuple(extra)).fetchone()[0]
    return json.loads(r)


def state(db, name="ks"):
    """stream -> the state row (a dict) of the virtual table."""
    cur = db.execute("select stream, phase, cursor, rows, deleted, pages, "
                     "requests, last_ok_at, error, tie_at, tie_page, "
                     "pass_started_at, next_due_at from %s" % name)
    cols = [d[0] for d in cur.description]
    return {r[0]: dict(zip(cols, r)) for r in cur.fetchall()}


def position(st):
    """The reading position of each stream (what must survive a failure)."""
    keys = ("phase", "cursor", "rows", "deleted", "pages", "error", "tie_at",
            "tie_page", "pass_started_at")
    return {k: tuple(v[c] for c in keys) for k, v in st.items()}


def iso(s):
    """An ISO-8601 text as YYYY-MM-DDTHH:MM:SS.sssZ (UTC)."""
    if s is None:
        return None
    d = datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    d = d.astimezone(datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)


def deleted(rec):
    return 1 if (rec.get("attributes") or {}).get("deleted") is True else 0


def truth(records):
    return {(r["id"], iso(r["attributes"].get("updatedAt")), deleted(r))
            for r in records}


def stored(db, table):
    return set(db.execute('select id, updated_at, _deleted from "%s"'
                          % table).fetchall())


def diff(want, got):
    return "missing %s; unexpected %s (%d wanted, %d stored)" % (
        sorted(want - got)[:3], sorted(got - want)[:3], len(want), len(got))


def table_exists(db, name):
    return db.execute("select count(*) from sqlite_schema where type='table'"
                      " and name=?", (name,)).fetchone()[0] == 1


def columns(db, table):
    return [r[1] for r in db.execute('pragma table_info("%s")' % table)]


def check_equal(db, fake, label, tables=MAIN, prefix=""):
    """Every main table against the dump; returns the failures."""
    bad = []
    for table, t in tables:
        want = truth(fake.dump(t))
        if not table_exists(db, prefix + table):
            bad.append("%s: no table" % (prefix + table))
            continue
        got = stored(db, prefix + table)
        if want != got:
            bad.append("%s: %s" % (prefix + table, diff(want, got)))
    report("%s: %s equal the fake's store" % (
        label, ", ".join(prefix + t for t, _ in tables)), not bad, bad)
    return not bad


def want_links(fake, ptype, attr, cache):
    recs = cache.setdefault(ptype, fake.dump(ptype))
    return {(r["id"], x) for r in recs if not deleted(r)
            for x in (r["attributes"].get(attr) or [])}


def want_items(fake, ptype, attr, field, cache):
    recs = cache.setdefault(ptype, fake.dump(ptype))
    out = {}
    for r in recs:
        if deleted(r):
            continue
        items = r["attributes"].get(attr) or []
        if items:
            out[r["id"]] = [it if field is None else it.get(field)
                            for it in items]
    return out


def check_children(db, fake, label, prefix="", types=None):
    """The link and item tables (of the parent types given, default all)
    against the records."""
    cache = {}
    bad = []
    n = 0
    for table, ptype, pcol, ocol, attr in LINKS:
        if types is not None and ptype not in types:
            continue
        want = want_links(fake, ptype, attr, cache)
        n += len(want)
        if not table_exists(db, prefix + table):
            if want:
                bad.append("%s: no table" % table)
            continue
        got = set(db.execute('select "%s", "%s" from "%s" where _deleted=0'
                             % (pcol, ocol, prefix + table)).fetchall())
        if want != got:
            bad.append("%s: %s" % (table, diff(want, got)))
    for table, ptype, pcol, attr, field, col in ITEMS:
        if types is not None and ptype not in types:
            continue
        want = want_items(fake, ptype, attr, field, cache)
        n += sum(len(v) for v in want.values())
        if not table_exists(db, prefix + table):
            if want:
                bad.append("%s: no table" % table)
            continue
        if want and col not in columns(db, prefix + table):
            bad.append("%s: no column %s (%s)" % (table, col,
                                                  columns(db, prefix + table)))
            continue
        got = {}
        if col in columns(db, prefix + table):
            for p, v in db.execute('select "%s", "%s" from "%s" where '
                                   '_deleted=0 order by "%s", "index"'
                                   % (pcol, col, prefix + table, pcol)):
                got.setdefault(p, []).append(v)
        if want != got:
            keys = sorted(set(want) ^ set(got)) or sorted(
                k for k in want if want[k] != got.get(k))
            bad.append("%s: differ for %s: want %s, stored %s" % (
                table, keys[:2], [want.get(k) for k in keys[:2]],
                [got.get(k) for k in keys[:2]]))
    report("%s: child rows (%d links and items) equal what the records hold"
           % (label, n), not bad and n > 0, bad or "nothing to compare")
    return not bad


def max_in_window(times, window):
    """The greatest number of times in any half-open window of that many
    seconds."""
    times = sorted(times)
    best = j = 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def expect_error(name, fn, want, also=()):
    """fn must raise an SQL error holding want and each of also, never a
    key.  Returns the message or None."""
    try:
        r = fn()
    except sqlite3.Error as e:
        msg = str(e)
        missing = [w for w in (want,) + tuple(also) if w not in msg]
        leak = any(k in msg for k in (KEY, OTHER_KEY, LITERAL_KEY))
        report(name, not missing and not leak,
               "error %r lacks %r" % (msg, missing) if missing
               else "the error holds a key")
        return msg
    report(name, False, "no error; got %r" % (r,))
    return None


# ---- 1, 2: backfill and incremental ---------------------------------------

def t_backfill(so, fake, tmp):
    fake.reset()
    db = open_db(so, os.path.join(tmp, "backfill.db"))
    make_sync(db, fake, turn_pages=3)
    s = pull(db)
    reqs = fake.requests()
    report("backfill: the summary has its keys",
           set(s) >= {"streams", "requests", "searches", "waited", "seconds",
                      "errors"}, sorted(s))
    report("backfill: every stream caught up without error",
           s["errors"] == [] and all(v["caught_up"] and v["error"] is None
                                     for v in s["streams"].values())
           and {"customer", "conversation", "message", "note", "company",
                "kobject", "work_session", "kobject:order",
                "kobject:device"} <= set(s["streams"]), s)
    report("backfill: several pages per stream (customer %d, message %d)"
           % (s["streams"]["customer"]["pages"],
              s["streams"]["message"]["pages"]),
           s["streams"]["customer"]["pages"] >= 30 // PAGE
           and s["streams"]["message"]["pages"] >= 120 // PAGE, s)
    check_equal(db, fake, "backfill")
    check_children(db, fake, "backfill")
    ledger = db.execute("select kind, count(*) from kustomer_requests "
                        "group by kind").fetchall()
    ledger = dict(ledger)
    nsearch = len(searches(reqs))
    report("backfill: summary, ledger and the fake agree on %d requests, "
           "%d searches" % (len(reqs), nsearch),
           s["requests"] == len(reqs) == sum(ledger.values())
           and s["searches"] == nsearch == ledger.get("search", 0),
           (s["requests"], s["searches"], ledger, len(reqs), nsearch))
    st = state(db)
    report("backfill: search streams are incremental, no tie left",
           all(st[k]["phase"] == "incremental" and st[k]["tie_at"] is None
               and st[k]["tie_page"] is None and st[k]["error"] is None
               for k in SEARCH_STREAMS) and
           st["work_session"]["phase"] == "incremental",
           {k: (v["phase"], v["tie_at"], v["error"]) for k, v in st.items()})
    report("backfill: the kobject stream counts the klasses (2)",
           st.get("kobject", {}).get("rows") == 2, st.get("kobject"))
    curs = {}
    for k, t in SEARCH_STREAMS.items():
        recs = fake.dump(t)
        curs[k] = (st[k]["cursor"], max(iso(r["attributes"]["updatedAt"])
                                        for r in recs))
    report("backfill: each cursor is its stream's greatest updatedAt",
           all(a == b for a, b in curs.values()), curs)
    bad = [(p, pg, b) for p, pg, b, _ in searches(reqs)
           if not (b.get("includeDeleted") is True and
                   isinstance(b.get("sort"), list) and pg == 1 and
                   set(bounds(b)) == {"gte", "lte"})]
    report("backfill: every search is page 1 of gte..lte, sorted, "
           "includeDeleted", not bad, bad[:3])
    report("backfill: the sync's tables in ks_columns",
           db.execute("select count(distinct table_name) from ks_columns "
                      "where table_name in ('customer', 'conversation_tag',"
                      " 'kobject_order', 'work_session')").fetchone()[0] == 4,
           db.execute("select distinct table_name from ks_columns")
           .fetchall())
    return db, s


def t_incremental(so, fake, tmp, db, first):
    if db is None:
        report("incremental: the backfill's database", False, "none")
        return
    ctl = fake.ctl
    changed = ctl("POST", "/_fake/mutate", {"type": "customer", "count": 3,
                  "attributes": {"name": "Changed name"}})["ids"]
    tags = [t["id"] for t in fake.dump("tag")]
    conv = fake.dump("conversation")[4]
    ctl("POST", "/_fake/mutate", {"type": "conversation", "id": conv["id"],
        "attributes": {"tags": tags[-1:], "assignedUsers": []}})
    added = ctl("POST", "/_fake/add", {"type": "customer", "count": 2})["ids"]
    added += ctl("POST", "/_fake/add", {"type": "message", "count": 2})["ids"]
    gone = {}
    for t, i in (("customer", 7), ("conversation", 9), ("note", 3),
                 ("kobject_order", 1)):
        recs = [r for r in fake.dump(t) if r["id"] != conv["id"] and
                not deleted(r) and (t != "conversation" or
                                    r["attributes"].get("tags"))]
        rid = recs[i]["id"]
        ctl("POST", "/_fake/delete", {"type": t, "id": rid, "soft": True})
        gone[t] = rid
    n0 = fake.count()
    only = pull(db, "ks", 600, '{"progress":true,"streams":["customer"]}')
    new = fake.requests()[n0:]
    report("incremental: options.streams reads only the customer stream",
           set(only["streams"]) == {"customer"} and
           all(b.get("queryContext") == "customer"
               for _, _, b, _ in searches(new)) and len(new) > 0,
           (sorted(only["streams"]), [r["path"] for r in new][:5]))
    n1 = fake.count()
    s = pull(db)
    n2 = fake.count()
    report("incremental: every stream caught up without error",
           s["errors"] == [] and all(v["caught_up"]
                                     for v in s["streams"].values()), s)
    report("incremental: %d requests, far below the backfill's %d"
           % (s["requests"] + only["requests"], first["requests"]),
           0 < s["requests"] + only["requests"] <= first["requests"] // 2
           and s["requests"] == n2 - n1, (s["requests"], first["requests"]))
    check_equal(db, fake, "incremental")
    check_children(db, fake, "incremental")
    bad = []
    for t, rid in gone.items():
        table = "kobject_order" if t.startswith("kobject") else t
        r = db.execute('select _deleted from "%s" where id=?' % table,
                       (rid,)).fetchone()
        if r != (1,):
            bad.append((t, rid, r))
    report("incremental: soft-deleted records are _deleted=1", not bad, bad)
    report("incremental: the summary counts the deleted customer",
           s["streams"]["customer"]["deleted"] >= 1, s["streams"]["customer"])
    r = db.execute("select _deleted from kobject where id=?",
                   (gone["kobject_order"],)).fetchone()
    report("incremental: a soft-deleted kobject is _deleted=1 in kobject too",
           r == (1,), r)
    kids = db.execute("select count(*), sum(_deleted) from conversation_tag "
                      "where conversation_id=?",
                      (gone["conversation"],)).fetchone()
    report("incremental: the deleted conversation's tags are _deleted=1 (%s)"
           % (kids,), kids[0] > 0 and kids[0] == kids[1], kids)
    names = dict(db.execute("select id, name from customer where id in "
                            "(%s)" % ",".join("?" * len(changed)), changed))
    report("incremental: mutated customers carry the new name",
           len(names) == 3 and set(names.values()) == {"Changed name"}, names)
    have = db.execute("select count(*) from (select id from customer union "
                      "all select id from message) where id in (%s)"
                      % ",".join("?" * len(added)), added).fetchone()[0]
    report("incremental: added records are stored", have == len(added),
           (have, added))
    db.close()


# ---- 3: ties --------------------------------------------------------------

def t_ties(so, fake, tmp):
    fake.reset()
    db = open_db(so, os.path.join(tmp, "ties.db"))
    make_sync(db, fake, streams="customer")
    pull(db)
    n = PAGE * 2 + 3              # three pages at one millisecond
    touched = fake.ctl("POST", "/_fake/touch", {"type": "customer",
                       "count": n, "same_ms": True})
    at = iso(touched["updatedAt"][0])
    n0 = fake.count()
    s = pull(db)
    reqs = fake.requests()[n0:]
    check_equal(db, fake, "ties: incremental", [("customer", "customer")])
    got = db.execute("select count(*) from customer where updated_at=?",
                     (at,)).fetchone()[0]
    report("ties: all %d tied customers stored at %s" % (n, at), got == n,
           got)
    srch = searches(reqs)
    paged = [(pg, bounds(b)) for _, pg, b, _ in srch if pg > 1]
    report("ties: tie mode read pages beyond the first",
           len(paged) >= 2, [(pg, bounds(b)) for _, pg, b, _ in srch])
    bad = [(pg, bd) for pg, bd in paged
           if not (bd.get("gte") is not None and
                   iso(bd.get("gte")) == iso(bd.get("lte")) == at)]
    report("ties: every page>1 search is within the tied millisecond",
           not bad, bad[:3])
    report("ties: no search beyond the page cap (%d)" % MAX_PAGE,
           all(pg <= MAX_PAGE for _, pg, _, _ in srch),
           [pg for _, pg, _, _ in srch])
    report("ties: no search answered other than 200",
           all(r["status"] == 200 for _, _, _, r in srch),
           [(r["path"], r["status"]) for _, _, _, r in srch
            if r["status"] != 200])
    st = state(db)["customer"]
    report("ties: tie mode ended (tie_at, tie_page NULL), caught up",
           st["tie_at"] is None and st["tie_page"] is None and
           s["streams"]["customer"]["caught_up"], (st, s))
    db.close()
    # the same ties in a first backfill
    db = open_db(so, os.path.join(tmp, "ties2.db"))
    make_sync(db, fake, streams="customer")
    s = pull(db)
    check_equal(db, fake, "ties: backfill", [("customer", "customer")])
    db.close()


def t_tie_cap(so, fake, tmp):
    """More than 100 pages of records at one millisecond (page_size 1)."""
    fake.reset()
    touched = fake.ctl("POST", "/_fake/touch", {"type": "customer",
                       "count": 101, "same_ms": True})
    at = iso(touched["updatedAt"][0])
    db = open_db(so, os.path.join(tmp, "tiecap.db"))
    make_sync(db, fake, streams="customer,note", page_size=1)
    try:
        s = pull(db)
    except sqlite3.Error as e:
        report("tie cap: the pull returns a summary", False, str(e))
        db.close()
        return
    pages = [pg for _, pg, _, _ in searches(fake.requests())]
    report("tie cap: no search beyond page 100 (greatest %d)" % max(pages),
           max(pages) <= 100, max(pages))
    err = s["streams"].get("customer", {}).get("error") or ""
    report("tie cap: the customer stream ends with an error naming %s" % at,
           at in err or at[:19] in err, s["streams"].get("customer"))
    report("tie cap: the error is in the summary's errors and the state",
           any(e.startswith("customer:") for e in s["errors"]) and
           (state(db)["customer"]["error"] or "") == err, s["errors"])
    report("tie cap: the other stream goes on (note caught up)",
           s["streams"].get("note", {}).get("caught_up") is True and
           s["streams"]["note"]["error"] is None, s["streams"].get("note"))
    db.close()


# ---- 4: page shift ----------------------------------------------------------

def t_page_shift(so, fake, tmp):
    fake.reset()
    db = open_db(so, os.path.join(tmp, "shift.db"))
    make_sync(db, fake, streams="customer")
    oldest = sorted(fake.dump("customer"),
                    key=lambda r: (r["attributes"]["updatedAt"], r["id"]))
    # requests: 1 the archive search, 2.. the backfill's pages; between the
    # second and the third page, the first page's first record changes (it
    # moves to the end) and one record is soft-deleted, one added
    script = [{"at_request": 4, "do": "mutate", "type": "customer",
               "id": oldest[0]["id"], "attributes": {"name": "Shifted"}},
              {"at_request": 4, "do": "delete", "type": "customer",
               "id": oldest[1]["id"], "soft": True},
              {"at_request": 5, "do": "add", "type": "customer", "count": 1}]
    fake.ctl("POST", "/_fake/script", script)
    s = pull(db)
    done = fake.ctl("GET", "/_fake/script")
    n = fake.count()
    report("page shift: the script ran between pages of the pull "
           "(%d requests)" % n,
           len(done["done"]) == 3 and not done["pending"] and n > 5,
           (done, n))
    ok = truth(fake.dump("customer")) == stored(db, "customer")
    extra = 0
    if not ok:
        extra = 1
        pull(db)
    check_equal(db, fake, "page shift: after the pull%s" %
                (" and one more" if extra else ""),
                [("customer", "customer")])
    r = db.execute("select name, _deleted from customer where id in (?, ?) "
                   "order by id = ?", (oldest[0]["id"], oldest[1]["id"],
                                       oldest[0]["id"])).fetchall()
    report("page shift: the moved record changed, the deleted one marked",
           sorted(r) == sorted([("Shifted", 0), (oldest[1]["attributes"]
                                                 ["name"], 1)]), r)
    db.close()


# ---- 5: archive -------------------------------------------------------------

def t_archive(so, fake, tmp):
    fake.reset()
    old = []
    for i in range(5):
        old.append({"id": "a0a0a0a0a0a0a0a0a0a0a0%02d" % i, "attributes": {
            "name": "Old customer %d" % i,
            "createdAt": "2021-0%d-01T00:00:00.000Z" % (i + 1),
            "updatedAt": "2022-0%d-15T12:00:00.000Z" % (i + 1)}})
    conv = {"id": "b0b0b0b0b0b0b0b0b0b0b000", "attributes": {
        "name": "Old conversation", "createdAt": "2022-01-01T00:00:00.000Z",
        "updatedAt": "2023-01-01T00:00:00.000Z"},
        "relationships": {"customer": {"data": {"type": "customer",
                                                "id": old[0]["id"]}}}}
    fake.ctl("POST", "/_fake/seed", {"customer": old, "conversation": [conv]})
    db = open_db(so, os.path.join(tmp, "archive.db"))
    make_sync(db, fake, streams="customer,conversation", page_size=2)
    s = pull(db)
    reqs = fake.requests()
    arch = [(b.get("queryContext"), r["status"]) for p, _, b, r in
            searches(reqs) if "/archive/search" in p]
    report("archive: archive searches for both streams, answered 200",
           sum(1 for c, _ in arch if c == "customer") >= 3 and
           any(c == "conversation" for c, _ in arch) and
           all(st == 200 for _, st in arch), arch)
    got = dict(db.execute("select id, updated_at from customer where id in "
                          "(%s)" % ",".join("?" * len(old)),
                          [o["id"] for o in old]).fetchall())
    report("archive: the old customers are stored with their updatedAt",
           got == {o["id"]: iso(o["attributes"]["updatedAt"]) for o in old},
           got)
    r = db.execute("select updated_at, customer_id from conversation where "
                   "id=?", (conv["id"],)).fetchone()
    report("archive: the old conversation is stored",
           r == ("2023-01-01T00:00:00.000Z", old[0]["id"]), r)
    check_equal(db, fake, "archive", [("customer", "customer"),
                                     ("conversation", "conversation")])
    st = state(db)
    report("archive: then backfill, now incremental",
           s["errors"] == [] and st["customer"]["phase"] == "incremental",
           (s["errors"], st["customer"]))
    db.close()


# ---- 6: budget --------------------------------------------------------------

def t_budget(so, tmp):
    rate, window, budget, slimit = 40, 2, 0.5, 36
    fake = Fake("--seed-customers", "30", "--rate-limit", str(rate),
                "--rate-window", str(window),
                "--search-rate-limit", str(slimit))
    try:
        fake.reset()
        db = open_db(so, os.path.join(tmp, "budget.db"))
        make_sync(db, fake, streams="customer,conversation", page_size=3,
                  rate_limit=rate, budget=budget, rate_window=window,
                  search_limit=slimit)
        t0 = time.time()
        s = pull(db)
        took = time.time() - t0
        reqs = fake.requests()
        cap, scap = int(rate * budget), int(slimit * budget)
        ts = [r["ts"] for r in reqs]
        sts = [r["ts"] for _, _, _, r in searches(reqs)]
        led = [r[0] for r in db.execute("select t from kustomer_requests")]
        led_s = [r[0] for r in db.execute("select t from kustomer_requests "
                                          "where kind='search'")]
        report("budget: enough requests to need several windows (%d in "
               "%.1f s)" % (len(reqs), took),
               len(reqs) > 2 * cap and s["errors"] == [], (len(reqs), s))
        peak, lpeak = max_in_window(ts, window), max_in_window(led, window)
        report("budget: no %d s window at the fake over floor(%d*%s)=%d "
               "(peak %d; ledger %d)" % (window, rate, budget, cap, peak,
                                         lpeak),
               peak <= cap and lpeak <= cap, (peak, lpeak))
        speak = max(max_in_window(sts, window), max_in_window(led_s, window))
        report("budget: no window over floor(%d*%s)=%d searches (peak %d)"
               % (slimit, budget, scap, speak), speak <= scap, speak)
        report("budget: no 429", all(r["status"] != 429 for r in reqs),
               [r["seq"] for r in reqs if r["status"] == 429][:5])
        check_equal(db, fake, "budget", [("customer", "customer"),
                                        ("conversation", "conversation")])
        # external usage: the first answer shows remaining under
        # rate*(1-budget); the pull pauses until the fake's window ends
        fake.ctl("POST", "/_fake/mutate", {"type": "customer", "count": 2})
        fake.ctl("POST", "/_fake/mutate", {"type": "conversation",
                                           "count": 2})
        time.sleep(window + 1)   # every window, the fake's and the ledger's
        n0 = fake.count()
        t1 = time.time()
        fake.ctl("POST", "/_fake/config", {"external_usage": rate - 10})
        s = pull(db)
        reqs = fake.requests()[n0:]
        early = [r["seq"] for r in reqs if r["ts"] < t1 + window - 0.05]
        report("budget: external usage: one request in the window it used "
               "up, then a pause (%d requests, %d in that window, waited "
               "%.1f s)" % (len(reqs), len(early), s["waited"]),
               len(reqs) >= 2 and len(early) <= 1 and s["errors"] == [],
               (len(reqs), early, s))
        report("budget: external usage: no 429",
               all(r["status"] != 429 for r in reqs),
               [r["seq"] for r in reqs if r["status"] == 429])
        db.close()
    finally:
        fake.stop()


def t_ledger_only(so, fake, tmp):
    """Without rate-limit headers the ledger alone keeps the budget: no
    window of rate_window seconds holds more than floor(rate_limit*budget)
    request starts, nor more than floor(search_limit*budget) searches."""
    window, budget = 1, 0.5
    for label, rate, slimit in (("requests", 12, 1000),
                                ("searches", 1000, 12)):
        fake.reset()
        db = open_db(so, os.path.join(tmp, "ledger_%s.db" % label))
        make_sync(db, fake, streams="customer", page_size=2, rate_limit=rate,
                  search_limit=slimit, budget=budget, rate_window=window)
        s = pull(db)
        reqs = fake.requests()
        cap = int(min(rate, slimit) * budget)
        peak = max_in_window([r["ts"] for r in reqs], window)
        lpeak = max_in_window([r[0] for r in db.execute(
            "select t from kustomer_requests")], window)
        report("no headers: at most floor(%s*%s)=%d %s in any %d s window "
               "(%d requests, peak %d, ledger %d)"
               % (min(rate, slimit), budget, cap, label, window, len(reqs),
                  peak, lpeak),
               len(reqs) > 2 * cap and peak <= cap and lpeak <= cap and
               s["errors"] == [], (len(reqs), peak, lpeak, s))
        check_equal(db, fake, "no headers (%s)" % label,
                    [("customer", "customer")])
        db.close()


def t_learn(so, tmp):
    """rate_limit=0: the limit is learnt from x-ratelimit-limit; 429s are
    waited out."""
    rate, window, budget = 20, 2, 0.5
    fake = Fake("--seed-customers", "30", "--rate-limit", str(rate),
                "--rate-window", str(window))
    try:
        fake.reset()
        db = open_db(so, os.path.join(tmp, "learn.db"))
        make_sync(db, fake, streams="customer", page_size=2, rate_limit=0,
                  search_limit=1000, budget=budget, rate_window=window)
        s = pull(db)
        reqs = fake.requests()
        cap = int(rate * budget)
        peak = max_in_window([r["ts"] for r in reqs], window)
        lpeak = max_in_window([r[0] for r in db.execute(
            "select t from kustomer_requests")], window)
        report("learnt limit: x-ratelimit-limit %d: no %d s window over "
               "floor(%d*%s)=%d (%d requests, peak %d, ledger %d)"
               % (rate, window, rate, budget, cap, len(reqs), peak, lpeak),
               len(reqs) > 2 * cap and peak <= cap and lpeak <= cap and
               s["errors"] == [], (len(reqs), peak, lpeak, s))
        report("learnt limit: no 429", all(r["status"] != 429 for r in reqs),
               [r["seq"] for r in reqs if r["status"] == 429][:5])
        check_equal(db, fake, "learnt limit", [("customer", "customer")])
        db.close()

        # 429s (remaining 0, the reset a window ahead) are waited out
        fake.reset(throttle_every=4)
        db = open_db(so, os.path.join(tmp, "throttle.db"))
        make_sync(db, fake, streams="customer", page_size=PAGE,
                  rate_limit=rate, budget=0.9, rate_window=window)
        s = pull(db)
        reqs = fake.requests()
        gaps = [round(b["ts"] - a["ts"], 2) for a, b in zip(reqs, reqs[1:])
                if a["status"] == 429]
        report("429: waited out (gaps after each 429: %s s)" % gaps,
               gaps and all(g >= 1.0 for g in gaps) and s["errors"] == [],
               (gaps, s))
        check_equal(db, fake, "429", [("customer", "customer")])
        db.close()
    finally:
        fake.stop()


def t_deadline(so, fake, tmp):
    fake.reset(slow_ms=50)
    db = open_db(so, os.path.join(tmp, "deadline.db"))
    make_sync(db, fake)
    t0 = time.time()
    s = pull(db, "ks", 0.5)
    took = time.time() - t0
    report("deadline: kustomer_pull('ks', 0.5) returns in time (%.2f s)"
           % took, took < 1.5 and s["errors"] == [], (took, s))
    report("deadline: some streams are not caught up yet",
           any(not v["caught_up"] for v in s["streams"].values()), s)
    fake.ctl("POST", "/_fake/config", {"slow_ms": 0})
    s = pull(db)
    report("deadline: the next pull completes", s["errors"] == [] and
           all(v["caught_up"] for v in s["streams"].values()), s)
    check_equal(db, fake, "deadline")
    db.close()


# ---- 7: errors --------------------------------------------------------------

def t_errors(so, fake, tmp):
    fake.reset()
    db = open_db(so, os.path.join(tmp, "errors.db"))
    make_sync(db, fake, streams="customer,conversation")
    pull(db)
    before = position(state(db))
    data = sorted(db.execute("select id, updated_at, _record from customer"))
    fake.ctl("POST", "/_fake/mutate", {"type": "customer", "count": 2})
    fake.ctl("POST", "/_fake/config", {"api_key": OTHER_KEY})
    expect_error("errors: a refused key is an SQL error of kustomer_pull() "
                 "with the 401", lambda: pull(db), "kustomer_pull()",
                 ("401",))
    report("errors: after the 401 the state is unchanged",
           position(state(db)) == before, (before, position(state(db))))
    report("errors: after the 401 the data is unchanged",
           sorted(db.execute("select id, updated_at, _record from customer"))
           == data, "changed")
    fake.ctl("POST", "/_fake/config", {"api_key": KEY})
    s = pull(db)
    report("errors: with the right key again the pull goes on",
           s["errors"] == [] and s["streams"]["customer"]["rows"] >= 2, s)
    db.close()

    # a missing key variable
    db = open_db(so, ":memory:")
    db.execute(create_sql(fake, sets=json.dumps(
        {"baseEndpoint": fake.base, "apiKeyEnv": UNSET_ENV}), **FAST))
    n0 = fake.count()
    expect_error("errors: a missing key variable is an SQL error",
                 lambda: pull(db), "kustomer_pull()", (UNSET_ENV,))
    report("errors: no request without a key", fake.count() == n0,
           fake.count() - n0)
    db.close()

    # bad arguments
    db = open_db(so, ":memory:")
    good = settings(fake)
    for label, args, want in (
            ("budget above 0.9", {"budget": 0.95}, "budget"),
            ("budget below 0.25", {"budget": 0.2}, "budget"),
            ("page_size 0", {"page_size": 0}, "page_size"),
            ("page_size 501", {"page_size": 501}, "page_size"),
            ("list_page_size 101", {"list_page_size": 101}, "list_page_size"),
            ("an unknown stream", {"streams": "customer,bogus"}, "bogus"),
            ("an unknown exclude", {"exclude": "nothing"}, "nothing"),
            ("an unknown argument", {"colour": 3}, "colour"),
            ("a duplicate argument", None, "budget"),
            ("a bad start_date", {"start_date": "yesterday"}, "start_date")):
        if args is None:
            sql = create_sql(fake) + ""
            sql = sql[:-1] + ", budget=0.5, budget=0.6)"
        else:
            sql = create_sql(fake, **args)
        expect_error("errors: CREATE with %s names it" % label,
                     lambda: db.execute(sql), want)
    sql = create_sql(fake, sets=json.dumps({"baseEndpoint": fake.base,
                                            "apiKey": LITERAL_KEY}))
    expect_error("errors: CREATE with a literal apiKey in settings is refused",
                 lambda: db.execute(sql), "apiKey")
    report("errors: failed CREATEs leave no table behind",
           db.execute("select count(*) from sqlite_schema where name like "
                      "'ks%'").fetchone()[0] == 0,
           db.execute("select name from sqlite_schema").fetchall())
    expect_error("errors: CREATE without settings is refused",
                 lambda: db.execute("create virtual table ks using "
                                    "kustomer_sync(budget=0.5)"), "settings")
    db.close()

    # a table of that name that is not the sync's
    db = open_db(so, os.path.join(tmp, "prefix.db"))
    db.execute("create table customer(x)")
    db.execute("insert into customer values ('mine')")
    expect_error("errors: a foreign customer table: CREATE suggests prefix=",
                 lambda: make_sync(db, fake), "prefix")
    report("errors: the foreign table is left as it was",
           db.execute("select * from customer").fetchall() == [("mine",)] and
           not table_exists(db, "ks_config"),
           db.execute("select name from sqlite_schema").fetchall())
    try:
        make_sync(db, fake, prefix="k_")
        s = pull(db)
        report("errors: with prefix='k_' the sync is made and pulls",
               s["errors"] == [], s)
        report("errors: with prefix='k_' the tables are k_customer, ...",
               all(table_exists(db, t) for t in
                   ("k_customer", "k_conversation", "k_conversation_tag",
                    "k_customer_email", "k_kobject", "k_kobject_order",
                    "k_work_session")) and
               not table_exists(db, "conversation"),
               [r[0] for r in db.execute("select name from sqlite_schema "
                                         "where type='table'")])
        check_equal(db, fake, "errors: prefix", MAIN, prefix="k_")
        report("errors: the foreign customer table is untouched",
               db.execute("select * from customer").fetchall() == [("mine",)],
               db.execute("select * from customer").fetchall()[:3])
        db.execute("drop table ks")
        names = set(r[0] for r in db.execute("select name from sqlite_schema"
                                             " where type='table'"))
        report("errors: DROP TABLE ks drops its shadow tables, keeps the data",
               not names & {"ks", "ks_config", "ks_state", "ks_columns"} and
               "k_customer" in names and
               db.execute("select count(*) from k_customer").fetchone()[0]
               == 30, sorted(names)[:8])
    except sqlite3.Error as e:
        report("errors: with prefix='k_' the sync is made and pulls", False,
               str(e))
    db.close()


def t_stream_failure(so, fake, tmp):
    """A stream's persistent failure (the fake's page cap under a tie of
    more pages) sets that stream's error; the others go on; the next pull
    retries."""
    fake.reset()
    db = open_db(so, os.path.join(tmp, "failure.db"))
    make_sync(db, fake, streams="customer,conversation,note")
    fake.ctl("POST", "/_fake/touch", {"type": "customer",
                                      "count": PAGE * MAX_PAGE + 2,
                                      "same_ms": True})
    try:
        s = pull(db)
    except sqlite3.Error as e:
        report("stream failure: the pull returns a summary", False, str(e))
        db.close()
        return
    cust = s["streams"].get("customer", {})
    report("stream failure: the customer stream has an error (HTTP 400)",
           cust.get("caught_up") is False and "400" in (cust.get("error")
                                                        or "") and
           any(e.startswith("customer: ") for e in s["errors"]), cust)
    report("stream failure: the other streams went on",
           all(s["streams"].get(k, {}).get("caught_up") is True
               for k in ("conversation", "note")), s)
    report("stream failure: the error is in the state",
           "400" in (state(db)["customer"]["error"] or ""),
           state(db)["customer"])
    check_equal(db, fake, "stream failure", [("conversation",
                                              "conversation"),
                                             ("note", "note")])
    fake.ctl("POST", "/_fake/config", {"search_max_page": 100})
    try:
        s = pull(db)
        report("stream failure: the next pull retries; error cleared",
               s["errors"] == [] and state(db)["customer"]["error"] is None,
               (s, state(db)["customer"]))
        check_equal(db, fake, "stream failure: retried",
                    [("customer", "customer")])
    finally:
        fake.ctl("POST", "/_fake/config", {"search_max_page": MAX_PAGE})
    db.close()


# ---- 8: durability ----------------------------------------------------------

def cli(so, path, busy_ms=5000):
    """SELECT kustomer_pull('ks') in a sqlite3 process (busy_ms: its busy
    timeout; 0 is the shell's default, none)."""
    env = dict(os.environ)
    cmd = [SQLITE3, "-batch", "-init", "/dev/null"]
    if busy_ms:
        cmd += ["-cmd", ".timeout %d" % busy_ms]
    cmd += ["-cmd", ".load '%s' sqlite3_kustomer_init" % so, path,
            "SELECT kustomer_pull('ks')"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def t_refused_second_pull(so, fake, tmp):
    """Second pulls refused, again and again, while a pull runs in a
    sqlite3 shell: the running pull goes on and completes.  The fake holds
    the running pull's requests from the 12th on until the refusals are
    done, so that it cannot finish (and release the sync) among them."""
    fake.reset(slow_ms=20, hang_after=12)
    path = os.path.join(tmp, "second.db")
    db = open_db(so, path)
    make_sync(db, fake, turn_pages=2)
    db.close()
    p = cli(so, path)
    time.sleep(0.3)
    tries, refused, other = 0, 0, []
    while p.poll() is None and tries < 30:
        o = open_db(so, path)
        try:
            o.execute("select kustomer_pull('ks')").fetchone()
            other.append("ran")
        except sqlite3.Error as e:
            if "being pulled by process %d" % p.pid in str(e):
                refused += 1
            else:
                other.append(str(e))
        o.close()
        tries += 1
        time.sleep(0.05)
    fake.ctl("POST", "/_fake/config", {"hang_after": 0})
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    report("second pull: each of %d pulls during a running one is refused"
           % tries, tries > 0 and refused == tries, (refused, other[:3]))
    summary = None
    try:
        summary = json.loads(out.decode())
    except ValueError:
        pass
    report("second pull: the running pull is not disturbed by the refusals "
           "and completes",
           p.returncode == 0 and summary is not None and
           summary["errors"] == [], "exit status %s, stdout %r, stderr %r"
           % (p.returncode, out.decode()[:200], err.decode()[:300]))
    fake.ctl("POST", "/_fake/config", {"slow_ms": 0})


def committed_ok(db, fake, st):
    """Every record older than a search stream's cursor is stored (what a
    killed pull committed is consistent with its state)."""
    bad = []
    for k, t in SEARCH_STREAMS.items():
        cur = st.get(k, {}).get("cursor")
        if cur is None:
            continue
        table = t
        if not table_exists(db, table):
            bad.append((k, "no table"))
            continue
        have = set(r[0] for r in db.execute('select id from "%s"' % table))
        miss = [r["id"] for r in fake.dump(t)
                if iso(r["attributes"]["updatedAt"]) < cur and
                r["id"] not in have]
        if miss:
            bad.append((k, cur, miss[:3]))
    return bad


def t_durability(so, fake, tmp):
    # KUSTOMER_TEST_SEED repeats the kill moments of an earlier run
    seed = int(os.environ.get("KUSTOMER_TEST_SEED") or
               random.randrange(1 << 30))
    rnd = random.Random(seed)
    fake.reset(slow_ms=40)
    path = os.path.join(tmp, "kill.db")
    db = open_db(so, path)
    make_sync(db, fake, turn_pages=2)
    db.close()
    snaps = []
    prev = None
    problems = []
    finished_early = ""
    for k in range(4):
        hang = k == 3
        if hang:
            # killed while a request is out, never answered
            fake.ctl("POST", "/_fake/config",
                     {"hang_after": fake.count() + 3})
        p = cli(so, path)
        if hang:
            deadline = time.time() + 10
            while time.time() < deadline and fake.count() < \
                    fake.ctl("GET", "/_fake/config")["hang_after"]:
                time.sleep(0.05)
            time.sleep(0.2)
        else:
            time.sleep(rnd.uniform(0.25, 0.8))
        if k == 0:
            other = open_db(so, path)
            try:
                other.execute("select kustomer_pull('ks')").fetchone()
                report("durability: a second pull at the same time is "
                       "refused", False, "it ran")
            except sqlite3.Error as e:
                report("durability: a second pull at the same time is "
                       "refused", ("being pulled by process %d" % p.pid)
                       in str(e), str(e))
            other.close()
        if p.poll() is not None:
            out, err = p.communicate()
            finished_early = "kill %d: the pull ended first (status %s): " \
                "%s %s" % (k, p.returncode, out.decode()[:300],
                           err.decode()[:300])
        else:
            p.send_signal(signal.SIGKILL)
            p.communicate()
        if hang:
            fake.ctl("POST", "/_fake/config", {"hang_after": 0})
        db = open_db(so, path)
        st = state(db)
        snaps.append({n: (v["pages"], v["cursor"]) for n, v in st.items()})
        if prev is not None:
            for n, v in prev.items():
                w = st.get(n)
                if w is None or w["pages"] < v["pages"] or \
                        w["rows"] < v["rows"] or \
                        (v["cursor"] is not None and
                         (w["cursor"] is None or w["cursor"] < v["cursor"])):
                    problems.append(("kill %d" % k, n, v, w))
        problems += [("kill %d" % k,) + b for b in committed_ok(db, fake, st)]
        prev = st
        db.close()
    pages = [sum(v[0] for v in s.values()) for s in snaps]
    report("durability: the killed pulls committed pages as they went "
           "(pages after each kill %s, seed %d)" % (pages, seed),
           pages[0] > 0 and pages[-1] > pages[0] and not finished_early,
           (pages, finished_early or ""))
    report("durability: the state only moved forward, and every record "
           "below a cursor is stored", not problems, problems[:4])
    fake.ctl("POST", "/_fake/config", {"slow_ms": 0})
    db = open_db(so, path)
    s = pull(db)
    report("durability: the last pull completes", s["errors"] == [] and
           all(v["caught_up"] for v in s["streams"].values()), s)
    check_equal(db, fake, "durability")
    check_children(db, fake, "durability")
    db.close()


# ---- 9: security ------------------------------------------------------------

def t_security(so, fake, tmp):
    fake.reset()
    path = os.path.join(tmp, "hostile.db")
    db = open_db(so, path)
    make_sync(db, fake, streams="customer")
    db.execute("create view v_pull as select kustomer_pull('ks') r")
    db.execute("create table t1(x)")
    db.execute("create trigger g1 after insert on t1 begin "
               "select kustomer_pull('ks'); end")
    db.execute("create table sink(r)")
    db.close()
    db = open_db(so, path)
    expect_error("security: a view calling kustomer_pull is refused",
                 lambda: db.execute("select * from v_pull").fetchall(),
                 "unsafe use of kustomer_pull()")
    expect_error("security: a trigger calling kustomer_pull is refused",
                 lambda: db.execute("insert into t1 values (1)"),
                 "unsafe use of kustomer_pull()")
    db.execute("begin")
    db.execute("insert into sink values ('mine')")
    expect_error("security: kustomer_pull inside a transaction is refused",
                 lambda: pull(db), "kustomer_pull()", ("transaction",))
    kept = db.in_transaction, db.execute("select r from sink").fetchall()
    report("security: the refused pull leaves the caller's transaction open "
           "and its writes in place", kept == (True, [("mine",)]),
           "in transaction %s, sink holds %s" % kept)
    if db.in_transaction:
        db.execute("rollback")
    expect_error("security: kustomer_pull in a writing statement is refused",
                 lambda: db.execute("insert into sink select "
                                    "kustomer_pull('ks')"),
                 "kustomer_pull()")
    report("security: none of those reached the fake",
           fake.requests() == [], [r["path"] for r in fake.requests()][:3])
    report("security: none of those changed the state",
           all(v["pages"] == 0 for v in state(db).values()) and
           db.execute("select count(*) from customer").fetchone()[0] == 0 and
           db.execute("select count(*) from sink").fetchone()[0] == 0,
           state(db))
    s = pull(db)
    report("security: used directly, the pull works", s["errors"] == [] and
           s["streams"]["customer"]["rows"] >= 30, s)
    db.close()
    with open(path, "rb") as f:
        raw = f.read()
    report("security: the key is nowhere in the database file (%d bytes)"
           % len(raw), KEY.encode() not in raw and b"5e3cr3t" not in raw,
           "found")


# ---- 10: work sessions ------------------------------------------------------

def t_work_sessions(so, fake, tmp):
    fake.reset()
    db = open_db(so, os.path.join(tmp, "sessions.db"))
    make_sync(db, fake, streams="work_session", list_page_size=2)
    s = pull(db)
    report("work sessions: caught up", s["errors"] == [] and
           s["streams"]["work_session"]["caught_up"], s)
    check_equal(db, fake, "work sessions", [("work_session",
                                             "work_session")])
    active = [r for r in fake.dump("work_session")
              if r["attributes"].get("signedOutAt") is None]
    got = set(r[0] for r in db.execute("select id from work_session where "
                                       "signed_out_at is null"))
    report("work sessions: the %d active ones stored as active"
           % len(active), got == set(r["id"] for r in active) and active,
           (got, [r["id"] for r in active]))
    if not active:
        db.close()
        return
    x = active[0]["id"]
    out = fake.now()
    fake.ctl("POST", "/_fake/mutate", {"type": "work_session", "id": x,
             "attributes": {"signedOutAt": out}})
    added = fake.ctl("POST", "/_fake/add", {"type": "work_session",
                                            "count": 1})["ids"]
    n0 = fake.count()
    s = pull(db)
    reqs = fake.requests()[n0:]
    rec = [r for r in fake.dump("work_session") if r["id"] == x][0]
    row = db.execute("select signed_out_at, updated_at from work_session "
                     "where id=?", (x,)).fetchone()
    report("work sessions: the ended session's row is updated",
           row == (iso(out), iso(rec["attributes"]["updatedAt"])),
           (row, out))
    report("work sessions: it was read again by id",
           any(r["path"].split("?")[0] == "/v1/routing/work-sessions/" + x
               for r in reqs), [r["path"] for r in reqs])
    report("work sessions: each pull re-reads ?active=true",
           any("active=true" in r["path"] for r in reqs),
           [r["path"] for r in reqs])
    check_equal(db, fake, "work sessions: after the change",
                [("work_session", "work_session")])
    report("work sessions: the new session is stored",
           db.execute("select count(*) from work_session where id=?",
                      (added[0],)).fetchone()[0] == 1, added)
    check_children(db, fake, "work sessions", types=("work_session",))
    db.close()


# ---- 11: resync -------------------------------------------------------------

def t_resync(so, fake, tmp):
    fake.reset()
    db = open_db(so, os.path.join(tmp, "resync.db"))
    make_sync(db, fake, streams="customer,conversation")
    pull(db)
    cust = fake.dump("customer")
    gone = [c for c in cust if c["attributes"].get("emails")][5]["id"]
    fake.ctl("POST", "/_fake/delete", {"type": "customer", "id": gone,
                                       "soft": False})
    db.execute("insert into ks(ks, arg) values('resync', 'customer')")
    st = state(db)
    report("resync: the customer stream starts again (cursor NULL, "
           "pass_started_at set); conversation untouched",
           st["customer"]["cursor"] is None and
           st["customer"]["pass_started_at"] is not None and
           st["conversation"]["cursor"] is not None and
           st["conversation"]["pass_started_at"] is None, st)
    s = pull(db)
    r = db.execute("select _deleted from customer where id=?",
                   (gone,)).fetchone()
    report("resync: the customer gone from Kustomer is _deleted=1", r == (1,),
           r)
    others = db.execute("select count(*), sum(_deleted) from customer where "
                        "id<>?", (gone,)).fetchone()
    report("resync: the other customers are _deleted=0 (%s)" % (others,),
           others == (len(cust) - 1, 0), others)
    kids = db.execute("select count(*), sum(_deleted) from customer_email "
                      "where customer_id=?", (gone,)).fetchone()
    report("resync: the gone customer's child rows are _deleted=1",
           kids[0] > 0 and kids[0] == kids[1], kids)
    conv = db.execute("select count(*), sum(_deleted) from conversation"
                      ).fetchone()
    report("resync: the conversations are untouched (%s)" % (conv,),
           conv == (60, 0), conv)
    st = state(db)["customer"]
    report("resync: the pass completed (incremental, pass_started_at NULL)",
           st["phase"] == "incremental" and st["pass_started_at"] is None and
           s["errors"] == [], (st, s))
    db.execute("insert into ks(ks) values('resync')")
    st = state(db)
    report("resync: without an argument every stream starts again",
           all(v["cursor"] is None and v["pass_started_at"] is not None
               for v in st.values()), st)
    expect_error("resync: an unknown stream is refused",
                 lambda: db.execute("insert into ks(ks, arg) values("
                                    "'resync', 'bogus')"), "bogus")
    db.close()

    # with start_date the pass does not see everything: no sweep
    fake.reset()
    db = open_db(so, os.path.join(tmp, "resync_start.db"))
    make_sync(db, fake, streams="customer",
              start_date="2024-01-01T00:00:00Z")
    pull(db)
    gone = fake.dump("customer")[8]["id"]
    fake.ctl("POST", "/_fake/delete", {"type": "customer", "id": gone,
                                       "soft": False})
    db.execute("insert into ks(ks, arg) values('resync', 'customer')")
    pull(db)
    r = db.execute("select count(*), sum(_deleted) from customer").fetchone()
    report("resync: with start_date nothing is swept (%s)" % (r,),
           r == (30, 0), r)
    db.close()


def t_klass_quote(so, fake, tmp):
    """A klass's name goes into search bodies: one with a quote and a
    backslash still gives valid JSON."""
    fake.reset()
    fake.ctl("POST", "/_fake/seed",
             {"klass": [{"attributes": {"name": 'we"ird\\x'}}]})
    db = open_db(so, os.path.join(tmp, "klass_quote.db"))
    make_sync(db, fake, streams="kobject")
    n0 = len(fake.requests())
    summary = pull(db)
    bodies = [r["body"] for r in fake.requests()[n0:]
              if r["method"] == "POST"]
    bad = []
    for b in bodies:
        try:
            json.loads(b)
        except ValueError:
            bad.append(b)
    report("klass quote: %d search bodies for klass we\"ird\\x, all JSON"
           % len(bodies), bodies and not bad, bad[:1])
    key = 'kobject:we"ird\\x'
    report("klass quote: the summary names the stream, as JSON",
           key in summary["streams"], sorted(summary["streams"]))
    db.close()


def t_klass_limit(so, fake, tmp):
    """A sync reads at most 256 streams: klasses beyond are named in the
    kobject stream's error, never dropped in silence."""
    fake.reset()
    fake.ctl("POST", "/_fake/seed", {"klass": [
        {"attributes": {"name": "k%03d" % i}} for i in range(260)]})
    db = open_db(so, os.path.join(tmp, "klass_limit.db"))
    make_sync(db, fake, streams="kobject")
    total = len(fake.dump("klass"))
    summary = pull(db)
    n = sum(1 for k in summary["streams"] if k.startswith("kobject:"))
    err = summary["streams"]["kobject"]["error"] or ""
    report("klass limit: 255 klass streams read, the other %d in the error "
           "(%d; %s)" % (total - 255, n, err), n == 255 and err.startswith(
               "%d of %d klasses are not read" % (total - 255, total)),
           summary["errors"][:2])
    db.close()


# ---- main -------------------------------------------------------------------

def run(name, fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # one test's crash must not hide the others
        tb = traceback.format_exc().strip().splitlines()
        report("%s: ran to its end" % name, False,
               "%s: %s (%s)" % (type(e).__name__, e, " | ".join(tb[-3:])))
        return None


def main():
    so = ktap.so_path(sys.argv, ROOT)
    tmp = tempfile.mkdtemp(prefix="ksync")
    t0 = time.time()
    fake = Fake(*(SEED + ["--search-max-page", str(MAX_PAGE)]),
                search_max_page=MAX_PAGE)
    fake_cap = None
    try:
        fake_cap = Fake("--seed-customers", "102")
        r = run("backfill", t_backfill, so, fake, tmp)
        db, first = r if r else (None, None)
        run("incremental", t_incremental, so, fake, tmp, db, first)
        run("ties", t_ties, so, fake, tmp)
        run("tie cap", t_tie_cap, so, fake_cap, tmp)
        run("page shift", t_page_shift, so, fake, tmp)
        run("archive", t_archive, so, fake, tmp)
        run("errors", t_errors, so, fake, tmp)
        run("stream failure", t_stream_failure, so, fake, tmp)
        run("security", t_security, so, fake, tmp)
        run("work sessions", t_work_sessions, so, fake, tmp)
        run("resync", t_resync, so, fake, tmp)
        run("klass quote", t_klass_quote, so, fake, tmp)
        run("klass limit", t_klass_limit, so, fake, tmp)
        run("durability", t_durability, so, fake, tmp)
        run("second pull", t_refused_second_pull, so, fake, tmp)
        run("deadline", t_deadline, so, fake, tmp)
        run("budget", t_budget, so, tmp)
        run("no headers", t_ledger_only, so, fake, tmp)
        run("learnt limit", t_learn, so, tmp)
    finally:
        fake.stop()
        if fake_cap is not None:
            fake_cap.stop()
    print("# test_sync.py: %.1f s" % (time.time() - t0))
    sys.exit(1 if ktap.FAILED else 0)


if __name__ == "__main__":
    main()
