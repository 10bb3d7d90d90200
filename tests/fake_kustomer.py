#!/usr/bin/env python3
"""fake_kustomer.py: a local stand-in for Kustomer's REST API, for tests and dry runs.

Python 3 standard library only.  Start it with one command:

    python3 tests/fake_kustomer.py [--port 0] [--host 127.0.0.1] [--port-file FILE]
        [--log FILE] [--lookups FILE] [--api-key KEY] [--rate-limit N]
        [--rate-window SECONDS] [--fail-every N] [--fail-status 503] [--drop-every N]
        [--slow-ms MS] [--slow-every N] [--bulk-delay-polls N] [--seed-customers N]
        [--throttle-every N]

It binds a loopback IPv4 address only (default 127.0.0.1; "localhost" means 127.0.0.1;
anything else is refused with exit status 2), on a free port with --port 0, writes the
port to --port-file (a temporary file renamed into place), prints
"fake-kustomer listening on http://127.0.0.1:PORT" on stdout and serves until
SIGTERM/SIGINT, then exits 0.  Replies are compact JSON (separators "," and ":").
The facts it imitates are in /work/shared/docs/kustomer-api.md.

Shapes chosen where the API doc says [UNCONFIRMED]
---------------------------------------------------
Error body (401, 404, 405, 409, 429, injected faults, validation 400):
    {"errors":[{"status":N,"code":"<snake_case>","title":"<Reason Phrase>"
                [,"detail":"..."][,"source":{"pointer":"/json/pointer"}|{"parameter":"name"}]}]}
  e.g. 401 {"errors":[{"status":401,"code":"unauthorized","title":"Unauthorized"}]}
       404 {"errors":[{"status":404,"code":"not_found","title":"Not Found"}]}
       429 {"errors":[{"status":429,"code":"too_many_requests","title":"Too Many Requests"}]}
       400 {"errors":[{"status":400,"code":"bad_request","title":"Bad Request",
                       "detail":"emails[0].email is required","source":{"pointer":"/emails/0/email"}}]}
  A 400 lists every problem found, one entry each, in body order.
  409 (externalId taken): code "conflict", title "Conflict", pointer "/externalId".

POST /v1/customers/bulk, PUT /v1/customers/bulk -> 201
    {"data":{"type":"bulk","id":"<24 hex>",
             "attributes":{"status":"queued","batches":{"complete":0,"total":T},
                           "createdAt":ISO,"updatedAt":ISO},
             "links":{"self":"/v1/bulk/<id>"}}}
GET /v1/bulk/{id} -> 200, the same document; every GET is one poll.  With
    --bulk-delay-polls N (default 2): polls 1..N-1 answer "running" (batches.complete
    grows in proportion), poll N and later answer "complete".  N=0: the job runs at
    submission and the POST already answers "complete".  Items are applied to the
    store when their batch completes (so a lookup right after the POST misses them,
    as with the real asynchronous API).
GET /v1/bulk/{id}/batches -> 200 {"data":[batch, ...]} with one entry per COMPLETED
    batch (an empty array while nothing is complete), batches of 25 items in input order:
    {"type":"bulk_batch","id":"<24 hex>",
     "attributes":{"successCount":S,"failureCount":F,
                   "objectIds":["<id of each successful item, input order>"],
                   "results":[{"_clientRef":"r1","objectId":"<id>","status":"created"},
                              {"_clientRef":"r2","status":"error","error":"<message>"}]}}
    "results" has one entry per item, input order; "_clientRef" only when the request
    used _clientRef; "objectId" only on success; "error" (a string) only on error.
    POST items give "created" (an externalId already in the store is an "error": no
    upsert); PUT items give "updated" ("error" for a missing or unknown id).
  Request-level 400s: the body is not an array (PUT ?ids=a,b,c takes one object
  instead), 0 or more than 100 items, _clientRef on some items but not all, a
  _clientRef that is not a non-empty string of at most 255 characters, a duplicate
  _clientRef, _clientRef in ?ids= mode.  An invalid item only fails its own result.

Paginated lists: {"data":[...],"meta":{"page","pageSize","total","totalPages"},
    "links":{"self","first","prev","next","last"}}; links are relative paths keeping
    the other query parameters; prev is null on page 1, next null on the last page;
    totalPages = ceil(total / pageSize) (0 when empty; last then points at page 1).
    page must be an integer >= 1 and pageSize 1..100 (search 1..500), else 400 with
    source.parameter.  Search stops at page 100 (400 beyond).  GET lists accept
    sort=asc|desc with order_by=<attribute> (default createdAt).
    POST /v1/customers/search: queryContext customer|conversation (message, company,
    note, user, kobject_* give an empty list; others 400), and/or/not criteria
    {"<ctx>_<snake_attr>":{"<op>":value}} with ops equals, in, contains, gt, gte, lt,
    lte, not_set ("<ctx>_custom_<name>" reads custom.<name>; "<ctx>_id" the id; date
    strings compare as instants, a bare YYYY-MM-DD as midnight UTC), sort
    [{"<ctx>_<attr>":"asc"|"desc"}], idsOnly=true gives {type,id} items.

Tracking: POST /v1/tracking/identityEvent -> 200
    {"data":{"type":"tracking_event","id":"<24 hex>",
             "attributes":{"name":..,"trackingId":..,"sessionId":..}}}
    trackingId and sessionId are generated when absent.  As Kustomer does, an identity
    with externalId or email (or phone) finds, else creates, the customer; an
    identity without them is anonymous and fine.  Meta rules: see validate_event().
    A null meta value is accepted.  POST /v1/tracking/event ({name, meta, trackingId,
    sessionId}) and /v1/tracking/identity answer the same way (types "tracking_event"
    and "tracking_identity").

Customers: POST /v1/customers -> 201, GET/PUT/PATCH/DELETE /v1/customers/{id}
    (PUT ?replace=false and PATCH merge top-level attributes; PUT ?replace=true replaces
    them; DELETE -> 204), GET /v1/customers/email=<v> (case-insensitive, on emails[])
    and /v1/customers/externalId=<v> (exact, on externalId and externalIds[]), the path
    segment percent-decoded ("+" stays "+").  A body sent to /v1 must be labelled
    Content-Type: application/json, else 400.  Unknown top-level customer fields are
    accepted (Kustomer's behaviour is unknown).  Date fields must match the ISO 8601
    regex below AND be a real calendar date/time.

Scripted lookups (--lookups FILE, POST /_fake/lookups): {url: reply} as in
    /work/shared/conformance/lookups.json.  They answer GET (and HEAD) requests whose
    path+query equals the URL's path+query (scheme and host ignored; percent-encoding
    compared after RFC 3986 normalisation), before the store is consulted.  When two
    URLs of one table share a path (e.g. US and EU hosts), the one whose host equals
    the request's Host header wins, else the first in the table.  {status, body}:
    body null -> empty body; a string -> text/plain, raw; anything else -> compact JSON.
    Status 204/304 never carry a body (HTTP forbids it).  {networkError: ...} (any
    value) -> the connection is closed without an answer.  Auth, rate limiting and
    faults apply to scripted paths as to any other request.

Order of checks for every non-control request
---------------------------------------------
 1. the global request counter n is incremented (every request not under /_fake/,
    whatever its outcome: 401s, 404s, 429s, faults and drops all count);
 2. --drop-every D: when n % D == 0 the connection is closed without an answer;
 3. --fail-every F: when n % F == 0 the answer is --fail-status with the error body;
    else --throttle-every T: when n % T == 0 the answer is 429 with
    x-ratelimit-remaining 0 and the reset rate_window seconds ahead (and
    Retry-After: --retry-after's value, when set);
 4. auth: missing/non-Bearer/empty Authorization, or a key other than --api-key -> 401;
 5. rate limit; 6. the endpoint itself.
 --slow-ms MS delays the reply of request n by MS milliseconds when n % --slow-every
 == 0 (--slow-every defaults to 1, i.e. every reply, once --slow-ms is set).

Rate limiting (--rate-limit N, --rate-window S, default 60; 0 = off, no headers)
---------------------------------------------------------------------------------
 A fixed window opens at the first counted request after the previous one ended and
 lasts S seconds.  Only ACCEPTED requests use the budget: a request that passed steps
 2-4 and is not itself answered 429 (Kustomer counts accepted requests; rejected 429s,
 401s, injected faults and drops do not).  Beyond N accepted requests in the window,
 answers are 429 until the window ends.  Every non-control answer carries
 x-ratelimit-limit: N, x-ratelimit-remaining: N - used (>= 0) and x-ratelimit-reset:
 the window's end in UTC epoch seconds (an integer, rounded up).  A bulk request is
 one unit, as in Kustomer.

Recording
---------
 Every non-control request (including dropped ones) becomes one JSON object, appended
 to the in-memory record and, with --log FILE, as one line to FILE (flushed per line):
   {"seq":n,"time":"<ISO UTC>","ts":<epoch float>,"method":..,"path":"<path?query>",
    "headers":{lower-case name: value},"body":"<text>","status":<int or null if dropped>,
    "dropped":bool,"fault":null|"drop"|"fail"|"network_error","scripted":bool,
    "slow":bool,"peer":<the client's port: one per connection>}
 It is recorded before the reply is written.

Control API (/_fake/..., no auth, never counted, rate-limited, faulted or recorded)
----------------------------------------------------------------------------------
 GET  /_fake/health     {"ok":true,"port":P,"requests":n}
 GET  /_fake/requests   the record, a JSON array
 POST /_fake/reset      clears the record (and truncates --log FILE), the request
                        counter, the rate window, bulk jobs, tracking events; the store
                        goes back to its seeded start.  Config and lookups are kept.
 GET  /_fake/config     current settings
 POST /_fake/config     {rate_limit, rate_window, fail_every, fail_status, drop_every,
                        slow_ms, slow_every, api_key (string or null = any key),
                        bulk_delay_polls, throttle_every, retry_after (string or
                        null)}: any subset; unknown keys -> 400.  Answers
                        the resulting settings.
 GET  /_fake/lookups    scripted lookups;  POST /_fake/lookups replaces them.
 GET  /_fake/customers  the store, a JSON array of {type,id,attributes}
 GET  /_fake/events     tracking events received
"""

import argparse
import copy
import datetime
import hashlib
import http
import ipaddress
import json
import math
import os
import re
import secrets
import signal
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

# RudderStack's ISO_8601 regex (rudder-transformer kustomer/util.js), /i, whole string.
ISO_8601 = re.compile(
    r"\d{4}(-\d\d(-\d\d(T\d\d:\d\d(:\d\d)?(\.\d+)?(([+-]\d\d:\d\d)|Z)?)?)?)?",
    re.I | re.A)
EVENT_NAME = re.compile(r"[A-Za-z]\S*")
URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")

BULK_MAX = 100
BULK_BATCH_SIZE = 25
CLIENT_REF_MAX = 255
LIST_MAX_PAGE_SIZE = 100
SEARCH_MAX_PAGE_SIZE = 500
SEARCH_MAX_PAGE = 100
CUSTOM_MAX_LEN = 1024

CUSTOM_SUFFIXES = ("Str", "Txt", "Num", "At", "Bool", "Url", "Id")
STRING_FIELDS = ("name", "company", "externalId", "username", "avatarUrl", "locale",
                 "timeZone", "defaultLang")
DATE_FIELDS = ("signedUpAt", "lastActivityAt", "lastCustomerActivityAt", "lastSeenAt",
               "birthdayAt", "importedAt", "createdAt")
EMAIL_TYPES = ("home", "work", "other")
PHONE_TYPES = ("mobile", "home", "work", "fax", "other")
# array field -> (required string fields of each item, allowed `type` values or None)
ARRAY_SPECS = {
    "emails": (("email",), EMAIL_TYPES),
    "sharedEmails": (("email",), EMAIL_TYPES),
    "phones": (("phone",), PHONE_TYPES),
    "sharedPhones": (("phone",), PHONE_TYPES),
    "whatsapps": (("phone",), ("mobile",)),
    "urls": (("url",), ("website", "blog", "other")),
    "externalIds": (("externalId",), None),
    "sharedExternalIds": (("externalId",), None),
    "socials": (("type", "username"), ("twitter", "facebook", "instagram", "linkedin",
                                       "pinterest")),
    "sharedSocials": (("type", "username"), ("twitter", "facebook", "instagram",
                                             "linkedin", "pinterest")),
    "locations": ((), EMAIL_TYPES),
    "facebookIds": ((), None),
    "instagramIds": ((), None),
}
SEARCH_CONTEXTS = ("customer", "conversation")
SEARCH_EMPTY_CONTEXTS = ("message", "company", "note", "user")
SEARCH_OPS = ("equals", "in", "contains", "gt", "gte", "lt", "lte", "not_set")
CONFIG_KEYS = ("rate_limit", "rate_window", "fail_every", "fail_status", "drop_every",
               "slow_ms", "slow_every", "api_key", "bulk_delay_polls", "throttle_every",
               "retry_after")

DROP = object()   # a route's answer meaning: close the connection, answer nothing


# ---------------------------------------------------------------------------- helpers

def cjson(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def now_iso(t=None):
    if t is None:
        t = time.time()
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)


_id_lock = threading.Lock()
_id_counter = [secrets.randbelow(1 << 24)]


def new_id():
    """A 24-hex, Mongo ObjectId-like id: seconds, random, counter."""
    with _id_lock:
        _id_counter[0] = (_id_counter[0] + 1) & 0xFFFFFF
        c = _id_counter[0]
    return "%08x%s%06x" % (int(time.time()) & 0xFFFFFFFF, secrets.token_hex(5), c)


def seed_id(kind, *parts):
    return hashlib.md5(("%s-%s" % (kind, "-".join(map(str, parts)))).encode()).hexdigest()[:24]


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def status_code_name(status):
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        return "error", "Error"
    code = re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")
    return code, phrase


def error_obj(status, detail=None, source=None, code=None, title=None):
    c, t = status_code_name(status)
    e = {"status": status, "code": code or c, "title": title or t}
    if detail is not None:
        e["detail"] = detail
    if source is not None:
        e["source"] = source
    return e


def error_body(status, detail=None, source=None, code=None, title=None):
    return {"errors": [error_obj(status, detail, source, code, title)]}


def pointer(parts):
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def dotted(parts):
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += "[%d]" % p
        else:
            out += ("." if out else "") + str(p)
    return out or "body"


def iso_date_ok(s):
    """RudderStack's ISO 8601 shape and a real calendar date/time."""
    if not isinstance(s, str) or not ISO_8601.fullmatch(s):
        return False
    return parse_iso(s) is not None


def parse_iso(s):
    """ISO 8601 (the ISO_8601 shapes) -> aware datetime, or None."""
    if not isinstance(s, str):
        return None
    m = re.fullmatch(r"(\d{4})(?:-(\d\d)(?:-(\d\d)(?:[Tt](\d\d):(\d\d)(?::(\d\d))?(?:\.(\d+))?"
                     r"([Zz]|[+-]\d\d:\d\d)?)?)?)?", s, re.A)
    if not m:
        return None
    y, mo, d, h, mi, se, frac, tz = m.groups()
    try:
        tzinfo = datetime.timezone.utc
        if tz and tz not in ("Z", "z"):
            sign = 1 if tz[0] == "+" else -1
            th, tm = int(tz[1:3]), int(tz[4:6])
            if th > 23 or tm > 59:
                return None
            tzinfo = datetime.timezone(sign * datetime.timedelta(hours=th, minutes=tm))
        us = int((frac or "0")[:6].ljust(6, "0"))
        return datetime.datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0),
                                 int(se or 0), us, tzinfo)
    except ValueError:
        return None


class Errors:
    def __init__(self):
        self.items = []

    def add(self, parts, detail):
        self.items.append((pointer(parts), detail))

    def __bool__(self):
        return bool(self.items)

    def body(self):
        return {"errors": [error_obj(400, d, {"pointer": p}) for p, d in self.items]}

    def text(self):
        return "; ".join(d for _, d in self.items)


def reject_constant(name):
    raise ValueError("invalid JSON value %s" % name)


def parse_json(text):
    return json.loads(text, parse_constant=reject_constant)


# ------------------------------------------------------------------------- validation

def validate_custom(v, parts, errs):
    if v is None:
        return
    if not isinstance(v, dict):
        errs.add(parts, "%s must be an object" % dotted(parts))
        return
    for key, val in v.items():
        p = parts + (key,)
        suffix = next((s for s in CUSTOM_SUFFIXES if key.endswith(s) and len(key) > len(s)),
                      None)
        if suffix is None:
            errs.add(p, 'bad custom attribute suffix: "%s" must end in one of %s'
                     % (key, ", ".join(CUSTOM_SUFFIXES)))
            continue
        if val is None:
            continue
        name = dotted(p)
        if suffix in ("Str", "Txt"):
            if not isinstance(val, str):
                errs.add(p, "%s must be a string" % name)
            elif len(val) > CUSTOM_MAX_LEN:
                errs.add(p, "%s must be at most %d characters" % (name, CUSTOM_MAX_LEN))
        elif suffix == "Num":
            if not is_num(val):
                errs.add(p, "%s must be a number" % name)
        elif suffix == "At":
            if not iso_date_ok(val):
                errs.add(p, "%s must be an ISO 8601 date-time string" % name)
        elif suffix == "Bool":
            if not isinstance(val, bool):
                errs.add(p, "%s must be a boolean" % name)
        elif suffix == "Url":
            if not isinstance(val, str) or not URI_RE.fullmatch(val):
                errs.add(p, "%s must be a URI" % name)
        elif suffix == "Id":
            if not isinstance(val, str) or not val:
                errs.add(p, "%s must be an object id string" % name)


def validate_array(field, v, parts, errs):
    required, types = ARRAY_SPECS[field]
    if v is None:
        return
    if not isinstance(v, list):
        errs.add(parts, "%s must be an array" % dotted(parts))
        return
    for i, item in enumerate(v):
        ip = parts + (i,)
        if not isinstance(item, dict):
            errs.add(ip, "%s must be an object" % dotted(ip))
            continue
        for r in required:
            rv = item.get(r)
            if rv is None or rv == "":
                errs.add(ip + (r,), "%s is required" % dotted(ip + (r,)))
            elif not isinstance(rv, str):
                errs.add(ip + (r,), "%s must be a string" % dotted(ip + (r,)))
        t = item.get("type")
        if types is not None and t is not None and "type" not in required and t not in types:
            errs.add(ip + ("type",), "%s must be one of [%s]" % (dotted(ip + ("type",)),
                                                                 ", ".join(types)))
        if types is not None and "type" in required and isinstance(t, str) and t \
                and t not in types:
            errs.add(ip + ("type",), "%s must be one of [%s]" % (dotted(ip + ("type",)),
                                                                 ", ".join(types)))
        if "verified" in item and item["verified"] is not None \
                and not isinstance(item["verified"], bool):
            errs.add(ip + ("verified",), "%s must be a boolean" % dotted(ip + ("verified",)))


def validate_customer(body, errs, parts=()):
    """Kustomer's create/update schema (CreateCustomerData), as far as it is known."""
    if not isinstance(body, dict):
        errs.add(parts, "%s must be a JSON object" % ("customer" if parts else "body"))
        return
    for k, v in body.items():
        p = parts + (k,)
        if k in STRING_FIELDS:
            if v is not None and not isinstance(v, str):
                errs.add(p, "%s must be a string or null" % dotted(p))
        elif k in DATE_FIELDS:
            if v is not None and not iso_date_ok(v):
                errs.add(p, "%s must be an ISO 8601 date-time string or null" % dotted(p))
        elif k == "gender":
            if v is not None and v not in ("m", "f"):
                errs.add(p, "%s must be one of [m, f]" % dotted(p))
        elif k == "tags":
            if v is not None and (not isinstance(v, list)
                                  or not all(isinstance(t, str) for t in v)):
                errs.add(p, "%s must be an array of strings" % dotted(p))
        elif k in ARRAY_SPECS:
            validate_array(k, v, p, errs)
        elif k == "custom":
            validate_custom(v, p, errs)
        elif k == "sentiment":
            if v is None:
                continue
            if not isinstance(v, dict):
                errs.add(p, "%s must be an object" % dotted(p))
                continue
            if "polarity" in v and v["polarity"] not in (-1, 0, 1) or \
                    isinstance(v.get("polarity"), bool):
                errs.add(p + ("polarity",), "%s must be one of [-1, 0, 1]"
                         % dotted(p + ("polarity",)))
            if "confidence" in v and not is_num(v["confidence"]):
                errs.add(p + ("confidence",), "%s must be a number"
                         % dotted(p + ("confidence",)))
        elif k == "rev":
            if v is not None and not is_num(v):
                errs.add(p, "%s must be a number" % dotted(p))


IDENTITY_STRINGS = ("email", "phone", "externalId", "name", "company", "username", "locale",
                    "timeZone", "trackingId", "sessionId")


def validate_identity(identity, parts, errs):
    if not isinstance(identity, dict):
        errs.add(parts, "%s must be an object" % dotted(parts))
        return
    for k, v in identity.items():
        p = parts + (k,)
        if k in IDENTITY_STRINGS:
            if v is not None and not isinstance(v, str):
                errs.add(p, "%s must be a string or null" % dotted(p))
        elif k in ("signedUpAt", "birthdayAt"):
            if v is not None and not iso_date_ok(v):
                errs.add(p, "%s must be an ISO 8601 date-time string or null" % dotted(p))
        elif k == "gender":
            if v is not None and v not in ("m", "f"):
                errs.add(p, "%s must be one of [m, f]" % dotted(p))
        elif k == "remember":
            if v is not None and not isinstance(v, bool):
                errs.add(p, "%s must be a boolean" % dotted(p))
        elif k == "tags":
            if v is not None and (not isinstance(v, list)
                                  or not all(isinstance(t, str) for t in v)):
                errs.add(p, "%s must be an array of strings" % dotted(p))
        elif k == "custom":
            validate_custom(v, p, errs)
        elif k == "location":
            if v is not None and not isinstance(v, dict):
                errs.add(p, "%s must be an object" % dotted(p))


def validate_event(event, parts, errs):
    """Kustomer tracking event: name must start with a letter, no whitespace; meta flat:
    numbers only under keys ending in Num, no strings under Num keys, strings under At
    keys must match ISO_8601, no booleans, objects or arrays (null is accepted)."""
    if event is None:
        errs.add(parts, "%s is required" % dotted(parts))
        return
    if not isinstance(event, dict):
        errs.add(parts, "%s must be an object" % dotted(parts))
        return
    name = event.get("name")
    np_ = parts + ("name",)
    if name is None:
        errs.add(np_, "%s is required" % dotted(np_))
    elif not isinstance(name, str):
        errs.add(np_, "%s must be a string" % dotted(np_))
    elif not EVENT_NAME.fullmatch(name):
        errs.add(np_, "%s must start with a letter and contain no whitespace" % dotted(np_))
    # RudderStack's SDKs send context.sessionId as a number, and RudderStack
    # passes it through; whether Kustomer insists on strings is not
    # documented, so numbers are accepted too.
    for k in ("trackingId", "sessionId"):
        v = event.get(k)
        if v is not None and (not isinstance(v, (str, int, float))
                              or isinstance(v, bool)):
            errs.add(parts + (k,), "%s must be a string or a number"
                     % dotted(parts + (k,)))
    meta = event.get("meta")
    if meta is None:
        return
    mp = parts + ("meta",)
    if not isinstance(meta, dict):
        errs.add(mp, "%s must be an object" % dotted(mp))
        return
    for k, v in meta.items():
        p = mp + (k,)
        name = dotted(mp) + "." + k
        if isinstance(v, bool):
            errs.add(p, "%s: boolean values are not allowed in meta" % name)
        elif isinstance(v, (dict, list)):
            errs.add(p, "%s: meta values must be flat (string or number), not %s"
                     % (name, "an object" if isinstance(v, dict) else "an array"))
        elif is_num(v):
            if not k.endswith("Num"):
                errs.add(p, '%s: a number needs a key ending in "Num"' % name)
        elif isinstance(v, str):
            if k.endswith("Num"):
                errs.add(p, '%s: a key ending in "Num" needs a number' % name)
            elif k.endswith("At") and not ISO_8601.fullmatch(v):
                errs.add(p, '%s: a key ending in "At" needs an ISO 8601 date-time string'
                         % name)


# ---------------------------------------------------------------------------- lookups

UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def norm_target(pq):
    """RFC 3986 normalisation of a path+query: decode %XX of unreserved characters,
    upper-case the hex digits of the others."""
    def fix(m):
        ch = chr(int(m.group(1), 16))
        return ch if ch in UNRESERVED else "%" + m.group(1).upper()
    return re.sub(r"%([0-9A-Fa-f]{2})", fix, pq)


def split_target(url):
    """'https://host/p?q' or '/p?q' -> (host or None, '/p?q')."""
    s = urlsplit(url)
    path = s.path or "/"
    return (s.hostname, path + ("?" + s.query if s.query else ""))


def compile_lookups(table):
    """{url: reply} -> {normalised path+query: [(host, reply), ...]}; raises ValueError."""
    if not isinstance(table, dict):
        raise ValueError("lookups must be a JSON object {url: reply}")
    out = {}
    for url, reply in table.items():
        if not isinstance(reply, dict):
            raise ValueError("lookup %r: reply must be an object" % url)
        if "networkError" not in reply:
            st = reply.get("status")
            if not isinstance(st, int) or isinstance(st, bool) or not 100 <= st <= 599:
                raise ValueError("lookup %r: status must be an integer 100..599" % url)
        host, pq = split_target(url)
        if not pq.startswith("/"):
            raise ValueError("lookup %r: not a URL or absolute path" % url)
        out.setdefault(norm_target(pq), []).append((host, reply))
    return out


# ------------------------------------------------------------------------------ state

class State:
    def __init__(self, args):
        self.lock = threading.RLock()
        self.config = {
            "rate_limit": args.rate_limit, "rate_window": args.rate_window,
            "fail_every": args.fail_every, "fail_status": args.fail_status,
            "drop_every": args.drop_every, "slow_ms": args.slow_ms,
            "slow_every": args.slow_every, "api_key": args.api_key,
            "bulk_delay_polls": args.bulk_delay_polls,
            "throttle_every": args.throttle_every,
            "retry_after": args.retry_after,
        }
        self.seed_n = args.seed_customers
        self.lookups_raw = {}
        self.lookups = {}
        self.log_path = args.log
        self.log_file = open(args.log, "a", encoding="utf-8") if args.log else None
        self.port = None
        self.reset_locked()

    # -- lifecycle
    def reset_locked(self):
        self.requests = []
        self.counter = 0
        self.window_start = None
        self.window_used = 0
        self.customers = {}        # id -> {"id", "attributes"}, insertion ordered
        self.conversations = []    # [{"id", "attributes", "customerId"}]
        self.bulk = {}
        self.events = []
        self.seed()
        if self.log_file is not None:
            self.log_file.seek(0)
            self.log_file.truncate()
            self.log_file.flush()

    def seed(self):
        base = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc).timestamp()
        tiers = ("bronze", "silver", "gold")
        statuses = ("open", "done", "snoozed")
        for i in range(1, self.seed_n + 1):
            cid = seed_id("customer", i)
            created = base + i * 3600
            updated = created + ((i * 7919) % 2000) * 60
            attrs = {
                "name": "Seed Customer %d" % i,
                "displayName": "Seed Customer %d" % i,
                "externalId": "seed-%d" % i,
                "externalIds": [{"externalId": "seed-%d" % i, "verified": True}],
                "emails": [{"email": "seed%d@example.com" % i, "type": "home",
                            "verified": False}],
                "phones": [], "urls": [], "socials": [], "locations": [], "tags": [],
                "custom": {"tierStr": tiers[i % 3], "ordersNum": i % 7},
                "createdAt": now_iso(created), "updatedAt": now_iso(updated),
                "modifiedAt": now_iso(updated), "rev": 1,
            }
            self.customers[cid] = {"id": cid, "attributes": attrs}
            for j in range(2):
                vc = created + (j + 1) * 1800
                vu = vc + ((i * 31 + j * 17) % 3000) * 60
                self.conversations.append({
                    "id": seed_id("conversation", i, j),
                    "customerId": cid,
                    "attributes": {
                        "name": "Seed conversation %d.%d" % (i, j + 1),
                        "status": statuses[(i + j) % 3],
                        "priority": 1 + (i + j) % 5,
                        "messageCount": 1 + (i * 3 + j) % 9,
                        "channels": ["email"],
                        "direction": "in",
                        "createdAt": now_iso(vc), "updatedAt": now_iso(vu),
                        "modifiedAt": now_iso(vu), "lastActivityAt": now_iso(vu),
                    },
                })

    # -- recording
    def record(self, rec):
        with self.lock:
            self.requests.append(rec)
            if self.log_file is not None:
                self.log_file.write(json.dumps(rec, ensure_ascii=False) + "\n")
                self.log_file.flush()

    # -- rate limiting (call with the lock held)
    def _roll_window(self, now):
        w = float(self.config["rate_window"])
        if self.window_start is None or now >= self.window_start + w:
            self.window_start = now
            self.window_used = 0

    def rate_headers(self, now):
        limit = self.config["rate_limit"]
        if not limit:
            return []
        self._roll_window(now)
        return [("x-ratelimit-limit", str(limit)),
                ("x-ratelimit-remaining", str(max(0, limit - self.window_used))),
                ("x-ratelimit-reset", self.reset_text(now))]

    def reset_text(self, now):
        """x-ratelimit-reset: the window's end in whole epoch seconds, as
        Kustomer sends it; a window compressed below 10 s keeps the
        fraction, which rounding would otherwise mostly take away."""
        window = float(self.config["rate_window"])
        if self.config["rate_limit"]:
            self._roll_window(now)
            end = self.window_start + window
        else:
            end = now + window
        return "%d" % math.ceil(end) if window >= 10 else "%.3f" % end

    def rate_take(self, now):
        """-> True when the request is accepted (and uses one unit)."""
        limit = self.config["rate_limit"]
        if not limit:
            return True
        self._roll_window(now)
        if self.window_used >= limit:
            return False
        self.window_used += 1
        return True

    # -- customers (call with the lock held)
    def customer_doc(self, c):
        return {"type": "customer", "id": c["id"], "attributes": c["attributes"],
                "links": {"self": "/v1/customers/%s" % c["id"]}}

    def find_by_email(self, email):
        e = email.lower()
        for c in self.customers.values():
            for item in c["attributes"].get("emails") or []:
                if isinstance(item, dict) and isinstance(item.get("email"), str) \
                        and item["email"].lower() == e:
                    return c
        return None

    def find_by_external_id(self, xid):
        for c in self.customers.values():
            a = c["attributes"]
            if a.get("externalId") == xid:
                return c
            for item in a.get("externalIds") or []:
                if isinstance(item, dict) and item.get("externalId") == xid:
                    return c
        return None

    def find_by_phone(self, phone):
        for c in self.customers.values():
            for item in c["attributes"].get("phones") or []:
                if isinstance(item, dict) and item.get("phone") == phone:
                    return c
        return None

    def external_id_taken(self, xid, except_id=None):
        if not isinstance(xid, str):
            return False
        c = self.find_by_external_id(xid)
        return c is not None and c["id"] != except_id

    @staticmethod
    def display_name(a):
        if a.get("name"):
            return a["name"]
        for item in a.get("emails") or []:
            if isinstance(item, dict) and item.get("email"):
                return item["email"]
        return a.get("externalId") or "Unknown"

    def create_customer(self, body):
        t = time.time()
        attrs = {}
        for k, v in body.items():
            if k in ("id", "_clientRef"):
                continue
            attrs[k] = copy.deepcopy(v)
        for arr in ("emails", "phones", "urls", "socials", "locations", "tags"):
            if attrs.get(arr) is None:
                attrs[arr] = []
        attrs["displayName"] = self.display_name(attrs)
        if not attrs.get("createdAt"):
            attrs["createdAt"] = now_iso(t)
        attrs["updatedAt"] = attrs["modifiedAt"] = now_iso(t)
        attrs["rev"] = 1
        cid = new_id()
        c = {"id": cid, "attributes": attrs}
        self.customers[cid] = c
        return c

    def update_customer(self, c, body, replace=False):
        t = time.time()
        old = c["attributes"]
        if replace:
            attrs = {"createdAt": old.get("createdAt")}
        else:
            attrs = old
        for k, v in body.items():
            if k in ("id", "_clientRef", "createdAt"):
                continue
            attrs[k] = copy.deepcopy(v)
        for arr in ("emails", "phones", "urls", "socials", "locations", "tags"):
            if attrs.get(arr) is None:
                attrs[arr] = []
        attrs["displayName"] = self.display_name(attrs)
        attrs["updatedAt"] = attrs["modifiedAt"] = now_iso(t)
        attrs["rev"] = (old.get("rev") or 0) + 1 if is_num(old.get("rev")) else 1
        c["attributes"] = attrs
        return c


# ------------------------------------------------------------------------------- pages

def page_params(query, max_size, default_size=100):
    """-> (page, size, None) or (None, None, error reply)."""
    vals = {}
    for name, default, hi in (("page", 1, None), ("pageSize", default_size, max_size)):
        raw = query.get(name)
        if raw is None:
            vals[name] = default
            continue
        if not re.fullmatch(r"[0-9]+", raw) or int(raw) < 1 or (hi and int(raw) > hi):
            rng = "an integer >= 1" if hi is None else "an integer from 1 to %d" % hi
            return None, None, (400, error_body(400, "%s must be %s" % (name, rng),
                                                {"parameter": name}))
        vals[name] = int(raw)
    return vals["page"], vals["pageSize"], None


def paginate(items, path, qpairs, page, size):
    total = len(items)
    total_pages = (total + size - 1) // size
    data = items[(page - 1) * size: page * size]

    def link(p):
        pairs = [(k, v) for k, v in qpairs if k not in ("page", "pageSize")]
        pairs += [("page", str(p)), ("pageSize", str(size))]
        return path + "?" + urlencode(pairs)

    last = max(1, total_pages)
    return {
        "data": data,
        "meta": {"page": page, "pageSize": size, "total": total, "totalPages": total_pages},
        "links": {
            "self": link(page),
            "first": link(1),
            "prev": link(page - 1) if page > 1 else None,
            "next": link(page + 1) if page < total_pages else None,
            "last": link(last),
        },
    }


def sort_items(items, keyfunc, desc):
    present = [x for x in items if keyfunc(x) is not None]
    missing = [x for x in items if keyfunc(x) is None]

    def k(x):
        v = keyfunc(x)
        d = parse_iso(v) if isinstance(v, str) else None
        return (0, d.timestamp(), "") if d else ((0, v, "") if is_num(v) else (1, 0, str(v)))
    present.sort(key=k, reverse=desc)
    return present + missing


def snake_to_camel(s):
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), s)


def search_value(doc, ctx, key):
    field = key[len(ctx) + 1:]
    if field == "id":
        return doc["id"]
    attrs = doc["attributes"]
    if field.startswith("custom_"):
        return (attrs.get("custom") or {}).get(field[len("custom_"):])
    return attrs.get(snake_to_camel(field))


def _cmp_norm(v):
    if isinstance(v, str):
        d = parse_iso(v)
        if d is not None and re.match(r"\d{4}-\d\d", v):
            return d
    return v


def op_match(av, op, val):
    if op == "not_set":
        return (av is None or av == "" or av == []) == bool(val)
    if av is None:
        return False
    a, b = _cmp_norm(av), _cmp_norm(val)
    try:
        if op == "equals":
            if isinstance(av, list):
                return val in av
            if isinstance(a, str) and isinstance(b, str):
                return a.lower() == b.lower()
            return a == b
        if op == "in":
            return isinstance(val, list) and any(op_match(av, "equals", x) for x in val)
        if op == "contains":
            if isinstance(av, list):
                return val in av
            return isinstance(av, str) and isinstance(val, str) and val.lower() in av.lower()
        if op == "gt":
            return a > b
        if op == "gte":
            return a >= b
        if op == "lt":
            return a < b
        if op == "lte":
            return a <= b
    except TypeError:
        return False
    return False


def check_criteria(crits, ctx, parts, errs):
    if isinstance(crits, dict):
        crits = [crits]
    if not isinstance(crits, list):
        errs.add(parts, "%s must be an array of criteria" % dotted(parts))
        return
    for i, c in enumerate(crits):
        cp = parts + (i,)
        if not isinstance(c, dict) or not c:
            errs.add(cp, "%s must be an object {attribute: {operator: value}}" % dotted(cp))
            continue
        for key, cond in c.items():
            kp = cp + (key,)
            if not key.startswith(ctx + "_"):
                errs.add(kp, 'unknown attribute "%s" for queryContext "%s"' % (key, ctx))
                continue
            if not isinstance(cond, dict) or not cond:
                errs.add(kp, "%s must be an object {operator: value}" % dotted(kp))
                continue
            for op in cond:
                if op not in SEARCH_OPS:
                    errs.add(kp + (op,), 'unknown operator "%s"' % op)


def criteria_match(doc, ctx, crits, mode):
    if isinstance(crits, dict):
        crits = [crits]
    results = []
    for c in crits:
        ok = all(op_match(search_value(doc, ctx, key), op, val)
                 for key, cond in c.items() for op, val in cond.items())
        results.append(ok)
    if mode == "and":
        return all(results)
    return any(results)


# ----------------------------------------------------------------------------- server

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm the
    # second waits for the client's delayed ACK, 40 ms per reply.
    disable_nagle_algorithm = True
    server_version = "fake-kustomer/1"
    timeout = 120
    state = None   # set in main()

    def log_message(self, fmt, *args):   # quiet
        pass

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    # -- I/O
    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(n) if n else b""

    def _write(self, status, payload, ctype, headers=()):
        self.send_response(status)
        if status in (204, 304) or 100 <= status < 200:
            payload = b""
        else:
            if ctype:
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()

    def _write_json(self, status, obj, headers=()):
        data = b"" if obj is None else cjson(obj).encode("utf-8")
        self._write(status, data, "application/json; charset=utf-8" if obj is not None
                    else None, headers)

    # -- main entry
    def _handle(self):
        st = self.state
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._write_json(400, error_body(400, "malformed request body"))
            return
        target = self.path
        if not target.startswith("/"):      # absolute-form request target
            _, target = split_target(target)
        split = urlsplit(target)
        path = split.path
        if path == "/_fake" or path.startswith("/_fake/"):
            try:
                status, obj = self._control(path, body)
            except Exception:                # noqa: BLE001
                traceback.print_exc()
                status, obj = 500, error_body(500, "internal error in fake control API")
            self._write_json(status, obj)
            return

        t = time.time()
        text = body.decode("utf-8", errors="replace")
        hdrs = {}
        for k, v in self.headers.items():
            k = k.lower()
            hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
        with st.lock:
            st.counter += 1
            n = st.counter
            cfg = dict(st.config)
        rec = {"seq": n, "time": now_iso(t), "ts": t, "method": self.command,
               "path": target, "headers": hdrs, "body": text, "status": None,
               "dropped": False, "fault": None, "scripted": False, "slow": False,
               "peer": self.client_address[1]}

        if cfg["drop_every"] and n % cfg["drop_every"] == 0:
            rec.update(dropped=True, fault="drop")
            st.record(rec)
            self.close_connection = True
            return

        slow = bool(cfg["slow_ms"]) and n % (cfg["slow_every"] or 1) == 0
        rec["slow"] = slow
        reply_headers = []
        ctype = "application/json; charset=utf-8"
        try:
            if cfg["fail_every"] and n % cfg["fail_every"] == 0:
                status = cfg["fail_status"]
                rec["fault"] = "fail"
                payload = cjson(error_body(status)).encode()
                with st.lock:
                    reply_headers = st.rate_headers(t)
            elif cfg["throttle_every"] and n % cfg["throttle_every"] == 0:
                # As if other clients had used up the org's budget: a 429
                # saying so, with the window's reset.
                status = 429
                rec["fault"] = "throttle"
                payload = cjson(error_body(429)).encode()
                with st.lock:
                    reset = st.reset_text(t)
                reply_headers = [("x-ratelimit-limit", str(cfg["rate_limit"] or 0)),
                                 ("x-ratelimit-remaining", "0"),
                                 ("x-ratelimit-reset", reset)]
                if cfg["retry_after"] is not None:
                    reply_headers.append(("Retry-After", cfg["retry_after"]))
            elif not self._authorized(hdrs.get("authorization"), cfg["api_key"]):
                status, payload = 401, cjson(error_body(401)).encode()
                with st.lock:
                    reply_headers = st.rate_headers(t)
            else:
                with st.lock:
                    accepted = st.rate_take(t)
                    reply_headers = st.rate_headers(t)
                if not accepted:
                    status, payload = 429, cjson(error_body(429)).encode()
                else:
                    with st.lock:
                        res = self._route(split, body, hdrs, rec)
                    if res is DROP:
                        rec.update(dropped=True, fault="network_error")
                        st.record(rec)
                        self.close_connection = True
                        return
                    status, payload, ctype = res
        except Exception:                    # noqa: BLE001
            traceback.print_exc()
            status = 500
            payload = cjson(error_body(500, "internal error in fake-kustomer")).encode()
            ctype = "application/json; charset=utf-8"
        rec["status"] = status
        st.record(rec)
        if slow:
            time.sleep(cfg["slow_ms"] / 1000.0)
        self._write(status, payload, ctype, reply_headers)

    @staticmethod
    def _authorized(value, key):
        if not value:
            return False
        parts = value.strip().split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "bearer" or not parts[1].strip():
            return False
        return key is None or parts[1].strip() == key

    # -- control API
    def _control(self, path, body):
        st = self.state
        method = self.command
        name = path[len("/_fake/"):].strip("/") if path.startswith("/_fake/") else ""
        with st.lock:
            if name == "health" and method in ("GET", "HEAD"):
                return 200, {"ok": True, "port": st.port, "requests": st.counter}
            if name == "requests" and method in ("GET", "HEAD"):
                return 200, list(st.requests)
            if name == "customers" and method in ("GET", "HEAD"):
                return 200, [st.customer_doc(c) for c in st.customers.values()]
            if name == "events" and method in ("GET", "HEAD"):
                return 200, list(st.events)
            if name == "config" and method in ("GET", "HEAD"):
                return 200, dict(st.config)
            if name == "lookups" and method in ("GET", "HEAD"):
                return 200, st.lookups_raw
            if name == "reset" and method == "POST":
                st.reset_locked()
                return 200, {"ok": True}
            if name in ("config", "lookups") and method == "POST":
                try:
                    obj = parse_json(body.decode("utf-8")) if body else None
                except ValueError as e:
                    return 400, error_body(400, "invalid JSON: %s" % e, {"pointer": ""})
                if name == "lookups":
                    try:
                        st.lookups = compile_lookups(obj)
                    except ValueError as e:
                        return 400, error_body(400, str(e), {"pointer": ""})
                    st.lookups_raw = obj
                    return 200, {"ok": True, "count": len(obj)}
                err = apply_config(st.config, obj)
                if err:
                    return 400, error_body(400, err, {"pointer": ""})
                return 200, dict(st.config)
            if name in ("health", "requests", "customers", "events", "config", "lookups",
                        "reset"):
                return 405, error_body(405)
            return 404, error_body(404)

    # -- API routes (called with the lock held) -> (status, bytes, ctype) or DROP
    def _route(self, split, body, hdrs, rec):
        st = self.state
        method = self.command
        raw_path = split.path
        query_pairs = parse_qsl(split.query, keep_blank_values=True)
        query = dict(query_pairs)

        if method in ("GET", "HEAD") and st.lookups:
            target = raw_path + ("?" + split.query if split.query else "")
            entries = st.lookups.get(norm_target(target))
            if entries:
                host = (hdrs.get("host") or "").rsplit(":", 1)[0].strip("[]").lower()
                reply = next((r for h, r in entries if h and h.lower() == host), entries[0][1])
                rec["scripted"] = True
                if "networkError" in reply:
                    return DROP
                b = reply.get("body")
                if b is None:
                    return reply["status"], b"", None
                if isinstance(b, str):
                    return reply["status"], b.encode("utf-8"), "text/plain; charset=utf-8"
                return reply["status"], cjson(b).encode("utf-8"), \
                    "application/json; charset=utf-8"

        def J(status, obj):
            return status, (b"" if obj is None else cjson(obj).encode("utf-8")), \
                "application/json; charset=utf-8"

        segs = [s for s in raw_path.split("/")]
        if len(segs) > 2 and segs[-1] == "":
            segs = segs[:-1]          # a trailing slash
        segs = segs[1:]               # drop the empty first element
        dec = [unquote(s) for s in segs]

        json_body = None
        if method in ("POST", "PUT", "PATCH"):
            if body.strip():
                ct = (hdrs.get("content-type") or "").lower()
                if "application/json" not in ct:
                    return J(400, error_body(400, "Content-Type must be application/json",
                                             {"header": "Content-Type"}))
            try:
                json_body = parse_json(body.decode("utf-8")) if body.strip() else None
            except (ValueError, UnicodeDecodeError) as e:
                return J(400, error_body(400, "invalid JSON: %s" % e, {"pointer": ""}))

        def not_allowed():
            return J(405, error_body(405))

        if len(dec) < 2 or dec[0] != "v1":
            return J(404, error_body(404))
        res = dec[1]

        # /v1/customers...
        if res == "customers":
            if len(dec) == 2:
                if method in ("GET", "HEAD"):
                    return J(*self._list(list(st.customers.values()), st.customer_doc,
                                         raw_path, query_pairs, query))
                if method == "POST":
                    return J(*self._create_customer(json_body))
                return not_allowed()
            sub = dec[2]
            if len(dec) == 3 and sub == "bulk":
                if method in ("POST", "PUT"):
                    return J(*self._bulk_submit(json_body, query))
                return not_allowed()
            if len(dec) == 3 and sub == "search":
                if method == "POST":
                    return J(*self._search(json_body, raw_path, query_pairs, query))
                return not_allowed()
            if len(dec) == 3:
                raw_seg = segs[2]
                for prefix, finder in (("email=", st.find_by_email),
                                       ("externalId=", st.find_by_external_id)):
                    if raw_seg.startswith(prefix):
                        if method not in ("GET", "HEAD"):
                            return not_allowed()
                        c = finder(unquote(raw_seg[len(prefix):]))
                        if c is None:
                            return J(404, error_body(404))
                        return J(200, {"data": st.customer_doc(c)})
                c = st.customers.get(sub)
                if method in ("GET", "HEAD"):
                    return J(200, {"data": st.customer_doc(c)}) if c else \
                        J(404, error_body(404))
                if method in ("PUT", "PATCH"):
                    replace = method == "PUT" and query.get("replace", "false").lower() == "true"
                    return J(*self._update_customer(sub, json_body, replace))
                if method == "DELETE":
                    if not c:
                        return J(404, error_body(404))
                    del st.customers[sub]
                    return J(204, None)
                return not_allowed()
            return J(404, error_body(404))

        if res == "conversations" and len(dec) == 2:
            if method in ("GET", "HEAD"):
                return J(*self._list(st.conversations, self._conversation_doc, raw_path,
                                     query_pairs, query))
            return not_allowed()

        if res == "tracking" and len(dec) == 3 and dec[2] in ("identityEvent", "identity",
                                                                 "event"):
            if method != "POST":
                return not_allowed()
            return J(*self._tracking(dec[2], json_body))

        if res == "bulk" and len(dec) in (3, 4):
            if method not in ("GET", "HEAD"):
                return not_allowed()
            job = st.bulk.get(dec[2])
            if job is None or (len(dec) == 4 and dec[3] != "batches"):
                return J(404, error_body(404))
            if len(dec) == 3:
                job["polls"] += 1
                self._advance_bulk(job)
                return J(200, {"data": self._bulk_doc(job)})
            return J(200, {"data": [b for b in job["batches"] if b is not None]})

        if res == "auth" and dec[2:] == ["tokens", "current"] and method in ("GET", "HEAD"):
            return J(200, {"data": {"type": "token", "id": "fake-token", "attributes": {
                "roles": ["org.permission.customer.create", "org.permission.customer.read",
                          "org.permission.customer.update", "org.tracking"]}}})

        return J(404, error_body(404))

    # -- customers
    def _create_customer(self, body):
        st = self.state
        errs = Errors()
        validate_customer(body, errs)
        if errs:
            return 400, errs.body()
        if st.external_id_taken(body.get("externalId")):
            return 409, error_body(409, 'a customer with externalId "%s" already exists'
                                   % body["externalId"], {"pointer": "/externalId"})
        c = st.create_customer(body)
        return 201, {"data": st.customer_doc(c)}

    def _update_customer(self, cid, body, replace):
        st = self.state
        errs = Errors()
        validate_customer(body, errs)
        if errs:
            return 400, errs.body()
        c = st.customers.get(cid)
        if c is None:
            return 404, error_body(404)
        if st.external_id_taken(body.get("externalId"), except_id=cid):
            return 409, error_body(409, 'a customer with externalId "%s" already exists'
                                   % body["externalId"], {"pointer": "/externalId"})
        st.update_customer(c, body, replace)
        return 200, {"data": st.customer_doc(c)}

    @staticmethod
    def _conversation_doc(v):
        return {"type": "conversation", "id": v["id"], "attributes": v["attributes"],
                "relationships": {"customer": {
                    "data": {"type": "customer", "id": v["customerId"]},
                    "links": {"self": "/v1/customers/%s" % v["customerId"]}}},
                "links": {"self": "/v1/conversations/%s" % v["id"]}}

    def _list(self, items, doc, path, qpairs, query):
        page, size, err = page_params(query, LIST_MAX_PAGE_SIZE)
        if err:
            return err
        sort = query.get("sort")
        if sort is not None:
            if sort not in ("asc", "desc"):
                return 400, error_body(400, "sort must be asc or desc", {"parameter": "sort"})
            by = query.get("order_by") or "createdAt"
            items = sort_items(items, lambda x: x["attributes"].get(by), sort == "desc")
        return 200, paginate([doc(x) for x in items], path, qpairs, page, size)

    # -- search
    def _search(self, body, path, qpairs, query):
        st = self.state
        page, size, err = page_params(query, SEARCH_MAX_PAGE_SIZE)
        if err:
            return err
        if page > SEARCH_MAX_PAGE:
            return 400, error_body(400, "search results are limited to %d pages"
                                   % SEARCH_MAX_PAGE, {"parameter": "page"})
        errs = Errors()
        if not isinstance(body, dict):
            errs.add((), "body must be a JSON object")
            return 400, errs.body()
        ctx = body.get("queryContext")
        if not isinstance(ctx, str) or not (ctx in SEARCH_CONTEXTS or ctx in
                                            SEARCH_EMPTY_CONTEXTS or ctx.startswith("kobject_")):
            errs.add(("queryContext",), "queryContext must be one of customer, conversation,"
                     " message, company, note, user, kobject_<klass>")
            return 400, errs.body()
        for mode in ("and", "or", "not"):
            if body.get(mode) is not None:
                check_criteria(body[mode], ctx, (mode,), errs)
        sorts = body.get("sort") or []
        if isinstance(sorts, dict):
            sorts = [sorts]
        if not isinstance(sorts, list):
            errs.add(("sort",), "sort must be an array of {attribute: asc|desc}")
            sorts = []
        for i, s in enumerate(sorts):
            if not isinstance(s, dict) or not s:
                errs.add(("sort", i), "sort[%d] must be an object {attribute: asc|desc}" % i)
                continue
            for k, d in s.items():
                if not k.startswith(ctx + "_"):
                    errs.add(("sort", i, k), 'unknown attribute "%s" for queryContext "%s"'
                             % (k, ctx))
                elif d not in ("asc", "desc"):
                    errs.add(("sort", i, k), "sort direction must be asc or desc")
        if errs:
            return 400, errs.body()
        if ctx == "customer":
            docs = [st.customer_doc(c) for c in st.customers.values()]
        elif ctx == "conversation":
            docs = [self._conversation_doc(v) for v in st.conversations]
        else:
            docs = []
        if body.get("and"):
            docs = [d for d in docs if criteria_match(d, ctx, body["and"], "and")]
        if body.get("or"):
            docs = [d for d in docs if criteria_match(d, ctx, body["or"], "or")]
        if body.get("not"):
            docs = [d for d in docs if not criteria_match(d, ctx, body["not"], "or")]
        for s in reversed([s for s in sorts if isinstance(s, dict)]):
            for k, d in reversed(list(s.items())):
                docs = sort_items(docs, lambda x, k=k: search_value(x, ctx, k), d == "desc")
        if query.get("idsOnly", "").lower() == "true":
            docs = [{"type": d["type"], "id": d["id"]} for d in docs]
        return 200, paginate(docs, path, qpairs, page, size)

    # -- tracking
    def _tracking(self, kind, body):
        st = self.state
        errs = Errors()
        if not isinstance(body, dict):
            errs.add((), "body must be a JSON object")
            return 400, errs.body()
        if kind == "identityEvent":
            identity, event = body.get("identity"), body.get("event")
            if identity is not None:
                validate_identity(identity, ("identity",), errs)
            validate_event(event, ("event",), errs)
        elif kind == "identity":
            identity, event = body, None
            validate_identity(identity, (), errs)
        else:
            identity, event = None, body
            validate_event(event, (), errs)
        if errs:
            return 400, errs.body()
        src = event if event is not None else identity
        tracking_id = src.get("trackingId") or new_id()
        session_id = src.get("sessionId") or new_id()
        cust = None
        if isinstance(identity, dict):
            xid, email, phone = (identity.get("externalId"), identity.get("email"),
                                 identity.get("phone"))
            if xid:
                cust = st.find_by_external_id(xid)
            if cust is None and email:
                cust = st.find_by_email(email)
            if cust is None and phone:
                cust = st.find_by_phone(phone)
            if cust is None and (xid or email or phone):
                attrs = {}
                if identity.get("name"):
                    attrs["name"] = identity["name"]
                if xid:
                    attrs["externalId"] = xid
                if email:
                    attrs["emails"] = [{"email": email, "type": "home"}]
                if phone:
                    attrs["phones"] = [{"phone": phone, "type": "mobile"}]
                cust = st.create_customer(attrs)
        eid = new_id()
        st.events.append({
            "id": eid, "kind": kind, "time": now_iso(),
            "name": event.get("name") if event else None,
            "trackingId": tracking_id, "sessionId": session_id,
            "meta": event.get("meta") if event else None,
            "identity": identity, "customerId": cust["id"] if cust else None,
        })
        if event is None:
            return 200, {"data": {"type": "tracking_identity", "id": eid, "attributes": {
                "trackingId": tracking_id, "sessionId": session_id,
                "customerId": cust["id"] if cust else None}}}
        return 200, {"data": {"type": "tracking_event", "id": eid, "attributes": {
            "name": event["name"], "trackingId": tracking_id, "sessionId": session_id}}}

    # -- bulk
    def _bulk_submit(self, body, query):
        st = self.state
        method = self.command
        ids_mode = method == "PUT" and query.get("ids") is not None

        def bad(detail, parts=()):
            return 400, error_body(400, detail, {"pointer": pointer(parts)})

        if ids_mode:
            ids = [x for x in query["ids"].split(",") if x]
            if not isinstance(body, dict):
                return bad("with ?ids= the body must be one JSON object")
            if "_clientRef" in body:
                return bad("_clientRef is not supported with ?ids=", ("_clientRef",))
            if not ids:
                return 400, error_body(400, "ids must list at least one id",
                                       {"parameter": "ids"})
            if len(ids) > BULK_MAX:
                return 400, error_body(400, "a bulk request takes at most %d ids" % BULK_MAX,
                                       {"parameter": "ids"})
            items = [dict(body, id=i) for i in ids]
        else:
            if not isinstance(body, list):
                return bad("body must be a JSON array of customers")
            items = body
        if not items:
            return bad("body must contain at least 1 item")
        if len(items) > BULK_MAX:
            return bad("a bulk request takes at most %d items (got %d)" % (BULK_MAX,
                                                                          len(items)))
        with_ref = [isinstance(x, dict) and "_clientRef" in x for x in items]
        if any(with_ref) and not all(with_ref):
            i = with_ref.index(False)
            return bad("_clientRef must be given on every item or on none (item %d has none)"
                       % i, (i,))
        uses_ref = all(with_ref)
        seen = set()
        if uses_ref:
            for i, x in enumerate(items):
                r = x["_clientRef"]
                if not isinstance(r, str) or not r:
                    return bad("_clientRef must be a non-empty string", (i, "_clientRef"))
                if len(r) > CLIENT_REF_MAX:
                    return bad("_clientRef must be at most %d characters" % CLIENT_REF_MAX,
                               (i, "_clientRef"))
                if r in seen:
                    return bad('_clientRef "%s" is used more than once' % r,
                               (i, "_clientRef"))
                seen.add(r)
        prepared = []
        for i, x in enumerate(items):
            errs = Errors()
            validate_customer(x, errs)
            if method == "PUT" and isinstance(x, dict):
                if x.get("id") in (None, ""):
                    errs.add(("id",), "id is required")
                elif not isinstance(x["id"], str):
                    errs.add(("id",), "id must be a string")
            prepared.append({"ref": x.get("_clientRef") if uses_ref else None,
                             "body": copy.deepcopy(x),
                             "error": errs.text() if errs else None})
        t = time.time()
        total = (len(prepared) + BULK_BATCH_SIZE - 1) // BULK_BATCH_SIZE
        job = {"id": new_id(), "method": method, "uses_ref": uses_ref, "items": prepared,
               "polls": 0, "status": "queued", "createdAt": now_iso(t),
               "updatedAt": now_iso(t), "total": total, "batches": [None] * total}
        st.bulk[job["id"]] = job
        if st.config["bulk_delay_polls"] <= 0:
            self._advance_bulk(job)
        return 201, {"data": self._bulk_doc(job)}

    def _advance_bulk(self, job):
        n = self.state.config["bulk_delay_polls"]
        k = job["polls"]
        if n <= 0 or k >= n:
            target = job["total"]
        else:
            target = job["total"] * k // n
        done = sum(1 for b in job["batches"] if b is not None)
        for b in range(done, target):
            job["batches"][b] = self._run_batch(job, b)
        if target >= job["total"]:
            status = "complete"
        elif k >= 1:
            status = "running"
        else:
            status = "queued"
        if status != job["status"] or target != done:
            job["updatedAt"] = now_iso()
        job["status"] = status

    def _run_batch(self, job, b):
        st = self.state
        results, object_ids = [], []
        ok = bad = 0
        for item in job["items"][b * BULK_BATCH_SIZE:(b + 1) * BULK_BATCH_SIZE]:
            r = {}
            if job["uses_ref"]:
                r["_clientRef"] = item["ref"]
            body, error = item["body"], item["error"]
            cid = None
            if error is None:
                if job["method"] == "POST":
                    if st.external_id_taken(body.get("externalId")):
                        error = 'a customer with externalId "%s" already exists' \
                            % body["externalId"]
                    else:
                        cid = st.create_customer(body)["id"]
                else:
                    c = st.customers.get(body["id"])
                    if c is None:
                        error = 'customer "%s" not found' % body["id"]
                    elif st.external_id_taken(body.get("externalId"), except_id=c["id"]):
                        error = 'a customer with externalId "%s" already exists' \
                            % body["externalId"]
                    else:
                        st.update_customer(c, body)
                        cid = c["id"]
            if error is None:
                r["objectId"] = cid
                r["status"] = "created" if job["method"] == "POST" else "updated"
                object_ids.append(cid)
                ok += 1
            else:
                r["status"] = "error"
                r["error"] = error
                bad += 1
            results.append(r)
        return {"type": "bulk_batch", "id": new_id(), "attributes": {
            "successCount": ok, "failureCount": bad, "objectIds": object_ids,
            "results": results}}

    @staticmethod
    def _bulk_doc(job):
        done = sum(1 for b in job["batches"] if b is not None)
        return {"type": "bulk", "id": job["id"], "attributes": {
            "status": job["status"], "batches": {"complete": done, "total": job["total"]},
            "createdAt": job["createdAt"], "updatedAt": job["updatedAt"]},
            "links": {"self": "/v1/bulk/%s" % job["id"]}}


def apply_config(cfg, obj):
    """Validate and apply a /_fake/config object; -> error text or None."""
    if not isinstance(obj, dict):
        return "config must be a JSON object"
    new = dict(cfg)
    for k, v in obj.items():
        if k not in CONFIG_KEYS:
            return 'unknown config key "%s" (known: %s)' % (k, ", ".join(CONFIG_KEYS))
        if k == "api_key":
            if v is not None and (not isinstance(v, str) or not v):
                return "api_key must be a non-empty string or null"
        elif k == "retry_after":
            if v is not None and (not isinstance(v, str) or not v.isprintable()):
                return "retry_after must be a printable string or null"
        elif k == "rate_window":
            if not is_num(v) or v <= 0:
                return "rate_window must be a number > 0"
        elif k == "fail_status":
            if not isinstance(v, int) or isinstance(v, bool) or not 100 <= v <= 599:
                return "fail_status must be an integer 100..599"
        else:
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                return "%s must be an integer >= 0" % k
        new[k] = v
    cfg.update(new)
    return None


# ------------------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description="Local stand-in for Kustomer's REST API.")

    def nonneg(s):
        v = int(s)
        if v < 0:
            raise argparse.ArgumentTypeError("must be >= 0")
        return v

    def positive_float(s):
        v = float(s)
        if not v > 0:
            raise argparse.ArgumentTypeError("must be > 0")
        return v

    def status(s):
        v = int(s)
        if not 100 <= v <= 599:
            raise argparse.ArgumentTypeError("must be 100..599")
        return v

    p.add_argument("--port", type=nonneg, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port-file")
    p.add_argument("--log")
    p.add_argument("--lookups")
    p.add_argument("--api-key")
    p.add_argument("--rate-limit", type=nonneg, default=0)
    p.add_argument("--rate-window", type=positive_float, default=60.0)
    p.add_argument("--fail-every", type=nonneg, default=0)
    p.add_argument("--fail-status", type=status, default=503)
    p.add_argument("--drop-every", type=nonneg, default=0)
    p.add_argument("--throttle-every", type=nonneg, default=0,
                   help="answer 429 (remaining 0, reset at the window's end) "
                        "to every Nth request, as when other clients use the "
                        "org's budget")
    p.add_argument("--retry-after", default=None,
                   help="a Retry-After header's value for the 429s of "
                        "--throttle-every")
    p.add_argument("--slow-ms", type=nonneg, default=0)
    p.add_argument("--slow-every", type=nonneg, default=0)
    p.add_argument("--bulk-delay-polls", type=nonneg, default=2)
    p.add_argument("--seed-customers", type=nonneg, default=0)
    return p.parse_args(argv)


def loopback_host(host):
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 4 and ip.is_loopback:
        return str(ip)
    return None


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    host = loopback_host(args.host)
    if host is None:
        print("fake-kustomer: refusing --host %s: only loopback IPv4 (127.0.0.0/8) is "
              "allowed" % args.host, file=sys.stderr)
        return 2
    if args.api_key == "":
        print("fake-kustomer: --api-key must not be empty", file=sys.stderr)
        return 2
    lookups_raw = {}
    if args.lookups:
        try:
            with open(args.lookups, encoding="utf-8") as f:
                lookups_raw = json.load(f)
            compiled = compile_lookups(lookups_raw)
        except (OSError, ValueError) as e:
            print("fake-kustomer: --lookups %s: %s" % (args.lookups, e), file=sys.stderr)
            return 2

    state = State(args)
    if args.lookups:
        state.lookups_raw, state.lookups = lookups_raw, compiled
    Handler.state = state
    try:
        server = ThreadingHTTPServer((host, args.port), Handler)
    except OSError as e:
        print("fake-kustomer: cannot listen on %s:%d: %s" % (host, args.port, e),
              file=sys.stderr)
        return 1
    server.daemon_threads = True
    server.block_on_close = False
    port = server.server_address[1]
    state.port = port

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    if args.port_file:
        tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    print("fake-kustomer listening on http://%s:%d" % (host, port), flush=True)

    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    if state.log_file is not None:
        with state.lock:
            state.log_file.close()
            state.log_file = None
    return 0


if __name__ == "__main__":
    sys.exit(main())
