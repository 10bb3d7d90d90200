#!/usr/bin/python3
"""Run the shared conformance vectors through kustomer_request().

    tests/conformance.py [--shared DIR] [-v] [SO_PATH]

SO_PATH defaults to $KUSTOMER_SO, else <repo>/dist/kustomer.so; DIR defaults
to <repo>/../shared.  Needs a python whose sqlite3 module can load extensions
(Debian's /usr/bin/python3 can).

Reads DIR/conformance/processor.json, edge_cases.json and router.json (format:
DIR/conformance/README.md).  Each vector that can be run offline is one check,
"ok conformance: <file>: <name>" or "FAIL conformance: <file>: <name>: ...";
a vector that needs lookups answered over HTTP prints "skip ...".  The last
line is "conformance: N vectors matched, M skipped".  Exit status 1 if any
check failed.

Offline means: no lookups, or lookups that all answer 404 (the event is run
without a customer id), or 404s ending with one 200 whose body has data.id
(that id is passed as kustomer_request's third argument).

Comparison: a success must equal, byte for byte, the compact JSON text that
JavaScript's JSON.stringify gives for `expect` (key order as in the file,
numbers as JavaScript prints them: 1e+21, 12.5, 5551234).  The files are read
keeping every number's text and every object's key order and duplicates, so
nothing is lost on the way in; events and settings are passed on with the
numbers' original text.  An error must be a JSON object with the same
statusCode, and the same error text unless the vector's error is "*"; for a
lookup failure (error text that is a JSON object with
destinationResponse.status) only that status is compared.
"""

import argparse
import faulthandler
import json
import math
import os
import re
import sqlite3
import sys
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY = "sqlite3_kustomer_init"
SKIP_REASON = "needs lookups over HTTP: run by tests/test_network.py against the fake"


# --------------------------------------------------------------------------
# JSON values that keep what Python's json module would lose.

class Num(object):
    """A JSON number with its original text."""
    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    def value(self):
        return float(self.text)

    def __repr__(self):
        return "Num(%s)" % self.text


class Obj(object):
    """A JSON object: its members in input order, duplicates included."""
    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self.pairs = list(pairs)

    def get(self, key, default=None):
        """The member JSON.parse keeps for key: the last one."""
        found = default
        for k, v in self.pairs:
            if k == key:
                found = v
        return found

    def __contains__(self, key):
        return any(k == key for k, _ in self.pairs)

    def keys(self):
        return [k for k, _ in self.pairs]

    def items(self):
        return list(self.pairs)

    def without(self, key):
        return Obj((k, v) for k, v in self.pairs if k != key)


def load_json(path):
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f, object_pairs_hook=Obj, parse_int=Num,
                         parse_float=Num, parse_constant=Num)


def parse_json(text):
    return json.loads(text, object_pairs_hook=Obj, parse_int=Num,
                      parse_float=Num, parse_constant=Num)


def js_number(x):
    """JavaScript's Number.prototype.toString for a double (JSON.stringify's
    digits; ECMA-262 Number::toString): shortest round-trip digits, plain
    notation for 1e-7 < |x| < 1e21, exponent form with an explicit sign
    otherwise, -0 as 0."""
    if math.isnan(x) or math.isinf(x):
        return "null"  # what JSON.stringify writes
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    r = repr(abs(x))  # shortest digits that round-trip, as JavaScript uses
    m = re.match(r"^(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$", r)
    ip, fp, ex = m.group(1), m.group(2) or "", int(m.group(3) or 0)
    # value = int(ip + fp) * 10**(ex - len(fp)) = 0.digits * 10**n
    all_digits = (ip + fp).lstrip("0")
    digits = all_digits.rstrip("0")
    k = len(digits)
    n = k + ex - len(fp) + (len(all_digits) - k)
    # value = 0.d1d2...dk * 10**n
    if k <= n <= 21:
        s = digits + "0" * (n - k)
    elif 0 < n <= 21:
        s = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        s = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        es = ("+" if e >= 0 else "-") + str(abs(e))
        s = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + es
    return sign + s


def js_string(s):
    """A JSON string literal as JSON.stringify writes it (ES2019
    well-formed: lone surrogates escaped, lower-case hex)."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif c < 0x20:
            out.append({8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f",
                        13: "\\r"}.get(c, "\\u%04x" % c))
        elif 0xD800 <= c <= 0xDFFF:
            out.append("\\u%04x" % c)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def dump(v, js):
    """Compact JSON text.  js=True: numbers as JavaScript prints them and,
    for duplicated keys, JSON.parse's result (first position, last value);
    js=False: numbers and members exactly as read."""
    if isinstance(v, Obj):
        if js:
            order, last = [], {}
            for k, val in v.pairs:
                if k not in last:
                    order.append(k)
                last[k] = val
            pairs = [(k, last[k]) for k in order]
        else:
            pairs = v.pairs
        return "{" + ",".join(js_string(k) + ":" + dump(val, js)
                              for k, val in pairs) + "}"
    if isinstance(v, list):
        return "[" + ",".join(dump(x, js) for x in v) + "]"
    if isinstance(v, Num):
        return js_number(v.value()) if js else v.text
    if isinstance(v, str):
        return js_string(v)
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    raise TypeError("unexpected value %r" % (v,))


def self_test():
    """js_number against values whose JavaScript text is known."""
    cases = [("1e+21", "1e+21"), ("1e21", "1e+21"), ("12.5", "12.5"),
             ("5551234", "5551234"), ("0", "0"), ("-0", "0"), ("0.0", "0"),
             ("1e-7", "1e-7"), ("0.000001", "0.000001"), ("1.5e-7", "1.5e-7"),
             ("123e-20", "1.23e-18"), ("1152921504606846976",
                                      "1152921504606847000"),
             ("999999999999999999999", "1e+21"),
             ("100000000000000000000", "100000000000000000000"),
             ("-2.5e+30", "-2.5e+30"), ("0.1", "0.1"), ("211", "211"),
             ("1.7976931348623157e308", "1.7976931348623157e+308"),
             ("5e-324", "5e-324"), ("0.000123", "0.000123"),
             ("123456789.125", "123456789.125"), ("1E2", "100")]
    bad = ["%s -> %s (want %s)" % (t, js_number(float(t)), want)
           for t, want in cases if js_number(float(t)) != want]
    if js_string("a\"\\\n\x01\u2028\ud800/") != '"a\\"\\\\\\n\\u0001\u2028\\ud800/"':
        bad.append("js_string escaping")
    return bad


# --------------------------------------------------------------------------
# Reporting.

class Report(object):
    def __init__(self, verbose):
        self.verbose = verbose
        self.matched = 0
        self.failed = 0
        self.skipped = 0

    def ok(self, name):
        self.matched += 1
        print("ok " + name)

    def fail(self, name, detail, lines=()):
        self.failed += 1
        print("FAIL %s: %s" % (name, detail))
        for line in lines:
            for part in str(line).split("\n"):
                print("  " + part)

    def skip(self, name, why):
        self.skipped += 1
        print("skip %s: %s" % (name, why))


def window(b, off, width=60):
    lo = max(0, off - width)
    hi = off + width
    s = b[lo:hi].decode("utf-8", "replace")
    return ("..." if lo > 0 else "") + s + ("..." if hi < len(b) else "")


def text_diff(expected, actual, verbose):
    """Detail lines for two texts that differ."""
    e = expected.encode("utf-8", "surrogatepass")
    a = actual.encode("utf-8", "surrogatepass")
    n = min(len(e), len(a))
    off = next((i for i in range(n) if e[i] != a[i]), n)
    lines = ["first difference at byte %d (expected %d bytes, actual %d)"
             % (off, len(e), len(a)),
             "expected: " + window(e, off),
             "actual:   " + window(a, off)]
    if verbose:
        lines += ["full expected: " + expected, "full actual:   " + actual]
    return lines


# --------------------------------------------------------------------------
# Running vectors.

def plan_lookups(lookups):
    """How to run a vector offline: (True, customer_id or None), or
    (False, None) when its lookups need the HTTP client."""
    replies = list(lookups.items()) if isinstance(lookups, Obj) else []
    if not replies:
        return True, None
    for i, (_url, r) in enumerate(replies):
        if not isinstance(r, Obj) or "networkError" in r:
            return False, None
        status = r.get("status")
        status = status.value() if isinstance(status, Num) else None
        if status == 404:
            continue
        if status == 200 and i == len(replies) - 1:
            body = r.get("body")
            data = body.get("data") if isinstance(body, Obj) else None
            cid = data.get("id") if isinstance(data, Obj) else None
            if isinstance(cid, str):
                return True, cid
            if isinstance(cid, Num):
                return True, cid.text
        return False, None
    return True, None


def call_request(db, event, settings, customer_id):
    args = [dump(event, False), dump(settings, False)]
    if customer_id is None:
        sql = "SELECT kustomer_request(?, ?)"
    else:
        sql = "SELECT kustomer_request(?, ?, ?)"
        args.append(customer_id)
    return db.execute(sql, args).fetchone()[0]


def num_equal(a, b):
    return (isinstance(a, Num) and isinstance(b, Num)
            and a.value() == b.value())


def compare(report, name, expect, actual, drop_user_id=False):
    if not isinstance(actual, str):
        report.fail(name, "kustomer_request returned %s, not text"
                    % ("NULL" if actual is None else type(actual).__name__))
        return
    if isinstance(expect, Obj) and "error" in expect and "statusCode" in expect:
        compare_error(report, name, expect, actual)
        return
    want = dump(expect, True)
    got = actual
    notes = []
    if drop_user_id:
        # The router's batchedRequest has no userId member; the request
        # envelope of kustomer_request may.  Compare the rest.
        try:
            parsed = parse_json(actual)
        except ValueError as e:
            report.fail(name, "result is not JSON: %s" % e, [actual])
            return
        if isinstance(parsed, Obj) and "userId" in parsed:
            if dump(parsed, False) != actual:
                notes.append("(result not in canonical compact form; "
                             "compared after re-serialising)")
            got = dump(parsed.without("userId"), False)
            notes.append("(top-level userId removed from the result: "
                         "the router's batchedRequest has none)")
    if got == want:
        report.ok(name)
    else:
        report.fail(name, "request differs from expected",
                    text_diff(want, got, report.verbose) + notes)


def compare_error(report, name, expect, actual):
    try:
        got = parse_json(actual)
    except ValueError:
        got = None
    if not isinstance(got, Obj) or "statusCode" not in got or "error" not in got:
        report.fail(name, "expected an error {statusCode, error}, got a "
                    "different result", ["expected: " + dump(expect, True),
                                         "actual:   " + actual])
        return
    problems = []
    if not num_equal(got.get("statusCode"), expect.get("statusCode")):
        problems.append("statusCode: expected %s, actual %s"
                        % (dump(expect.get("statusCode"), True),
                           dump(got.get("statusCode"), True)))
    want_err = expect.get("error")
    got_err = got.get("error")
    if want_err != "*":
        lookup_status = None
        if isinstance(want_err, str):
            try:
                w = parse_json(want_err)
                dr = w.get("destinationResponse") if isinstance(w, Obj) else None
                if isinstance(dr, Obj) and "status" in dr:
                    lookup_status = dr.get("status")
            except ValueError:
                pass
        if lookup_status is not None:
            try:
                g = parse_json(got_err) if isinstance(got_err, str) else None
                dr = g.get("destinationResponse") if isinstance(g, Obj) else None
                gs = dr.get("status") if isinstance(dr, Obj) else None
            except ValueError:
                gs = None
            if not num_equal(gs, lookup_status):
                problems.append("lookup failure status: expected %s, actual "
                                "error %s" % (dump(lookup_status, True),
                                              dump(got_err, True)))
        elif got_err != want_err:
            problems.append("error: expected %s, actual %s"
                            % (dump(want_err, True), dump(got_err, True)))
    if problems:
        report.fail(name, "error differs from expected",
                    problems + ["full actual: " + actual])
    else:
        report.ok(name)


def run_one(report, db, name, event, settings, lookups, expect,
            drop_user_id=False):
    runnable, customer_id = plan_lookups(lookups)
    if not runnable:
        report.skip(name, SKIP_REASON)
        return
    try:
        actual = call_request(db, event, settings, customer_id)
    except sqlite3.Error as e:
        report.fail(name, "SQL error: %s" % e)
        return
    compare(report, name, expect, actual, drop_user_id)


def drop_member(obj, path, key):
    """A copy of obj with the member `key` removed from the object at path."""
    if not path:
        return obj.without(key)
    head = path[0]
    return Obj((k, drop_member(v, path[1:], key) if k == head else v)
               for k, v in obj.items())


# Vectors whose expectation predates a rule of DEVIATIONS.md (they carry no
# "deviation" field but show the behaviour the rule removes).  The expected
# request is corrected by that rule alone, and the check says so.
SUPERSEDED = {
    "identify EU kustomerId externalId -> PUT uses EU endpoint": (
        "D6: no e-mail from context.externalId[0].id",
        lambda e: drop_member(e, ("body", "JSON"), "emails")),
}


def run_processor_file(report, db, path):
    base = os.path.basename(path)
    vectors = load_json(path)
    seen = set()
    for i, v in enumerate(vectors):
        vname = v.get("name") if isinstance(v, Obj) else None
        if not isinstance(vname, str):
            vname = "#%d" % i
        name = "conformance: %s: %s" % (base, vname)
        if name in seen:
            name += " [#%d]" % i
        seen.add(name)
        if not isinstance(v, Obj) or "expect" not in v or "event" not in v:
            report.fail(name, "malformed vector (needs event and expect)")
            continue
        expect = v.get("expect")
        if vname in SUPERSEDED and "deviation" not in v:
            why, fix = SUPERSEDED[vname]
            fixed = fix(expect)
            if dump(fixed, True) == dump(expect, True):
                report.fail(name, "SUPERSEDED entry changes nothing: remove it")
                continue
            expect = fixed
            name += " (expectation corrected by %s)" % why
        run_one(report, db, name, v.get("event"), v.get("settings", Obj([])),
                v.get("lookups"), expect)


def run_router_file(report, db, path):
    base = os.path.basename(path)
    for t, test in enumerate(load_json(path)):
        tname = test.get("name") if isinstance(test, Obj) else None
        if not isinstance(tname, str):
            tname = "#%d" % t
        inputs = test.get("inputs") if isinstance(test, Obj) else None
        expect = test.get("expect") if isinstance(test, Obj) else None
        if not isinstance(inputs, list) or not isinstance(expect, list) \
                or len(inputs) != len(expect):
            report.fail("conformance: %s: %s" % (base, tname),
                        "malformed router test (inputs and expect must be "
                        "lists of the same length)")
            continue
        lookups = test.get("lookups")
        for i, (inp, out) in enumerate(zip(inputs, expect)):
            name = "conformance: %s: %s [%d]" % (base, tname, i)
            event = inp.get("event") if isinstance(inp, Obj) else None
            settings = inp.get("settings") if isinstance(inp, Obj) else None
            if settings is None and isinstance(inp, Obj):
                dest = inp.get("destination")
                settings = dest.get("Config") if isinstance(dest, Obj) else None
            if event is None or not isinstance(out, Obj):
                report.fail(name, "malformed router item")
                continue
            # The router's lookups are shared by the batch: only an identify
            # event can issue them.
            etype = event.get("type") if isinstance(event, Obj) else None
            is_identify = isinstance(etype, str) and etype.lower() == "identify"
            item_lookups = lookups if is_identify else None
            if "batchedRequest" in out:
                want = out.get("batchedRequest")
                if isinstance(want, list):
                    if len(want) != 1:
                        report.skip(name, "batched output of %d requests"
                                    % len(want))
                        continue
                    want = want[0]
                drop = isinstance(want, Obj) and "userId" not in want
                run_one(report, db, name, event, settings or Obj([]),
                        item_lookups, want, drop_user_id=drop)
            elif "error" in out and "statusCode" in out:
                want = Obj([("error", out.get("error")),
                            ("statusCode", out.get("statusCode"))])
                run_one(report, db, name, event, settings or Obj([]),
                        item_lookups, want)
            else:
                report.fail(name, "router item without batchedRequest or "
                            "error")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("so", nargs="?", default=os.environ.get(
        "KUSTOMER_SO", os.path.join(REPO, "dist", "kustomer.so")))
    ap.add_argument("--shared", default=os.path.join(REPO, "..", "shared"))
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="show whole texts on a mismatch")
    opts = ap.parse_args()
    try:
        sys.stdout.reconfigure(line_buffering=True)  # a crash loses nothing
    except AttributeError:
        pass
    faulthandler.enable()
    report = Report(opts.verbose)

    bad = self_test()
    if bad:
        report.fail("conformance: JavaScript number formatting",
                    "self-test failed", bad)
    else:
        report.ok("conformance: JavaScript number formatting")

    conf = os.path.join(opts.shared, "conformance")
    so = os.path.abspath(opts.so)
    try:
        db = sqlite3.connect(":memory:")
        if not hasattr(db, "enable_load_extension"):
            raise sqlite3.Error("this python's sqlite3 module cannot load "
                                "extensions (%s); use /usr/bin/python3"
                                % sys.executable)
        db.enable_load_extension(True)
        db.execute("SELECT load_extension(?, ?)", (so, ENTRY))
        db.enable_load_extension(False)
    except sqlite3.Error as e:
        report.fail("conformance: load extension", "%s: %s" % (so, e))
        print("conformance: 0 vectors matched, 0 skipped")
        return 1
    before = report.matched

    for fname, runner in (("processor.json", run_processor_file),
                          ("edge_cases.json", run_processor_file),
                          ("router.json", run_router_file)):
        path = os.path.join(conf, fname)
        try:
            runner(report, db, path)
        except (OSError, ValueError) as e:
            report.fail("conformance: %s" % fname, "cannot read %s: %s"
                        % (path, e))
        except Exception:  # a bug here must show as a failure, not a crash
            report.fail("conformance: %s" % fname, "internal error",
                        traceback.format_exc().rstrip().split("\n"))

    print("conformance: %d vectors matched, %d skipped"
          % (report.matched - before, report.skipped))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
