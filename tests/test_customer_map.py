#!/usr/bin/python3
"""The file's map of customer ids (main.kustomer_customers) and what it
saves: identify events for customers Kustomer already has, sent as bulk
updates with no lookup, whether the ids were learnt by an earlier flush or
by the sync's customer table.

    /usr/bin/python3 tests/test_customer_map.py [SO_PATH]

Requests are counted at the fake (bulk jobs' reads included), for three
archives: all new customers, all existing (known from a flush, known from a
sync), and half of each.  The fake runs each bulk job by its first read, as
a job of 100 customers takes Kustomer well under the flush's first wait.

Prints "ok <name>" / "FAIL <name>: <detail>" lines; exit status 1 on
failure.
"""
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import ktap  # noqa: E402
from ktap import report  # noqa: E402
from test_network import Fake  # noqa: E402

KEY = ktap.key("idmap-key-5e3cr3t")
os.environ["KUSTOMER_IDMAP_KEY"] = KEY
SCALE = float(os.environ.get("KUSTOMER_TEST_SCALE", "1"))
N = max(100, int(1000 * SCALE)) // 100 * 100


open_db = ktap.open_db


def settings(fake):
    return json.dumps({"apiKeyEnv": "KUSTOMER_IDMAP_KEY",
                       "baseEndpoint": fake.base, "timeoutMs": 5000})


def make_outbox(db, fake):
    db.execute("create virtual table out using kustomer_outbox("
               "settings='%s', rate_limit=100000, rate_window=60, budget=0.9)"
               % settings(fake))


def identify(i, tag="a"):
    return json.dumps({"type": "identify", "userId": "m%d" % i,
                       "messageId": "%s-%d" % (tag, i),
                       "traits": {"email": "m%d@example.com" % i,
                                  "firstName": "F%d" % i, "lastName": tag}})


def flush(db, fake, events):
    """Enqueue and flush; (summary, the requests the fake saw meanwhile)."""
    n0 = len(fake.requests())
    db.execute("delete from out")
    db.executemany("insert into out(event) values (?)", [(e,) for e in events])
    s = json.loads(db.execute("select kustomer_flush('out', 60)")
                   .fetchone()[0])
    return s, fake.requests()[n0:]


def kinds(reqs):
    out = {"create": 0, "update": 0, "read": 0, "lookup": 0, "other": 0}
    for r in reqs:
        p = r["path"].split("?")[0]
        if p == "/v1/customers/bulk":
            out["create" if r["method"] == "POST" else "update"] += 1
        elif p.startswith("/v1/bulk/"):
            out["read"] += 1
        elif r["method"] == "GET" and p.startswith("/v1/customers/"):
            out["lookup"] += 1
        else:
            out["other"] += 1
    return out


def fake_customers(fake):
    store = fake.ctl("GET", "/_fake/customers")
    items = store.get("data", store) if isinstance(store, dict) else store
    return {c.get("attributes", c).get("externalId"): c for c in items}


def figure(name, s, reqs, n, limit):
    k = kinds(reqs)
    per = len(reqs) / n
    report("%s: %d customers in %d requests, %.3f per customer (at most "
           "%.2f): %s" % (name, n, len(reqs), per, limit, k),
           s["sent"] == n and s["failed"] == 0 and per <= limit, (s, k))
    return k


def main():
    so = ktap.so_path(sys.argv, ROOT)
    tmp = tempfile.mkdtemp(prefix="kidmap")
    fake = Fake()
    try:
        fake.reset(api_key=KEY)
        fake.ctl("POST", "/_fake/config", {"bulk_delay_polls": 1})
        a = open_db(so, os.path.join(tmp, "a.db"))
        make_outbox(a, fake)

        # 1. new customers: created in bulk, the map learns them
        s, reqs = flush(a, fake, [identify(i) for i in range(N)])
        k = figure("new", s, reqs, N, 0.02)
        report("new: only bulk creations and their reads",
               k["update"] == 0 and k["lookup"] == 0 and k["other"] == 0, k)
        rows = dict(a.execute("select key, customer_id from kustomer_customers"
                              " where source='bulk'").fetchall())
        store = fake_customers(fake)
        report("new: the map has each customer's externalId and e-mail, with "
               "Kustomer's id",
               len(rows) == 2 * N and all(
                   rows.get("externalId=m%d" % i) == store["m%d" % i]["id"]
                   == rows.get("email=m%d%%40example.com" % i,
                               rows.get("email=m%d@example.com" % i))
                   for i in range(N)),
               (len(rows), sorted(rows)[:4]))

        # 2. the same customers again: known, updated in bulk, no lookup
        s, reqs = flush(a, fake, [identify(i, "b") for i in range(N)])
        k = figure("existing, known from a flush", s, reqs, N, 0.02)
        report("existing: bulk updates alone, no creation and no lookup",
               k["create"] == 0 and k["lookup"] == 0 and k["update"] >= 1, k)
        store = fake_customers(fake)
        report("existing: Kustomer has the update (name F<n> b), one "
               "customer each",
               len(store) == N and all(
                   store["m%d" % i]["attributes"].get("name") == "F%d b" % i
                   for i in range(N)), len(store))
        ids = a.execute("select count(*) from out where status='sent' and "
                        "kustomer_id is not null").fetchone()[0]
        report("existing: each row has its customer id", ids == N, ids)

        # 3. half known, half new
        half = N // 2
        mix = [identify(i, "c") for i in range(half)] + \
              [identify(i) for i in range(N, N + half)]
        s, reqs = flush(a, fake, mix)
        # the floor: each half's jobs, a POST or PUT and a read per 100; at
        # 1,000 customers 0.02, at a small test scale more
        floor = 2 * 2 * -(-half // 100) / N
        k = figure("50/50", s, reqs, N, max(0.03, floor))
        report("50/50: no lookup", k["lookup"] == 0, k)

        # 4. known from the sync's customer table, in another file
        b = open_db(so, os.path.join(tmp, "b.db"))
        b.execute("create virtual table ks using kustomer_sync(settings='%s',"
                  " streams='customer', rate_limit=100000, search_limit=100000)"
                  % json.dumps({"apiKeyEnv": "KUSTOMER_IDMAP_KEY",
                                "baseEndpoint": fake.base}))
        p = json.loads(b.execute("select kustomer_pull('ks', 60)")
                       .fetchone()[0])
        got = dict(b.execute("select key, customer_id from kustomer_customers"
                             " where source='sync'").fetchall())
        want = dict(b.execute("select 'externalId=' || external_id, id from "
                              "customer where external_id is not null")
                    .fetchall())
        report("sync: every synced customer's externalId and e-mail in the "
               "map (%d keys)" % len(got),
               p["errors"] == [] and len(want) == N + half and all(
                   got.get(kk) == v for kk, v in want.items())
               and len(got) == 2 * len(want), (p["errors"], len(got),
                                               len(want)))
        make_outbox(b, fake)
        s, reqs = flush(b, fake, [identify(i, "d") for i in range(N)])
        k = figure("existing, known from a sync", s, reqs, N, 0.02)
        report("sync: bulk updates alone, no creation and no lookup",
               k["create"] == 0 and k["lookup"] == 0, k)

        # 5. a customer deleted at Kustomer leaves the map at the next pull
        gone = b.execute("select id from customer where external_id='m0'"
                         ).fetchone()[0]
        fake.ctl("POST", "/_fake/delete", {"type": "customer", "id": gone,
                                           "soft": True})
        json.loads(b.execute("select kustomer_pull('ks', 60)").fetchone()[0])
        left = b.execute("select count(*) from kustomer_customers where "
                         "customer_id=?", (gone,)).fetchone()[0]
        report("sync: a deleted customer is forgotten", left == 0, left)

        # 6. the map knows an id that Kustomer no longer has: created again
        fake.ctl("POST", "/_fake/delete", {"type": "customer", "id": gone})
        s, reqs = flush(a, fake, [identify(0, "e")])
        row = a.execute("select status, kustomer_id from out").fetchone()
        k = kinds(reqs)
        report("unknown id: the first file's map still has it; the update "
               "is refused and the customer created again (%s)" % (row,),
               s["sent"] == 1 and row[0] == "sent" and row[1] != gone
               and k["update"] == 1 and k["create"] == 1, (s, row, k))
        # 7. an event that names its customer (context.externalId of type
        # kustomerId) is an update of that id, in bulk; one Kustomer does
        # not have fails with the 404, and is not created
        have = fake_customers(fake)["m1"]["id"]
        named = [json.dumps({"type": "identify", "userId": "m1",
                             "messageId": "f-%d" % i,
                             "context": {"externalId": [
                                 {"type": "kustomerId", "id": cid}]},
                             "traits": {"firstName": "F1", "lastName": "f"}})
                 for i, cid in enumerate((have, "0" * 24))]
        n0 = len(fake_customers(fake))
        s, reqs = flush(a, fake, named)
        rows = a.execute("select status, http_status, kustomer_id from out "
                         "order by id").fetchall()
        puts = [json.loads(r["body"]) for r in reqs if r["method"] == "PUT"
                and r["path"].split("?")[0] == "/v1/customers/bulk"]
        ids = sorted(item.get("id") for body in puts for item in body)
        report("named id: sent in a bulk update with that id, the unknown "
               "one fails with 404 and is not created (%s)" % (rows,),
               rows[0] == ("sent", 200, have) and rows[1][:2] == ("failed", 404)
               and ids == sorted([have, "0" * 24])
               and fake_customers(fake)["m1"]["attributes"].get("name")
               == "F1 f" and len(fake_customers(fake)) == n0,
               (rows, ids, kinds(reqs)))
        a.close()
        b.close()
    finally:
        fake.keep_record()
        fake.stop()
    sys.exit(1 if ktap.FAILED else 0)


if __name__ == "__main__":
    main()
