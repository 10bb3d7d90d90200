#!/usr/bin/python3
"""Write the libFuzzer seed corpora into build/fuzz/corpus/<target>/.

Sources: the conformance vectors (../shared/conformance/*.json relative to
the repository root: each vector's event and settings, router inputs
included) and every 100th line of sql/sample_events.ndjson; for fuzz_http,
server replies in the shapes Kustomer (and tests/fake_kustomer.py) sends.  Seeds are named
by content hash, so rerunning adds nothing twice and keeps what the fuzzers
found.  Usage: tests/fuzz/seeds.py [OUTDIR]  (default build/fuzz/corpus)
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


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "fuzz", "corpus")
    seeds = {"fuzz_functions": set(), "fuzz_json": set(), "fuzz_jsnum": set(),
             "fuzz_http": set(http_seeds())}
    nums = {0.0, -0.0, 1.0, -1.0, 0.1, 1e21, 1e-7, 123456789012345680000.0,
            5e-324, 1.7976931348623157e308, float("inf"), float("nan")}
    pairs = list(vectors()) + list(sample_events())
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
