#!/usr/bin/python3
"""Write the libFuzzer seed corpora into build/fuzz/corpus/<target>/.

Sources: the conformance vectors (../shared/conformance/*.json relative to
the repository root: each vector's event and settings, router inputs
included) and every 100th line of sql/sample_events.ndjson; for fuzz_http
and fuzz_sync, server replies in the shapes Kustomer (and
tests/fake_kustomer.py) sends.  Seeds are named by content hash, so
rerunning adds nothing twice and keeps what the fuzzers found.  Usage: tests/fuzz/seeds.py [OUTDIR]  (default build/fuzz/corpus)
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


def identify_seeds():
    """Identify events with odd traits under each trait mapping and
    normalizeTraits (the schema checks and repairs of kustomer_check)."""
    traits = {"gender": " Female ", "tags": "vip", "createdAt": 1714557600,
              "lastSeenAt": "1714557600123", "dob": "2024-02-30", "phone": 5551234,
              "company": {"name": "Acme", "plan": "pro"}, "username": "a",
              "address": {"street": "1 Main", "city": "Miami", "postalCode": 33101,
                          "country": "US", "zip": "x"},
              "emails": [{"email": 5, "type": "personal"}, "x", {"type": "home"}],
              "customObject": {"aStr": 1, "bAt": "soon", "plain": True},
              "sentiment": {"polarity": 2}, "socials": [{"type": "myspace"}],
              "firstName": "Ann", "title": "CEO"}
    for st in ({"normalizeTraits": True}, {"traitMapping": "segment"},
               {"traitMapping": "segment", "normalizeTraits": True}, None):
        yield {"type": "identify", "userId": 7, "traits": traits,
               "context": {"traits": {"gender": "m", "name": 5}, "locale": 2}}, st


def timestamp_seeds():
    """Track events under timestampMeta: every source of the time, a
    property of the same name, nested and escaped keys."""
    for ts, props, st in (
            ("2024-05-01T12:00:00.123Z", {"a": 1}, {"timestampMeta": "occurredAt"}),
            (1714564800123, {"occurredAt": "x", "b": {"occurredAt": 1}},
             {"timestampMeta": "occurredAt", "advancedTransform": True}),
            ("soon", {}, {"timestampMeta": "the \"sent\" At"}),
            ("2024-05-01T12:00:00Z", [1, 2], {"timestampMeta": "occurredAt"}),
            (1714564800, "str", {"timestampMeta": "occurredAt"})):
        yield {"type": "track", "event": "E", "userId": "u", "timestamp": ts,
               "sentAt": "2024-05-02T00:00:00+02:00", "properties": props}, st


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


# fuzz_http: the status codes its structured responses pick by index.
HTTP_STATUS = [200, 201, 202, 204, 301, 400, 401, 403, 404, 409, 429, 500,
               502, 503]
JOB = "5f0b1d2c3a4e5f6a7b8c9d0e"
CUST = "5f3a9c0d1e2f3a4b5c6d7e8f"


def reply(status, body=b"", headers=()):
    """A structured fuzz_http response: status index (or a fuzzed status:
    index 14 and three digits), header lines, a blank line, the body."""
    if status in HTTP_STATUS:
        head = bytes([HTTP_STATUS.index(status)])
    else:
        head = bytes([14]) + bytes(int(d) for d in "%03d" % status)
    if not isinstance(body, bytes):
        body = dump(body)
    hdr = [b"Content-Type: application/json; charset=utf-8"] + \
        [h.encode("utf-8") if isinstance(h, str) else h for h in headers]
    return head + b"\n".join(hdr) + b"\n\n" + body


def kerror(status, code, title, detail=None):
    e = {"status": status, "code": code, "title": title}
    if detail:
        e["detail"] = detail
    return {"errors": [e]}


def http_seeds():
    """fuzz_http inputs: flags byte, then responses joined by two NULs, in
    the shapes tests/fake_kustomer.py (Kustomer's) sends."""
    rate = ["x-ratelimit-limit: 1000", "x-ratelimit-remaining: 998",
            "x-ratelimit-reset: 1767225600"]
    cust = {"data": {"type": "customer", "id": CUST,
                     "attributes": {"externalId": "u1", "name": "A",
                                    "emails": [{"type": "home", "email": "a@x.com"}]},
                     "links": {"self": "/v1/customers/" + CUST}}}
    track = {"data": {"type": "tracking_event", "id": "5f0000000000000000000001",
                      "attributes": {"name": "Signed-Up", "trackingId": "t1",
                                     "sessionId": "s1"}}}
    r404 = reply(404, kerror(404, "not_found", "Not Found"))
    r401 = reply(401, kerror(401, "unauthorized", "Unauthorized"))
    r400 = reply(400, kerror(400, "bad_request", "Bad Request",
                             "emails[0].email is required"))
    r409 = reply(409, kerror(409, "conflict", "Conflict"))

    def r429(reset, extra=()):
        return reply(429, kerror(429, "too_many_requests", "Too Many Requests"),
                     ["x-ratelimit-limit: 1000", "x-ratelimit-remaining: 0",
                      "x-ratelimit-reset: " + reset] + list(extra))

    def job(status, done=0):
        return {"data": {"type": "bulk", "id": JOB,
                         "attributes": {"status": status,
                                        "batches": {"complete": done, "total": 1},
                                        "createdAt": "2024-05-01T10:00:00.000Z",
                                        "updatedAt": "2024-05-01T10:00:01.000Z"},
                         "links": {"self": "/v1/bulk/" + JOB}}}

    def batches(results):
        ok = [r["objectId"] for r in results if "objectId" in r]
        return {"data": [{"type": "bulk_batch", "id": "5f0000000000000000000002",
                          "attributes": {"successCount": len(ok),
                                         "failureCount": len(results) - len(ok),
                                         "objectIds": ok, "results": results}}]}
    created = batches([{"_clientRef": "1", "objectId": CUST, "status": "created"},
                       {"_clientRef": "2", "objectId": CUST[:-1] + "0",
                        "status": "created"}])
    conflict = batches([{"_clientRef": "1", "status": "error",
                         "error": "externalId u1 already exists"},
                        {"_clientRef": "2", "objectId": CUST, "status": "created"}])
    bulk_ok = [reply(201, job("queued"), rate), reply(200, job("running")),
               reply(200, job("complete", 1), rate), reply(200, created)]
    out = []

    def add(flags, *responses):
        out.append(bytes([flags]) + b"\0\0".join(responses))

    # kustomer_send (variants: 0 lookup GET, 1 POST customer, 2 PUT, 3 tracking)
    add(0x30, reply(200, track, rate))
    add(0x30, r400)
    add(0x00, reply(200, cust, rate))
    add(0x00, r404)
    add(0x10, reply(201, cust, rate))
    add(0x10, r409)
    add(0x20, reply(200, cust))
    add(0x40, r401)
    add(0x00, reply(503, b"Service Unavailable", ["Retry-After: 30"]))
    add(0x00, reply(204))
    add(0x00, reply(301, b"", ["Location: http://192.0.2.1/elsewhere"]))
    add(0x00, reply(299, b"\xff\xfe not json \x00 \xc3"))
    add(0x00, reply(200, b'{"a":1,"a":2,"b":[1e400,-0,"\\ud800"]}',
                    [b"X-Bin: \xff\xc3\x28", "x-empty:", "NoColon"]))
    add(0x04, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    add(0x04, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"2\r\n{}\r\n0\r\n\r\n")
    add(0x04, b"HTTP/1.0 500 Oops\r\n\r\nno length, closed")
    add(0x04, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
              b"Content-Length: 7\r\n\r\n{\"a\":1}")
    add(0x04, b"garbage\r\n\r\n")
    add(0x04, b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nshort")
    # kustomer_process, identify: lookups by email, userId, anonymousId
    add(0x01, r404, r404, reply(200, cust, rate))
    add(0x01, reply(200, cust))
    add(0x01, reply(200, {"data": {}}))
    add(0x01, reply(200, {"data": {"id": 0}}))
    add(0x01, r404, reply(500, b"Internal Server Error"))
    add(0x01, reply(503))
    add(0x01, r429("60"))
    add(0x01, r401)
    add(0x11, reply(200, {"data": {"id": 42}}))
    add(0x21, r404, r404)
    add(0x31, r404, reply(200, b"[1,2"))
    add(0x05, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    # kustomer_send(kustomer_process(track)): the tracking reply
    add(0x02, reply(200, track, rate))
    add(0x12, r400)
    add(0x22, reply(502, b"<html>Bad Gateway</html>", ["Content-Type: text/html"]))
    # kustomer_flush: bulk creation (1), tracking (2), PUT (4), all (0)
    add(0x13, *bulk_ok)
    add(0x13, reply(201, job("complete", 1)), reply(200, job("complete", 1)),
        reply(200, created))
    add(0x13, reply(201, job("queued")), reply(200, job("complete", 1)),
        reply(200, conflict), reply(200, cust), reply(200, cust))
    add(0x13, reply(201, job("queued")), reply(200, job("failed")),
        reply(200, {"data": []}))
    add(0x13, reply(201, {"data": {"type": "bulk"}}))
    add(0x13, r429("1"), *bulk_ok)
    add(0x1b, r429("30"), *bulk_ok)
    add(0x13, reply(201, job("queued")), r429("99999999999"),
        reply(200, job("complete", 1)), reply(200, created))
    add(0x1b, reply(201, job("queued")), r429("1e308"))
    add(0x13, reply(201, job("queued")), *([reply(200, job("running"))] * 8))
    add(0x23, reply(200, track, rate), reply(200, track, rate))
    add(0x23, reply(200, track, ["x-ratelimit-remaining: 0",
                                 "x-ratelimit-reset: 2"]), reply(200, track))
    add(0x2b, reply(200, track, ["x-ratelimit-remaining: 0",
                                 "x-ratelimit-reset: -5"]), reply(200, track))
    add(0x23, reply(503), reply(500), reply(200, track), reply(200, track))
    add(0x23, r429("nan"), reply(200, track), reply(200, track))
    add(0x23, r401)
    add(0x43, reply(200, cust, rate))
    add(0x43, r400)
    add(0x03, *(bulk_ok + [reply(200, track), reply(200, track), reply(200, cust)]))
    add(0x93, reply(201, job("complete", 1)), reply(200, job("complete", 1)),
        reply(200, created), reply(200, cust))
    add(0x07, b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
    # kustomer_fetch (flags 8 with entry point 0; variants: 0 a list with
    # links.next, 1 one record, 2 search by page=N, 3 a list from page=3)
    def page(ids, nxt, **meta):
        doc = {"data": [{"type": "customer", "id": i,
                         "attributes": {"name": "N" + i, "n": 1.5},
                         "relationships": {"org": {"data": {"id": "o"}}}}
                        for i in ids],
               "links": {"self": "/v1/customers", "next": nxt}}
        if meta:
            doc["meta"] = meta
        return doc
    add(0x08, reply(200, page(["a", "b"], "/v1/customers?page=2&pageSize=2"),
                    rate),
        reply(200, page(["c"], None)))
    add(0x08, reply(200, page(["a"], "https://elsewhere.example/v1/x")))
    add(0x08, reply(200, page(["a"], "/v1/customers?pageSize=2")),
        reply(200, page(["b"], "/v1/customers?pageSize=2")))
    add(0x08, r429("1"), reply(503), reply(200, page(["a"], None)))
    add(0x08, reply(200, page(["a"], "/v1/c?page=2"),
                    ["x-ratelimit-remaining: 0", "x-ratelimit-reset: 2"]),
        reply(200, page([], None)))
    add(0x08, r401)
    add(0x08, reply(200, {"data": "x"}))
    add(0x08, reply(200, {"data": [1, {"id": 2}]}))
    add(0x18, reply(200, cust, rate))
    add(0x18, r404)
    add(0x28, reply(200, page(["a"], None, totalPages=2)))
    add(0x28, reply(200, {"data": [{"id": "a"}], "meta": {"totalPages": 3}}),
        reply(200, {"data": [{"id": "b"}], "meta": {"totalPages": 3}}),
        reply(200, {"data": [], "meta": {"totalPages": 3}}))
    add(0x38, reply(200, page(["a"], "/v1/conversations?page=4&pageSize=2")),
        reply(500), reply(502), reply(503), reply(500), reply(500))
    add(0x0c, b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"data\":[]}")
    return out



# fuzz_sync: flags0 bits.  Streams variant (flags0 & 7), page_size index
# ((flags0>>3) & 3: 1, 2, 3, 500), twice 0x20, raw 0x40, repeat-last 0x80.
S_CUSTOMER, S_CONVERSATION, S_MESSAGE_NOTE, S_COMPANY, S_KOBJECT, \
    S_SESSIONS, S_MIX, S_CORE = range(8)
P1, P2, P3, P500 = 0x00, 0x08, 0x10, 0x18
TWICE, RAW, REPEAT = 0x20, 0x40, 0x80
# flags1: list_page_size index (& 3: 1, 2, 3, 100), lookback 0 and
# search_limit=1000 (4),
# start_date (8), prefix (16), record=0 (32), turn_pages=1 (64),
# resync between the pulls (128).
L1, L2, L3, L100 = 0, 1, 2, 3
NO_LOOKBACK, START_DATE, PREFIX, NO_RECORD, TURN1, RESYNC = 4, 8, 16, 32, 64, 128


def hexid(kind, n):
    return hashlib.md5(("%s-%d" % (kind, n)).encode()).hexdigest()[:24]


def at(n):
    """An ISO updatedAt n seconds after 2025-01-01."""
    return "2025-01-%02dT%02d:%02d:%02d.%03dZ" % (
        1 + n // 86400, n // 3600 % 24, n // 60 % 60, n % 60, n * 7 % 1000)


def rel(typ, i):
    return {"data": {"type": typ, "id": i}, "links": {"self": "/v1/%ss/%s" % (typ, i)}}


def rels(typ, ids):
    return {"data": [{"type": typ, "id": i} for i in ids]}


def customer(n, t, deleted=False):
    a = {"name": "Cust %d" % n, "displayName": "C%d" % n, "externalId": "u%d" % n,
         "emails": [{"type": "home", "email": "c%d@x.com" % n},
                    {"type": "work", "email": "w%d@x.com" % n, "verified": True}],
         "phones": [{"type": "mobile", "phone": "+1555%04d" % n}],
         "socials": [], "locations": [{"type": "home", "name": "Home",
                                       "address": {"cityName": "Paris",
                                                   "countryCode": "FR"}}],
         "tags": [hexid("tag", 1), hexid("tag", 2)],
         "lastConversation": {"id": hexid("conv", n), "channels": ["email"],
                              "tags": [hexid("tag", 3)],
                              "sentiment": {"polarity": 1, "confidence": 0.5}},
         "sentiment": {"polarity": -1, "confidence": 0.25},
         "firstDone": {"createdAt": at(1), "channel": "email"},
         "createdAt": at(0), "updatedAt": at(t), "modifiedAt": at(t),
         "lastActivityAt": at(t - 1), "verified": n % 2 == 0, "rev": n,
         "custom": {"tierStr": "gold", "ltvNum": 12.5, "signupAt": at(2),
                    "vipBool": True, "airBnBuserIdNum": 7, "notesTxt": None}}
    if deleted:
        a.update({"deleted": True, "deletedAt": at(t)})
    r = {"type": "customer", "id": hexid("cust", n), "attributes": a,
         "relationships": {"org": rel("org", "o1"), "createdBy": rel("user", "u1"),
                           "modifiedBy": rel("user", "u2"),
                           "watchers": rels("user", ["u1", "u3"]),
                           "activeUsers": rels("user", [])},
         "links": {"self": "/v1/customers/" + hexid("cust", n)}}
    if deleted:
        r["relationships"]["deletedBy"] = rel("user", "u9")
    return r


def conversation(n, t):
    return {"type": "conversation", "id": hexid("conv", n),
            "attributes": {"name": "Conv %d" % n, "channels": ["email", "chat"],
                           "status": "open", "priority": 3, "direction": "in",
                           "messageCount": 2, "tags": [hexid("tag", 1)],
                           "suggestedTags": [],
                           "assignedUsers": ["u1"], "assignedTeams": ["t1", "t2"],
                           "firstResponse": {"createdAt": at(t), "time": 1000,
                                             "businessTime": 900},
                           "satisfactionLevel": {"score": 4,
                                                 "form": {"id": "f1"}},
                           "createdAt": at(0), "updatedAt": at(t),
                           "custom": {"reasonTree": "a.b", "urgentBool": False}},
            "relationships": {"org": rel("org", "o1"),
                              "customer": rel("customer", hexid("cust", n)),
                              "brand": rel("brand", "b1"),
                              "queue": rel("queue", "q1"),
                              "tags": rels("tag", [hexid("tag", 1)])}}


def message(n, t):
    return {"type": "message", "id": hexid("msg", n),
            "attributes": {"channel": "email", "app": "postmark",
                           "direction": "out", "preview": "hi \u00e9 \u2603",
                           "meta": {"subject": "S", "from": "a@x.com",
                                    "to": [{"email": "b@x.com"}]},
                           "size": 120, "auto": False, "sentAt": at(t),
                           "assignedUsers": ["u1"], "assignedTeams": [],
                           "createdByTeams": ["t1"], "shortcuts": ["s1"],
                           "attachments": [{"id": "at1", "name": "f.pdf",
                                            "contentType": "application/pdf",
                                            "contentLength": 999}],
                           "createdAt": at(0), "updatedAt": at(t)},
            "relationships": {"org": rel("org", "o1"),
                              "customer": rel("customer", hexid("cust", 1)),
                              "conversation": rel("conversation", hexid("conv", 1)),
                              "createdBy": rel("user", "u1")}}


def note(n, t):
    return {"type": "note", "id": hexid("note", n),
            "attributes": {"body": "note @u1", "userMentions": ["u1"],
                           "teamMentions": [{"id": "t1"}],
                           "createdAt": at(0), "updatedAt": at(t),
                           "custom": {}},
            "relationships": {"conversation": rel("conversation", hexid("conv", 1)),
                              "createdBy": rel("user", "u1")}}


def company(n, t):
    return {"type": "company", "id": hexid("comp", n),
            "attributes": {"name": "Co %d" % n, "domains": ["x.com", "y.com"],
                           "emails": [{"email": "co@x.com", "type": "work"}],
                           "urls": [{"url": "https://x.com", "type": "site"}],
                           "tags": [], "createdAt": at(0), "updatedAt": at(t),
                           "custom": {"sizeNum": 1e21, "foundedAt": "1999-12-31T23:59:59Z"}},
            "relationships": {"org": rel("org", "o1")}}


def kobject(klass, n, t):
    return {"type": "kobject", "id": hexid("ko-" + klass, n),
            "attributes": {"title": "%s %d" % (klass, n), "externalId": "e%d" % n,
                           "status": "active", "images": [], "tags": [hexid("tag", 1)],
                           "data": {"sku": "A-1", "qty": 2, "nested": {"deep": [1, {"x": None}]}},
                           "createdAt": at(0), "updatedAt": at(t),
                           "custom": {"orderNum": n, "shippedAt": at(t)}},
            "relationships": {"org": rel("org", "o1"),
                              "klass": {"data": {"type": "klass", "id": hexid("klass", 1)},
                                        "links": {"self": "/v1/klasses/" + klass}},
                              "customer": rel("customer", hexid("cust", 1))}}


def klass(name):
    return {"type": "klass", "id": hexid("klass-" + name, 1),
            "attributes": {"name": name, "displayName": name.title(),
                           "icon": "box", "color": "#fff", "status": "enabled"}}


def session(n, t, active):
    return {"type": "work_session", "id": hexid("ws", n),
            "attributes": {"statusType": "available", "routable": True,
                           "capacityStatus": "ok", "capacityRemaining": 3,
                           "totalCapacity": 5, "signedInAt": at(t - 100),
                           "signedOutAt": None if active else at(t),
                           "channels": ["chat", "email"],
                           "capacity": [{"channel": "chat", "capacity": 2, "used": 1}],
                           "handledItemCount": 4, "rev": 2,
                           "createdAt": at(t - 100), "updatedAt": at(t)},
            "relationships": {"org": rel("org", "o1"), "user": rel("user", "u1"),
                              "team": rel("team", "t1"), "queue": {"data": None}}}


def spage(recs, total=None, nxt=None):
    doc = {"data": recs, "meta": {"total": len(recs) if total is None else total}}
    if nxt is not None:
        doc["links"] = {"self": "/v1/customers/search", "next": nxt}
    return doc


def lpage(recs, nxt=None, prev=None):
    return {"data": recs, "links": {"self": "/v1/x", "first": "/v1/x",
                                     "next": nxt, "prev": prev},
            "meta": {"totalPages": 3}}


def sync_seeds():
    """fuzz_sync inputs: two flags bytes, then responses joined by two NULs."""
    rate = ["x-ratelimit-limit: 1000", "x-ratelimit-remaining: 998",
            "x-ratelimit-reset: 1767225600"]
    out = []

    def add(f0, f1, *responses):
        out.append(bytes([f0, f1]) + b"\0\0".join(responses))

    def ok(doc, headers=()):
        return reply(200, doc, list(headers))

    empty = ok(spage([]))
    r401 = reply(401, kerror(401, "unauthorized", "Unauthorized"))
    r403 = reply(403, kerror(403, "forbidden", "Forbidden"))
    r400 = reply(400, kerror(400, "bad_request", "Bad Request",
                             "/and/0/kobject_order_updated_at is not a valid attribute"))
    r404 = reply(404, kerror(404, "not_found", "Not Found"))

    def r429(reset, extra=()):
        return reply(429, kerror(429, "too_many_requests", "Too Many Requests"),
                     ["x-ratelimit-limit: 1000", "x-ratelimit-remaining: 0",
                      "x-ratelimit-reset: " + reset] + list(extra))

    # customer: archive (full page, short page), backfill, caught up
    add(S_CUSTOMER | P2, L100,
        ok(spage([customer(1, 10), customer(2, 20)], 3), rate),
        ok(spage([customer(3, 30)]), rate), empty)
    add(S_CUSTOMER | P500, L100, ok(spage([customer(1, 10)])), empty)
    # no archive for the key: 403/404/400 on the archive, then backfill
    add(S_CUSTOMER | P2, L100, r404, ok(spage([customer(1, 5)])))
    add(S_CUSTOMER | P2, L100, r403, ok(spage([customer(1, 5)])))
    add(S_CUSTOMER | P2, L100, r400, empty)
    # ties: full pages all at one updatedAt, by page, meta.total changing
    add(S_CUSTOMER | P1, L100, ok(spage([customer(1, 10)], 5)),
        ok(spage([customer(2, 10)], 5)), ok(spage([customer(3, 10)], 5)),
        ok(spage([customer(4, 10)], 6)), ok(spage([customer(5, 10)], 6)),
        ok(spage([], 6)), empty, empty)
    add(S_CUSTOMER | P2, L100, ok(spage([customer(1, 10), customer(2, 10)], 4)),
        ok(spage([customer(1, 10), customer(2, 10)], 4)),
        ok(spage([customer(3, 10), customer(4, 10)], 4)),
        ok(spage([customer(5, 11)])), empty)
    # the same page read twice (lookback), older versions, a deletion
    add(S_CUSTOMER | P2 | TWICE, L100,
        ok(spage([customer(1, 10), customer(2, 20)])),
        ok(spage([customer(1, 30)])), empty,
        ok(spage([customer(1, 5), customer(2, 40, deleted=True)])), empty, empty)
    # a resync between pulls: the second pass sweeps what it does not see
    add(S_CUSTOMER | P500 | TWICE, L100 | RESYNC,
        ok(spage([customer(1, 10), customer(2, 20)])), empty,
        ok(spage([customer(2, 30)])), empty)
    add(S_CUSTOMER | P3 | TWICE, L100 | RESYNC | NO_LOOKBACK | START_DATE,
        ok(spage([customer(1, 10)])), empty, ok(spage([customer(1, 10)])), empty)
    # prefix, no _record, one page a turn
    add(S_CUSTOMER | P1, L100 | PREFIX | NO_RECORD | TURN1,
        ok(spage([customer(1, 10)])), ok(spage([customer(2, 11)])), empty, empty)
    # odd records: no id, numeric id, not objects, new attributes, weird keys
    add(S_CUSTOMER | P500, L100, ok({"data": [
        1, "x", None, [], {}, {"id": None}, {"id": 42, "attributes": {"updatedAt": 7}},
        {"id": "a", "attributes": {"updatedAt": "2025-13-45T99:99:99Z", "x": {"y": {"z": {"w": 1}}},
                                   "emails": "notarray", "Name": "dup", "name": "dup2",
                                   "": "empty", "a.b": 1, "\u00e9t\u00e9At": at(3),
                                   "custom": {"": 1, "x-y": [1], "tierStr": {"o": 1}}},
         "relationships": {"org": {"data": [{"id": "o1"}, {"id": 2}, {}]},
                           "tags": {"data": [{"id": "t"}, 3, None]}, "x": {"data": None},
                           "createdBy": "bad", "deletedBy": {"data": {"id": {"a": 1}}}}},
        {"id": "b", "attributes": {"deleted": "yes", "updatedAt": "2025-01-01T00:00:00+02:00",
                                   "tags": [{"id": "t1"}, "t2", 3, None, True],
                                   "phones": [1, "x", {"phone": {"n": 1}}]}},
    ]}))
    add(S_CUSTOMER | P500, L100, ok({"data": {"not": "a list"}}))
    add(S_CUSTOMER | P500, L100, reply(200, b"<html>not json</html>"))
    add(S_CUSTOMER | P500, L100, reply(200, b'{"data":[{"id":"\xff"}]}'))
    add(S_CUSTOMER | P500, L100, reply(500, b"\xc3 oops \xff"), reply(502), reply(503),
        reply(500), reply(500))
    add(S_CUSTOMER | P500, L100, r401)
    add(S_CUSTOMER | P500, L100, reply(403, b"forbidden"), r403)
    add(S_CUSTOMER | P500, L100, r429("1"), ok(spage([customer(1, 10)])), empty)
    add(S_CUSTOMER | P500, L100, r429("0", ["Retry-After: 0"]), empty, empty)
    add(S_CUSTOMER | P500, L100, r429("99999"), empty)
    add(S_CUSTOMER | P500, L100,
        ok(spage([customer(1, 10)]), ["x-ratelimit-limit: 10",
                                      "x-ratelimit-remaining: 0",
                                      "x-ratelimit-reset: 1"]), empty)
    add(S_CUSTOMER | P500, L100,
        ok(spage([customer(1, 10)]), ["x-ratelimit-limit: 1",
                                      "x-ratelimit-remaining: 1",
                                      "x-ratelimit-reset: 2"]), empty, empty)
    add(S_CUSTOMER | P500 | RAW, L100,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"b\r\n{\"data\":[]}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{\"data\":[")
    # a server that keeps answering: full pages, 429s
    add(S_CUSTOMER | P1 | REPEAT, L100, ok(spage([customer(1, 10)])))
    add(S_CUSTOMER | P500 | REPEAT, L100, r429("1"))
    # conversation, message and note, company
    add(S_CONVERSATION | P2, L100,
        ok(spage([conversation(1, 10), conversation(2, 20)])),
        ok(spage([conversation(3, 30)])), empty)
    add(S_MESSAGE_NOTE | P500, L100, ok(spage([message(1, 10), message(2, 11)])),
        empty, ok(spage([note(1, 10)])), empty)
    add(S_MESSAGE_NOTE | P1 | TWICE, L100 | TURN1, ok(spage([message(1, 10)])),
        ok(spage([note(1, 10)])), ok(spage([message(2, 11)])), empty, empty, empty)
    add(S_COMPANY | P2, L100, ok(spage([company(1, 10), company(2, 10)], 2)),
        ok(spage([company(1, 10), company(2, 10)], 2)), empty)
    # klasses, then a stream per klass (kobject and kobject_<klass>)
    add(S_KOBJECT | P500, L100, ok(lpage([klass("order"), klass("ecomm-Device")])),
        ok(spage([kobject("order", 1, 10)])), empty,
        ok(spage([kobject("ecomm-Device", 1, 10)])), empty)
    add(S_KOBJECT | P500, L1, ok(lpage([klass("order")], "/v1/klasses?page=2&pageSize=1")),
        ok(lpage([klass("return")], "http://127.0.0.1:1/v1/klasses?page=3")),
        ok(spage([kobject("order", 1, 10)])), empty, empty, empty)
    add(S_KOBJECT | P500, L100, ok(lpage([klass("order")])), r400,
        ok(spage([kobject("order", 1, 10)])), empty)
    add(S_KOBJECT | P500 | TWICE, L100 | RESYNC, ok(lpage([klass("order")])),
        ok(spage([kobject("order", 1, 10)])), empty, ok(lpage([klass("order")])),
        empty, empty)
    add(S_KOBJECT | P500, L100, ok({"data": [{"attributes": {"name": ""}},
                                            {"attributes": {"name": 5}}, 7,
                                            {"attributes": {"name": "a:b"}},
                                            {"attributes": {"name": "\u00e9\u00e9"}},
                                            {"attributes": {"name": "order"}},
                                            {"attributes": {"name": "order"}}]}))
    add(S_KOBJECT | P500 | REPEAT, L1,
        ok(lpage([klass("order")], "/v1/klasses?page=2")))
    # work sessions: the active list, the ended ones by id, newest first
    add(S_SESSIONS, L2,
        ok(lpage([session(1, 100, True), session(2, 90, True)])),
        ok(lpage([session(3, 80, False), session(4, 70, False)],
                 "/v1/routing/work-sessions?page=2&pageSize=2")),
        ok(lpage([session(5, 60, False)])))
    add(S_SESSIONS | TWICE, L2,
        ok(lpage([session(1, 100, True), session(2, 90, True)])),
        ok(lpage([session(3, 80, False)])),
        ok(lpage([session(2, 90, True)])),
        ok({"data": session(1, 110, False)}),
        ok(lpage([session(1, 110, False), session(3, 80, False)])))
    add(S_SESSIONS | TWICE, L100,
        ok(lpage([session(1, 100, True)])), ok(lpage([])),
        ok(lpage([])), r404, ok(lpage([])))
    add(S_SESSIONS | TWICE, L1, ok(lpage([session(1, 100, True)])), ok(lpage([])),
        ok(lpage([], "/v1/routing/work-sessions?active=true&page=2")), ok(lpage([])),
        reply(500), reply(500), reply(500), reply(500), reply(500))
    add(S_SESSIONS, L1, ok(lpage([session(1, 100, True)], "//evil.example/x")),
        ok(lpage([session(2, 90, False)], "/v1/routing/work-sessions?page=2")),
        ok(lpage([session(3, 80, False)], "\\\\host\\x")))
    add(S_SESSIONS | REPEAT, L1,
        ok(lpage([session(1, 100, False)], "/v1/routing/work-sessions?page=2")))
    add(S_SESSIONS | TWICE, L1, ok(lpage([{"id": "../../x?y#z", "attributes":
                                           {"signedOutAt": None, "updatedAt": at(5)}}])),
        ok(lpage([])), ok(lpage([])), reply(200, b'{"data":[]}'))
    # everything at once
    add(S_MIX | P2, L2, ok(lpage([klass("order")])),
        ok(spage([customer(1, 10), customer(2, 20)])), ok(spage([customer(3, 30)])),
        empty, ok(spage([kobject("order", 1, 10)])), empty,
        ok(lpage([session(1, 100, True)])), ok(lpage([])))
    add(S_CORE | P500, L100, ok(lpage([klass("order")]), rate),
        ok(spage([customer(1, 10)]), rate), empty,
        ok(spage([conversation(1, 10)])), empty, ok(spage([message(1, 10)])), empty,
        ok(spage([note(1, 10)])), empty, ok(spage([company(1, 10)])), empty,
        ok(lpage([session(1, 100, True)])), ok(lpage([])),
        ok(spage([kobject("order", 1, 10)])), empty)
    add(S_CORE | P500 | TWICE, L100, r401)
    # a tie of more than 100 pages: the stream stops with its error
    add(S_CUSTOMER | P1 | REPEAT, L100 | NO_LOOKBACK,
        ok({"data": [customer(1, 10)]}))
    # kobject: the standard search refuses the cursor attribute (400): the
    # other form of it (kobject_updated_at) is tried
    add(S_KOBJECT | P500, L100, ok(lpage([klass("order")])), r404, r400,
        ok(spage([kobject("order", 1, 10)])), empty)
    add(S_KOBJECT | P500 | TWICE, L100, ok(lpage([klass("order")])), r404, r400, r400,
        ok(lpage([klass("order")])), empty, empty)
    # a slow server (byte 0 >= 0xF0: 250 ms before each answer) that keeps
    # giving a next page: the pull's seconds must still hold
    def slow(resp):
        return bytes([resp[0] | 0xF0]) + resp[1:]
    add(S_SESSIONS | REPEAT, L1, slow(ok(lpage([session(1, 100, False)],
                                                "/v1/routing/work-sessions?page=2"))))
    add(S_KOBJECT | REPEAT, L1, slow(ok(lpage([klass("order")], "/v1/klasses?page=2"))))
    add(S_CUSTOMER | P1 | REPEAT, L100, slow(ok(spage([customer(1, 10)]))))
    add(S_CUSTOMER | P500 | TWICE, L100, slow(ok(spage([customer(1, 10)]))), slow(empty),
        slow(ok(spage([customer(2, 20)]))), empty)
    return out


def events_seeds():
    """fuzz_events inputs: a flags byte, then an archive file's content."""
    evs = [dump(e) for e, _ in list(sample_events(step=300))[:8]]
    nd = b"\n".join(evs) + b"\n"
    env = b'{"batch":[' + b",".join(evs[:3]) + b'],"writeKey":"wk","sentAt":"x"}'
    files = [
        nd, nd.replace(b"\n", b"\r\n"), env + b"\n" + env + b"\n",
        b"[" + b",\n ".join(evs[:4]) + b"]\n",
        b'{\n "batch": [\n  ' + b",\n  ".join(evs[:2]) + b'\n ]\n}\n',
        b"\n\n" + evs[0] + b"\n{bad\n[1,2]\n\"s\"\n" + evs[1] + b" x\n",
        b'{"batch":{"a":1}}\n{"batch":[]}\n{"batch":[1,{"x":"\\u00e9"}]}\n',
        b"ab\x00cd\n" + evs[0] + b"\n", b"\xff\xfe" + evs[0] + b"\n",
        b"", b"[]", b"{}", b"{" * 40 + b"\n",
    ]
    out = set()
    for data in files:
        for flags in (0, 1, 2, 3, 4, 8, 9):
            out.add(bytes([flags]) + data)
    return out


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "fuzz", "corpus")
    seeds = {"fuzz_functions": set(), "fuzz_json": set(), "fuzz_jsnum": set(),
             "fuzz_http": set(http_seeds()), "fuzz_sync": set(sync_seeds()),
             "fuzz_events": set(events_seeds())}
    nums = {0.0, -0.0, 1.0, -1.0, 0.1, 1e21, 1e-7, 123456789012345680000.0,
            5e-324, 1.7976931348623157e308, float("inf"), float("nan")}
    pairs = list(vectors()) + list(sample_events()) + list(identify_seeds()) + \
        list(timestamp_seeds())
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
