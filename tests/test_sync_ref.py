#!/usr/bin/python3
"""The sync's reference streams and deletes, against the local fake
Kustomer API.

    /usr/bin/python3 tests/test_sync_ref.py [SO_PATH]

- reference streams (user, team, tag, brand, shortcut, queue, sla with its
  versions, business_schedule, custom_attribute_metadata): a pass reads
  every list to its end and the tables equal the fake's store, child rows
  (team_member, user_role, shortcut_tag, sla_metric, business_holiday)
  included; deleted users come from their own list;
- a pass is made once per reimport_hours: the next pull makes no request;
  reimport_hours=0 re-reads at every pull; a record gone from a complete
  pass is _deleted=1 and so are its child rows; a soft-deleted one is
  _deleted=1 at once; a pass that fails sweeps nothing and keeps its
  error, and the next pull completes it;
- resync of one reference table re-reads it now;
- the audit-log stream marks what Kustomer deleted (hard deletes that no
  search returns) _deleted=1 with their child rows, reads each entry once,
  and a 403 (a key without the role) disables that stream alone, with its
  error, until a resync of it;
- bad arguments: an unknown stream or group, reimport_hours out of range.

Prints "ok <name>" / "FAIL <name>: <detail>" lines; exit status 1 on failure.
Only 127.0.0.1 is ever contacted.
"""
import hashlib
import json
import os
import sys
import tempfile
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import ktap  # noqa: E402
from ktap import report  # noqa: E402
from test_sync import (Fake, open_db, make_sync, create_sql, pull, state,  # noqa: E402
                       truth, stored, diff, table_exists, expect_error,
                       deleted, settings, FAST, searches, bounds)

SEED = ["--seed-customers", "6", "--seed-users", "5", "--seed-teams", "3",
        "--seed-klasses", "order:3", "--seed-notes", "1"]
# reference table -> the dump's type
REF = [("user", "user"), ("team", "team"), ("tag", "tag"),
       ("brand", "brand"), ("shortcut", "shortcut"), ("queue", "queue"),
       ("sla", "sla"), ("sla_version", "sla_version"),
       ("business_schedule", "schedule"),
       ("custom_attribute_metadata", "custom_attribute_metadata")]


def ref_equal(db, fake, label, tables=REF, klasses=False):
    bad = []
    for table, t in tables:
        recs = fake.dump(t)
        if t == "custom_attribute_metadata" and not klasses:
            # a klass's metadata is read when its kobjects are synced
            recs = [r for r in recs if not r["attributes"]["resource"]
                    .startswith("kobject_")]
        want = truth(recs)
        if not table_exists(db, table):
            bad.append("%s: no table" % table)
            continue
        got = stored(db, table)
        if want != got:
            bad.append("%s: %s" % (table, diff(want, got)))
    report("%s: %s equal the fake's store" % (
        label, ", ".join(t for t, _ in tables)), not bad, bad)


def links(fake, t, attr):
    return {(r["id"], x) for r in fake.dump(t) if not deleted(r)
            for x in (r["attributes"].get(attr) or [])}


def live_links(db, table, a, b):
    return set(db.execute('select "%s", "%s" from "%s" where _deleted=0'
                          % (a, b, table)).fetchall())


def t_reference(so, fake, tmp):
    fake.reset()
    db = open_db(so, os.path.join(tmp, "ref.db"))
    make_sync(db, fake, streams="reference")
    n0 = fake.count()
    s = pull(db)
    ref_equal(db, fake, "reference")
    report("reference: the pull had no error and every stream caught up",
           s["errors"] == [] and all(v["caught_up"] for v in
                                     s["streams"].values()), s)
    report("reference: the summary's requests are the fake's (%d)"
           % s["requests"], s["requests"] == fake.count() - n0,
           (s["requests"], fake.count() - n0))
    want = links(fake, "team", "members")
    got = live_links(db, "team_member", "team_id", "user_id")
    report("reference: team_member holds every team's members (%d)"
           % len(want), want == got and want, diff(want, got))
    want = links(fake, "shortcut", "tags")
    got = live_links(db, "shortcut_tag", "shortcut_id", "tag_id")
    report("reference: shortcut_tag holds every shortcut's tags", want == got,
           diff(want, got))
    want = {(r["id"], x) for r in fake.dump("user")
            for x in r["attributes"].get("roles") or []}
    got = live_links(db, "user_role", "user_id", "role")
    report("reference: user_role holds every user's roles", want == got,
           diff(want, got))
    nm = sum(len(r["attributes"].get("metrics") or [])
             for r in fake.dump("sla_version"))
    got = db.execute("select count(*) from sla_metric where _deleted=0"
                     ).fetchone()[0]
    report("reference: sla_metric holds every version's metrics (%d)" % nm,
           got == nm and nm > 0, got)
    nh = sum(len(r["attributes"].get("holidays") or [])
             for r in fake.dump("schedule"))
    got = db.execute("select count(*) from business_holiday where _deleted=0"
                     ).fetchone()[0]
    report("reference: business_holiday holds every schedule's holidays",
           got == nh and nh > 0, (got, nh))
    res = {r[0] for r in db.execute(
        "select distinct resource from custom_attribute_metadata")}
    report("reference: metadata of several resources (%s)" % sorted(res),
           {"customer", "conversation"} <= res, res)
    st = state(db)
    report("reference: each stream's next pass is due in 24 hours",
           all(v["phase"] == "reimport" and v["next_due_at"] and v["cursor"]
               and v["next_due_at"] > v["cursor"] for v in st.values()), st)

    n1 = fake.count()
    s = pull(db)
    report("reference: the next pull makes no request (not due)",
           fake.count() == n1 and s["requests"] == 0, s)

    # a soft-deleted tag, a hard-deleted team: resync reads them again
    tag = fake.dump("tag")[0]["id"]
    team = fake.dump("team")[0]["id"]
    fake.ctl("POST", "/_fake/delete", {"type": "tag", "id": tag, "soft": True})
    fake.ctl("POST", "/_fake/delete", {"type": "team", "id": team,
                                       "soft": False})
    db.execute("insert into ks(ks, arg) values('resync', 'tag')")
    db.execute("insert into ks(ks, arg) values('resync', 'team')")
    s = pull(db)
    r = db.execute("select _deleted from tag where id=?", (tag,)).fetchone()
    report("reference: a soft-deleted tag is _deleted=1", r == (1,), r)
    r = db.execute("select _deleted from team where id=?", (team,)).fetchone()
    report("reference: a team gone from the complete pass is _deleted=1",
           r == (1,), r)
    r = db.execute("select count(*), sum(_deleted) from team_member where "
                   "team_id=?", (team,)).fetchone()
    report("reference: the gone team's members are _deleted=1 (%s)" % (r,),
           r[0] > 0 and r[0] == r[1], r)
    r = db.execute("select count(*) from team where _deleted=1").fetchone()
    report("reference: only that team is swept", r == (1,), r)
    report("reference: resync of tag and team read only those two",
           set(k for k, v in s["streams"].items() if v["requests"])
           == {"tag", "team"}, s)
    want = truth(fake.dump("team")) | {(team, r[0], 1) for r in db.execute(
        "select updated_at from team where id=?", (team,))}
    got = stored(db, "team")
    report("reference: the other teams are as at Kustomer", want == got,
           diff(want, got))
    db.close()

    db = open_db(so, os.path.join(tmp, "ref_klass.db"))
    make_sync(db, fake, streams="kobject,custom_attribute_metadata")
    pull(db)
    ref_equal(db, fake, "reference with kobjects",
              [("custom_attribute_metadata", "custom_attribute_metadata")],
              klasses=True)
    db.close()


def t_reimport(so, fake, tmp):
    fake.reset()
    db = open_db(so, os.path.join(tmp, "reimport.db"))
    make_sync(db, fake, streams="user,brand", reimport_hours=0)
    pull(db)
    brand = fake.dump("brand")[0]["id"]
    fake.ctl("POST", "/_fake/delete", {"type": "brand", "id": brand,
                                       "soft": False})
    user = fake.dump("user")[1]["id"]
    fake.ctl("POST", "/_fake/delete", {"type": "user", "id": user,
                                       "soft": True})
    s = pull(db)
    r = db.execute("select _deleted from brand where id=?", (brand,)
                   ).fetchone()
    report("reimport_hours=0: every pull makes a pass; the gone brand is "
           "_deleted=1", r == (1,) and s["streams"]["brand"]["requests"] > 0,
           (r, s))
    r = db.execute("select _deleted from user where id=?", (user,)).fetchone()
    report("reimport_hours=0: a deleted user (read from ?deleted=true) is "
           "_deleted=1", r == (1,), r)
    ref_equal(db, fake, "reimport", [("user", "user")])

    # a pass that fails sweeps nothing
    user2 = fake.dump("user")[2]["id"]
    fake.ctl("POST", "/_fake/delete", {"type": "user", "id": user2,
                                       "soft": False})
    before = db.execute("select count(*) from user where _deleted=1"
                        ).fetchone()[0]
    fake.ctl("POST", "/_fake/config", {"fail_every": 1})
    s = pull(db, "ks", 20)
    fake.ctl("POST", "/_fake/config", {"fail_every": 0})
    after = db.execute("select count(*) from user where _deleted=1"
                       ).fetchone()[0]
    st = state(db)["user"]
    report("a failed pass sweeps nothing and keeps its error (%s)"
           % st["error"], after == before and st["error"] and
           "503" in st["error"], (before, after, st))
    s = pull(db)
    r = db.execute("select _deleted from user where id=?", (user2,)
                   ).fetchone()
    st = state(db)["user"]
    report("the next pull completes the pass: the gone user is _deleted=1, "
           "the error cleared", r == (1,) and st["error"] is None, (r, st))
    db.close()


def t_audit(so, fake, tmp):
    fake.reset()
    db = open_db(so, os.path.join(tmp, "audit.db"))
    make_sync(db, fake, streams="customer,conversation,audit_log")
    s = pull(db)
    report("audit: the first pull reads the log (no error)",
           s["errors"] == [] and "audit_log" in s["streams"], s)
    cust = [c for c in fake.dump("customer")
            if c["attributes"].get("emails")][0]["id"]
    conv = fake.dump("conversation")[3]["id"]
    fake.ctl("POST", "/_fake/delete", {"type": "customer", "id": cust,
                                       "soft": False})
    fake.ctl("POST", "/_fake/delete", {"type": "conversation", "id": conv,
                                       "soft": False})
    s = pull(db)
    r = db.execute("select _deleted from customer where id=?", (cust,)
                   ).fetchone()
    report("audit: a customer deleted at Kustomer (gone from every search) "
           "is _deleted=1", r == (1,), r)
    r = db.execute("select count(*), sum(_deleted) from customer_email where "
                   "customer_id=?", (cust,)).fetchone()
    report("audit: and its child rows (%s)" % (r,), r[0] > 0 and r[0] == r[1],
           r)
    r = db.execute("select _deleted from conversation where id=?", (conv,)
                   ).fetchone()
    report("audit: a deleted conversation is _deleted=1", r == (1,), r)
    r = db.execute("select count(*) from customer where _deleted=1"
                   ).fetchone()[0]
    report("audit: nothing else is marked", r == 1, r)
    report("audit: the summary counts the two deletes",
           s["streams"]["audit_log"]["deleted"] == 2, s["streams"])
    s = pull(db)
    report("audit: an entry is read once", s["streams"]["audit_log"]["rows"]
           == 0, s["streams"]["audit_log"])
    reqs = [x for x in fake.requests() if x["path"].startswith(
        "/v1/audit-logs")]
    last = reqs[-1]["path"]
    report("audit: it reads after the last entry read", "after=" in last and
           "filter%5Bstart%5D=" in last, last)

    # a key without the role: this stream alone stops, until a resync
    fake.ctl("POST", "/_fake/config", {"audit_forbidden": True})
    s = pull(db)
    st = state(db)["audit_log"]
    report("audit: a 403 disables the stream, with its error (%s)"
           % st["error"], st["phase"] == "disabled" and "403" in
           (st["error"] or ""), st)
    report("audit: the other streams go on", s["streams"]["customer"]
           ["caught_up"] and s["streams"]["customer"]["error"] is None, s)
    n = fake.count()
    pull(db)
    reqs = [x for x in fake.requests()[-(fake.count() - n) or len(
        fake.requests()):] if x["path"].startswith("/v1/audit-logs")]
    report("audit: a disabled stream makes no request",
           fake.count() - n > 0 and not reqs, reqs[:1])
    fake.ctl("POST", "/_fake/config", {"audit_forbidden": False})
    db.execute("insert into ks(ks, arg) values('resync', 'audit_log')")
    s = pull(db)
    st = state(db)["audit_log"]
    report("audit: resync enables it again", st["phase"] == "incremental"
           and st["error"] is None and s["streams"]["audit_log"]["rows"] >= 2,
           (st, s["streams"]["audit_log"]))
    db.close()


def snapshot(db):
    """Every table of the sync but its shadow tables, as sets of rows."""
    out = {}
    for (t,) in db.execute("select name from sqlite_schema where type="
                           "'table' and name not like 'ks_%' and name not "
                           "like 'kustomer_%' and sql not like 'create "
                           "virtual%'"):
        out[t] = set(db.execute('select * from "%s"' % t).fetchall())
    return out


def t_rebuild(so, fake, tmp):
    fake.reset()
    db = open_db(so, os.path.join(tmp, "rebuild.db"))
    make_sync(db, fake, streams="customer,conversation,kobject,team")
    pull(db)
    gone = fake.dump("customer")[2]["id"]
    fake.ctl("POST", "/_fake/delete", {"type": "customer", "id": gone,
                                       "soft": False})
    db.execute("insert into ks(ks, arg) values('resync', 'customer')")
    pull(db)
    before = snapshot(db)
    n = fake.count()
    # what a user (or an older version of the mapping) may have left
    db.execute("begin")
    db.execute("delete from customer_email")
    db.execute("delete from conversation_tag")
    db.execute("delete from team_member")
    db.execute("update customer set name=null, display_name='x'")
    db.execute("update kobject set klass_name=klass_name, title=null")
    db.execute("commit")
    db.execute("insert into ks(ks) values('rebuild')")
    after = snapshot(db)
    bad = {t: (len(before[t] - after.get(t, set())),
               len(after.get(t, set()) - before[t]))
           for t in before if before[t] != after.get(t)}
    report("rebuild: every table is again what the pull wrote (%d tables)"
           % len(before), not bad, bad)
    report("rebuild: no request", fake.count() == n, fake.count() - n)
    r = db.execute("select _deleted from customer where id=?", (gone,)
                   ).fetchone()
    report("rebuild: a swept row stays _deleted=1", r == (1,), r)
    db.execute("begin")
    db.execute("insert into ks(ks) values('rebuild')")
    db.execute("update customer set name='inside' where rowid=1")
    db.execute("rollback")
    report("rebuild: runs in the caller's transaction",
           snapshot(db) == before, "")
    expect_error("rebuild: an argument is refused",
                 lambda: db.execute("insert into ks(ks, arg) values("
                                    "'rebuild', 'customer')"), "no argument")
    db.execute("update customer set _record='{oops' where id=(select min(id)"
               " from customer)")
    expect_error("rebuild: a _record that is not JSON is named",
                 lambda: db.execute("insert into ks(ks) values('rebuild')"),
                 "_record", ("customer row",))
    db.close()
    db = open_db(so, os.path.join(tmp, "rebuild_norecord.db"))
    make_sync(db, fake, streams="customer", record=0)
    expect_error("rebuild: without _record (record=0) it says to resync",
                 lambda: db.execute("insert into ks(ks) values('rebuild')"),
                 "record=0")
    db.close()


def sha(salt, value):
    return hashlib.sha256(salt + value.encode()).hexdigest()


def cleartexts(fake):
    """What hash= and block= of t_privacy must keep out of the file."""
    out = set()
    for c in fake.dump("customer"):
        a = c["attributes"]
        out |= {e["email"] for e in a.get("emails") or []}
        out |= {e["email"] for e in a.get("sharedEmails") or []}
        out |= {p["phone"] for p in a.get("phones") or []}
        out |= {a[k] for k in ("name", "displayName") if a.get(k)}
    for n in fake.dump("note"):
        if n["attributes"].get("body"):
            out.add(n["attributes"]["body"])
    for k in fake.dump("kobject_order"):
        for f in ("title", "description"):
            if k["attributes"].get(f):
                out.add(k["attributes"][f])
    return {v for v in out if len(v) >= 6}


def file_bytes(path):
    data = b""
    for f in (path, path + "-wal", path + "-journal"):
        if os.path.exists(f):
            with open(f, "rb") as fh:
                data += fh.read()
    return data


PRIVACY = dict(streams="customer,note,kobject",
               hash="customer_email.email,customer.name,customer.display_name,"
               "kobject_order.title,kobject_order.description",
               block="note.body,customer_phone,customer_shared_email")


def t_privacy(so, fake, tmp):
    fake.reset()
    path = os.path.join(tmp, "privacy.db")
    db = open_db(so, path)
    db.execute("pragma journal_mode=wal")
    make_sync(db, fake, **PRIVACY)
    s = pull(db)
    report("privacy: the pull has no error", s["errors"] == [], s)
    salt = bytes.fromhex(db.execute("select v from ks_config where k="
                                    "'hash_salt'").fetchone()[0])
    report("privacy: a 32-byte salt is made at CREATE", len(salt) == 32,
           len(salt))
    want = {(c["id"], sha(salt, e["email"])) for c in fake.dump("customer")
            for e in c["attributes"].get("emails") or []}
    got = set(db.execute("select customer_id, email from customer_email"))
    report("privacy: customer_email.email is sha256(salt || email) (%d)"
           % len(want), want == got and want, diff(want, got))
    want = {(c["id"], sha(salt, c["attributes"]["name"]))
            for c in fake.dump("customer")}
    got = set(db.execute("select id, name from customer"))
    report("privacy: customer.name is hashed", want == got, diff(want, got))
    want = {(k["id"], sha(salt, k["attributes"]["title"]))
            for k in fake.dump("kobject_order")}
    got = set(db.execute("select id, title from kobject_order"))
    report("privacy: kobject_order.title is hashed", want == got,
           diff(want, got))
    got = set(db.execute("select id, json_extract(_record, "
                         "'$.attributes.title') from kobject where "
                         "klass_name='order'"))
    report("privacy: and so is the title in kobject's _record", want == got,
           diff(want, got))
    report("privacy: note has no body column; customer_phone and "
           "customer_shared_email are not made",
           "body" not in [r[1] for r in db.execute("pragma table_info(note)")]
           and not table_exists(db, "customer_phone")
           and not table_exists(db, "customer_shared_email"), "")
    rec = json.loads(db.execute("select _record from customer limit 1"
                                ).fetchone()[0])
    report("privacy: _record says what was hashed and blocked",
           "phones" not in rec["attributes"] and
           set(rec.get("_sync", {}).get("blocked", [])) >=
           {"customer_phone", "customer_shared_email"}, rec.get("_sync"))
    db.execute("insert into ks(ks) values('rebuild')")
    got = set(db.execute("select id, name from customer"))
    want = {(c["id"], sha(salt, c["attributes"]["name"]))
            for c in fake.dump("customer")}
    report("privacy: rebuild does not hash twice", want == got,
           diff(want, got))
    secrets = cleartexts(fake)
    data = file_bytes(path)
    leaked = sorted(v for v in secrets if v.encode() in data)
    report("privacy: no hashed or blocked value in the file or its WAL "
           "(%d values, %d bytes)" % (len(secrets), len(data)),
           secrets and not leaked, leaked[:5])
    # the customer map spells keys as lookup URL paths do (percent-encoded
    # where a path needs it): decoded, none is a hashed value in clear
    keys = [urllib.parse.unquote(k) for (k,) in db.execute(
        "select key from kustomer_customers")]
    leaked = sorted(v for v in secrets for k in keys if v in k)
    report("privacy: the customer map holds no hashed value in clear "
           "(%d keys)" % len(keys), keys and not leaked, leaked[:5])
    db.execute("pragma wal_checkpoint(truncate)")
    db.close()
    data = file_bytes(path)
    leaked = sorted(v for v in secrets if v.encode() in data)
    report("privacy: none after a checkpoint either", not leaked, leaked[:5])

    # the salt from the environment: the same hashes in two files
    os.environ["KS_TEST_SALT"] = "pepper-for-both"
    sets = settings(fake, hashSaltEnv="KS_TEST_SALT")
    hashes = []
    for i in range(2):
        db = open_db(so, os.path.join(tmp, "salt%d.db" % i))
        db.execute(create_sql(fake, sets=sets, **dict(FAST, streams="customer",
                                                      hash="customer.name")))
        pull(db)
        hashes.append(set(db.execute("select id, name from customer")))
        report("privacy: hashSaltEnv: no salt is stored (file %d)" % i,
               db.execute("select count(*) from ks_config where k="
                          "'hash_salt'").fetchone()[0] == 0, "")
        db.close()
    want = {(c["id"], sha(b"pepper-for-both", c["attributes"]["name"]))
            for c in fake.dump("customer")}
    report("privacy: hashSaltEnv: both files hash alike, with that salt",
           hashes[0] == hashes[1] == want, diff(want, hashes[0]))
    del os.environ["KS_TEST_SALT"]
    db = open_db(so, os.path.join(tmp, "salt0.db"))
    expect_error("privacy: hashSaltEnv unset: the pull says which variable",
                 lambda: pull(db), "KS_TEST_SALT", ("kustomer_pull()",))
    db.close()

    db = open_db(so, os.path.join(tmp, "privacy_args.db"))
    for label, args, want in [
            ("a primary key", {"hash": "customer.id"}, "is a key"),
            ("updated_at", {"block": "customer.updated_at"}, "is a key"),
            ("a relationship", {"hash": "note.customer_id"}, "is a key"),
            ("a child table's key", {"hash": "conversation_tag.tag_id"},
             "is a key"),
            ("a table without a column", {"hash": "customer_email"},
             "names no column"),
            ("an unknown table", {"block": "bogus.x"}, "not a table"),
            ("a bad item", {"hash": "customer."}, "table.column")]:
        expect_error("privacy: CREATE refuses hash/block of %s" % label,
                     lambda: db.execute(create_sql(fake, **args)), want,
                     ("hash" if "hash" in args else "block",))
    db.execute(create_sql(fake, name="kb", block="note"))
    names = {r[0] for r in db.execute("select stream from kb")}
    report("privacy: block='note' leaves the note stream out",
           "note" not in names and "customer" in names and
           not table_exists(db, "note"), names)
    db.close()


def t_history(so, fake, tmp):
    fake.reset()
    db = open_db(so, os.path.join(tmp, "history.db"))
    make_sync(db, fake, streams="customer,conversation",
              history="conversation", lookback_seconds=0)
    tables = {r[0] for r in db.execute("select name from sqlite_schema "
                                       "where name like '%_history'")}
    report("history: conversation gives Fivetran's six history tables (%s)"
           % sorted(tables), tables == {
               "conversation_history", "conversation_tag_history",
               "conversation_suggested_tag_history",
               "conversation_assigned_user_history",
               "conversation_assigned_team_history",
               "conversation_channel_history"}, tables)
    pull(db)
    n = len(fake.dump("conversation"))
    r = db.execute("select count(*), sum(_active), sum(_end='9999-12-31T23:59:"
                   "59.999Z'), sum(_start=updated_at) from conversation_history"
                   ).fetchone()
    report("history: one active version per conversation, _start its "
           "updatedAt (%s)" % (r,), r == (n, n, n, n), r)
    conv = [c for c in fake.dump("conversation")
            if c["attributes"].get("tags")][0]
    cid = conv["id"]
    old_tags = set(conv["attributes"]["tags"])
    new_tag = fake.dump("tag")[-1]["id"]
    fake.ctl("POST", "/_fake/clock", {"advance_ms": 60000})
    fake.ctl("POST", "/_fake/mutate", {"type": "conversation", "id": cid,
                                       "attributes": {"status": "done",
                                                      "tags": [new_tag]}})
    pull(db)
    rows = db.execute("select status, _start, _end, _active from "
                      "conversation_history where id=? order by _start",
                      (cid,)).fetchall()
    ok = (len(rows) == 2 and rows[0][3] == 0 and rows[1][3] == 1 and
          rows[1][0] == "done" and rows[0][2] < rows[1][1] and
          rows[1][2] == "9999-12-31T23:59:59.999Z")
    report("history: a change makes a new version; the old one ends 1 ms "
           "before", ok, rows)
    from datetime import datetime, timedelta
    if ok:
        a = datetime.strptime(rows[0][2], "%Y-%m-%dT%H:%M:%S.%fZ")
        b = datetime.strptime(rows[1][1], "%Y-%m-%dT%H:%M:%S.%fZ")
        report("history: _end = next _start - 1 ms", b - a ==
               timedelta(milliseconds=1), (rows[0][2], rows[1][1]))
    hist = db.execute("select tag_id, _active from conversation_tag_history"
                      " where conversation_id=? order by _start, tag_id",
                      (cid,)).fetchall()
    want = sorted([(t, 0) for t in old_tags - {new_tag}] +
                  [(new_tag, 1)] + [(t, 1) for t in old_tags & {new_tag}])
    report("history: tags that left are closed, the one that joined is "
           "active", sorted(hist) == want, (hist, want))
    others = db.execute("select count(*) from conversation_history where "
                        "id<>? and _active=0", (cid,)).fetchone()[0]
    report("history: the unchanged conversations keep one version", others
           == 0, others)
    pull(db)
    r = db.execute("select count(*) from conversation_history where id=?",
                   (cid,)).fetchone()
    report("history: reading the same version again adds none", r == (2,), r)
    fake.ctl("POST", "/_fake/clock", {"advance_ms": 60000})
    fake.ctl("POST", "/_fake/delete", {"type": "conversation", "id": cid,
                                       "soft": True})
    pull(db)
    r = db.execute("select count(*), sum(_active) from conversation_history "
                   "where id=?", (cid,)).fetchone()
    report("history: a delete closes the active version and opens none",
           r == (2, 0), r)
    r = db.execute("select count(*) from conversation_tag_history where "
                   "conversation_id=? and _active=1", (cid,)).fetchone()
    report("history: and its members' versions", r == (0,), r)
    before = db.execute("select count(*), sum(_active) from "
                        "conversation_history").fetchone()
    db.execute("insert into ks(ks) values('rebuild')")
    after = db.execute("select count(*), sum(_active) from "
                       "conversation_history").fetchone()
    report("history: rebuild adds no version", before == after,
           (before, after))
    expect_error("history: a child table is refused, naming its parent",
                 lambda: db.execute(create_sql(fake, name="kh",
                                               history="conversation_tag")),
                 "history", ("conversation",))
    db.close()


FIVETRAN_SQL = """
SELECT c.id, count(t.tag_id)
  FROM kustomer.conversation c
  LEFT JOIN kustomer.conversation_tag t
    ON t.conversation_id = c.id AND NOT t._fivetran_deleted
 WHERE NOT c._fivetran_deleted
   AND c._fivetran_synced IS NOT NULL
 GROUP BY c.id ORDER BY c.id
"""


def t_custom_fivetran(so, fake, tmp):
    fake.reset()
    path = os.path.join(tmp, "fivetran.db")
    db = open_db(so, path)
    make_sync(db, fake, streams="customer,conversation",
              system_columns="fivetran", history="conversation")
    pull(db)
    db.close()
    db = open_db(so, ":memory:")
    db.execute("attach ? as kustomer", (path,))
    rows = db.execute(FIVETRAN_SQL).fetchall()
    want = sorted((c["id"], len(c["attributes"].get("tags") or []))
                  for c in fake.dump("conversation"))
    report("fivetran: SQL written for Fivetran's kustomer schema runs "
           "unchanged (%d conversations)" % len(rows), rows == want,
           (rows[:2], want[:2]))
    r = db.execute("select count(*) from kustomer.conversation_history "
                   "where _fivetran_active and _fivetran_end > _fivetran_start"
                   ).fetchone()[0]
    report("fivetran: history tables have _fivetran_start/_end/_active",
           r == len(want), r)
    types = {n: t for n, t in db.execute(
        "select name, type from pragma_table_info('customer', 'kustomer')")}
    report("fivetran: custom attributes typed by their suffix (%s)" % {
        k: v for k, v in types.items() if k.startswith("custom_")},
        types.get("custom_tier_str") == "TEXT" and
        types.get("custom_orders_num") == "NUMERIC" and
        types.get("custom_vip_bool") == "INTEGER" and
        types.get("custom_last_order_at") == "TEXT", types)
    db.close()

    db = open_db(so, os.path.join(tmp, "customjson.db"))
    make_sync(db, fake, streams="customer", custom="json")
    pull(db)
    cols = [r[1] for r in db.execute("pragma table_info(customer)")]
    got = {i: json.loads(c) for i, c in db.execute(
        "select id, custom from customer")}
    want = {c["id"]: c["attributes"].get("custom")
            for c in fake.dump("customer")}
    report("custom='json': one custom column holding the attributes",
           "custom" in cols and not any(c.startswith("custom_") for c in cols)
           and got == want, cols)
    fake.ctl("POST", "/_fake/clock", {"advance_ms": 60000})
    cid = fake.dump("customer")[0]["id"]
    fake.ctl("POST", "/_fake/mutate", {"type": "customer", "id": cid,
                                       "attributes": {"custom": {
                                           "newFieldStr": "x",
                                           "scoreNum": "12",
                                           "flagBool": None}}})
    pull(db)
    cols2 = [r[1] for r in db.execute("pragma table_info(customer)")]
    r = db.execute("select json_extract(custom, '$.newFieldStr') from "
                   "customer where id=?", (cid,)).fetchone()
    report("custom='json': a new attribute changes no schema", cols2 == cols
           and r == ("x",), (cols2 == cols, r))
    db.close()
    db = open_db(so, os.path.join(tmp, "customcols.db"))
    make_sync(db, fake, streams="customer")
    pull(db)
    cols = [r[1] for r in db.execute("pragma table_info(customer)")]
    report("custom columns: a new attribute becomes a column",
           "custom_new_field_str" in cols, cols)
    types = {n: t for n, t in db.execute(
        "select name, type from pragma_table_info('customer')")}
    r = db.execute("select typeof(custom_score_num), custom_score_num from "
                   "customer where id=?", (cid,)).fetchone()
    report("custom columns: the suffix, not the first value, gives the type"
           " (scoreNum \"12\" -> %s %r; flagBool null -> %s)"
           % (types.get("custom_score_num"), r,
              types.get("custom_flag_bool")),
           types.get("custom_score_num") == "NUMERIC" and
           r == ("integer", 12) and
           types.get("custom_flag_bool") == "INTEGER", (types, r))
    for label, args, want in [
            ("custom", {"custom": "yaml"}, "custom must be"),
            ("system_columns", {"system_columns": "long"},
             "system_columns must be"),
            ("history", {"history": "bogus"}, "history")]:
        expect_error("arguments: a bad %s is refused" % label,
                     lambda: db.execute(create_sql(fake, name="kx", **args)),
                     want)
    db.close()


def t_recent_first(so, fake, tmp):
    fake.reset()
    now_ms = int(time.time() * 1000)
    fake.ctl("POST", "/_fake/clock", {"now": now_ms - 3600 * 1000})
    recent = fake.ctl("POST", "/_fake/mutate", {"type": "customer",
                                                "count": 2})["ids"]
    db = open_db(so, os.path.join(tmp, "recent.db"))
    make_sync(db, fake, streams="customer", backfill="recent_first",
              page_size=2)
    st = state(db)["customer"]
    report("recent_first: a search stream starts in phase 'recent'",
           st["phase"] == "recent", st)
    n0 = len(fake.requests())
    s = pull(db)
    reqs = searches(fake.requests()[n0:])
    first = bounds(reqs[0][2])
    day_ago = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(
        time.time() - 86400 - 120))
    report("recent_first: the first search is the last day's (gte %s)"
           % first.get("gte"), first.get("gte", "") >= day_ago, first)
    later = [bounds(b) for _, _, b, _ in reqs[1:]]
    hist = [b for b in later if b.get("gte", "").startswith("1970")]
    report("recent_first: then the history from the start, up to where the "
           "last day's reading ended", hist and all(
               b.get("lte", "") < first.get("lte", "") for b in hist),
           (hist[:1], first))
    got = {r[0] for r in db.execute("select id from customer where rowid<=2")}
    report("recent_first: the recent customers are the first rows written",
           got == set(recent), (got, recent))
    want = truth(fake.dump("customer"))
    got = stored(db, "customer")
    report("recent_first: then every customer (%s)" % s["streams"]
           ["customer"]["rows"], want == got, diff(want, got))
    st = state(db)["customer"]
    # (past a tie, the cursor is 1 ms after the tied instant)
    report("recent_first: ends incremental, at the last day's cursor",
           st["phase"] == "incremental" and st["cursor"] >=
           max(r[1] for r in got), (st, max(r[1] for r in got)))
    expect_error("arguments: a bad backfill is refused",
                 lambda: db.execute(create_sql(fake, name="kr",
                                               backfill="newest")),
                 "backfill must be")
    db.close()


def t_set(so, fake, tmp):
    fake.reset()
    db = open_db(so, os.path.join(tmp, "set.db"))
    make_sync(db, fake, streams="customer")
    pull(db)
    db.execute("insert into ks(ks, arg) values('set', 'budget=0.5')")
    r = db.execute("select v from ks_config where k='budget'").fetchone()
    report("set: budget=0.5 is stored", r == (0.5,), r)
    for label, arg, want in [
            ("out of range", "budget=2", "budget must be between"),
            ("unknown", "bogus=1", "unknown argument"),
            ("a table-deciding argument", "streams=note", "cannot change"),
            ("not key=value", "budget", "key=value"),
            ("a key column hashed", "hash=customer.id", "is a key")]:
        expect_error("set: %s is refused" % label,
                     lambda: db.execute("insert into ks(ks, arg) values("
                                        "'set', ?)", (arg,)), want)
    r = db.execute("select v from ks_config where k='budget'").fetchone()
    report("set: a refused set changes nothing", r == (0.5,), r)
    names = {c["id"]: c["attributes"]["name"] for c in fake.dump("customer")}
    db.execute("insert into ks(ks, arg) values('set', 'hash=customer.name')")
    salt = db.execute("select v from ks_config where k='hash_salt'").fetchone()
    report("set: hash= makes a salt when there was none", salt is not None,
           salt)
    n = fake.count()
    db.execute("insert into ks(ks) values('rebuild')")
    salt = bytes.fromhex(salt[0])
    got = dict(db.execute("select id, name from customer"))
    report("set, then rebuild: the stored names are hashed, with no request",
           got == {i: sha(salt, v) for i, v in names.items()} and
           fake.count() == n, list(got.items())[:2])
    db.close()


def t_arguments(so, fake, tmp):
    db = open_db(so, os.path.join(tmp, "args.db"))
    expect_error("arguments: an unknown stream names the groups",
                 lambda: db.execute(create_sql(fake, streams="reference,bogus")),
                 "bogus", ("core, reference, all",))
    expect_error("arguments: reimport_hours out of range",
                 lambda: db.execute(create_sql(fake, reimport_hours=-1)),
                 "reimport_hours")
    db.execute(create_sql(fake, name="ka", streams="all"))
    names = {r[0] for r in db.execute("select stream from ka")}
    report("arguments: streams='all' holds core and reference streams",
           {"customer", "audit_log", "user", "sla",
            "custom_attribute_metadata"} <= names, names)
    db.close()


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
    tmp = tempfile.mkdtemp(prefix="ksyncref")
    t0 = time.time()
    fake = Fake(*SEED)
    try:
        run("reference", t_reference, so, fake, tmp)
        run("reimport", t_reimport, so, fake, tmp)
        run("audit", t_audit, so, fake, tmp)
        run("rebuild", t_rebuild, so, fake, tmp)
        run("privacy", t_privacy, so, fake, tmp)
        run("history", t_history, so, fake, tmp)
        run("custom and fivetran", t_custom_fivetran, so, fake, tmp)
        run("recent first", t_recent_first, so, fake, tmp)
        run("set", t_set, so, fake, tmp)
        run("arguments", t_arguments, so, fake, tmp)
    finally:
        fake.stop()
    print("# test_sync_ref.py: %.1f s" % (time.time() - t0))
    sys.exit(1 if ktap.FAILED else 0)


if __name__ == "__main__":
    main()
