#!/usr/bin/env python3
"""Tests for tests/fake_kustomer.py (the local Kustomer stand-in).

    /usr/bin/python3 tests/test_fake_kustomer.py

Starts the fake as subprocesses on free ports of 127.0.0.1 (never any other address),
talks to it with http.client / urllib.request, prints one line per check,
"ok <name>" or "FAIL <name>: <detail>", and exits 1 if anything failed.
A watchdog ends the run (as a failure) after 19 s.
"""

import http.client
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_kustomer.py")
PY = sys.executable or "/usr/bin/python3"
HOST = "127.0.0.1"
SHARED_LOOKUPS = "/work/shared/conformance/lookups.json"
KEY = "secret-key"

E401 = b'{"errors":[{"status":401,"code":"unauthorized","title":"Unauthorized"}]}'
E404 = b'{"errors":[{"status":404,"code":"not_found","title":"Not Found"}]}'
E429 = b'{"errors":[{"status":429,"code":"too_many_requests","title":"Too Many Requests"}]}'
E503 = b'{"errors":[{"status":503,"code":"service_unavailable","title":"Service Unavailable"}]}'
E500 = (b'{"errors":[{"status":500,"code":"internal_server_error",'
        b'"title":"Internal Server Error"}]}')
DROPPED = (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionError)

failures = []
servers = []
TMP = tempfile.mkdtemp(prefix="fake-kustomer-test-")


def cjson(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def e400(*items):
    """Exact 400 body from (detail, pointer) pairs."""
    return cjson({"errors": [{"status": 400, "code": "bad_request", "title": "Bad Request",
                              "detail": d, "source": {"pointer": p}} for d, p in items]})


def report(name, ok, detail=""):
    if ok:
        print("ok %s" % name)
    else:
        print("FAIL %s: %s" % (name, detail))
        failures.append(name)
    sys.stdout.flush()


def check(name, cond, detail=""):
    report(name, bool(cond), detail)
    return bool(cond)


def eq(name, got, want):
    return check(name, got == want, "got %r, want %r" % (got, want))


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


class Fake:
    def __init__(self, *args, name="fake"):
        self.dir = tempfile.mkdtemp(dir=TMP, prefix=name + "-")
        self.port_file = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen([PY, FAKE, "--port", "0", "--port-file", self.port_file]
                                     + list(args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        servers.append(self)
        self.line = read_line(self.proc, 5)
        m = re.fullmatch(r"fake-kustomer listening on http://127\.0\.0\.1:(\d+)\n", self.line)
        if not m:
            raise RuntimeError("bad startup line %r (stderr %r)" % (self.line, self.stderr()))
        self.port = int(m.group(1))

    def stderr(self):
        if self.proc.poll() is None:
            return ""
        return self.proc.stderr.read()

    def req(self, method, path, body=None, key=KEY, headers=None, ctype="application/json",
            timeout=5):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        hdrs = {}
        if key is not None:
            hdrs["Authorization"] = "Bearer " + key
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            if ctype:
                hdrs["Content-Type"] = ctype
        hdrs.update(headers or {})
        try:
            conn.request(method, path, body=data, headers=hdrs)
            r = conn.getresponse()
            raw = r.read()
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, raw)
        finally:
            conn.close()

    def ctl(self, method, path, body=None):
        """Control API through urllib.request: -> (status, parsed JSON)."""
        data = None if body is None else json.dumps(body).encode()
        rq = urllib.request.Request("http://%s:%d%s" % (HOST, self.port, path), data=data,
                                    method=method)
        if data is not None:
            rq.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(rq, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stop(self, sig=signal.SIGTERM, timeout=5):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            for f in (self.proc.stdout, self.proc.stderr):
                f.close()


def read_line(proc, timeout):
    deadline = time.time() + timeout
    buf = ""
    fd = proc.stdout.fileno()
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            ch = os.read(fd, 1).decode()
            if not ch:
                break
            buf += ch
            if ch == "\n":
                return buf
        elif proc.poll() is not None:
            break
    return buf


# ------------------------------------------------------------------------------ tests

def t_startup(f):
    with open(f.port_file) as fh:
        eq("startup port-file holds the port", fh.read().strip(), str(f.port))
    eq("startup port-file written atomically (no temp file left)",
       sorted(os.listdir(f.dir)), ["port"])
    r = f.req("GET", "/_fake/health", key=None)
    eq("startup health", (r.status, r.json()["ok"], r.json()["port"]), (200, True, f.port))


def t_refuse_host():
    for host in ("0.0.0.0", "192.168.1.10", "::1", "example.com"):
        p = subprocess.run([PY, FAKE, "--host", host, "--port", "0"], capture_output=True,
                           text=True, timeout=5)
        check("refuses non-loopback --host %s" % host,
              p.returncode == 2 and "refusing" in p.stderr and p.stdout == "",
              "rc=%r out=%r err=%r" % (p.returncode, p.stdout, p.stderr))


def t_auth(f):
    r = f.req("GET", "/v1/customers", key=None)
    eq("auth missing header -> 401 exact body", (r.status, r.body), (401, E401))
    r = f.req("GET", "/v1/customers", key="wrong")
    eq("auth wrong key -> 401 exact body", (r.status, r.body), (401, E401))
    r = f.req("GET", "/v1/customers", key=None, headers={"Authorization": "Basic " + KEY})
    eq("auth non-Bearer scheme -> 401", r.status, 401)
    r = f.req("GET", "/v1/customers", key=None, headers={"Authorization": "Bearer "})
    eq("auth empty bearer -> 401", r.status, 401)
    r = f.req("GET", "/v1/customers")
    eq("auth right key -> 200", r.status, 200)
    r = f.req("GET", "/v1/customers", key=None, headers={"Authorization": "bearer " + KEY})
    eq("auth scheme is case-insensitive", r.status, 200)


def t_auth_any_key(f):
    r = f.req("GET", "/v1/customers", key="anything-at-all")
    eq("auth without --api-key accepts any bearer key", r.status, 200)
    r = f.req("GET", "/v1/customers", key=None)
    eq("auth without --api-key still needs the header", (r.status, r.body), (401, E401))


def t_lookups_file(f):
    r = f.req("GET", "/v1/customers/externalId=u1")
    eq("lookups: string body sent raw as text/plain",
       (r.status, r.body, r.headers.get("content-type", "").split(";")[0]),
       (429, b"slow down", "text/plain"))
    r = f.req("GET", "/v1/customers/email=a+b%20c@x.com")
    eq("lookups: null body is an empty body", (r.status, r.body), (404, b""))
    r = f.req("GET", "/v1/customers/email=a+b%20c@x.com", headers={"Host": "elsewhere.test"})
    eq("lookups: scheme and host ignored", (r.status, r.body), (404, b""))
    r = f.req("GET", "/v1/customers/externalId=obj")
    eq("lookups: object body as compact JSON", (r.status, r.body,
                                                r.headers.get("content-type", "")[:16]),
       (200, b'{"data":{"id":"cust-1"}}', "application/json"))
    r = f.req("GET", "/v1/customers/externalId=%6Fbj")
    eq("lookups: RFC 3986 percent-encoding normalisation", r.status, 200)
    r = f.req("GET", "/v1/customers/externalId=u1", key=None)
    eq("lookups: scripted paths still need auth", r.status, 401)
    try:
        r = f.req("GET", "/v1/customers/externalId=net")
        check("lookups: networkError closes the connection without an answer", False,
              "got an answer %r" % r)
    except DROPPED:
        check("lookups: networkError closes the connection without an answer", True)
    recs = f.ctl("GET", "/_fake/requests")[1]
    last = recs[-1]
    eq("lookups: networkError recorded as dropped",
       (last["path"], last["status"], last["dropped"], last["fault"], last["scripted"]),
       ("/v1/customers/externalId=net", None, True, "network_error", True))
    # runtime replacement
    st, body = f.ctl("POST", "/_fake/lookups", {
        "https://api.prod2.kustomerapp.com/v1/customers/externalId=new":
            {"status": 200, "body": {"data": {"id": "n1"}}}})
    eq("control: POST /_fake/lookups", (st, body), (200, {"ok": True, "count": 1}))
    r = f.req("GET", "/v1/customers/externalId=new")
    eq("lookups: replaced table answers", (r.status, r.body), (200, b'{"data":{"id":"n1"}}'))
    r = f.req("GET", "/v1/customers/externalId=u1")
    eq("lookups: replaced table drops old entries (store answers 404)",
       (r.status, r.body), (404, E404))
    st, body = f.ctl("GET", "/_fake/lookups")
    eq("control: GET /_fake/lookups", list(body), [
        "https://api.prod2.kustomerapp.com/v1/customers/externalId=new"])
    st, body = f.ctl("POST", "/_fake/lookups", {"/x": {"status": "nope"}})
    eq("control: bad lookups table -> 400", st, 400)
    f.ctl("POST", "/_fake/lookups", {})


def t_shared_lookups(f):
    with open(SHARED_LOOKUPS) as fh:
        table = json.load(fh)
    seen, bad = set(), []
    for url, reply in table.items():
        path = re.sub(r"^https?://[^/]+", "", url)
        if path in seen:
            continue
        seen.add(path)
        r = f.req("GET", path)
        want_body = b"" if reply.get("body") is None or reply["status"] == 204 \
            else cjson(reply["body"])
        if (r.status, r.body) != (reply["status"], want_body):
            bad.append((url, r.status, reply["status"]))
    check("lookups: every entry of conformance/lookups.json answered exactly (%d paths)"
          % len(seen), not bad and seen, bad)
    path = "/v1/customers/externalId=58210c3db0f09110006b7953"
    r1 = f.req("GET", path)
    r2 = f.req("GET", path, headers={"Host": "api.prod2.kustomerapp.com"})
    eq("lookups: same path on two hosts: first by default, Host header picks",
       (r1.status, r2.status, r2.body), (200, 204, b""))


def t_store_lookups(f):
    r = f.req("POST", "/v1/customers", {"name": "Lookup Me", "externalId": "ext/1 x",
                                        "emails": [{"email": "A+b@X.com", "type": "home"}]})
    cid = r.json()["data"]["id"]
    for path in ("/v1/customers/email=a%2Bb%40x.com", "/v1/customers/email=a+b@x.com",
                 "/v1/customers/externalId=ext%2F1%20x"):
        r = f.req("GET", path)
        eq("store lookup %s -> 200 with the customer" % path,
           (r.status, r.json()["data"]["type"], r.json()["data"]["id"]),
           (200, "customer", cid))
    r = f.req("GET", "/v1/customers/externalId=EXT%2F1%20x")
    eq("store lookup externalId is case-sensitive", (r.status, r.body), (404, E404))
    r = f.req("GET", "/v1/customers/email=nobody%40x.com")
    eq("store lookup unknown email -> 404 exact body", (r.status, r.body), (404, E404))


def t_customers(f):
    r = f.req("POST", "/v1/customers", {"name": "Ann", "externalId": "c-1",
                                        "emails": [{"email": "ann@x.com", "type": "work"}],
                                        "custom": {"okBool": True, "whenAt": "2024-01-01T00:00:00Z",
                                                   "siteUrl": "https://x.io", "nStr": None,
                                                   "countNum": 2.5, "refId": "abc"},
                                        "signedUpAt": "2024-02-29T10:00:00.123Z",
                                        "lastSeenAt": None})
    d = r.json().get("data", {})
    ok = check("create -> 201 {data:{type,id(24 hex),attributes}}",
               r.status == 201 and d.get("type") == "customer"
               and re.fullmatch(r"[0-9a-f]{24}", d.get("id", ""))
               and d["attributes"]["name"] == "Ann"
               and d["attributes"]["custom"]["countNum"] == 2.5, r)
    if not ok:
        return
    cid = d["id"]
    r = f.req("POST", "/v1/customers", {"name": "Dup", "externalId": "c-1"})
    eq("create with a taken externalId -> 409 exact body", (r.status, r.body), (409, cjson(
        {"errors": [{"status": 409, "code": "conflict", "title": "Conflict",
                     "detail": 'a customer with externalId "c-1" already exists',
                     "source": {"pointer": "/externalId"}}]})))
    r = f.req("GET", "/v1/customers/" + cid)
    eq("get by id -> 200", (r.status, r.json()["data"]["id"]), (200, cid))
    r = f.req("PUT", "/v1/customers/%s?replace=false" % cid, {"company": "Acme"})
    a = r.json()["data"]["attributes"]
    eq("PUT ?replace=false merges", (r.status, a["name"], a["company"], a["rev"]),
       (200, "Ann", "Acme", 2))
    r = f.req("PATCH", "/v1/customers/%s" % cid, {"username": "ann"})
    a = r.json()["data"]["attributes"]
    eq("PATCH merges", (r.status, a["company"], a["username"]), (200, "Acme", "ann"))
    r = f.req("PUT", "/v1/customers/%s?replace=true" % cid, {"name": "Ann B"})
    a = r.json()["data"]["attributes"]
    eq("PUT ?replace=true replaces", (r.status, a["name"], "company" in a), (200, "Ann B", False))
    r = f.req("PUT", "/v1/customers/ffffffffffffffffffffffff?replace=false", {"name": "x"})
    eq("PUT unknown id -> 404 exact body", (r.status, r.body), (404, E404))
    r = f.req("GET", "/v1/customers/ffffffffffffffffffffffff")
    eq("GET unknown id -> 404 exact body", (r.status, r.body), (404, E404))
    r = f.req("POST", "/v1/customers", {"name": "Other", "externalId": "c-2"})
    other = r.json()["data"]["id"]
    r = f.req("PUT", "/v1/customers/%s?replace=false" % cid, {"externalId": "c-2"})
    eq("update to a taken externalId -> 409", r.status, 409)
    r = f.req("DELETE", "/v1/customers/" + other)
    eq("delete -> 204, then 404", (r.status, f.req("GET", "/v1/customers/" + other).status),
       (204, 404))

    cases = [
        ("non-object body", [1], [("body must be a JSON object", "")]),
        ("empty body", b"", [("body must be a JSON object", "")]),
        ("emails[].email required", {"emails": [{"type": "home"}]},
         [("emails[0].email is required", "/emails/0/email")]),
        ("phones[].phone required", {"phones": [{"phone": "1"}, {"type": "mobile"}]},
         [("phones[1].phone is required", "/phones/1/phone")]),
        ("urls[].url required", {"urls": [{}]}, [("urls[0].url is required", "/urls/0/url")]),
        ("email type enum", {"emails": [{"email": "a@b.c", "type": "cell"}]},
         [("emails[0].type must be one of [home, work, other]", "/emails/0/type")]),
        ("emails not an array", {"emails": "a@b.c"}, [("emails must be an array", "/emails")]),
        ("date must be ISO 8601", {"signedUpAt": "yesterday"},
         [("signedUpAt must be an ISO 8601 date-time string or null", "/signedUpAt")]),
        ("date must be a string", {"birthdayAt": 19900101},
         [("birthdayAt must be an ISO 8601 date-time string or null", "/birthdayAt")]),
        ("date must be a real date", {"importedAt": "2023-02-29T00:00:00Z"},
         [("importedAt must be an ISO 8601 date-time string or null", "/importedAt")]),
        ("lastCustomerActivityAt checked", {"lastCustomerActivityAt": "2024-01-01 10:00"},
         [("lastCustomerActivityAt must be an ISO 8601 date-time string or null",
           "/lastCustomerActivityAt")]),
        ("string field type", {"name": 5}, [("name must be a string or null", "/name")]),
        ("custom suffix", {"custom": {"tier": "gold"}},
         [('bad custom attribute suffix: "tier" must end in one of Str, Txt, Num, At, Bool, '
           'Url, Id', "/custom/tier")]),
        ("custom Num type", {"custom": {"ageNum": "3"}},
         [("custom.ageNum must be a number", "/custom/ageNum")]),
        ("custom Bool type", {"custom": {"vipBool": "true"}},
         [("custom.vipBool must be a boolean", "/custom/vipBool")]),
        ("custom At type", {"custom": {"paidAt": "soon"}},
         [("custom.paidAt must be an ISO 8601 date-time string", "/custom/paidAt")]),
        ("custom Str length", {"custom": {"bioStr": "x" * 1025}},
         [("custom.bioStr must be at most 1024 characters", "/custom/bioStr")]),
        ("several errors in body order", {"emails": [{}], "custom": {"x": 1}},
         [("emails[0].email is required", "/emails/0/email"),
          ('bad custom attribute suffix: "x" must end in one of Str, Txt, Num, At, Bool, '
           'Url, Id', "/custom/x")]),
    ]
    for name, body, errs in cases:
        r = f.req("POST", "/v1/customers", body, ctype="application/json")
        eq("create validation: %s -> 400 exact body" % name, (r.status, r.body),
           (400, e400(*errs)))
    r = f.req("PUT", "/v1/customers/%s?replace=false" % cid, {"urls": [{"type": "blog"}]})
    eq("update validation -> 400 exact body", (r.status, r.body),
       (400, e400(("urls[0].url is required", "/urls/0/url"))))
    r = f.req("POST", "/v1/customers", b'{"name": ')
    check("invalid JSON -> 400 bad_request", r.status == 400
          and r.json()["errors"][0]["code"] == "bad_request", r)
    r = f.req("POST", "/v1/customers", b'{"name":"x"}', ctype="application/x-www-form-urlencoded")
    eq("body without Content-Type application/json -> 400", (r.status, r.body), (400, cjson(
        {"errors": [{"status": 400, "code": "bad_request", "title": "Bad Request",
                     "detail": "Content-Type must be application/json",
                     "source": {"header": "Content-Type"}}]})))


def t_identity_event(f):
    path = "/v1/tracking/identityEvent"
    r = f.req("POST", path, {"identity": {"externalId": "ie-1", "email": "ie@x.com"},
                             "event": {"name": "Cart-Viewed", "meta": {
                                 "totalNum": 3, "countNum": 1.5, "note": "x", "when": "2024-01-01",
                                 "paidAt": "2024-01-01T10:00:00.5+02:00", "yearAt": "2020",
                                 "lowerAt": "2020-01-01t10:00z", "nothing": None}}})
    d = r.json().get("data", {}) if r.status == 200 else {}
    a = d.get("attributes", {})
    check("identityEvent -> 200 tracking_event with generated trackingId",
          r.status == 200 and d.get("type") == "tracking_event"
          and re.fullmatch(r"[0-9a-f]+", d.get("id", ""))
          and a.get("name") == "Cart-Viewed" and re.fullmatch(r"[0-9a-f]{24}",
                                                              a.get("trackingId") or "")
          and a.get("sessionId"), r)
    r = f.req("POST", path, {"identity": {"externalId": "ie-1"},
                             "event": {"name": "Order_Completed", "trackingId": "t-1",
                                       "sessionId": "s-1"}})
    eq("identityEvent keeps trackingId and sessionId", (r.status, r.json()["data"]["attributes"]),
       (200, {"name": "Order_Completed", "trackingId": "t-1", "sessionId": "s-1"}))
    r = f.req("GET", "/v1/customers/externalId=ie-1")
    eq("identityEvent identity finds or creates the customer", r.status, 200)
    r = f.req("POST", path, {"identity": {}, "event": {"name": "Anon"}})
    eq("identityEvent anonymous identity -> 200", r.status, 200)
    r = f.req("POST", path, {"event": {"name": "Anon"}})
    eq("identityEvent without identity -> 200", r.status, 200)
    st, events = f.ctl("GET", "/_fake/events")
    eq("control: GET /_fake/events", (st, len(events), events[0]["name"]), (200, 4, "Cart-Viewed"))

    def bad(name, body, errs):
        r = f.req("POST", path, body)
        eq("identityEvent validation: %s -> 400 exact body" % name, (r.status, r.body),
           (400, e400(*errs)))

    ev = lambda **e: {"identity": {"externalId": "u"}, "event": e}   # noqa: E731
    bad("name with a space", ev(name="Cart Viewed"),
        [("event.name must start with a letter and contain no whitespace", "/event/name")])
    bad("name starting with a digit", ev(name="1st-Order"),
        [("event.name must start with a letter and contain no whitespace", "/event/name")])
    bad("name missing", ev(meta={}), [("event.name is required", "/event/name")])
    bad("name not a string", ev(name=5), [("event.name must be a string", "/event/name")])
    bad("event missing", {"identity": {}}, [("event is required", "/event")])
    bad("body not an object", [], [("body must be a JSON object", "")])
    bad("identity not an object", {"identity": "u", "event": {"name": "A"}},
        [("identity must be an object", "/identity")])
    bad("number without Num key", ev(name="A", meta={"revenue": 300}),
        [('event.meta.revenue: a number needs a key ending in "Num"', "/event/meta/revenue")])
    bad("string under a Num key", ev(name="A", meta={"revenueNum": "300"}),
        [('event.meta.revenueNum: a key ending in "Num" needs a number',
          "/event/meta/revenueNum")])
    bad("nested object", ev(name="A", meta={"obj": {"a": 1}}),
        [("event.meta.obj: meta values must be flat (string or number), not an object",
          "/event/meta/obj")])
    bad("array", ev(name="A", meta={"list": [1]}),
        [("event.meta.list: meta values must be flat (string or number), not an array",
          "/event/meta/list")])
    bad("boolean", ev(name="A", meta={"flag": True}),
        [("event.meta.flag: boolean values are not allowed in meta", "/event/meta/flag")])
    bad("At key with a non-date", ev(name="A", meta={"paidAt": "tomorrow"}),
        [('event.meta.paidAt: a key ending in "At" needs an ISO 8601 date-time string',
          "/event/meta/paidAt")])
    bad("At key with seconds-only fraction missing T", ev(name="A", meta={"dAt": "2020-01-01 10:00"}),
        [('event.meta.dAt: a key ending in "At" needs an ISO 8601 date-time string',
          "/event/meta/dAt")])
    bad("meta not an object", ev(name="A", meta=[1]),
        [("event.meta must be an object", "/event/meta")])


def t_bulk(f):
    items = [{"_clientRef": "r1", "name": "B1", "externalId": "b-1"},
             {"_clientRef": "r2", "name": "B2", "emails": [{"type": "home"}]},
             {"_clientRef": "r3", "name": "B3", "externalId": "b-3"}]
    r = f.req("POST", "/v1/customers/bulk", items)
    d = r.json().get("data", {})
    ok = check("bulk POST -> 201 {type:bulk, attributes.status:queued}",
               r.status == 201 and d.get("type") == "bulk"
               and re.fullmatch(r"[0-9a-f]{24}", d.get("id", ""))
               and d["attributes"]["status"] == "queued"
               and d["attributes"]["batches"] == {"complete": 0, "total": 1}, r)
    if not ok:
        return
    bid = d["id"]
    eq("bulk items are not in the store before completion",
       f.req("GET", "/v1/customers/externalId=b-1").status, 404)
    statuses = []
    for _ in range(3):
        a = f.req("GET", "/v1/bulk/" + bid).json()["data"]["attributes"]
        statuses.append((a["status"], a["batches"]["complete"], a["batches"]["total"]))
    eq("bulk status queued -> running -> complete over --bulk-delay-polls 2",
       statuses, [("running", 0, 1), ("complete", 1, 1), ("complete", 1, 1)])
    r = f.req("GET", "/v1/bulk/%s/batches" % bid)
    batches = r.json()["data"]
    att = batches[0]["attributes"] if batches else {}
    res = att.get("results", [])
    check("bulk batches: type bulk_batch, counts, objectIds",
          r.status == 200 and len(batches) == 1 and batches[0]["type"] == "bulk_batch"
          and att["successCount"] == 2 and att["failureCount"] == 1
          and att["objectIds"] == [res[0].get("objectId"), res[2].get("objectId")], r)
    eq("bulk batches: per-item results",
       [(x.get("_clientRef"), x["status"], "objectId" in x, x.get("error")) for x in res],
       [("r1", "created", True, None), ("r2", "error", False, "emails[0].email is required"),
        ("r3", "created", True, None)])
    r = f.req("GET", "/v1/customers/externalId=b-3")
    eq("bulk items are in the store after completion",
       (r.status, r.json()["data"]["id"] if r.status == 200 else None),
       (200, res[2].get("objectId")))

    # bulk update
    b1 = res[0]["objectId"]
    r = f.req("PUT", "/v1/customers/bulk",
              [{"_clientRef": "u1", "id": b1, "company": "Z"},
               {"_clientRef": "u2", "id": "ffffffffffffffffffffffff", "name": "x"},
               {"_clientRef": "u3", "name": "no id"}])
    uid = r.json()["data"]["id"]
    for _ in range(2):
        f.req("GET", "/v1/bulk/" + uid)
    res = f.req("GET", "/v1/bulk/%s/batches" % uid).json()["data"][0]["attributes"]["results"]
    eq("bulk PUT: updated / unknown id error / missing id error",
       [(x["_clientRef"], x["status"], x.get("error")) for x in res],
       [("u1", "updated", None),
        ("u2", "error", 'customer "ffffffffffffffffffffffff" not found'),
        ("u3", "error", "id is required")])
    eq("bulk PUT applied to the store",
       f.req("GET", "/v1/customers/" + b1).json()["data"]["attributes"].get("company"), "Z")
    r = f.req("PUT", "/v1/customers/bulk?ids=%s" % b1, {"locale": "fr"})
    qid = r.json()["data"]["id"]
    for _ in range(2):
        f.req("GET", "/v1/bulk/" + qid)
    res = f.req("GET", "/v1/bulk/%s/batches" % qid).json()["data"][0]["attributes"]["results"]
    eq("bulk PUT ?ids= mode", ([x["status"] for x in res], "_clientRef" in res[0],
                               f.req("GET", "/v1/customers/" + b1).json()["data"]["attributes"]
                               .get("locale")), (["updated"], False, "fr"))

    # many items, no _clientRef, several batches
    many = [{"name": "M%d" % i} for i in range(60)]
    r = f.req("POST", "/v1/customers/bulk", many)
    mid = r.json()["data"]["id"]
    p1 = f.req("GET", "/v1/bulk/" + mid).json()["data"]["attributes"]
    mid_batches = len(f.req("GET", "/v1/bulk/%s/batches" % mid).json()["data"])
    p2 = f.req("GET", "/v1/bulk/" + mid).json()["data"]["attributes"]
    bs = f.req("GET", "/v1/bulk/%s/batches" % mid).json()["data"]
    eq("bulk of 60 items: 3 batches, progress, results without _clientRef",
       (p1["status"], p1["batches"], mid_batches, p2["status"], p2["batches"], len(bs),
        sum(b["attributes"]["successCount"] for b in bs),
        any("_clientRef" in x for b in bs for x in b["attributes"]["results"])),
       ("running", {"complete": 1, "total": 3}, 1, "complete", {"complete": 3, "total": 3},
        3, 60, False))

    def bad(name, body, detail, ptr, method="POST"):
        r = f.req(method, "/v1/customers/bulk", body)
        eq("bulk 400: %s" % name, (r.status, r.body), (400, e400((detail, ptr))))

    bad("more than 100 items", [{"name": "x"}] * 101,
        "a bulk request takes at most 100 items (got 101)", "")
    bad("empty array", [], "body must contain at least 1 item", "")
    bad("not an array", {"name": "x"}, "body must be a JSON array of customers", "")
    bad("mixed _clientRef", [{"_clientRef": "a"}, {"name": "b"}],
        "_clientRef must be given on every item or on none (item 1 has none)", "/1")
    bad("duplicate _clientRef", [{"_clientRef": "a"}, {"_clientRef": "a"}],
        '_clientRef "a" is used more than once', "/1/_clientRef")
    bad("empty _clientRef", [{"_clientRef": ""}], "_clientRef must be a non-empty string",
        "/0/_clientRef")
    bad("non-string _clientRef", [{"_clientRef": 7}], "_clientRef must be a non-empty string",
        "/0/_clientRef")
    bad("_clientRef over 255 chars", [{"_clientRef": "x" * 256}],
        "_clientRef must be at most 255 characters", "/0/_clientRef")
    r = f.req("POST", "/v1/customers/bulk", [{"_clientRef": "x" * 255, "name": "ok"}] +
              [{"_clientRef": "r%d" % i} for i in range(99)])
    eq("bulk: 100 items with a 255-char _clientRef accepted", r.status, 201)
    r = f.req("GET", "/v1/bulk/ffffffffffffffffffffffff")
    eq("bulk unknown id -> 404", (r.status, r.body), (404, E404))


def t_pagination(f):
    def walk(first, method="GET", body=None):
        pages, ids, path = [], [], first
        while path and len(pages) < 50:
            r = f.req(method, path, body)
            if r.status != 200:
                return None, r
            j = r.json()
            pages.append(j)
            ids += [d["id"] for d in j["data"]]
            path = j["links"]["next"]
        return pages, ids

    pages, ids = walk("/v1/customers?pageSize=10")
    check("pagination customers: follow links.next to the end",
          pages and len(pages) == 3 and len(ids) == 25 and len(set(ids)) == 25
          and pages[0]["meta"] == {"page": 1, "pageSize": 10, "total": 25, "totalPages": 3}
          and pages[0]["links"]["prev"] is None and pages[-1]["links"]["next"] is None
          and pages[1]["links"]["prev"] == "/v1/customers?page=1&pageSize=10"
          and pages[0]["links"]["next"] == "/v1/customers?page=2&pageSize=10"
          and pages[0]["links"]["last"] == "/v1/customers?page=3&pageSize=10"
          and len(pages[-1]["data"]) == 5, pages and pages[0]["links"])
    attrs = pages[0]["data"][0]["attributes"]
    check("seeded customers have createdAt/updatedAt",
          "createdAt" in attrs and "updatedAt" in attrs, attrs)
    pages2, ids2 = walk("/v1/customers?pageSize=10")
    eq("seeded data is deterministic across requests", ids2, ids)
    pages, cids = walk("/v1/conversations?pageSize=20&sort=desc")
    check("pagination conversations: ~2N seeded, links keep other params",
          pages and len(cids) == 50 and len(set(cids)) == 50
          and pages[0]["links"]["next"] == "/v1/conversations?sort=desc&page=2&pageSize=20"
          and pages[0]["data"][0]["type"] == "conversation"
          and "createdAt" in pages[0]["data"][0]["attributes"], pages and pages[0]["links"])
    r = f.req("GET", "/v1/customers?pageSize=101")
    eq("pagination: pageSize over 100 -> 400", (r.status, r.body), (400, cjson(
        {"errors": [{"status": 400, "code": "bad_request", "title": "Bad Request",
                     "detail": "pageSize must be an integer from 1 to 100",
                     "source": {"parameter": "pageSize"}}]})))
    eq("pagination: page=0 -> 400", f.req("GET", "/v1/customers?page=0").status, 400)
    r = f.req("GET", "/v1/customers?page=9&pageSize=10")
    eq("pagination: page past the end is empty with next null",
       (r.status, r.json()["data"], r.json()["links"]["next"]), (200, [], None))

    # search
    _, allc = walk("/v1/customers?pageSize=100")
    full = f.req("GET", "/v1/customers?pageSize=100").json()["data"]
    ups = sorted(c["attributes"]["updatedAt"] for c in full)
    pivot = ups[10]
    want = sorted((c for c in full if c["attributes"]["updatedAt"] >= pivot),
                  key=lambda c: c["attributes"]["updatedAt"])
    body = {"queryContext": "customer", "and": [{"customer_updated_at": {"gte": pivot}}],
            "sort": [{"customer_updated_at": "asc"}]}
    pages, sids = walk("/v1/customers/search?pageSize=4", "POST", body)
    check("search: gte filter, asc sort, follow links.next",
          pages is not None and sids == [c["id"] for c in want]
          and pages[0]["meta"]["total"] == len(want)
          and pages[0]["links"]["next"] == "/v1/customers/search?page=2&pageSize=4",
          (len(sids or []), len(want)))
    r = f.req("POST", "/v1/customers/search?pageSize=500",
              {"queryContext": "conversation", "sort": [{"conversation_updated_at": "desc"}]})
    ups = [d["attributes"]["updatedAt"] for d in r.json()["data"]]
    eq("search: conversation context, pageSize 500 allowed, desc sort",
       (r.status, len(ups), ups == sorted(ups, reverse=True)), (200, 50, True))
    r = f.req("POST", "/v1/customers/search?pageSize=501", {"queryContext": "customer"})
    eq("search: pageSize over 500 -> 400", r.status, 400)
    r = f.req("POST", "/v1/customers/search?page=101", {"queryContext": "customer"})
    eq("search: page over 100 -> 400", r.status, 400)
    r = f.req("POST", "/v1/customers/search", {"queryContext": "spaceship"})
    eq("search: unknown queryContext -> 400", r.status, 400)
    r = f.req("POST", "/v1/customers/search",
              {"queryContext": "customer", "and": [{"customer_custom_tierStr": {"equals": "gold"}}]})
    eq("search: custom attribute criterion", (r.status, r.json()["meta"]["total"]), (200, 8))


def t_rate_limit(f):
    f.req("GET", "/v1/customers", key="wrong")          # opens the window, uses nothing
    rs = [f.req("GET", "/v1/customers") for _ in range(3)]
    now = time.time()
    h = [(r.status, r.headers.get("x-ratelimit-limit"), r.headers.get("x-ratelimit-remaining"))
         for r in rs]
    eq("rate limit: headers count down", h, [(200, "3", "2"), (200, "3", "1"), (200, "3", "0")])
    reset_text = rs[0].headers.get("x-ratelimit-reset", "0")
    reset = float(reset_text)
    check("rate limit: x-ratelimit-reset is the window end in epoch seconds",
          now - 1 <= reset <= now + 3, "reset=%r now=%r" % (reset, now))
    check("rate limit: a window under 10 s keeps the reset's fraction",
          re.fullmatch(r"[0-9]+\.[0-9]{3}", reset_text), reset_text)
    r = f.req("GET", "/v1/customers")
    eq("rate limit: beyond the limit -> 429 exact body",
       (r.status, r.body, r.headers.get("x-ratelimit-remaining"),
        r.headers.get("x-ratelimit-reset")), (429, E429, "0", reset_text))
    r = f.req("GET", "/v1/customers", key="wrong")
    eq("rate limit: 401 carries the headers", (r.status, r.headers.get("x-ratelimit-limit")),
       (401, "3"))
    eq("rate limit: control endpoints are never limited",
       f.req("GET", "/_fake/health", key=None).status, 200)
    while time.time() < reset + 0.02:
        time.sleep(0.02)
    r = f.req("GET", "/v1/customers")
    eq("rate limit: the window resets; 429s and 401s did not use the budget",
       (r.status, r.headers.get("x-ratelimit-remaining")), (200, "2"))
    st, cfg = f.ctl("POST", "/_fake/config", {"rate_limit": 0})
    r = f.req("GET", "/v1/customers")
    eq("rate limit: off -> no headers", (st, r.status, "x-ratelimit-limit" in r.headers),
       (200, 200, False))


def t_faults(f):
    f.ctl("POST", "/_fake/config", {"fail_every": 3})
    got = []
    for i in range(6):
        r = f.req("GET", "/v1/customers/externalId=none", key=KEY if i != 2 else None)
        got.append((r.status, r.body if r.status == 503 else None))
        f.ctl("GET", "/_fake/health")                  # control: never counted
    eq("fail-every 3: requests 3 and 6 answered 503 (before auth), others normal", got,
       [(404, None), (404, None), (503, E503), (404, None), (404, None), (503, E503)])
    f.ctl("POST", "/_fake/config", {"fail_status": 500})
    f.ctl("POST", "/_fake/reset")
    st = [f.req("GET", "/v1/customers").status for _ in range(3)]
    eq("fail-status via config, counter reset via /_fake/reset", st, [200, 200, 500])
    f.ctl("POST", "/_fake/config", {"fail_every": 0, "drop_every": 2})
    f.ctl("POST", "/_fake/reset")
    out = []
    for i in range(4):
        try:
            out.append(f.req("GET", "/v1/customers").status)
        except DROPPED:
            out.append("dropped")
    eq("drop-every 2: every 2nd connection closed without an answer", out,
       [200, "dropped", 200, "dropped"])
    recs = f.ctl("GET", "/_fake/requests")[1]
    eq("drop-every: dropped requests recorded (status null)",
       [(x["seq"], x["status"], x["dropped"], x["fault"]) for x in recs],
       [(1, 200, False, None), (2, None, True, "drop"), (3, 200, False, None),
        (4, None, True, "drop")])
    f.ctl("POST", "/_fake/config", {"drop_every": 0, "slow_ms": 400, "slow_every": 2})
    f.ctl("POST", "/_fake/reset")
    times = []
    for _ in range(2):
        t0 = time.time()
        f.req("GET", "/v1/customers")
        times.append(time.time() - t0)
    check("slow: every 2nd reply delayed by --slow-ms",
          times[0] < 0.3 and times[1] >= 0.39, times)
    f.ctl("POST", "/_fake/config", {"slow_ms": 0, "throttle_every": 2})
    f.ctl("POST", "/_fake/reset")
    rs = [f.req("GET", "/v1/customers") for _ in range(4)]
    eq("throttle-every 2: every 2nd request 429, remaining 0, with a reset",
       [(r.status, r.headers.get("x-ratelimit-remaining"),
         bool(r.headers.get("x-ratelimit-reset"))) for r in rs],
       [(200, None, False), (429, "0", True), (200, None, False),
        (429, "0", True)])
    f.ctl("POST", "/_fake/config", {"retry_after": "7"})
    f.ctl("POST", "/_fake/reset")
    rs = [f.req("GET", "/v1/customers") for _ in range(2)]
    eq("throttle-every with retry_after: the 429 says Retry-After",
       [(r.status, r.headers.get("retry-after")) for r in rs],
       [(200, None), (429, "7")])
    st, body = f.ctl("POST", "/_fake/config", {"retry_after": 7})
    eq("control: retry_after must be a string -> 400", st, 400)
    st, cfg = f.ctl("POST", "/_fake/config", {"slow_ms": 0, "throttle_every": 0,
                                              "retry_after": None})
    eq("control: config answers the settings", (st, cfg["slow_ms"], cfg["fail_status"]),
       (200, 0, 500))
    st, body = f.ctl("POST", "/_fake/config", {"bogus": 1})
    eq("control: unknown config key -> 400", st, 400)
    st, body = f.ctl("POST", "/_fake/config", {"fail_every": -1})
    eq("control: bad config value -> 400", st, 400)


def t_faults_cli():
    f = Fake("--fail-every", "2", "--fail-status", "502", "--drop-every", "3", "--slow-ms",
             "300", "--slow-every", "4", name="faults-cli")
    out = []
    for _ in range(4):
        t0 = time.time()
        try:
            s = f.req("GET", "/v1/customers").status
        except DROPPED:
            s = "dropped"
        out.append((s, time.time() - t0 >= 0.29))
    eq("fault flags from the command line", out,
       [(200, False), (502, False), ("dropped", False), (502, True)])
    f.stop()


def t_recording(f, log_path):
    f.ctl("POST", "/_fake/reset")
    f.req("POST", "/v1/customers?x=1", {"name": "Rec"}, headers={"X-Test-Header": "yes"})
    f.req("GET", "/v1/customers/externalId=nobody")
    f.ctl("GET", "/_fake/health")
    st, recs = f.ctl("GET", "/_fake/requests")
    r0 = recs[0] if recs else {}
    check("recording: method, path+query, lower-case headers, body, status, time",
          st == 200 and len(recs) == 2 and r0["method"] == "POST"
          and r0["path"] == "/v1/customers?x=1"
          and r0["headers"].get("x-test-header") == "yes"
          and r0["headers"].get("authorization") == "Bearer " + KEY
          and r0["headers"].get("content-type") == "application/json"
          and json.loads(r0["body"]) == {"name": "Rec"} and r0["status"] == 201
          and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r0["time"])
          and recs[1]["status"] == 404, recs)
    with open(log_path) as fh:
        lines = [json.loads(x) for x in fh.read().splitlines()]
    eq("recording: --log file has one JSON line per request (truncated by reset)",
       lines, recs)


def t_control(f):
    st, body = f.ctl("GET", "/_fake/health")
    eq("control: health", (st, body["ok"]), (200, True))
    st, custs = f.ctl("GET", "/_fake/customers")
    check("control: GET /_fake/customers lists the store",
          st == 200 and any(c["attributes"].get("name") == "Rec" for c in custs), custs)
    st, body = f.ctl("POST", "/_fake/reset")
    st2, custs = f.ctl("GET", "/_fake/customers")
    st3, recs = f.ctl("GET", "/_fake/requests")
    st4, health = f.ctl("GET", "/_fake/health")
    eq("control: reset clears store, record and counters",
       (st, custs, recs, health["requests"]), (200, [], [], 0))
    f.ctl("POST", "/_fake/config", {"api_key": "rotated"})
    eq("control: api_key changed at run time",
       (f.req("GET", "/v1/customers").status, f.req("GET", "/v1/customers", key="rotated").status),
       (401, 200))
    f.ctl("POST", "/_fake/config", {"api_key": KEY})
    r = f.req("GET", "/_fake/nothing", key=None)
    eq("control: unknown control path -> 404", r.status, 404)
    st, recs = f.ctl("GET", "/_fake/requests")
    eq("control requests are never recorded", [x["path"] for x in recs],
       ["/v1/customers", "/v1/customers"])


def t_shutdown():
    f = Fake(name="term")
    conn = http.client.HTTPConnection(HOST, f.port, timeout=5)   # idle keep-alive
    conn.request("GET", "/v1/customers", headers={"Authorization": "Bearer k"})
    conn.getresponse().read()
    t0 = time.time()
    rc = f.stop(signal.SIGTERM)
    conn.close()
    eq("SIGTERM: clean exit 0 (with an idle keep-alive connection open)",
       (rc, time.time() - t0 < 3), (0, True))
    f = Fake(name="int")
    eq("SIGINT: clean exit 0", f.stop(signal.SIGINT), 0)


# ------------------------------------------------------------------------------- main

def run(name, fn, *args):
    try:
        fn(*args)
    except Exception as e:             # noqa: BLE001
        report(name, False, "%s: %s" % (type(e).__name__, e))


def watchdog(signum, frame):
    report("watchdog", False, "tests did not finish within 19 s")
    cleanup()
    os._exit(1)


def cleanup():
    for s in servers:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
    shutil.rmtree(TMP, ignore_errors=True)


def main():
    signal.signal(signal.SIGALRM, watchdog)
    signal.alarm(19)
    try:
        lk = os.path.join(TMP, "lookups.json")
        with open(lk, "w") as fh:
            json.dump({
                "https://api.kustomerapp.com/v1/customers/externalId=net":
                    {"networkError": "ECONNREFUSED"},
                "https://api.kustomerapp.com/v1/customers/externalId=u1":
                    {"status": 429, "body": "slow down"},
                "https://api.kustomerapp.com/v1/customers/email=a+b%20c@x.com":
                    {"status": 404, "body": None},
                "/v1/customers/externalId=obj": {"status": 200, "body": {"data": {"id": "cust-1"}}},
            }, fh)
        log = os.path.join(TMP, "requests.log")
        main_fake = Fake("--api-key", KEY, "--lookups", lk, "--log", log, name="main")
        run("startup", t_startup, main_fake)
        run("refuse-host", t_refuse_host)
        run("auth", t_auth, main_fake)
        run("lookups", t_lookups_file, main_fake)
        run("store-lookups", t_store_lookups, main_fake)
        run("customers", t_customers, main_fake)
        run("identityEvent", t_identity_event, main_fake)
        run("bulk", t_bulk, main_fake)
        run("recording", t_recording, main_fake, log)
        run("control", t_control, main_fake)
        rc = main_fake.stop()
        eq("main server exits 0 on SIGTERM", rc, 0)

        if os.path.exists(SHARED_LOOKUPS):
            shared = Fake("--lookups", SHARED_LOOKUPS, name="shared")
            run("shared-lookups", t_shared_lookups, shared)
            shared.stop()
        else:
            report("shared lookups file", False, "%s missing" % SHARED_LOOKUPS)

        seeded = Fake("--seed-customers", "25", name="seeded")
        run("auth-any-key", t_auth_any_key, seeded)
        run("pagination", t_pagination, seeded)
        seeded.stop()

        rate = Fake("--api-key", KEY, "--rate-limit", "3", "--rate-window", "1", name="rate")
        run("rate-limit", t_rate_limit, rate)
        rate.stop()

        faults = Fake("--api-key", KEY, name="faults")
        run("faults", t_faults, faults)
        faults.stop()
        run("faults-cli", t_faults_cli)
        run("shutdown", t_shutdown)
    finally:
        signal.alarm(0)
        cleanup()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
