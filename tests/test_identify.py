"""Identify against the fake Kustomer's customer schema.

Every trait the mappings read, in odd types and values, alone and in random
mixes, under each mapping and with and without normalizeTraits: the body
kustomer_identify() makes is posted to the fake's POST /v1/customers, and

  - the fake answers 400 exactly when kustomer_check() has an error row for
    the body (the rules of the customer schema),
  - the customer fields the fake names are the ones kustomer_check() names,
  - each error row's path points at a member the event has.

Run with /usr/bin/python3 (extension loading): tests/test_identify.py [SO]
"""
import json
import os
import random
import re
import sys
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ktap  # noqa: E402
from test_network import Fake, connect  # noqa: E402

SO = ktap.so_path(sys.argv, os.path.dirname(HERE))
# valgrind's run takes an even share of the events (KUSTOMER_TEST_SCALE)
SCALE = float(os.environ.get("KUSTOMER_TEST_SCALE", "1"))

ODD = [
    None, "", "x", "female", "Male", " f ", "m", "F", "woman", "other",
    0, 1, -1, 2, 1.5, 1714557600, 1714557600123, -315619200, 1e300,
    True, False, [], ["a"], ["a", 1], [None], {}, {"name": "Acme"},
    {"industry": "x"}, "2024-05-01T12:00:00Z", "2024-05-01", "2024-02-30",
    "2024-13-01T00:00:00Z", "1714557600", "-86400", "yesterday",
    "2024-05-01T24:00:00Z", "2024-05-01T10:00:00+25:00", "0000-01-01",
    "vip,beta", "http://example.com/a.png", "not a uri", "\u00e9\u00e8",
    "x" * 1100, [{"email": "a@b.c", "type": "home"}],
    [{"email": 5, "type": "work"}], [{"email": "a@b.c", "type": "personal"}],
    [{"phone": 5551234, "type": "mobile"}], [{"phone": "5", "type": "cell"}],
    [{"type": "twitter", "username": "u"}], [{"type": "myspace", "username": "u"}],
    [{"type": "twitter"}], [{"username": "u", "type": 3}], ["x"], [5],
    [{"email": "a@b.c", "verified": "yes"}], [{"email": ""}], [{}],
    {"polarity": 1, "confidence": 0.5}, {"polarity": 2}, {"polarity": True},
    {"confidence": "high"}, {"polarity": None},
    {"aStr": "x", "bNum": 1, "cAt": "2024-05-01T00:00:00Z", "dBool": True,
     "eUrl": "http://x", "fId": "abc", "gTxt": "t"},
    {"nosuffix": 1}, {"aStr": 5}, {"bNum": "1"}, {"cAt": "soon"},
    {"dBool": 1}, {"eUrl": "nope"}, {"fId": ""}, {"gTxt": "y" * 1030},
    {"street": "1 Main", "city": "Miami", "state": "FL", "postalCode": 33101,
     "country": "US"},
    {"city": "Miami"}, {"country": "Spain"}, {"zip": "1"},
    [{"url": "http://x", "type": "blog"}], [{"url": 5}], [{"url": "u", "type": "x"}],
    [{"pageId": "p", "userId": "u"}], [{"type": "home", "address": "a"}],
    [{"type": "moon"}],
]

TRAITS = [
    "name", "userName", "username", "company", "createdAt", "lastActivityAt",
    "lastCustomerActivityAt", "lastSeenAt", "importedAt", "avatar", "gender",
    "tags", "emails", "phones", "socials", "dob", "birthday", "customObject",
    "sentiment", "whatsapps", "facebookIds", "instagramIds", "timeZone",
    "defaultLanguage", "rev", "email", "phone", "firstName", "lastName",
    "website", "address", "urls", "locations",
]

SETTINGS = [
    ("rudderstack", {}),
    ("rudderstack+normalize", {"normalizeTraits": True}),
    ("segment", {"traitMapping": "segment"}),
    ("segment+normalize", {"traitMapping": "segment", "normalizeTraits": True}),
]


def events():
    """(label, event): one odd trait each, then random mixes."""
    n = 0
    for t in TRAITS:
        for v in ODD:
            n += 1
            where = "context" if n % 5 == 0 else "traits"
            ev = {"type": "identify", "userId": "u%d" % n}
            if where == "traits":
                ev["traits"] = {t: v}
            else:
                ev["context"] = {"traits": {t: v}}
            yield ("%s=%s" % (t, json.dumps(v)[:30]), ev)
    rnd = random.Random(17)
    for i in range(600):
        traits = {}
        for t in rnd.sample(TRAITS, rnd.randint(2, 8)):
            traits[t] = rnd.choice(ODD)
        ev = {"type": "identify", "userId": rnd.choice(["r%d" % i, i, 7.5, True]),
              "traits": traits}
        if rnd.random() < 0.3:
            ev["context"] = {"locale": rnd.choice(["en-US", 5, None, {}]),
                             "traits": {rnd.choice(TRAITS): rnd.choice(ODD)}}
        yield ("mix %d" % i, ev)


def fake_fields(body):
    """The top-level customer fields a 400 names."""
    out = set()
    for e in body.get("errors", []):
        p = (e.get("source") or {}).get("pointer") or ""
        seg = p.split("/")[1] if p.startswith("/") else ""
        out.add(seg)
    return out


MSG = re.compile(r"^Kustomer rejects the customer: ([A-Za-z]+)")


def post(base, body):
    req = urllib.request.Request(base + "/v1/customers", data=body.encode(),
                                 method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", "Bearer identify-key-5e3cr3t")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def has_path(ev, path):
    """Whether the JSON path ($.a.b[0]."c d") names a member of ev."""
    db_ok = db.execute("select json_type(?, ?) is not null", (json.dumps(ev), path))
    return db_ok.fetchone()[0] == 1


ktap.key("identify-key-5e3cr3t")
fake = Fake()
db = connect(SO)
try:
    fake.reset()
    evs = list(events())
    if SCALE < 1:
        evs = evs[::max(1, int(round(1 / SCALE)))]
    for label, settings in SETTINGS:
        st = json.dumps(settings)
        fake.reset()     # the same externalIds again
        n = nbad = 0
        mismatches = []
        for name, ev in evs:
            text = json.dumps(ev)
            body = db.execute("select kustomer_identify(?, ?)", (text, st)).fetchone()[0]
            rows = db.execute("select path, rule, severity, message from "
                              "kustomer_check(?, ?)", (text, st)).fetchall()
            errs = [r for r in rows if r[2] == "error"]
            status, resp = post(fake.base, body)
            n += 1
            nbad += status == 400
            mine = set()
            for r in errs:
                m = MSG.match(r[3])
                mine.add(m.group(1) if m else "?" + r[1])
            theirs = fake_fields(resp) if status == 400 else set()
            bad_path = [r[0] for r in rows if not has_path(ev, r[0])]
            # 409: the schema passed, the externalId was taken by a mix
            if status not in (200, 201, 400, 409) or mine != theirs or bad_path:
                mismatches.append("%s: fake %d %s, check %s%s; body %s" % (
                    name, status, sorted(theirs), sorted(mine),
                    " paths not in the event %s" % bad_path if bad_path else "",
                    body[:200]))
        ktap.report("identify %s: kustomer_check's errors are the fake's 400s "
                    "(%d bodies, %d rejected)" % (label, n, nbad),
                    not mismatches, "; ".join(mismatches[:6]) +
                    (" (%d in all)" % len(mismatches) if mismatches else ""))
        ktap.report("identify %s: the generated events reach the rules "
                    "(%d of %d rejected)" % (label, nbad, n),
                    nbad > n // 10 and nbad < n, nbad)

    # normalizeTraits repairs: the five bodies the fake rejected by default.
    five = {"gender": "female", "tags": "vip", "createdAt": 1714557600,
            "phone": 5551234, "company": {"name": "Acme"}}
    for t, v in five.items():
        got = {}
        for label, settings in (("default", "{}"), ("normalize", '{"normalizeTraits":true}')):
            ev = json.dumps({"type": "identify", "userId": "n-%s-%s" % (label, t),
                             "traits": {t: v}})
            body = db.execute("select kustomer_identify(?, ?)", (ev, settings)).fetchone()[0]
            got[label] = post(fake.base, body)[0]
        expect_default = 201 if t == "company" else 400
        ktap.report("identify normalizeTraits: %s=%s delivered (default %d, repaired %d)"
                    % (t, json.dumps(v), got["default"], got["normalize"]),
                    got["default"] == expect_default and got["normalize"] == 201, got)
finally:
    db.close()
    fake.stop()
sys.exit(1 if ktap.FAILED else 0)
