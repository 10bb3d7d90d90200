#!/usr/bin/python3
"""The network functions against the local fake Kustomer API.

    /usr/bin/python3 tests/test_network.py [SO_PATH]

- every conformance vector (processor, edge cases, router inputs) through
  kustomer_process(), with the vector's lookups served by the fake: the
  exact lookup URLs in the exact order, each with the API key, and the
  vector's output byte for byte (hosts mapped to the fake);
- kustomer_send(): statuses, headers and bodies as data; refused
  connections, timeouts, dropped connections and refused URLs as SQL
  errors; the API key in no error text;
- a reply whose header bytes are not UTF-8 (from a raw socket, as the
  fake cannot send one): the result is still UTF-8 JSON, with U+FFFD.

Runs Debian's /usr/bin/python3 (its sqlite3 module can load extensions).
Prints "ok <name>" / "FAIL <name>: <detail>" lines; exit status 1 on failure.
Only 127.0.0.1 is ever contacted.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "conformance")
sys.path.insert(0, HERE)
import conformance as conf  # noqa: E402  (JS-exact JSON helpers)
import ktap  # noqa: E402  (kept for tests/check_secrets.py)
from ktap import report  # noqa: E402

# Every test key holds "5e3cr3t", which tests/check_secrets.py also looks for.
KEY = ktap.key("test-key-5e3cr3t-do-not-log")
WRONG_KEY = ktap.key("wrong-key-5e3cr3t")
class Fake(object):
    """The fake Kustomer API as a subprocess on a free loopback port."""

    def __init__(self, *args):
        """args: more command-line options for fake_kustomer.py."""
        self.dir = tempfile.mkdtemp(prefix="kfake")
        pf = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "fake_kustomer.py"),
             "--port", "0", "--port-file", pf] + list(args),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(200):
            if os.path.exists(pf):
                break
            time.sleep(0.05)
        with open(pf) as f:
            self.port = int(f.read().strip())
        self.base = "http://127.0.0.1:%d" % self.port

    def ctl(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data,
                                     method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def reset(self, lookups=None, **config):
        self.keep_record()
        self.ctl("POST", "/_fake/reset")
        cfg = {"rate_limit": 0, "fail_every": 0, "drop_every": 0,
               "slow_ms": 0, "api_key": None, "throttle_every": 0,
               "retry_after": None}
        cfg.update(config)
        self.ctl("POST", "/_fake/config", cfg)
        self.ctl("POST", "/_fake/lookups", lookups or {})

    def requests(self):
        return self.ctl("GET", "/_fake/requests")

    def keep_record(self):
        """Hand what the fake recorded to the secrets scan."""
        if ktap.DIR is not None and self.proc.poll() is None:
            ktap.fake_requests(self.requests())

    def stop(self):
        try:
            self.keep_record()
        except OSError:
            pass
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def connect(so):
    db = ktap.connect(":memory:")
    db.enable_load_extension(True)
    db.load_extension(so)
    return db


def path_of(url):
    rest = url.split("://", 1)[1]
    i = rest.find("/")
    return rest[i:] if i >= 0 else "/"


def base_of(settings):
    b = settings.get("baseEndpoint") if isinstance(settings, conf.Obj) else None
    if isinstance(b, str) and b:
        return b.rstrip("/")
    return "https://api.kustomerapp.com"


def map_text(text, old, new):
    return text.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1])


def run_vector(db, fake, name, event, settings, lookups, expect, drop_user_id):
    """One vector through kustomer_process against the fake."""
    lookups = lookups if isinstance(lookups, conf.Obj) else conf.Obj([])
    scripted = {}
    for url, reply in lookups.items():
        scripted[url] = json.loads(conf.dump(reply, True))
    fake.reset(scripted)
    orig = base_of(settings)
    s = conf.Obj([(k, v) for k, v in settings.items() if k != "baseEndpoint"]
                 + [("baseEndpoint", fake.base)])
    try:
        actual = db.execute("select kustomer_process(?, ?)",
                            (conf.dump(event, False), conf.dump(s, False))
                            ).fetchone()[0]
    except sqlite3.Error as e:
        report(name, False, "SQL error: %s" % e)
        return
    # the lookups: exact URLs, exact order, each with the key
    got = [(r["method"], r["path"], r["headers"].get("authorization"))
           for r in fake.requests()]
    want_paths = [path_of(u) for u in lookups.keys()]
    key = settings.get("apiKey") if isinstance(settings, conf.Obj) else None
    if [g[1] for g in got] != want_paths or any(g[0] != "GET" for g in got):
        report(name + " (lookup URLs)", False,
               "expected %r, got %r" % (want_paths, [g[:2] for g in got]))
        return
    if any(g[2] != "Bearer %s" % key for g in got):
        report(name + " (lookup URLs)", False, "a lookup lacked the API key")
        return
    report(name + " (lookups %d)" % len(got), True)
    if isinstance(expect, conf.Obj) and "error" in expect \
            and "statusCode" in expect:
        res = json.loads(actual)
        if res.get("statusCode") != int(expect.get("statusCode").text):
            report(name, False, "statusCode %r, expected %s; %s"
                   % (res.get("statusCode"), expect.get("statusCode").text,
                      actual))
            return
        want_err = expect.get("error")
        if want_err == "*":
            report(name, True)
            return
        try:
            werr = json.loads(want_err)
        except ValueError:
            werr = None
        if isinstance(werr, dict) and "destinationResponse" in werr:
            aerr = json.loads(res.get("error"))
            ok = (aerr.get("message") == werr.get("message")
                  and aerr["destinationResponse"].get("status")
                  == werr["destinationResponse"].get("status")
                  and aerr["destinationResponse"].get("response")
                  == werr["destinationResponse"].get("response"))
            report(name, ok, "expected %s, got %s" % (want_err, res["error"]))
        else:
            report(name, res.get("error") == want_err,
                   "expected %r, got %r" % (want_err, res.get("error")))
        return
    if drop_user_id:
        expect = expect.without("userId")
        res = conf.parse_json(actual).without("userId")
        actual = conf.dump(res, True)
    want = map_text(conf.dump(expect, True), orig, fake.base)
    report(name, actual == want,
           "\n  expected: %s\n  actual:   %s" % (want, actual))


def t_conformance(db, fake):
    n = 0
    for fname in ("processor.json", "edge_cases.json"):
        for v in conf.load_json(os.path.join(SHARED, fname)):
            vname = v.get("name")
            expect = v.get("expect")
            if vname in conf.SUPERSEDED and "deviation" not in v:
                why, fix = conf.SUPERSEDED[vname]
                expect = fix(expect)
                vname += " (expectation corrected by %s)" % why
            run_vector(db, fake, "process: %s: %s" % (fname, vname),
                       v.get("event"), v.get("settings", conf.Obj([])),
                       v.get("lookups"), expect, False)
            n += 1
    for test in conf.load_json(os.path.join(SHARED, "router.json")):
        lookups = test.get("lookups") or conf.Obj([])
        for i, (inp, out) in enumerate(zip(test.get("inputs"),
                                           test.get("expect"))):
            ev = inp.get("event")
            mine = conf.Obj([(u, r) for u, r in lookups.items()
                             if ev.get("type") == "identify"]) \
                if isinstance(lookups, conf.Obj) else conf.Obj([])
            want = out.get("batchedRequest") if isinstance(out, conf.Obj) \
                else None
            if want is None:
                continue
            # the router's shared table: each identify issues its own GETs
            plan = conf.Obj([(u, r) for u, r in mine.items()
                             if any(path_of(u).endswith("=" + str(x))
                                    for x in ids_of(ev))])
            run_vector(db, fake, "process: router.json: %s [%d]"
                       % (test.get("name"), i), ev, inp.get("settings"),
                       plan, want, True)
            n += 1
    print("network: %d vectors through kustomer_process" % n)


def ids_of(ev):
    out = []
    for path in (("traits", "email"), ("context", "traits", "email"),
                 ("userId",), ("anonymousId",)):
        v = ev
        for p in path:
            v = v.get(p) if isinstance(v, conf.Obj) else None
        if isinstance(v, str):
            out.append(v)
    return out


def send(db, req, settings=None):
    if settings is None:
        return db.execute("select kustomer_send(?)", (req,)).fetchone()[0]
    return db.execute("select kustomer_send(?, ?)",
                      (req, settings)).fetchone()[0]


def t_send(db, fake):
    errors = []

    def expect_error(name, fn, want):
        try:
            r = fn()
        except sqlite3.Error as e:
            errors.append(str(e))
            report(name, want in str(e), "error %r lacks %r" % (str(e), want))
            return
        report(name, False, "no error; got %r" % (r,))

    fake.reset(api_key=KEY)
    settings = json.dumps({"apiKey": KEY, "baseEndpoint": fake.base})
    req = db.execute("select kustomer_request(?, ?)",
                     ('{"type":"track","event":"Signed-Up","userId":"u1",'
                      '"properties":{"planStr":"pro","seatsNum":3}}',
                      settings)).fetchone()[0]
    r = json.loads(send(db, req))
    report("send: track -> 200", r["status"] == 200, r)
    report("send: response body is JSON",
           r["body"]["data"]["type"] == "tracking_event", r)
    report("send: response headers, lower-case names",
           "content-type" in r["headers"], r["headers"])
    rec = fake.requests()[-1]
    report("send: body sent as the envelope's body.JSON",
           json.loads(rec["body"]) == json.loads(req)["body"]["JSON"], rec)
    report("send: body bytes are the compact JSON of body.JSON",
           rec["body"] == json.dumps(json.loads(req)["body"]["JSON"],
                                     separators=(",", ":")), rec["body"])
    report("send: Authorization from the envelope",
           rec["headers"].get("authorization") == "Bearer " + KEY, rec)
    report("send: Content-Type json",
           rec["headers"].get("content-type") == "application/json", rec)
    # the result composes with json_extract
    st = db.execute("select json_extract(kustomer_send(?), '$.status')",
                    (req,)).fetchone()[0]
    report("send: composes with json_extract", st == 200, st)

    ident = db.execute("select kustomer_request(?, ?)",
                       ('{"type":"identify","userId":"new-1","traits":'
                        '{"email":"n@x.com"}}', settings)).fetchone()[0]
    r = json.loads(send(db, ident))
    report("send: identify -> 201 with data.id",
           r["status"] == 201 and len(r["body"]["data"]["id"]) == 24, r)
    bad = db.execute("select kustomer_request(?, ?)",
                     ('{"type":"track","event":"Has Space","userId":"u"}',
                      settings)).fetchone()[0]
    r = json.loads(send(db, bad))
    report("send: Kustomer's 400 is data",
           r["status"] == 400 and r["body"]["errors"][0]["code"]
           == "bad_request", r)
    r = json.loads(send(db, req, json.dumps({"apiKey": WRONG_KEY})))
    report("send: 401 is data, settings key overrides the envelope's",
           r["status"] == 401, r)
    os.environ["KUSTOMER_TEST_KEY"] = KEY
    r = json.loads(send(db, req, '{"apiKeyEnv":"KUSTOMER_TEST_KEY"}'))
    report("send: key from apiKeyEnv", r["status"] == 200, r)
    env_req = db.execute("select kustomer_request(?, ?)",
                         ('{"type":"track","event":"E","userId":"u"}',
                          json.dumps({"apiKeyEnv": "KUSTOMER_TEST_KEY",
                                      "baseEndpoint": fake.base}))
                         ).fetchone()[0]
    report("send: envelope from apiKeyEnv settings has no key",
           KEY not in env_req and "Authorization" not in env_req, env_req)
    r = json.loads(send(db, env_req, '{"apiKeyEnv":"KUSTOMER_TEST_KEY"}'))
    report("send: apiKeyEnv envelope sent with the key at send time",
           r["status"] == 200, r)

    # transport failures are SQL errors with curl's message
    fake.reset(api_key=KEY, drop_every=1)
    expect_error("send: dropped connection is an SQL error",
                 lambda: send(db, req), "kustomer_send(): ")
    fake.reset(api_key=KEY, slow_ms=1500)
    slow = json.dumps({"apiKey": KEY, "timeoutMs": 300})
    t0 = time.time()
    expect_error("send: timeout is an SQL error", lambda: send(db, req, slow),
                 "Timeout was reached")
    report("send: timeout honoured (timeoutMs 300)", time.time() - t0 < 1.4,
           time.time() - t0)
    fake.reset(api_key=KEY)
    dead = req.replace(fake.base, "http://127.0.0.1:9")
    expect_error("send: refused connection is an SQL error",
                 lambda: send(db, dead), "Couldn't connect to server")
    remote = req.replace(fake.base, "http://192.0.2.1")
    expect_error("send: non-loopback http:// refused before sending",
                 lambda: send(db, remote), "plain http:// is refused")
    # kustomer_process: transport failures are the reference's envelopes
    fake.reset(api_key=KEY, drop_every=1)
    r = json.loads(db.execute(
        "select kustomer_process(?, ?)",
        ('{"type":"identify","userId":"u9"}', settings)).fetchone()[0])
    report("process: dropped lookup -> ECONNRESET 500",
           r["statusCode"] == 500 and "[ECONNRESET]" in r["error"], r)
    fake.reset(api_key=KEY)
    r = json.loads(db.execute(
        "select kustomer_process(?, ?)",
        ('{"type":"identify","userId":"u9"}',
         json.dumps({"apiKey": KEY, "baseEndpoint": "http://127.0.0.1:9"}))
    ).fetchone()[0])
    report("process: refused lookup -> ECONNREFUSED 500",
           r["statusCode"] == 500 and "[ECONNREFUSED]" in r["error"], r)
    errors.append(r["error"])
    # D1: after a lookup finds the customer the PUT goes to the configured
    # host; D4: lookup values percent-encoded
    fake.reset(api_key=KEY)
    created = json.loads(send(db, db.execute(
        "select kustomer_request(?, ?)",
        ('{"type":"identify","userId":"a b/c"}', settings)).fetchone()[0]))
    cid = created["body"]["data"]["id"]
    r = json.loads(db.execute(
        "select kustomer_process(?, ?)",
        ('{"type":"identify","userId":"a b/c"}', settings)).fetchone()[0])
    report("process: found customer updated on the configured host (D1)",
           r.get("endpoint") == "%s/v1/customers/%s?replace=false"
           % (fake.base, cid), r)
    paths = [q["path"] for q in fake.requests() if q["method"] == "GET"]
    report("process: lookup value percent-encoded (D4)",
           paths == ["/v1/customers/externalId=a%20b%2Fc"], paths)
    # the key never appears in an error text
    leaked = [e for e in errors if KEY in e]
    report("send: the API key is in no error text (%d errors)" % len(errors),
           not leaked and len(errors) >= 4, leaked)


def raw_reply(reply):
    """A one-shot loopback server: reads one request, writes reply bytes,
    closes.  -> (base URL, thread)."""
    import socket
    import threading
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        data = b""
        conn.settimeout(5)
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        conn.sendall(reply)
        conn.close()
        srv.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return "http://127.0.0.1:%d" % srv.getsockname()[1], t


def t_raw_headers(db):
    base, t = raw_reply(b"HTTP/1.1 404 Not Found\r\nX-Bin: a\xff\xc3(b\r\n"
                        b"Content-Length: 7\r\n\r\n{\"a\":1}")
    req = json.dumps({"method": "GET", "endpoint": base + "/v1/customers/x"})
    try:
        r = json.loads(send(db, req, json.dumps({"apiKey": KEY,
                                                 "timeoutMs": 3000})))
        report("send: header bytes not UTF-8 become U+FFFD",
               r["headers"].get("x-bin") == "a\ufffd\ufffd(b", r)
    except (sqlite3.Error, ValueError) as e:
        report("send: header bytes not UTF-8 become U+FFFD", False, str(e))
    t.join(5)


def t_keepalive(db, fake):
    fake.reset(api_key=KEY)
    settings = json.dumps({"apiKey": KEY, "baseEndpoint": fake.base})
    req = db.execute("select kustomer_request(?, ?)",
                     ('{"type":"track","event":"E","userId":"u"}',
                      settings)).fetchone()[0]
    for _ in range(5):
        send(db, req)
    peers = set(r["peer"] for r in fake.requests())
    report("send: one kept-alive connection for 5 requests (%d)" % len(peers),
           len(peers) == 1, peers)


def t_folded_first_header(db, fake):
    """After a request on a kept-alive connection, a response whose first
    header line starts with whitespace (an obsolete fold with nothing to
    fold into) once made libcurl 7.88 read freed memory: an error now,
    under the sanitizers and valgrind too."""
    fake.reset(api_key=KEY)
    settings = json.dumps({"apiKey": KEY, "baseEndpoint": fake.base,
                           "timeoutMs": 3000})
    req = db.execute("select kustomer_request(?, ?)",
                     ('{"type":"track","event":"E","userId":"u"}',
                      settings)).fetchone()[0]
    send(db, req)
    base, t = raw_reply(b"HTTP/1.1 200 OK\r\n\tX-Folded: a\r\n"
                        b"Content-Length: 2\r\n\r\n{}")
    req2 = json.dumps({"method": "GET", "endpoint": base + "/v1/customers/x"})
    try:
        r = send(db, req2, json.dumps({"apiKey": KEY, "timeoutMs": 3000}))
        report("send: a folded first header line is refused", False, r)
    except sqlite3.Error as e:
        report("send: a folded first header line is refused",
               str(e).startswith("kustomer_send(): "), str(e))
    t.join(5)
    r = json.loads(send(db, req))
    report("send: the next request works", r["status"] == 200, r)


def main():
    so = ktap.so_path(sys.argv, ROOT)
    fake = Fake()
    try:
        db = connect(so)
        t_conformance(db, fake)
        t_send(db, fake)
        t_raw_headers(db)
        t_keepalive(db, fake)
        t_folded_first_header(db, fake)
        db.close()
    finally:
        fake.stop()
    sys.exit(1 if ktap.FAILED else 0)


if __name__ == "__main__":
    main()
