#!/usr/bin/env python3
"""Tests for tests/fake_kustomer.py (the local Kustomer stand-in).

    /usr/bin/python3 tests/test_fake_kustomer.py

Starts the fake as subprocesses on free ports of 127.0.0.1 (never any other address),
talks to it with http.client / urllib.request, prints one line per check,
"ok <name>" or "FAIL <name>: <detail>", and exits 1 if anything failed.
A watchdog ends the run (as a failure) after 40 s.
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

    # many items, no _clientRef, several batches; a GET of the batches is a
    # poll too (the second: the job completes)
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
       ("running", {"complete": 1, "total": 3}, 3, "complete", {"complete": 3, "total": 3},
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


ID24 = re.compile(r"[0-9a-f]{24}")
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
GEN_ARGS = ("--seed-customers", "3", "--seed-messages-per-conversation", "2", "--seed-notes",
            "1", "--seed-companies", "2", "--seed-klasses", "order:3,device:1,ecomm-order:1",
            "--seed-users", "3", "--seed-teams", "2")
SUFFIXES = ("Str", "Txt", "Num", "At", "Bool", "Url", "Id")


def all_ids(dump):
    return {(r["type"], r["id"]) for recs in dump.values() for r in recs}


def t_generators(f):
    st, d = f.ctl("GET", "/_fake/dump")
    counts = {k: len(v) for k, v in d.items()}
    eq("generators: one dump key per type, record counts", counts, {
        "customer": 3, "company": 2, "conversation": 6, "message": 12, "note": 6,
        "kobject_device": 1, "kobject_ecomm-order": 1, "kobject_order": 3, "user": 3,
        "team": 2, "tag": 4, "brand": 2, "shortcut": 3, "queue": 2, "sla": 2,
        "sla_version": 3, "schedule": 2, "custom_attribute_metadata": 56, "klass": 3,
        "work_session": 6, "audit_log": 0, "conversation_time": 6})
    recs = [r for v in d.values() for r in v]
    bad = [r["id"] for r in recs if not ID24.fullmatch(r["id"])
           or not all(ISO_MS.fullmatch(r["attributes"].get(k) or "")
                      for k in ("createdAt", "updatedAt", "modifiedAt"))]
    check("generators: 24-hex ids, createdAt/updatedAt/modifiedAt in ms ISO UTC", not bad, bad)
    check("generators: dump sorted by id within each type",
          all([r["id"] for r in v] == sorted(r["id"] for r in v) for v in d.values()))
    ids = all_ids(d)
    dangling = []
    for r in recs:
        for name, rl in (r.get("relationships") or {}).items():
            data = rl["data"] if isinstance(rl["data"], list) else [rl["data"]]
            for x in data:
                if x["type"] != "org" and (x["type"], x["id"]) not in ids:
                    dangling.append((r["type"], name, x))
    check("generators: every relationship points at a stored record", not dangling, dangling)
    users = {r["id"] for r in d["user"]}
    teams = {r["id"] for r in d["team"]}
    tags = {r["id"] for r in d["tag"]}
    conv = d["conversation"]
    check("generators: conversation arrays (tags, suggestedTags, assignedUsers, "
          "assignedTeams ids; channels strings) and nested objects",
          all(set(c["attributes"]["tags"] + c["attributes"]["suggestedTags"]) <= tags
              and set(c["attributes"]["assignedUsers"]) <= users
              and set(c["attributes"]["assignedTeams"]) <= teams
              and all(isinstance(x, str) for x in c["attributes"]["channels"])
              and set(c["attributes"]["firstMessageIn"]) == {"id", "sentAt", "channel"}
              and set(c["attributes"]["satisfactionLevel"]) == {"rating"}
              and set(c["attributes"]["sentiment"]) == {"polarity", "confidence"}
              and {"customer", "org", "brand", "queue", "createdBy"}
              <= set(c["relationships"]) for c in conv)
          and any(c["attributes"]["tags"] for c in conv)
          and any(c["attributes"]["assignedUsers"] for c in conv), conv[0])
    cu = d["customer"]
    check("generators: customer arrays, nested objects, company relationship",
          all(set(c["attributes"]["conversationCounts"]) == {"all", "open", "done", "snoozed"}
              and c["attributes"]["emails"][0].keys() == {"email", "type", "verified"}
              and c["attributes"]["phones"][0].keys() == {"phone", "type"}
              and set(c["attributes"]["watchers"]) <= users
              and c["relationships"]["company"]["data"]["type"] == "company"
              for c in cu) and any(c["attributes"]["watchers"] for c in cu), cu[0])
    ms = d["message"]
    check("generators: message arrays (attachments objects, shortcuts, teams)",
          any(m["attributes"]["attachments"] for m in ms)
          and all(set(a) == {"id", "name", "contentType", "contentLength"}
                  for m in ms for a in m["attributes"]["attachments"])
          and any(m["attributes"]["shortcuts"] for m in ms)
          and any(m["attributes"]["createdByTeams"] for m in ms)
          and all(m["relationships"]["conversation"]["data"]["type"] == "conversation"
                  for m in ms), ms[0])
    check("generators: custom attributes of every suffix on customer, company, "
          "conversation, message, note, kobject",
          all(sorted(next(s for s in SUFFIXES if k.endswith(s))
                     for k in r["attributes"]["custom"]) == sorted(SUFFIXES)
              for t in ("customer", "company", "conversation", "message", "note",
                        "kobject_order") for r in d[t]))
    want_meta = sorted({(("kobject_" + t[8:]) if t.startswith("kobject_") else t, k)
                        for t, v in d.items() if t not in ("custom_attribute_metadata",)
                        for r in v for k in (r["attributes"].get("custom") or {})})
    got_meta = sorted((m["attributes"]["resource"], m["attributes"]["name"])
                      for m in d["custom_attribute_metadata"])
    eq("generators: one metadata row per custom attribute and resource", got_meta, want_meta)
    check("generators: kobjects name their klass; teams list members",
          all(o["relationships"]["klass"]["data"]["id"] in {k["id"] for k in d["klass"]}
              for o in d["kobject_order"])
          and sorted(u for t in d["team"] for u in t["attributes"]["members"])
          == sorted(users), d["team"])
    check("generators: work sessions: channels strings, capacity objects, active ones",
          sum(1 for w in d["work_session"] if w["attributes"]["signedOutAt"] is None) == 2
          and all(isinstance(c, dict) for w in d["work_session"]
                  for c in w["attributes"]["capacity"]), d["work_session"][0])
    g = Fake(*GEN_ARGS, name="gen2")
    st2, d2 = g.ctl("GET", "/_fake/dump")
    eq("generators: deterministic (a second server dumps the same)", d2 == d, True)
    g.stop()
    st, one = f.ctl("GET", "/_fake/dump?type=kobject_order")
    st3, ko = f.ctl("GET", "/_fake/dump?type=kobject")
    eq("dump ?type=kobject_<klass> and ?type=kobject", (st, one, st3, len(ko)),
       (200, d["kobject_order"], 200, 5))
    st, body = f.ctl("GET", "/_fake/dump?type=spaceship")
    eq("dump: unknown type -> 400", (st, body["errors"][0]["source"]), (400, {"parameter": "type"}))


def t_basic_seed_reference(f):
    st, d = f.ctl("GET", "/_fake/dump")
    eq("--seed-customers alone: reference data, customers without relationships",
       ({k: len(v) for k, v in d.items() if v},
        any("relationships" in c for c in d["customer"])),
       ({"customer": 25, "conversation": 50, "tag": 4, "brand": 2, "shortcut": 3, "queue": 2,
         "sla": 2, "sla_version": 3, "schedule": 2, "custom_attribute_metadata": 2,
         "conversation_time": 50}, False))


def t_seed_file():
    path = os.path.join(TMP, "seed.json")
    with open(path, "w") as fh:
        json.dump({"customer": [{"id": "a" * 24, "attributes": {
            "name": "Filed", "createdAt": "2024-03-01T10:00:00Z"}}],
            "kobject_widget": [{"id": "b" * 24, "attributes": {"title": "W"}}],
            "tag": [{"attributes": {"name": "t"}}]}, fh)
    f = Fake("--seed", path, "--now", "2026-01-02T03:04:05.678Z", name="seedfile")
    st, d = f.ctl("GET", "/_fake/dump")
    c = d["customer"][0]["attributes"] if d["customer"] else {}
    eq("--seed FILE: records stored; timestamps normalised or filled from the clock",
       (len(d["customer"]), c.get("createdAt"), c.get("updatedAt"), c.get("modifiedAt"),
        d["kobject_widget"][0]["attributes"]["title"], len(d["tag"]),
        ID24.fullmatch(d["tag"][0]["id"]) is not None, d["tag"][0]["attributes"]["createdAt"][:16],
        [k["attributes"]["name"] for k in d["klass"]]),
       (1, "2024-03-01T10:00:00.000Z", "2024-03-01T10:00:00.000Z", "2024-03-01T10:00:00.000Z",
        "W", 1, True, "2026-01-02T03:04", ["widget"]))
    eq("--seed FILE alone: no generated reference data", (len(d["brand"]), len(d["queue"])),
       (0, 0))
    f.ctl("POST", "/_fake/seed", {"tag": [{"attributes": {"name": "extra"}}]})
    f.ctl("POST", "/_fake/reset")
    st, d2 = f.ctl("GET", "/_fake/dump")
    eq("reset goes back to the --seed FILE start", d2 == d, True)
    f.stop()
    for name, content in (("unknown type", '{"spaceship":[]}'), ("invalid JSON", "{"),
                          ("bad timestamp", '{"tag":[{"attributes":{"createdAt":"x"}}]}')):
        with open(path, "w") as fh:
            fh.write(content)
        p = subprocess.run([PY, FAKE, "--port", "0", "--seed", path], capture_output=True,
                           text=True, timeout=5)
        check("--seed FILE with %s: exit 2 with a message" % name,
              p.returncode == 2 and "--seed" in p.stderr and p.stdout == "",
              (p.returncode, p.stderr))


def t_seed_control(f):
    st, body = f.ctl("POST", "/_fake/seed", {
        "customer": [{"id": "c" * 24, "attributes": {"name": "One"}},
                     {"id": "d" * 24, "attributes": {"name": "Two"}}],
        "kobject_order": [{"attributes": {"title": "O"}}]})
    eq("POST /_fake/seed: counts", (st, body), (200, {"ok": True, "counts": {
        "customer": 2, "kobject_order": 1}}))
    st, body = f.ctl("POST", "/_fake/seed", {"customer": [
        {"id": "c" * 24, "attributes": {"name": "One again"}}]})
    st2, d = f.ctl("GET", "/_fake/dump?type=customer")
    eq("POST /_fake/seed replaces by id", sorted(c["attributes"]["name"] for c in d
                                                 if c["id"] in ("c" * 24, "d" * 24)),
       ["One again", "Two"])
    before = f.ctl("GET", "/_fake/dump")[1]
    for name, body, detail in (
            ("unknown type", {"spaceship": []}, 'unknown type "spaceship"'),
            ("bare kobject", {"kobject": []}, 'unknown type "kobject"'),
            ("records not an array", {"tag": {}}, "tag must be an array of records"),
            ("record not an object", {"tag": [1]}, "tag[0] must be an object"),
            ("wrong record type", {"tag": [{"type": "brand"}]},
             'tag[0]: type "brand" is not "tag"'),
            ("unknown record key", {"tag": [{"attrs": {}}]}, 'tag[0]: unknown key "attrs"'),
            ("bad timestamp", {"tag": [{}, {"attributes": {"updatedAt": "soon"}}]},
             "tag[1]: attributes.updatedAt must be an ISO 8601 date-time"),
            ("body not an object", [1], "seed body must be an object"),
            ("unknown generate key", {"generate": {"planets": 1}},
             'unknown generate key "planets"'),
            ("bad generate value", {"generate": {"customers": -1}},
             "customers must be an integer >= 0"),
            ("bad klass spec", {"generate": {"klasses": "order"}},
             'bad klass spec "order": want name:count')):
        st, b = f.ctl("POST", "/_fake/seed", body)
        check("POST /_fake/seed: %s -> 400" % name,
              st == 400 and b["errors"][0]["detail"].startswith(detail), (st, b))
    eq("POST /_fake/seed: a refused body changes nothing", f.ctl("GET", "/_fake/dump")[1],
       before)
    st, body = f.ctl("POST", "/_fake/seed", {"generate": {
        "customers": 2, "messages_per_conversation": 1, "klasses": {"device": 2}, "users": 1},
        "tag": [{"id": "e" * 24, "attributes": {"name": "mine"}}]})
    eq("POST /_fake/seed generate: counts", (st, body["counts"]["customer"],
                                            body["counts"]["message"],
                                            body["counts"]["kobject_device"],
                                            body["counts"]["tag"]), (200, 2, 4, 2, 5))
    st, d1 = f.ctl("GET", "/_fake/dump")
    f.ctl("POST", "/_fake/seed", {"generate": {
        "customers": 2, "messages_per_conversation": 1, "klasses": {"device": 2}, "users": 1}})
    eq("POST /_fake/seed generate again: same ids replaced, nothing added",
       {k: len(v) for k, v in f.ctl("GET", "/_fake/dump")[1].items()},
       {k: len(v) for k, v in d1.items()})
    f.ctl("POST", "/_fake/reset")


def search(f, body, q="", path="/v1/customers/search"):
    r = f.req("POST", path + q, body)
    return r, (r.json() if r.body else None)


def t_search_contexts(f):
    d = f.ctl("GET", "/_fake/dump")[1]
    conv = d["conversation"][0]
    want = sorted((m for m in d["message"]
                   if m["relationships"]["conversation"]["data"]["id"] == conv["id"]),
                  key=lambda m: m["attributes"]["createdAt"])
    r, j = search(f, {"queryContext": "message",
                      "and": [{"message_conversation_id": {"equals": conv["id"]}}],
                      "sort": [{"message_created_at": "asc"}]})
    eq("search message: <rel>_id criterion reads relationships, records as stored",
       (r.status, j["data"], j["meta"]["total"]), (200, want, 2))
    for ctx, t in (("note", "note"), ("company", "company"), ("user", "user"),
                   ("conversation", "conversation"), ("kobject_order", "kobject_order"),
                   ("kobject_ecomm-order", "kobject_ecomm-order")):
        r, j = search(f, {"queryContext": ctx}, "?pageSize=500")
        eq("search %s: every record, meta.total and totalPages" % ctx,
           (r.status, sorted(x["id"] for x in j["data"]), j["meta"]["total"],
            j["meta"]["totalPages"]),
           (200, sorted(x["id"] for x in d[t]), len(d[t]), 1 if d[t] else 0))
    pivot = sorted(o["attributes"]["updatedAt"] for o in d["kobject_order"])[1]
    for key in ("kobject_updated_at", "kobject_order_updated_at"):
        r, j = search(f, {"queryContext": "kobject_order", "and": [{key: {"gte": pivot}}],
                          "sort": [{key: "asc"}]})
        eq("search kobject_order: criterion and sort key %s" % key,
           (r.status, [x["attributes"]["updatedAt"] for x in j["data"]]),
           (200, sorted(o["attributes"]["updatedAt"] for o in d["kobject_order"]
                        if o["attributes"]["updatedAt"] >= pivot)))
    r, j = search(f, {"queryContext": "kobject_ecomm-order",
                      "and": [{"kobject_ecomm-order_title": {"equals": "ecomm-order 1"}}]})
    eq("search kobject_<klass> with a '-' in the klass name",
       (r.status, j["meta"]["total"]), (200, 1))
    r, j = search(f, {"queryContext": "kobject_nothing"})
    eq("search kobject_<unknown klass>: empty, total 0, totalPages 0, next null",
       (r.status, j["data"], j["meta"]["total"], j["meta"]["totalPages"], j["links"]["next"]),
       (200, [], 0, 0, None))
    r, j = search(f, {"queryContext": "company",
                      "and": [{"company_custom_partnerBool": {"equals": True}}]})
    eq("search company: custom Bool criterion",
       (r.status, j["meta"]["total"]),
       (200, sum(1 for c in d["company"] if c["attributes"]["custom"]["partnerBool"])))
    r, j = search(f, {"queryContext": "message", "and": [{"customer_name": {"equals": "x"}}]})
    eq("search: criterion of another context -> 400", (r.status, r.body), (400, e400(
        ('unknown attribute "customer_name" for queryContext "message"',
         "/and/0/customer_name"))))


def t_search_deleted_sort_archive(f):
    a, b, c, old = "1" * 24, "2" * 24, "3" * 24, "4" * 24
    same = "2025-05-01T00:00:00.000Z"
    f.ctl("POST", "/_fake/seed", {"customer": [
        {"id": c, "attributes": {"name": "Zed", "updatedAt": same}},
        {"id": a, "attributes": {"name": "Amy", "updatedAt": same}},
        {"id": b, "attributes": {"name": "Bob", "updatedAt": same, "deleted": True}},
        {"id": old, "attributes": {"name": "Old", "updatedAt": "2023-01-01T00:00:00Z"}}]})
    body = {"queryContext": "customer",
            "and": [{"customer_updated_at": {"gte": same}}, {"customer_updated_at":
                                                             {"lte": same}}],
            "sort": [{"customer_updated_at": "asc"}]}
    r, j = search(f, body)
    eq("search: soft-deleted records hidden without includeDeleted; ties by id ascending",
       (r.status, [x["id"] for x in j["data"]]), (200, [a, c]))
    r, j = search(f, dict(body, includeDeleted=True))
    eq("search: includeDeleted true returns them (attributes.deleted true)",
       (r.status, [(x["id"], x["attributes"].get("deleted")) for x in j["data"]]),
       (200, [(a, None), (b, True), (c, None)]))
    r, j = search(f, dict(body, includeDeleted=True,
                          sort=[{"customer_updated_at": "asc"}, {"customer_name": "desc"}]))
    eq("search: a second sort key orders the ties", [x["id"] for x in j["data"]], [c, b, a])
    r, j = search(f, dict(body, sort=[{"customer_updated_at": "desc", "customer_id": "desc"}]))
    eq("search: several keys in one sort object, <ctx>_id as a key",
       [x["id"] for x in j["data"]], [c, a])
    r, _ = search(f, dict(body, includeDeleted="yes"))
    eq("search: includeDeleted not a boolean -> 400", (r.status, r.body), (400, e400(
        ("includeDeleted must be a boolean", "/includeDeleted"))))
    names = {"queryContext": "customer", "and": [{"customer_name": {"in": ["Old", "Amy"]}}]}
    r, j = search(f, names)
    eq("search: records updated more than 730 days before the fake's now are left out",
       (r.status, [x["id"] for x in j["data"]]), (200, [a]))
    r, j = search(f, names, "?pageSize=1", "/v1/customers/archive/search")
    eq("archive search: serves only them, same shape and links",
       (r.status, [x["id"] for x in j["data"]], j["meta"], j["links"]["next"]),
       (200, [old], {"page": 1, "pageSize": 1, "total": 1, "totalPages": 1}, None))
    r, _ = search(f, {"queryContext": "spaceship"}, "", "/v1/customers/archive/search")
    eq("archive search: the same validation", r.status, 400)
    eq("archive search: GET -> 405", f.req("GET", "/v1/customers/archive/search").status, 405)
    f.ctl("POST", "/_fake/config", {"search_max_page": 2})
    r2, _ = search(f, {"queryContext": "customer"}, "?page=2&pageSize=1")
    r3, _ = search(f, {"queryContext": "customer"}, "?page=3&pageSize=1")
    eq("search_max_page 2: page 2 served, page 3 -> 400", (r2.status, r3.status, r3.body),
       (200, 400, cjson({"errors": [{"status": 400, "code": "bad_request",
                                     "title": "Bad Request",
                                     "detail": "search results are limited to 2 pages",
                                     "source": {"parameter": "page"}}]})))
    st, body = f.ctl("POST", "/_fake/config", {"search_max_page": 0})
    eq("control: search_max_page 0 -> 400", st, 400)
    f.ctl("POST", "/_fake/config", {"search_max_page": 100})


def t_search_rate_limit():
    f = Fake("--api-key", KEY, "--rate-limit", "10", "--search-rate-limit", "2",
             "--rate-window", "1", "--search-max-page", "4", name="search-rate")
    body = {"queryContext": "customer"}
    rs = [f.req("POST", "/v1/customers/search", body) for _ in range(3)]
    g = f.req("GET", "/v1/customers")
    eq("search rate limit: beyond --search-rate-limit -> 429 with Retry-After; a search "
       "uses a general unit, a refused one none",
       [(r.status, r.headers.get("x-ratelimit-remaining"), r.headers.get("retry-after"))
        for r in rs + [g]],
       [(200, "9", None), (200, "8", None), (429, "8", "1"), (200, "7", None)])
    eq("search rate limit: the 429 body", rs[2].body, E429)
    time.sleep(1.05)
    r = f.req("POST", "/v1/customers/search", body)
    eq("search rate limit: the search window ends", r.status, 200)
    r = f.req("POST", "/v1/customers/search?page=5", body)
    eq("--search-max-page 4: page 5 -> 400", r.status, 400)
    f.stop()


def t_clock(f):
    st, c = f.ctl("GET", "/_fake/clock")
    check("clock: follows real time by default",
          st == 200 and c["real_time"] and not c["frozen"]
          and abs(c["now_ms"] / 1000 - time.time()) < 2, c)
    st, c = f.ctl("POST", "/_fake/clock", {"now": "2030-01-02T03:04:05.006Z", "frozen": True})
    eq("clock: set and frozen", (st, c["now"], c["now_ms"], c["frozen"], c["real_time"]),
       (200, "2030-01-02T03:04:05.006Z", 1893553445006, True, False))
    time.sleep(0.05)
    eq("clock: frozen stays", f.ctl("GET", "/_fake/clock")[1]["now_ms"], 1893553445006)
    st, c = f.ctl("POST", "/_fake/clock", {"advance_ms": 1500})
    eq("clock: advance_ms", c["now"], "2030-01-02T03:04:06.506Z")
    r = f.req("POST", "/v1/customers", {"name": "Clocked"})
    a = r.json()["data"]["attributes"]
    eq("clock: API writes take the clock's time",
       (a["createdAt"], a["updatedAt"], int(r.json()["data"]["id"][:8], 16)),
       ("2030-01-02T03:04:06.506Z", "2030-01-02T03:04:06.506Z", 1893553446))
    r = f.req("POST", "/v1/customers/bulk", [{"name": "B"}])
    eq("clock: bulk jobs too", r.json()["data"]["attributes"]["createdAt"],
       "2030-01-02T03:04:06.506Z")
    f.ctl("POST", "/_fake/clock", {"now": 1893553445006, "frozen": False})
    time.sleep(0.1)
    st, c = f.ctl("GET", "/_fake/clock")
    check("clock: epoch ms; unfrozen it runs on with real time from the set point",
          1893553445006 + 80 <= c["now_ms"] <= 1893553445006 + 2000 and not c["frozen"], c)
    for name, body, detail in (
            ("unknown key", {"later": 1}, 'unknown clock key "later"'),
            ("bad now", {"now": "soon"}, "now must be an ISO 8601"),
            ("boolean now", {"now": True}, "now must be an ISO 8601"),
            ("bad advance_ms", {"advance_ms": "1"}, "advance_ms must be an integer"),
            ("bad frozen", {"frozen": "yes"}, "frozen must be a boolean"),
            ("not an object", [1], "clock body must be an object")):
        st, b = f.ctl("POST", "/_fake/clock", body)
        check("clock: %s -> 400" % name,
              st == 400 and b["errors"][0]["detail"].startswith(detail), (st, b))
    f.ctl("POST", "/_fake/reset")
    eq("clock: reset goes back to real time", f.ctl("GET", "/_fake/clock")[1]["real_time"], True)


def t_mutations(f):
    f.ctl("POST", "/_fake/clock", {"now": "2025-06-01T00:00:00.000Z", "frozen": True})
    d = f.ctl("GET", "/_fake/dump")[1]
    cust = d["customer"][0]
    st, b = f.ctl("POST", "/_fake/mutate", {"type": "customer", "id": cust["id"], "attributes": {
        "name": "Renamed", "custom": {"vipBool": True, "newStr": "x"}}})
    a = f.ctl("GET", "/_fake/dump?type=customer")[1][0]["attributes"]
    eq("mutate by id: attributes merged (custom key by key), updatedAt/modifiedAt bumped, "
       "rev counted", (st, b, a["name"], a["custom"]["tierStr"], a["custom"]["newStr"],
                       a["custom"]["vipBool"], a["updatedAt"], a["modifiedAt"], a["rev"],
                       a["createdAt"] == cust["attributes"]["createdAt"]),
       (200, {"ok": True, "ids": [cust["id"]]}, "Renamed", cust["attributes"]["custom"]
        ["tierStr"], "x", True, "2025-06-01T00:00:00.000Z", "2025-06-01T00:00:00.000Z", 2,
        True))
    oldest = sorted(d["message"], key=lambda m: (m["attributes"]["updatedAt"], m["id"]))[:2]
    st, b = f.ctl("POST", "/_fake/mutate", {"type": "message", "count": 2,
                                           "attributes": {"status": "read"}})
    msgs = {m["id"]: m for m in f.ctl("GET", "/_fake/dump?type=message")[1]}
    eq("mutate count: the N oldest-updated records",
       (st, b["ids"], [msgs[m["id"]]["attributes"]["status"] for m in oldest],
        [msgs[m["id"]]["attributes"]["updatedAt"] for m in oldest]),
       (200, [m["id"] for m in oldest], ["read", "read"], ["2025-06-01T00:00:00.000Z"] * 2))
    st, b = f.ctl("POST", "/_fake/mutate", {"type": "kobject_order", "id":
                                           d["kobject_order"][0]["id"],
                                           "attributes": {"updatedAt": "2024-02-02T00:00:00Z"}})
    eq("mutate: an explicit updatedAt wins",
       f.ctl("GET", "/_fake/dump?type=kobject_order")[1][0]["attributes"]["updatedAt"],
       "2024-02-02T00:00:00.000Z")
    for name, body, status in (
            ("unknown id", {"type": "customer", "id": "f" * 24}, 404),
            ("kobject of another klass", {"type": "kobject_device",
                                          "id": d["kobject_order"][0]["id"]}, 404),
            ("unknown type", {"type": "planet", "id": "x"}, 400),
            ("id and count", {"type": "customer", "id": cust["id"], "count": 1}, 400),
            ("bad count", {"type": "customer", "count": -1}, 400),
            ("attributes not an object", {"type": "customer", "id": cust["id"],
                                          "attributes": []}, 400),
            ("bad updatedAt", {"type": "customer", "id": cust["id"],
                               "attributes": {"updatedAt": "x"}}, 400)):
        eq("mutate: %s -> %d" % (name, status), f.ctl("POST", "/_fake/mutate", body)[0], status)

    f.ctl("POST", "/_fake/clock", {"advance_ms": 1000})
    conv = d["conversation"]
    st, b = f.ctl("POST", "/_fake/delete", {"type": "conversation", "id": conv[0]["id"],
                                           "soft": True})
    st2, b2 = f.ctl("POST", "/_fake/delete", {"type": "note", "id": d["note"][0]["id"]})
    d2 = f.ctl("GET", "/_fake/dump")[1]
    c0 = next(c for c in d2["conversation"] if c["id"] == conv[0]["id"])
    eq("delete soft: deleted, deletedAt, deletedBy, updatedAt bumped",
       (st, c0["attributes"]["deleted"], c0["attributes"]["deletedAt"],
        c0["attributes"]["updatedAt"], c0["relationships"]["deletedBy"]["data"]["type"]),
       (200, True, "2025-06-01T00:00:01.000Z", "2025-06-01T00:00:01.000Z", "user"))
    eq("delete hard: gone from the store",
       (st2, b2["soft"], any(n["id"] == d["note"][0]["id"] for n in d2["note"]),
        len(d2["note"])), (200, False, False, len(d["note"]) - 1))
    eq("delete: an audit-log entry each (eventVerb delete)",
       sorted((e["attributes"]["eventVerb"], e["attributes"]["objectType"],
               e["attributes"]["objectId"], e["attributes"]["createdAt"], e["id"])
              for e in d2["audit_log"]),
       sorted([("delete", "conversation", conv[0]["id"], "2025-06-01T00:00:01.000Z",
                b["audit_log"]),
               ("delete", "note", d["note"][0]["id"], "2025-06-01T00:00:01.000Z",
                b2["audit_log"])]))
    r = f.req("GET", "/v1/conversations?pageSize=100")
    eq("GET /v1/conversations leaves soft-deleted ones out", len(r.json()["data"]),
       len(conv) - 1)
    eq("delete: unknown id -> 404; soft not a boolean -> 400",
       (f.ctl("POST", "/_fake/delete", {"type": "note", "id": d["note"][0]["id"]})[0],
        f.ctl("POST", "/_fake/delete", {"type": "note", "id": d["note"][1]["id"],
                                        "soft": "yes"})[0]), (404, 400))

    f.ctl("POST", "/_fake/clock", {"now": "2025-07-01T00:00:00.000Z"})
    want = [m["id"] for m in sorted(
        (m for m in f.ctl("GET", "/_fake/dump?type=message")[1]),
        key=lambda m: (m["attributes"]["updatedAt"], m["id"]))[:4]]
    st, b = f.ctl("POST", "/_fake/touch", {"type": "message", "count": 4, "same_ms": True})
    r, j = search(f, {"queryContext": "message", "and": [
        {"message_updated_at": {"gte": "2025-07-01T00:00:00.000Z"}},
        {"message_updated_at": {"lte": "2025-07-01T00:00:00.000Z"}}]})
    eq("touch same_ms: the oldest records share one updatedAt millisecond (now)",
       (st, b["ids"], b["updatedAt"], sorted(x["id"] for x in j["data"])),
       (200, want, ["2025-07-01T00:00:00.000Z"], sorted(want)))
    st, b = f.ctl("POST", "/_fake/touch", {"type": "customer", "count": 3})
    eq("touch without same_ms: consecutive milliseconds ending at now",
       (st, b["updatedAt"]), (200, ["2025-06-30T23:59:59.998Z", "2025-06-30T23:59:59.999Z",
                                    "2025-07-01T00:00:00.000Z"]))
    st, b = f.ctl("POST", "/_fake/touch", {"type": "customer", "count": 1, "same_ms": True,
                                          "at": "2025-03-03T00:00:00Z"})
    eq("touch at: a given instant", b["updatedAt"], ["2025-03-03T00:00:00.000Z"])
    eq("touch: bad count / same_ms / at -> 400",
       [f.ctl("POST", "/_fake/touch", x)[0] for x in (
           {"type": "customer"}, {"type": "customer", "count": 1, "same_ms": 1},
           {"type": "customer", "count": 1, "at": "x"})], [400, 400, 400])

    custs = f.ctl("GET", "/_fake/dump?type=customer")[1]
    src, dst = custs[1]["id"], custs[2]["id"]
    src_convs = [c["id"] for c in d["conversation"]
                 if c["relationships"]["customer"]["data"]["id"] == src]
    st, b = f.ctl("POST", "/_fake/merge", {"source": src, "target": dst})
    d3 = f.ctl("GET", "/_fake/dump")[1]
    moved = [c for c in d3["conversation"] if c["id"] in src_convs]
    s3 = next(c for c in d3["customer"] if c["id"] == src)
    eq("merge: source soft-deleted (audit entry), its conversations and their messages "
       "and notes moved to the target, updatedAt bumped",
       (st, b["moved"].get("conversation"), s3["attributes"]["deleted"],
        [c["relationships"]["customer"]["data"]["id"] for c in moved],
        [c["attributes"]["updatedAt"] for c in moved],
        any(e["attributes"]["objectId"] == src for e in d3["audit_log"]),
        all(m["relationships"]["customer"]["data"]["id"] == dst for m in d3["message"]
            if m["relationships"]["conversation"]["data"]["id"] in src_convs)),
       (200, len(src_convs), True, [dst] * len(src_convs),
        ["2025-07-01T00:00:00.000Z"] * len(src_convs), True, True))
    eq("merge: deleted source -> 400, same ids -> 400, unknown -> 404",
       [f.ctl("POST", "/_fake/merge", x)[0] for x in (
           {"source": src, "target": dst}, {"source": dst, "target": dst},
           {"source": "f" * 24, "target": dst})], [400, 400, 404])

    st, b = f.ctl("POST", "/_fake/add", {"type": "customer", "count": 2})
    st2, b2 = f.ctl("POST", "/_fake/add", {"type": "kobject_order", "count": 1})
    st3, b3 = f.ctl("POST", "/_fake/add", {"type": "tag", "record": {
        "id": "9" * 24, "attributes": {"name": "added"}}})
    st4, b4 = f.ctl("POST", "/_fake/add", {"type": "message", "count": 1})
    d4 = f.ctl("GET", "/_fake/dump")[1]
    new = [c for c in d4["customer"] if c["id"] in b["ids"]]
    eq("add: count and record forms; timestamps from the clock",
       (st, st2, st3, st4, len(new), [c["attributes"]["createdAt"] for c in new],
        b3["ids"], any(t["id"] == "9" * 24 for t in d4["tag"]),
        any(o["id"] == b2["ids"][0] for o in d4["kobject_order"]),
        all(ID24.fullmatch(i) for i in b["ids"] + b2["ids"] + b4["ids"])),
       (200, 200, 200, 200, 2, ["2025-07-01T00:00:00.000Z"] * 2, ["9" * 24], True, True,
        True))
    eq("add: bad forms -> 400",
       [f.ctl("POST", "/_fake/add", x)[0] for x in (
           {"type": "customer"}, {"type": "customer", "count": 1, "record": {}},
           {"type": "kobject", "count": 1}, {"type": "tag", "record": {"bogus": 1}},
           {"type": "audit_log", "count": 1}, {"type": "nope", "count": 1})],
       [400] * 6)
    f.ctl("POST", "/_fake/reset")
    bare = Fake(name="bare")
    st, b = bare.ctl("POST", "/_fake/add", {"type": "conversation", "count": 1})
    eq("add: a conversation needs a customer -> 400",
       (st, b["errors"][0]["detail"]), (400, "adding a conversation needs a customer"))
    bare.stop()


def t_script(f):
    d = f.ctl("GET", "/_fake/dump?type=customer")[1]
    cid = d[0]["id"]
    n = f.ctl("GET", "/_fake/health")[1]["requests"]
    st, b = f.ctl("POST", "/_fake/script", [
        {"at_request": n + 2, "do": "mutate", "type": "customer", "id": cid,
         "attributes": {"name": "Scripted"}},
        {"at_request": n + 3, "do": "delete", "type": "customer", "id": "f" * 24}])
    st2, pend = f.ctl("GET", "/_fake/script")
    names = [f.req("GET", "/v1/customers/" + cid).json()["data"]["attributes"]["name"]
             for _ in range(2)]
    f.req("GET", "/v1/customers?pageSize=1")
    st3, after = f.ctl("GET", "/_fake/script")
    eq("script: runs once, just before request at_request is answered",
       (st, b, len(pend["pending"]), names[0] != "Scripted", names[1], after["pending"],
        [(x["do"], x["status"]) for x in after["done"]]),
       (200, {"ok": True, "pending": 2}, 2, True, "Scripted", [],
        [("mutate", 200), ("delete", 404)]))
    for name, body in (("not an array", {}), ("passed at_request", [{"at_request": 1,
                                                                     "do": "touch"}]),
                       ("unknown do", [{"at_request": 10 ** 6, "do": "explode"}]),
                       ("bad at_request", [{"at_request": "7", "do": "touch"}])):
        eq("script: %s -> 400" % name, f.ctl("POST", "/_fake/script", body)[0], 400)
    f.ctl("POST", "/_fake/script", [{"at_request": 10 ** 6, "do": "touch"}])
    f.ctl("POST", "/_fake/reset")
    eq("script: reset clears it", f.ctl("GET", "/_fake/script")[1],
       {"pending": [], "done": []})


def t_external_usage(f):
    f.ctl("POST", "/_fake/config", {"rate_limit": 10, "rate_window": 1})
    time.sleep(1.05)                       # a fresh window
    r1 = f.req("GET", "/v1/customers")
    st, cfg = f.ctl("POST", "/_fake/config", {"external_usage": 5})
    r2 = f.req("GET", "/v1/customers")
    f.ctl("POST", "/_fake/config", {"external_usage": 8})
    r3 = f.req("GET", "/v1/customers")
    eq("external_usage: remaining lower by N, the limit reached N earlier",
       (r1.headers.get("x-ratelimit-remaining"), st, cfg["external_usage"],
        r2.headers.get("x-ratelimit-remaining"), r3.status),
       ("9", 200, 5, "3", 429))
    time.sleep(1.05)
    r4 = f.req("GET", "/v1/customers")
    eq("external_usage: only the current window; later windows start at 0",
       (r4.status, r4.headers.get("x-ratelimit-remaining"),
        f.ctl("GET", "/_fake/config")[1]["external_usage"]), (200, "9", 0))
    eq("external_usage: negative -> 400",
       f.ctl("POST", "/_fake/config", {"external_usage": -1})[0], 400)
    f.ctl("POST", "/_fake/config", {"rate_limit": 0, "rate_window": 60})


def t_hang_after():
    import socket
    f = Fake("--hang-after", "2", name="hang")
    r = f.req("GET", "/v1/customers")
    s = socket.create_connection((HOST, f.port), timeout=5)
    s.sendall(b"GET /v1/customers?x=2 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer k\r\n\r\n")
    s.settimeout(0.4)
    try:
        got = s.recv(100)
        hung = False
    except socket.timeout:
        hung = True
    recs = f.ctl("GET", "/_fake/requests")[1]
    eq("--hang-after 2: request 1 answered, request 2 recorded and never answered",
       (r.status, hung, [(x["seq"], x["status"], x["fault"]) for x in recs]),
       (200, True, [(1, 200, None), (2, None, "hang")]))
    f.ctl("POST", "/_fake/config", {"hang_after": 0})
    s.settimeout(2)
    try:
        got = s.recv(100)
    except OSError:
        got = None
    s.close()
    eq("hang_after set again: the hung connection is closed without an answer", got, b"")
    eq("hang_after 0: requests answered again", f.req("GET", "/v1/customers").status, 200)
    s = socket.create_connection((HOST, f.port), timeout=5)
    f.ctl("POST", "/_fake/config", {"hang_after": 1})
    s.sendall(b"GET /v1/customers HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer k\r\n\r\n")
    time.sleep(0.1)
    t0 = time.time()
    rc = f.stop()
    s.close()
    eq("--hang-after: SIGTERM still exits 0 promptly with a request held",
       (rc, time.time() - t0 < 3), (0, True))


def walk_list(f, first, limit=50):
    pages, ids, path = [], [], first
    while path and len(pages) < limit:
        r = f.req("GET", path)
        if r.status != 200:
            return None, r
        j = r.json()
        pages.append(j)
        ids += [x["id"] for x in j["data"]]
        path = j["links"]["next"]
    return pages, ids


def t_lists(f):
    d = f.ctl("GET", "/_fake/dump")[1]
    f.ctl("POST", "/_fake/delete", {"type": "user", "id": d["user"][0]["id"], "soft": True})
    f.ctl("POST", "/_fake/delete", {"type": "tag", "id": d["tag"][0]["id"], "soft": True})
    pages, ids = walk_list(f, "/v1/users?pageSize=1")
    eq("GET /v1/users: live users only, links.next to the end",
       (sorted(ids), pages[0]["links"]["next"], pages[0]["meta"]["total"]),
       (sorted(u["id"] for u in d["user"][1:]), "/v1/users?page=2&pageSize=1", 2))
    r = f.req("GET", "/v1/users?deleted=true")
    eq("GET /v1/users?deleted=true: the deleted ones",
       (r.status, [(u["id"], u["attributes"]["deleted"]) for u in r.json()["data"]]),
       (200, [(d["user"][0]["id"], True)]))
    eq("users and teams take pageSize 500, not 501",
       [f.req("GET", p).status for p in ("/v1/users?pageSize=500", "/v1/teams?pageSize=500",
                                         "/v1/users?pageSize=501", "/v1/teams?pageSize=501")],
       [200, 200, 400, 400])
    eq("other lists take pageSize 100, not 101",
       [f.req("GET", p).status for p in ("/v1/tags?pageSize=100", "/v1/tags?pageSize=101",
                                         "/v1/routing/queues?pageSize=101")],
       [200, 400, 400])
    for path, t in (("/v1/teams", "team"), ("/v1/tags", "tag"), ("/v1/brands", "brand"),
                    ("/v1/shortcuts", "shortcut"), ("/v1/routing/queues", "queue"),
                    ("/v1/schedules", "schedule"), ("/v1/klasses", "klass"),
                    ("/v1/slas", "sla")):
        pages, ids = walk_list(f, path + "?pageSize=1")
        want = f.ctl("GET", "/_fake/dump?type=" + t)[1]
        eq("GET %s: every record as stored, one per page via links.next" % path,
           (sorted(ids), sorted((x for p in pages for x in p["data"]), key=lambda x: x["id"])),
           (sorted(x["id"] for x in want), want))
    r = f.req("GET", "/v1/tags")
    eq("reference lists keep soft-deleted records, flagged deleted: true",
       sorted((x["id"], x["attributes"].get("deleted")) for x in r.json()["data"]),
       sorted((t["id"], True if t["id"] == d["tag"][0]["id"] else None) for t in d["tag"]))
    r = f.req("GET", "/v1/slas?versions=all")
    j = r.json()
    eq("GET /v1/slas?versions=all: every version in a top-level included array",
       (r.status, sorted(v["id"] for v in j["included"]),
        all(v["type"] == "sla_version" for v in j["included"])),
       (200, sorted(v["id"] for v in d["sla_version"]), True))
    r = f.req("GET", "/v1/slas?pageSize=1")
    j = r.json()
    eq("GET /v1/slas without versions=all: the latest version of each sla on the page",
       [(v["relationships"]["sla"]["data"]["id"], v["attributes"]["version"])
        for v in j["included"]], [(j["data"][0]["id"], j["data"][0]["attributes"]
                                   ["currentVersion"])])
    r = f.req("GET", "/v1/metadata/customer")
    eq("GET /v1/metadata/customer: one record per custom attribute",
       (r.status, sorted(m["attributes"]["name"] for m in r.json()["data"]),
        {m["attributes"]["resource"] for m in r.json()["data"]}),
       (200, sorted(d["customer"][0]["attributes"]["custom"]), {"customer"}))
    eq("GET /v1/metadata/kobject_order, /user (none), /planet (404)",
       (len(f.req("GET", "/v1/metadata/kobject_order").json()["data"]),
        f.req("GET", "/v1/metadata/user").json()["data"],
        f.req("GET", "/v1/metadata/planet").status), (7, [], 404))
    r = f.req("GET", "/v1/routing/work-sessions")
    ws = r.json()["data"]
    eq("GET /v1/routing/work-sessions: newest first",
       [w["attributes"]["createdAt"] for w in ws],
       sorted((w["attributes"]["createdAt"] for w in d["work_session"]), reverse=True))
    r = f.req("GET", "/v1/routing/work-sessions?active=true")
    eq("GET /v1/routing/work-sessions?active=true: only sessions not signed out",
       sorted(w["id"] for w in r.json()["data"]),
       sorted(w["id"] for w in d["work_session"] if w["attributes"]["signedOutAt"] is None))
    eq("work-sessions: active=maybe -> 400",
       f.req("GET", "/v1/routing/work-sessions?active=maybe").status, 400)
    c0, c1 = d["conversation"][0], d["conversation"][1]
    r = f.req("GET", "/v1/conversations/times/%s,%s,%s" % (c0["id"], "f" * 24, c1["id"]))
    j = r.json()
    eq("GET /v1/conversations/times/{ids}: one record per known id, in request order",
       (r.status, [(x["type"], x["id"]) for x in j["data"]],
        j["data"][0]["attributes"]["channels"], j["data"][0]["attributes"]["updatedAt"]),
       (200, [("conversation_time", c0["id"]), ("conversation_time", c1["id"])],
        c0["attributes"]["channels"], c0["attributes"]["updatedAt"]))
    eq("conversation times: the dump holds the same records",
       f.ctl("GET", "/_fake/dump?type=conversation_time")[1][0]
       == next(x for x in f.req("GET", "/v1/conversations/times/" + ",".join(
           c["id"] for c in d["conversation"])).json()["data"]
           if x["id"] == min(c["id"] for c in d["conversation"])), True)
    eq("conversation times: more than 100 ids -> 400",
       f.req("GET", "/v1/conversations/times/" + ",".join(["a"] * 101)).status, 400)
    u = d["user"][1]
    eq("single records: GET /v1/users/{id} 200, unknown 404, POST /v1/tags 405",
       (f.req("GET", "/v1/users/" + u["id"]).json()["data"], f.req("GET", "/v1/tags/x").status,
        f.req("POST", "/v1/tags", {}).status), (u, 404, 405))


def t_audit_logs(f):
    f.ctl("POST", "/_fake/reset")
    d = f.ctl("GET", "/_fake/dump")[1]
    f.ctl("POST", "/_fake/clock", {"now": "2025-06-01T00:00:00.000Z", "frozen": True})
    ids = []
    for t, rid, soft in (("customer", d["customer"][0]["id"], True),
                         ("tag", d["tag"][0]["id"], True),
                         ("conversation", d["conversation"][0]["id"], True),
                         ("message", d["message"][0]["id"], False)):
        ids.append((t, f.ctl("POST", "/_fake/delete", {"type": t, "id": rid, "soft": soft})
                    [1]["audit_log"], rid))
        f.ctl("POST", "/_fake/clock", {"advance_ms": 1000})
    base = ("/v1/audit-logs?filter%5BobjectType%5D=customer"
            "&filter%5Binclude%5D=conversation%2Cmessage%2Ccompany")
    r = f.req("GET", base + "&count=2")
    j = r.json()
    eq("GET /v1/audit-logs: objectType + include filter, count, entry shape",
       (r.status, j["data"], j["meta"]),
       (200, [{"type": "audit_log", "id": ids[0][1], "attributes": {
           "eventVerb": "delete", "objectType": "customer", "objectId": ids[0][2],
           "createdAt": "2025-06-01T00:00:00.000Z"}},
           {"type": "audit_log", "id": ids[2][1], "attributes": {
               "eventVerb": "delete", "objectType": "conversation", "objectId": ids[2][2],
               "createdAt": "2025-06-01T00:00:02.000Z"}}], {"count": 2}))
    nxt = j["links"]["next"]
    check("audit logs: links.next carries after=<last id>",
          nxt and nxt.startswith("/v1/audit-logs?") and nxt.endswith("after=" + ids[2][1]),
          nxt)
    r2 = f.req("GET", nxt)
    eq("audit logs: the next page, then next null",
       ([e["id"] for e in r2.json()["data"]], r2.json()["links"]["next"]), ([ids[3][1]], None))
    r = f.req("GET", "/v1/audit-logs?filter[start]=2025-06-01T00:00:01.500Z")
    eq("audit logs: filter[start] (unencoded brackets too), no type filter: all types",
       [e["id"] for e in r.json()["data"]], [ids[2][1], ids[3][1]])
    r = f.req("GET", "/v1/audit-logs?filter%5BobjectType%5D=tag")
    eq("audit logs: objectType alone", [e["id"] for e in r.json()["data"]], [ids[1][1]])
    for q, param in (("count=1001", "count"), ("count=0", "count"), ("after=nope", "after"),
                     ("filter%5Bstart%5D=yesterday", "filter[start]")):
        r = f.req("GET", "/v1/audit-logs?" + q)
        eq("audit logs: %s -> 400" % q, (r.status, r.json()["errors"][0]["source"]),
           (400, {"parameter": param}))
    eq("audit logs: count=1000 allowed", f.req("GET", "/v1/audit-logs?count=1000").status, 200)
    f.ctl("POST", "/_fake/config", {"audit_forbidden": True})
    r = f.req("GET", "/v1/audit-logs")
    eq("audit_forbidden -> 403", (r.status, r.body), (403, cjson(
        {"errors": [{"status": 403, "code": "forbidden", "title": "Forbidden"}]})))
    f.ctl("POST", "/_fake/config", {"audit_forbidden": False})
    eq("control: audit_forbidden must be a boolean",
       f.ctl("POST", "/_fake/config", {"audit_forbidden": 1})[0], 400)
    f.ctl("POST", "/_fake/reset")


def raw_request(f, path, method="GET"):
    """Send one request on a fresh socket, read until the server closes; -> bytes."""
    import socket
    s = socket.create_connection((HOST, f.port), timeout=5)
    s.sendall(("%s %s HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer k\r\n"
               "Connection: keep-alive\r\n\r\n" % (method, path)).encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def bulk_polls(f, items):
    bid = f.req("POST", "/v1/customers/bulk", items).json()["data"]["id"]
    for n in range(1, 10):
        if f.req("GET", "/v1/bulk/" + bid).json()["data"]["attributes"]["status"] == "complete":
            return bid, n
    return bid, None


def t_outbox_faults():
    f = Fake("--seed-customers", "2", "--cut-every", "2", "--bulk-results", "bare",
             "--bulk-delay-polls", "random:1-3", "--seed-random", "5", "--audit-forbidden",
             name="outbox-faults")
    r1 = f.req("GET", "/v1/customers")
    raw = raw_request(f, "/v1/customers")
    head, _, body = raw.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    eq("--cut-every 2: request 2 gets status line, headers and half its body, then the "
       "connection closes",
       (r1.status, head.split(b"\r\n")[0], length, len(body), body == r1.body[:length // 2]),
       (200, b"HTTP/1.1 200 OK", len(r1.body), len(r1.body) // 2, True))
    recs = f.ctl("GET", "/_fake/requests")[1]
    eq("--cut-every: recorded with cut true and its status",
       [(x["seq"], x["status"], x["cut"]) for x in recs], [(1, 200, False), (2, 200, True)])
    r = f.req("GET", "/v1/audit-logs")
    eq("--audit-forbidden -> 403", r.status, 403)
    f.ctl("POST", "/_fake/config", {"cut_every": 0})
    bid, n = bulk_polls(f, [{"name": "X1"}, {"name": "X2", "emails": [{}]}])
    r = f.req("GET", "/v1/bulk/%s/batches" % bid)
    j = r.json()
    eq("--bulk-results bare: GET /v1/bulk/{id}/batches is a bare array",
       (r.status, isinstance(j, list), sorted(j[0]) if j else None,
        (j[0]["successCount"], j[0]["failureCount"]) if j else None),
       (200, True, ["failureCount", "objectIds", "results", "successCount"], (1, 1)))
    f.ctl("POST", "/_fake/reset")
    seq = [bulk_polls(f, [{"name": "R%d" % i}])[1] for i in range(8)]
    f.ctl("POST", "/_fake/reset")
    seq2 = [bulk_polls(f, [{"name": "R%d" % i}])[1] for i in range(8)]
    check("--bulk-delay-polls random:1-3: polls to completion drawn per job from 1..3, "
          "repeatable (--seed-random, reseeded by reset)",
          all(n in (1, 2, 3) for n in seq) and len(set(seq)) > 1 and seq == seq2,
          (seq, seq2))
    st, cfg = f.ctl("POST", "/_fake/config", {"bulk_delay_polls": "random:0-0"})
    r = f.req("POST", "/v1/customers/bulk", [{"name": "Z"}])
    eq("bulk_delay_polls \"random:0-0\" via config: complete at submission",
       (st, cfg["bulk_delay_polls"], r.json()["data"]["attributes"]["status"]),
       (200, "random:0-0", "complete"))
    for k, v in (("bulk_delay_polls", "random:3-1"), ("bulk_delay_polls", "sometimes"),
                 ("bulk_results", "naked"), ("cut_every", -1)):
        eq("control: %s %r -> 400" % (k, v), f.ctl("POST", "/_fake/config", {k: v})[0], 400)
    f.stop()
    for args in (("--bulk-delay-polls", "random:x"), ("--bulk-results", "naked")):
        p = subprocess.run([PY, FAKE, "--port", "0"] + list(args), capture_output=True,
                           text=True, timeout=5)
        eq("command line %s -> exit 2" % " ".join(args), p.returncode, 2)


def t_stats():
    f = Fake("--seed-customers", "3", "--rate-limit", "4", "--rate-window", "60",
             "--drop-every", "5", name="stats")
    c = f.ctl("GET", "/_fake/customers")[1][0]["id"]
    bid = f.req("POST", "/v1/customers/bulk", [{"name": "S"}]).json()["data"]["id"]
    f.req("GET", "/v1/bulk/" + bid)
    f.req("GET", "/v1/bulk/%s/batches" % bid)
    f.req("GET", "/v1/customers/" + c)
    try:
        f.req("GET", "/v1/customers/email=x%40y.z")
    except DROPPED:
        pass
    r = f.req("GET", "/v1/customers/externalId=seed-1")
    f.ctl("GET", "/_fake/health")
    st, s = f.ctl("GET", "/_fake/stats")
    eq("GET /_fake/stats: counts, by_route with ids normalised",
       (st, s, r.status), (200, {
           "requests": 6, "by_route": {"POST /v1/customers/bulk": 1, "GET /v1/bulk/{id}": 1,
                                       "GET /v1/bulk/{id}/batches": 1,
                                       "GET /v1/customers/{id}": 1,
                                       "GET /v1/customers/email={email}": 1,
                                       "GET /v1/customers/externalId={externalId}": 1},
           "accepted": 4, "rejected_429": 1, "dropped": 1, "cut": 0}, 429))
    f.ctl("POST", "/_fake/reset")
    eq("stats: reset clears them", f.ctl("GET", "/_fake/stats")[1],
       {"requests": 0, "by_route": {}, "accepted": 0, "rejected_429": 0, "dropped": 0,
        "cut": 0})
    f.stop()


def t_bulk_put_clock(f):
    f.ctl("POST", "/_fake/clock", {"now": "2031-01-01T00:00:00.000Z", "frozen": True})
    c = f.ctl("GET", "/_fake/customers")[1][0]
    f.ctl("POST", "/_fake/config", {"bulk_delay_polls": 0})
    f.req("PUT", "/v1/customers/bulk", [{"id": c["id"], "locale": "de"}])
    a = f.req("GET", "/v1/customers/" + c["id"]).json()["data"]["attributes"]
    eq("PUT /v1/customers/bulk applies attributes and bumps updatedAt (fake clock)",
       (a["locale"], a["updatedAt"], a["modifiedAt"], a["name"]),
       ("de", "2031-01-01T00:00:00.000Z", "2031-01-01T00:00:00.000Z", c["attributes"]["name"]))
    f.ctl("POST", "/_fake/config", {"bulk_delay_polls": 2})
    f.ctl("POST", "/_fake/reset")


ALL_OPTIONS = ("--port", "--host", "--port-file", "--log", "--lookups", "--api-key",
               "--rate-limit", "--rate-window", "--search-rate-limit", "--search-max-page",
               "--fail-every", "--fail-status", "--drop-every", "--cut-every",
               "--hang-after", "--throttle-every", "--retry-after", "--slow-ms",
               "--slow-every", "--audit-forbidden", "--bulk-delay-polls", "--bulk-results",
               "--seed-random", "--seed", "--seed-customers",
               "--seed-messages-per-conversation", "--seed-notes", "--seed-companies",
               "--seed-klasses", "--seed-users", "--seed-teams",
               "--seed-work-sessions-per-user", "--now")


def t_help():
    p = subprocess.run([PY, FAKE, "--help"], capture_output=True, text=True, timeout=5)
    lines = p.stdout.splitlines()
    undocumented = []
    for opt in ALL_OPTIONS:
        k = next((i for i, ln in enumerate(lines) if re.match(r"\s+%s(\s|$)" % re.escape(opt),
                                                               ln)), None)
        if k is None:
            undocumented.append(opt)
            continue
        rest = re.sub(r"^\s+%s(\s+\S+)?" % re.escape(opt), "", lines[k]).strip()
        nxt = lines[k + 1].strip() if k + 1 < len(lines) else ""
        if not rest and (not nxt or nxt.startswith("-")):
            undocumented.append(opt)
    check("--help: exit 0, every option with a description", p.returncode == 0
          and not undocumented, (p.returncode, undocumented))
    with open(FAKE) as fh:
        src = fh.read()
    check("--help and the module name no file outside the repository",
          "/work/" not in p.stdout and "/work/" not in src and "/shared/" not in src)
    with open(FAKE) as fh:
        doc = src.split('"""')[1]
    missing = [o for o in ALL_OPTIONS if o not in doc]
    check("the docstring names every option", not missing, missing)


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
    report("watchdog", False, "tests did not finish within 40 s")
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
    signal.alarm(40)
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

        # --now: the seeded data (2025) must not fall into the archive (730 days)
        seeded = Fake("--seed-customers", "25", "--now", "2025-06-01T00:00:00.000Z",
                      name="seeded")
        run("auth-any-key", t_auth_any_key, seeded)
        run("pagination", t_pagination, seeded)
        run("basic-seed-reference", t_basic_seed_reference, seeded)
        seeded.stop()

        gen = Fake(*GEN_ARGS, name="gen")
        run("generators", t_generators, gen)
        run("seed-control", t_seed_control, gen)
        gen.stop()
        run("seed-file", t_seed_file)

        srch = Fake(*(GEN_ARGS + ("--now", "2025-06-01T00:00:00.000Z")), name="search")
        run("search-contexts", t_search_contexts, srch)
        run("search-deleted-sort-archive", t_search_deleted_sort_archive, srch)
        srch.stop()
        run("search-rate-limit", t_search_rate_limit)

        mut = Fake(*GEN_ARGS, name="mutations")
        run("clock", t_clock, mut)
        run("mutations", t_mutations, mut)
        run("script", t_script, mut)
        run("external-usage", t_external_usage, mut)
        mut.stop()
        run("hang-after", t_hang_after)

        lists = Fake(*GEN_ARGS, name="lists")
        run("lists", t_lists, lists)
        run("audit-logs", t_audit_logs, lists)
        run("bulk-put-clock", t_bulk_put_clock, lists)
        lists.stop()
        run("outbox-faults", t_outbox_faults)
        run("stats", t_stats)
        run("help", t_help)

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
