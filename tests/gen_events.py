#!/usr/bin/python3
"""Deterministic generator of realistic RudderStack/Segment event messages.

Writes NDJSON on stdout: one compact JSON object per line (UTF-8, not
ASCII-escaped).  Standard library only.  Same arguments give byte-identical
output: every random choice comes from one random.Random(seed), timestamps
are derived from a fixed start instant, and objects are built in a fixed key
order.

    python3 tests/gen_events.py --n 3000 --seed 42 --flawed 0.08 > sql/sample_events.ndjson
    python3 tests/gen_events.py --n 100000 --profile realistic > events.ndjson

Two profiles.  --profile simple (the default, byte for byte what this
generator always wrote: the demo's sample and the tests use it) has flat
properties for the most part, about 1.6 KB an event.  --profile realistic
(what `make bench` times) is what today's SDKs send: long context objects
(app, library, os, screen, page, campaign, device, network, traits,
userAgent and its client hints, timezone, consent), properties with
nested objects (addresses, payment, variant, dimensions) and arrays of
objects (products, filters) in most track events, booleans and nulls, and
numbers as JSON.stringify writes them (129, not 129.0; now and then a
long fraction such as 19.990000000000002), about 2.7 KB an event.

Mix of good events: about 60% track, 20% page, 10% screen, 10% identify.
Realistic archives already break Kustomer's meta conventions (numbers under
keys such as "revenue", dates under "completed_at", nested "products"), so
good events do too; about a quarter of them come from a "Kustomer-aware"
source that follows the conventions (revenueNum, purchasedAt, ...).

--flawed F turns a share F of the events into deliberately flawed ones, each
with one kind of problem (see FLAW_WEIGHTS): missing or unsupported type,
track without event name, no identifiers, wrong Num/At suffixes, deep
nesting, non-object properties, unicode names, numeric userId, and a few
lines of malformed JSON (still one line each).

The average line size and the number of events of each kind go to stderr.
"""

import argparse
import datetime
import json
import random
import sys

# --------------------------------------------------------------------------
# Vocabulary

FIRST_NAMES = [
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "James",
    "Isabella", "Lucas", "Mia", "Mateo", "Amelia", "Ethan", "Harper", "Aiden",
    "Priya", "Arjun", "Yuki", "Hiroshi", "Chloé", "Léa", "Jonas", "Lena",
    "Sofia", "Diego", "Fatima", "Omar", "Grace", "Daniel", "Zoe", "Samuel",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Garcia", "Miller", "Davis",
    "Martinez", "Lopez", "Wilson", "Anderson", "Taylor", "Thomas", "Moore",
    "Patel", "Nguyen", "Kim", "Müller", "Schmidt", "Rossi", "Dubois",
    "Tanaka", "Sato", "O'Brien", "Kowalski", "Silva", "Hernandez", "Clark",
]
COMPANIES = [
    "Acme Corp", "Globex", "Initech", "Umbrella Health", "Stark Industries",
    "Wayne Logistics", "Hooli", "Pied Piper", "Vandelay Imports",
    "Soylent Foods", "Wonka Confectionery", "Cyberdyne Systems", "Tyrell Labs",
    "Gringotts Finance", "Oceanic Air", "Dunder Mifflin", "Bluth Company",
]
INDUSTRIES = ["Retail", "SaaS", "Healthcare", "Logistics", "Finance",
              "Education", "Media", "Manufacturing"]
EMAIL_DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "icloud.com",
                 "proton.me", "acme.io", "globex.com", "example.org"]
STREETS = ["Main St", "Oak Avenue", "Maple Drive", "Sunset Blvd",
           "Market Street", "Elm Road", "Harbor Way", "5th Avenue"]
CITIES = [
    ("Miami", "FL", "US", "331"), ("Austin", "TX", "US", "787"),
    ("Seattle", "WA", "US", "981"), ("Brooklyn", "NY", "US", "112"),
    ("Denver", "CO", "US", "802"), ("Toronto", "ON", "CA", "M5V"),
    ("London", "", "GB", "EC1"), ("Berlin", "", "DE", "101"),
    ("Paris", "", "FR", "750"), ("Sydney", "NSW", "AU", "200"),
]
LOCALES = ["en-US", "en-US", "en-US", "en-GB", "en-CA", "fr-FR", "de-DE",
           "es-ES", "pt-BR", "ja-JP", "en-IN"]
TIMEZONES = ["America/New_York", "America/Chicago", "America/Los_Angeles",
             "Europe/London", "Europe/Berlin", "Asia/Kolkata", "Asia/Tokyo",
             "Australia/Sydney"]
PLANS = ["free", "starter", "pro", "business", "enterprise"]
CURRENCIES = ["USD", "USD", "USD", "EUR", "GBP", "CAD"]
COUPONS = ["SPRING10", "WELCOME15", "FREESHIP", "VIP20", "BLACKFRIDAY"]
UTM_SOURCES = ["google", "facebook", "newsletter", "twitter", "bing",
               "linkedin", "partner"]
UTM_MEDIUMS = ["cpc", "email", "social", "referral", "organic"]
SITE = "https://shop.example.com"
# Browser profiles: os name, os version, user agent, screen w, h, density.
WEB_PROFILES = [
    ("Mac OS X", "10.15.7",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36", 1440, 900, 2),
    ("Windows", "10",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
     "like Gecko) Chrome/121.0.0.0 Safari/537.36 Edg/121.0.0.0", 1920, 1080, 1),
    ("Windows", "10",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:123.0) Gecko/20100101 "
     "Firefox/123.0", 1536, 864, 1),
    ("Mac OS X", "10.15",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:123.0) Gecko/20100101 "
     "Firefox/123.0", 1280, 800, 2),
    ("Linux", "",
     "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/122.0.0.0 Safari/537.36", 1920, 1080, 1),
    ("iOS", "17.3.1",
     "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3_1 like Mac OS X) AppleWebKit/"
     "605.1.15 (KHTML, like Gecko) Version/17.3 Mobile/15E148 Safari/604.1",
     390, 844, 3),
    ("Android", "14",
     "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, "
     "like Gecko) Chrome/122.0.6261.64 Mobile Safari/537.36", 412, 915, 3),
]
REFERRERS = ["https://www.google.com/", "https://www.bing.com/",
             "https://t.co/abc123", "https://www.facebook.com/",
             "https://news.ycombinator.com/", "$direct",
             SITE + "/", SITE + "/collections/new"]

PRODUCTS = [
    ("Trail Running Shoe", "Footwear", "Northpeak", 129.0),
    ("Merino Wool Socks", "Apparel", "Northpeak", 18.5),
    ("Insulated Water Bottle", "Accessories", "Hydra", 34.99),
    ("Packable Rain Jacket", "Apparel", "Stormline", 149.0),
    ("Ultralight Tent 2P", "Camping", "Basecamp", 389.0),
    ("Headlamp 400lm", "Accessories", "Lumen", 44.95),
    ("Yoga Mat Pro", "Fitness", "Flowform", 79.0),
    ("Noise Cancelling Headphones", "Electronics", "Sonique", 249.99),
    ("Smart Fitness Watch", "Electronics", "Pulse", 199.0),
    ("Canvas Backpack 28L", "Bags", "Rover", 89.0),
    ("Espresso Grinder", "Kitchen", "Brewcraft", 159.0),
    ("Cast Iron Skillet", "Kitchen", "Forge", 39.9),
]

# Web pages: (page name, path, title, category)
PAGES = [
    ("Home", "/", "Example Shop | Outdoor gear", None),
    ("Pricing", "/pricing", "Pricing | Example", "Marketing"),
    ("Product Detail", "/products/trail-running-shoe",
     "Trail Running Shoe | Example Shop", "Product"),
    ("Cart", "/cart", "Your cart | Example Shop", "Checkout"),
    ("Checkout", "/checkout", "Checkout | Example Shop", "Checkout"),
    ("Blog Post", "/blog/how-to-choose-a-tent",
     "How to choose a tent | Example Blog", "Blog"),
    ("Docs", "/docs/getting-started", "Getting started | Example Docs",
     "Docs"),
    ("Sign Up", "/signup", "Create your account | Example", "Auth"),
    ("Login", "/login", "Log in | Example", "Auth"),
    ("Search Results", "/search", "Search | Example Shop", "Search"),
    ("Account Settings", "/account/settings", "Settings | Example", "Account"),
    ("Order History", "/account/orders", "Your orders | Example Shop",
     "Account"),
    ("Help Center", "/help", "Help Center | Example", "Support"),
    ("Collection", "/collections/new", "New arrivals | Example Shop",
     "Product"),
]
# Mobile screens
SCREENS = ["Home", "Product Detail", "Cart", "Checkout", "Order Confirmation",
           "Search", "Settings", "Profile", "Onboarding Step 1",
           "Onboarding Step 2", "Notifications", "Wishlist", "OrderHistory",
           "Main Activity", "ProductListFragment"]

# Track event names, weighted.  Spaces are what real archives contain; a few
# sources already use hyphens or underscores.
TRACK_EVENTS = [
    ("Product Viewed", 14), ("Product Added", 8), ("Product Removed", 2),
    ("Cart Viewed", 5), ("Checkout Started", 5), ("Payment Info Entered", 3),
    ("Order Completed", 8), ("Order Refunded", 1), ("Coupon Applied", 2),
    ("Products Searched", 5), ("Product List Viewed", 4),
    ("Promotion Clicked", 2), ("Signed Up", 4), ("Logged In", 6),
    ("Trial Started", 2), ("Subscription Started", 2), ("Plan Upgraded", 2),
    ("Invoice Paid", 2), ("Feature Used", 6), ("Report Exported", 2),
    ("Support Ticket Created", 2), ("Email Link Clicked", 2),
    ("Video Playback Started", 2), ("Cart-Viewed", 1), ("Form-Submitted", 2),
    ("Chat_Started", 1), ("Tracking-Weekender", 1), ("Order-Shipped", 1),
]
FEATURES = ["dashboard", "export_csv", "bulk_edit", "api_keys", "sso",
            "automations", "reports", "integrations"]

UNICODE_TRACK = ["Café Viewed", "注文完了", "Bestellung Abgeschlossen ✓",
                 "Заказ оформлен", "Crème Brûlée Added", "🎉 Promo Clicked",
                 "Pedido Concluído", "장바구니 보기"]
UNICODE_PAGES = ["Página de inicio", "Préférences", "料金プラン", "Über uns",
                 "Корзина"]
UNICODE_SCREENS = ["Écran d'accueil", "ホーム", "Einstellungen Übersicht",
                   "Carrito de compras"]

# Share of each flaw kind among flawed events (relative weights).
FLAW_WEIGHTS = [
    ("missing_type", 1.0),
    ("unsupported_type", 1.0),
    ("track_without_event", 1.0),
    ("no_user_or_anonymous_id", 1.0),
    ("identify_without_ids", 1.0),
    ("number_key_without_Num", 1.0),
    ("string_under_Num_key", 1.0),
    ("date_key_without_At", 1.0),
    ("At_key_not_a_date", 1.0),
    ("deeply_nested_properties", 1.0),
    ("properties_not_object", 1.0),
    ("malformed_json_line", 0.2),   # a few lines only
    ("unicode_names", 1.0),
    ("numeric_user_id", 1.0),
]

START = datetime.datetime(2024, 3, 4, 7, 30, 0, tzinfo=datetime.timezone.utc)


def iso(dt):
    """ISO-8601 with milliseconds and Z."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def snake_to_camel(k):
    parts = k.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.now = START
        self.n_malformed = 0
        self.users = [self.make_user(i) for i in range(400)]

    # ---- small helpers ---------------------------------------------------

    def hexs(self, n):
        return "".join(self.r.choice("0123456789abcdef") for _ in range(n))

    def alnum(self, n):
        return "".join(self.r.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                       for _ in range(n))

    def uuid(self):
        r = self.r
        return "%08x-%04x-4%03x-%x%03x-%012x" % (
            r.getrandbits(32), r.getrandbits(16), r.getrandbits(12),
            8 + r.getrandbits(2), r.getrandbits(12), r.getrandbits(48))

    def wchoice(self, pairs):
        total = sum(w for _, w in pairs)
        x = self.r.random() * total
        for v, w in pairs:
            x -= w
            if x < 0:
                return v
        return pairs[-1][0]

    def price(self, lo, hi):
        return round(self.r.uniform(lo, hi), 2)

    def date_str(self, days_lo, days_hi, date_only=False):
        d = self.now + datetime.timedelta(
            days=self.r.randint(days_lo, days_hi),
            seconds=self.r.randint(0, 86399),
            milliseconds=self.r.randint(0, 999))
        return d.strftime("%Y-%m-%d") if date_only else iso(d)

    # ---- users -----------------------------------------------------------

    def make_user(self, i):
        r = self.r
        first = r.choice(FIRST_NAMES)
        last = r.choice(LAST_NAMES)
        local = (first + "." + last).lower().replace("'", "")
        local = local.replace("é", "e").replace("ü", "u")
        email = "%s%s@%s" % (local, r.choice(["", str(r.randint(1, 99))]),
                             r.choice(EMAIL_DOMAINS))
        style = r.random()
        if style < 0.45:
            uid = "usr_" + self.alnum(12)
        elif style < 0.7:
            uid = self.uuid()
        elif style < 0.85:
            uid = str(r.randint(10000, 9999999))   # numeric text
        else:
            uid = email
        platform = self.wchoice([("web", 65), ("ios", 18), ("android", 17)])
        city = r.choice(CITIES)
        return {
            "userId": None if r.random() < 0.15 else uid,
            "anonymousId": (self.uuid() if platform != "android"
                            else self.hexs(16)),
            "first": first, "last": last, "email": email,
            "phone": "+1%03d555%04d" % (r.randint(201, 989), r.randint(0, 9999)),
            "platform": platform,
            "sdk": "segment" if r.random() < 0.3 else "rudder",
            "locale": r.choice(LOCALES),
            "timezone": r.choice(TIMEZONES),
            "company": r.choice(COMPANIES),
            "plan": r.choice(PLANS),
            "city": city,
            "ip": "%d.%d.%d.%d" % (r.randint(23, 223), r.randint(0, 255),
                                   r.randint(0, 255), r.randint(1, 254)),
            "created": iso(START - datetime.timedelta(
                days=r.randint(1, 900), seconds=r.randint(0, 86399),
                milliseconds=r.randint(0, 999))),
            "kustomer_id": self.hexs(24),
            "session": 1709500000000 + r.randint(0, 999999999),
            "tracking_id": self.hexs(24),
        }

    # ---- envelope --------------------------------------------------------

    def context(self, u, typ, with_traits):
        r = self.r
        ctx = {}
        p = u["platform"]
        if p == "web":
            if u["sdk"] == "segment":
                ctx["app"] = {"name": "Example Shop Web", "version": "4.12.0",
                              "build": "4120", "namespace": "com.example.web"}
                ctx["library"] = {"name": "analytics.js",
                                  "version": "npm:next-1.64.0"}
            else:
                ctx["app"] = {"name": "RudderLabs JavaScript SDK",
                              "version": "3.0.3", "build": "1.0.0",
                              "namespace": "com.rudderlabs.javascript"}
                ctx["library"] = {"name": "RudderLabs JavaScript SDK",
                                  "version": "3.0.3"}
            prof = r.choice(WEB_PROFILES)
            ctx["os"] = {"name": prof[0], "version": prof[1]}
            ctx["userAgent"] = prof[2]
            ctx["locale"] = u["locale"]
            ctx["screen"] = {"width": prof[3], "height": prof[4],
                             "density": prof[5],
                             "innerWidth": prof[3] - r.choice([0, 15, 17]),
                             "innerHeight": prof[4] - r.randint(80, 180)}
            pg = r.choice(PAGES)
            ctx["page"] = {"path": pg[1], "url": SITE + pg[1],
                           "title": pg[2], "referrer": r.choice(REFERRERS),
                           "search": "", "tab_url": SITE + pg[1],
                           "initial_referrer": "$direct",
                           "initial_referring_domain": ""}
            if r.random() < 0.3:
                ctx["campaign"] = {"source": r.choice(UTM_SOURCES),
                                   "medium": r.choice(UTM_MEDIUMS),
                                   "name": "spring_sale_2024"}
        else:
            ios = p == "ios"
            ctx["app"] = {"name": "Example Shop",
                          "version": r.choice(["5.2.0", "5.2.1", "5.3.0"]),
                          "build": str(r.randint(520, 560)),
                          "namespace": ("com.example.shop" if ios else
                                        "com.example.shop.android")}
            if u["sdk"] == "segment":
                ctx["library"] = {"name": ("analytics-ios" if ios else
                                           "analytics-android"),
                                  "version": "4.1.8"}
            else:
                ctx["library"] = {"name": ("rudder-ios-library" if ios else
                                           "com.rudderstack.android.sdk.core"),
                                  "version": "1.22.1"}
            ctx["os"] = ({"name": "iOS", "version": "17.3.1"} if ios else
                         {"name": "Android", "version": str(r.randint(11, 14))})
            ctx["device"] = ({"id": u["anonymousId"], "manufacturer": "Apple",
                              "model": r.choice(["iPhone15,2", "iPhone14,5"]),
                              "name": "iPhone", "type": "ios"} if ios else
                             {"id": u["anonymousId"],
                              "manufacturer": r.choice(["Samsung", "Google",
                                                        "Xiaomi"]),
                              "model": r.choice(["SM-S918B", "Pixel 8",
                                                 "Redmi Note 12"]),
                              "name": "android", "type": "android"})
            ctx["network"] = {"wifi": r.random() < 0.6,
                              "carrier": r.choice(["T-Mobile", "Verizon",
                                                   "AT&T", "Vodafone"]),
                              "cellular": True, "bluetooth": False}
            ctx["screen"] = {"width": r.choice([1179, 1080, 1440]),
                             "height": r.choice([2556, 2400, 3120]),
                             "density": r.choice([3, 440, 560])}
            ctx["timezone"] = u["timezone"]
            ctx["locale"] = u["locale"]
            ctx["userAgent"] = (
                "Example Shop/5.2.0 (iPhone; iOS 17.3.1; Scale/3.00)" if ios
                else "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/"
                     "UQ1A.240205.004)")
        ctx["ip"] = u["ip"]
        if u["sdk"] == "rudder" and r.random() < 0.7:
            ctx["sessionId"] = u["session"]
            if r.random() < 0.1:
                ctx["sessionStart"] = True
        if with_traits:
            t = {}
            if u["userId"] is not None and r.random() < 0.5:
                t["userId"] = u["userId"]
            t["email"] = u["email"]
            if r.random() < 0.5:
                t["name"] = u["first"] + " " + u["last"]
            else:
                t["firstName"] = u["first"]
                t["lastName"] = u["last"]
            if r.random() < 0.4:
                t["plan"] = u["plan"]
            ctx["traits"] = t
        return ctx

    def envelope(self, u, typ):
        r = self.r
        self.now += datetime.timedelta(seconds=r.randint(0, 40),
                                       milliseconds=r.randint(0, 999))
        orig = self.now
        sent = orig + datetime.timedelta(milliseconds=r.randint(2, 2500))
        recv = sent + datetime.timedelta(milliseconds=r.randint(30, 900))
        ev = {"type": typ}
        if u["sdk"] == "segment":
            ev["messageId"] = "ajs-next-" + self.hexs(32) if u["platform"] == "web" else self.uuid()
        elif u["platform"] == "android":
            ev["messageId"] = "%d-%s" % (
                int(orig.timestamp() * 1000), self.uuid())
        else:
            ev["messageId"] = self.uuid()
        ev["anonymousId"] = u["anonymousId"]
        if u["userId"] is not None:
            ev["userId"] = u["userId"]
        ev["channel"] = "web" if u["platform"] == "web" else "mobile"
        with_traits = typ != "identify" and u["userId"] is not None and \
            r.random() < 0.35
        ev["context"] = self.context(u, typ, with_traits)
        ev["timestamp"] = iso(orig + datetime.timedelta(
            milliseconds=r.randint(-400, 400)))
        ev["sentAt"] = iso(sent)
        ev["originalTimestamp"] = iso(orig)
        ev["receivedAt"] = iso(recv)
        if u["sdk"] == "rudder":
            ev["rudderId"] = self.uuid()
            ev["request_ip"] = u["ip"]
            ev["integrations"] = {"All": True}
        else:
            ev["integrations"] = {}
            ev["version"] = 2
        return ev

    # ---- properties ------------------------------------------------------

    def product(self):
        r = self.r
        name, cat, brand, price = r.choice(PRODUCTS)
        sku = "%s-%04d" % (brand[:3].upper(), r.randint(1, 9999))
        return {"product_id": self.hexs(8), "sku": sku, "name": name,
                "category": cat, "brand": brand, "price": price,
                "quantity": r.randint(1, 3)}

    def common_props(self, u):
        """A pool of generic properties; a few are picked per event."""
        r = self.r
        pg = r.choice(PAGES)
        pool = [
            ("path", pg[1]), ("url", SITE + pg[1]), ("title", pg[2]),
            ("referrer", r.choice(REFERRERS)),
            ("platform", u["platform"]),
            ("app_version", r.choice(["5.2.0", "5.2.1", "4.12.0"])),
            ("experiment_variant", r.choice(["control", "variant_a",
                                             "variant_b"])),
            ("is_logged_in", u["userId"] is not None),
            ("session_count", r.randint(1, 240)),
            ("page_load_ms", r.randint(180, 4200)),
            ("first_seen", u["created"]),
            ("last_login", self.date_str(-30, 0)),
            ("utm", {"source": r.choice(UTM_SOURCES),
                     "medium": r.choice(UTM_MEDIUMS),
                     "campaign": "spring_sale_2024"}),
            ("tags", r.sample(["new", "returning", "vip", "mobile",
                               "newsletter", "beta"], r.randint(1, 3))),
            ("plan", u["plan"]),
            ("locale", u["locale"]),
            ("email", u["email"]),
            ("nonInteraction", r.random() < 0.2),
            ("scroll_depth", round(r.uniform(0, 1), 2)),
            ("ab_test_id", "exp_%d" % r.randint(100, 999)),
        ]
        return pool

    def track_props(self, u, name):
        r = self.r
        p = {}
        cur = r.choice(CURRENCIES)
        base = name.replace("-", " ").replace("_", " ").lower()
        if base in ("product viewed", "product added", "product removed",
                    "promotion clicked"):
            pr = self.product()
            p.update(pr)
            p["currency"] = cur
            p["position"] = r.randint(1, 24)
            p["url"] = SITE + "/products/" + pr["name"].lower().replace(" ", "-")
            p["image_url"] = "https://cdn.example.com/img/%s.jpg" % pr["sku"]
            if base == "product added":
                p["cart_id"] = self.uuid()
            if base == "promotion clicked":
                p["promotion_id"] = "promo_%d" % r.randint(1, 40)
                p["creative"] = r.choice(["hero_banner", "sidebar", "popup"])
        elif base in ("order completed", "order refunded", "checkout started",
                      "payment info entered", "order shipped"):
            prods = [self.product() for _ in range(r.randint(1, 3))]
            sub = round(sum(x["price"] * x["quantity"] for x in prods), 2)
            ship = r.choice([0, 4.99, 9.99])
            tax = round(sub * 0.08, 2)
            disc = r.choice([0, 0, 5, 10])
            p["order_id"] = "ORD-%06d" % r.randint(1, 999999)
            p["checkout_id"] = self.uuid()
            p["affiliation"] = r.choice(["Online Store", "iOS App",
                                         "Android App"])
            p["total"] = round(sub + ship + tax - disc, 2)
            p["subtotal"] = sub
            p["revenue"] = round(sub - disc, 2)
            p["shipping"] = ship
            p["tax"] = tax
            p["discount"] = disc
            if disc:
                p["coupon"] = r.choice(COUPONS)
            p["currency"] = cur
            p["products"] = prods
            if base == "order completed":
                p["completed_at"] = iso(self.now)
                p["payment_method"] = r.choice(["card", "paypal",
                                                "apple_pay"])
                p["shipping_address"] = {"city": u["city"][0],
                                         "country": u["city"][2]}
            if base == "order shipped":
                p["carrier"] = r.choice(["UPS", "FedEx", "USPS", "DHL"])
                p["tracking_number"] = "1Z" + self.alnum(16).upper()
                p["estimated_delivery"] = self.date_str(2, 7, True)
            if base == "order refunded":
                p["reason"] = r.choice(["damaged", "wrong size",
                                        "not as described"])
        elif base in ("cart viewed", "coupon applied"):
            prods = [self.product() for _ in range(r.randint(1, 4))]
            p["cart_id"] = self.uuid()
            p["products"] = prods
            p["value"] = round(sum(x["price"] * x["quantity"]
                                   for x in prods), 2)
            p["currency"] = cur
            if base == "coupon applied":
                p["coupon_id"] = "cpn_%d" % r.randint(1, 99)
                p["coupon_name"] = r.choice(COUPONS)
                p["discount"] = r.choice([5, 10, 15.5, 20])
        elif base in ("products searched", "product list viewed"):
            p["query"] = r.choice(["rain jacket", "tent", "socks", "running",
                                   "headphones", "gift for dad"])
            p["list_id"] = "list_%d" % r.randint(1, 50)
            p["category"] = r.choice(PRODUCTS)[1]
            p["results_count"] = r.randint(0, 180)
            p["filters"] = [{"type": "price", "value": "0-100"},
                            {"type": "brand", "value": r.choice(PRODUCTS)[2]}]
            p["sorts"] = [{"type": "price", "value": "asc"}]
        elif base in ("signed up", "logged in", "trial started"):
            p["method"] = r.choice(["email", "google", "apple", "sso"])
            p["plan"] = u["plan"]
            p["referrer"] = r.choice(REFERRERS)
            if base == "trial started":
                p["trial_start_date"] = iso(self.now)
                p["trial_end_date"] = self.date_str(14, 14)
                p["trial_days"] = 14
            if base == "signed up":
                p["signup_source"] = r.choice(["landing_page", "pricing",
                                               "invite"])
                p["invited_by"] = None if r.random() < 0.6 else "usr_" + self.alnum(12)
        elif base in ("subscription started", "plan upgraded", "invoice paid"):
            p["plan"] = r.choice(PLANS[1:])
            p["previous_plan"] = u["plan"]
            p["billing_interval"] = r.choice(["month", "year"])
            p["seats"] = r.randint(1, 250)
            p["mrr"] = self.price(19, 4999)
            p["currency"] = cur
            p["invoice_id"] = "in_" + self.alnum(14)
            p["renewal_date"] = self.date_str(25, 365)
            p["auto_renew"] = r.random() < 0.85
        elif base in ("feature used", "report exported"):
            p["feature"] = r.choice(FEATURES)
            p["workspace_id"] = "ws_" + self.alnum(8)
            p["duration_ms"] = r.randint(50, 90000)
            p["format"] = r.choice(["csv", "xlsx", "pdf"])
            p["row_count"] = r.randint(1, 50000)
        elif base in ("support ticket created", "chat started",
                      "form submitted"):
            p["subject"] = r.choice(["Where is my order?", "Refund request",
                                     "Cannot log in", "Billing question"])
            p["priority"] = r.choice(["low", "normal", "high"])
            p["channel"] = r.choice(["email", "chat", "web_form"])
            p["order_id"] = "ORD-%06d" % r.randint(1, 999999)
            p["form_id"] = "form_%d" % r.randint(1, 20)
        elif base == "email link clicked":
            p["email_id"] = self.hexs(16)
            p["campaign_name"] = r.choice(["March Newsletter",
                                           "Abandoned Cart", "Win-back"])
            p["link_url"] = SITE + r.choice(PAGES)[1]
            p["sent_at"] = self.date_str(-3, 0)
        elif base == "video playback started":
            p["session_id"] = self.uuid()
            p["content_asset_id"] = "vid_%d" % r.randint(1, 500)
            p["position"] = 0
            p["total_length"] = r.randint(30, 3600)
            p["bitrate"] = r.choice([800, 1500, 3000])
            p["livestream"] = False
            p["video_player"] = "html5"
        else:
            p["region"] = r.choice(["north", "south", "east", "west"])
            p["value"] = r.randint(1, 500)
        return p

    def fill(self, p, u, lo=5, hi=20):
        """Top up with generic properties to between lo and hi keys."""
        r = self.r
        target = r.randint(lo, hi)
        pool = self.common_props(u)
        r.shuffle(pool)
        for k, v in pool:
            if len(p) >= target:
                break
            if k not in p:
                p[k] = v
        return p

    def session_keys(self, u, p):
        r = self.r
        x = r.random()
        if x < 0.10:
            p["kustomer_session_id"] = "ses_" + self.hexs(16)
        elif x < 0.16:
            p["kustomerSessionId"] = "ses_" + self.hexs(16)
        if r.random() < 0.10:
            p["kustomer_tracking_id"] = u["tracking_id"]
        elif r.random() < 0.03:
            p["kustomerTrackingId"] = u["tracking_id"]

    def kustomerize(self, p):
        """Rename keys as a Kustomer-aware source would: numbers get Num,
        ISO dates get At, keys in camelCase; nested values are left as
        they are (sources rarely fix those)."""
        out = {}
        for k, v in p.items():
            if k.startswith("kustomer"):
                out[k] = v
                continue
            nk = snake_to_camel(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if not nk.endswith("Num"):
                    nk += "Num"
            elif isinstance(v, str) and len(v) >= 10 and v[:4].isdigit() \
                    and v[4:5] == "-" and v[7:8] == "-":
                if nk.endswith("Date"):
                    nk = nk[:-4]
                if not nk.endswith("At"):
                    nk += "At"
            out[nk] = v
        return out

    # ---- event builders --------------------------------------------------

    def track(self, u, aware=None):
        r = self.r
        ev = self.envelope(u, "track")
        name = self.wchoice(TRACK_EVENTS)
        ev["event"] = name
        p = self.fill(self.track_props(u, name), u)
        if aware is None:
            aware = r.random() < 0.25
        if aware:
            p = self.kustomerize(p)
        self.session_keys(u, p)
        ev["properties"] = p
        return self.reorder(ev)

    def page(self, u, aware=None):
        r = self.r
        if u["platform"] != "web":
            u = dict(u, platform="web")
        ev = self.envelope(u, "page")
        pg = self.r.choice(PAGES)
        ctxp = ev["context"]["page"]
        ctxp.update({"path": pg[1], "url": SITE + pg[1], "title": pg[2],
                     "tab_url": SITE + pg[1]})
        x = r.random()
        if x < 0.75:
            ev["name"] = pg[0]
        if pg[3] and r.random() < 0.6:
            ev["category"] = pg[3]
        p = {}
        if x >= 0.75 and x < 0.9 or (x < 0.75 and r.random() < 0.3):
            p["name"] = pg[0]
        p["path"] = pg[1]
        p["url"] = SITE + pg[1]
        p["title"] = pg[2]
        p["referrer"] = ctxp["referrer"]
        p["search"] = r.choice(["", "", "?utm_source=newsletter",
                                "?q=tent", "?ref=producthunt"])
        p["tab_url"] = SITE + pg[1]
        if pg[3]:
            p["category"] = pg[3]
        if pg[0] == "Pricing":
            p["plans_shown"] = ["starter", "pro", "business"]
            p["billing_toggle"] = r.choice(["monthly", "annual"])
            p["annual_discount_pct"] = 20
        if pg[0] == "Product Detail":
            pr = self.product()
            p["product_id"] = pr["product_id"]
            p["price"] = pr["price"]
            p["in_stock"] = r.random() < 0.9
        if pg[0] == "Blog Post":
            p["author"] = r.choice(FIRST_NAMES) + " " + r.choice(LAST_NAMES)
            p["published_at"] = self.date_str(-200, -1)
            p["read_time_min"] = r.randint(2, 14)
        p = self.fill(p, u)
        if aware is None:
            aware = r.random() < 0.2
        if aware:
            p = self.kustomerize(p)
        self.session_keys(u, p)
        ev["properties"] = p
        return self.reorder(ev)

    def screen(self, u, aware=None):
        r = self.r
        if u["platform"] == "web":
            u = dict(u, platform=r.choice(["ios", "android"]))
        ev = self.envelope(u, "screen")
        name = r.choice(SCREENS)
        x = r.random()
        if x < 0.8:
            ev["name"] = name
        elif x < 0.9:
            ev["event"] = name
        p = {}
        if x >= 0.9 or r.random() < 0.3:
            p["name"] = name
        p["screen_class"] = name.replace(" ", "") + "ViewController"
        p["previous_screen"] = r.choice(SCREENS)
        p["load_time_ms"] = r.randint(40, 2500)
        p["is_first_launch"] = r.random() < 0.05
        if name == "Product Detail":
            pr = self.product()
            p["product_id"] = pr["product_id"]
            p["price"] = pr["price"]
            p["currency"] = r.choice(CURRENCIES)
        if name == "Cart":
            p["item_count"] = r.randint(0, 6)
            p["cart_value"] = self.price(0, 600)
        p = self.fill(p, u)
        if aware is None:
            aware = r.random() < 0.2
        if aware:
            p = self.kustomerize(p)
        self.session_keys(u, p)
        ev["properties"] = p
        return self.reorder(ev)

    def traits(self, u):
        r = self.r
        t = {}
        if u["userId"] is not None and r.random() < 0.3:
            t["userId"] = u["userId"]
        t["email"] = u["email"]
        if r.random() < 0.5:
            t["firstName"] = u["first"]
            t["lastName"] = u["last"]
        else:
            t["name"] = u["first"] + " " + u["last"]
        if r.random() < 0.7:
            t["phone"] = u["phone"]
        x = r.random()
        if x < 0.4:
            t["company"] = u["company"]
        elif x < 0.7:
            t["company"] = {"name": u["company"],
                            "id": "cmp_" + self.alnum(8),
                            "industry": r.choice(INDUSTRIES),
                            "employee_count": r.choice([12, 48, 230, 1500])}
        t["createdAt"] = u["created"]
        if r.random() < 0.6:
            c = u["city"]
            addr = {"street": "%d %s" % (r.randint(1, 9999),
                                         r.choice(STREETS)),
                    "city": c[0], "state": c[1],
                    "postalCode": c[3] + "%02d" % r.randint(0, 99),
                    "country": c[2]}
            if not c[1]:
                del addr["state"]
            t["address"] = addr
        if r.random() < 0.3:
            t["website"] = "https://www.%s.com" % u["company"].split()[0].lower()
        if r.random() < 0.4:
            t["avatar"] = "https://cdn.example.com/avatars/%s.png" % self.hexs(12)
        if r.random() < 0.4:
            t["tags"] = r.sample(["vip", "beta", "newsletter", "wholesale",
                                  "churn-risk"], r.randint(1, 3))
        t["plan"] = u["plan"]
        if r.random() < 0.5:
            t["title"] = r.choice(["Head of Support", "CTO", "Buyer",
                                   "Marketing Manager", "Student"])
        if r.random() < 0.4:
            t["logins"] = r.randint(1, 400)
        if r.random() < 0.3:
            t["birthday"] = "%04d-%02d-%02d" % (r.randint(1960, 2004),
                                                r.randint(1, 12),
                                                r.randint(1, 28))
        if r.random() < 0.3:
            t["gender"] = r.choice(["m", "f"])
        if r.random() < 0.2:
            t["lastSeenAt"] = self.date_str(-10, 0)
        if r.random() < 0.25:
            t["timeZone"] = u["timezone"]
        if r.random() < 0.15:
            t["userName"] = (u["first"] + u["last"]).lower() + str(r.randint(1, 99))
        if r.random() < 0.1:
            t["customObject"] = {"loyaltyTierStr": r.choice(["gold", "silver"]),
                                 "lifetimeValueNum": self.price(10, 9000)}
        return t

    def identify(self, u):
        r = self.r
        ev = self.envelope(u, "identify")
        t = self.traits(u)
        x = r.random()
        if u["sdk"] == "segment":
            where = "top" if x < 0.8 else "both"
        else:
            where = "context" if x < 0.6 else ("both" if x < 0.85 else "top")
        ctx = ev["context"]
        if where in ("top", "both"):
            ev["traits"] = t
        if where in ("context", "both"):
            ctx["traits"] = dict(t)
        if r.random() < 0.12:
            ctx["externalId"] = [{"type": "kustomerId",
                                  "id": u["kustomer_id"]}]
        return self.reorder(ev)

    def reorder(self, ev):
        """Keys in the order SDK payloads usually show them."""
        order = ["type", "event", "name", "category", "messageId",
                 "anonymousId", "userId", "channel", "context", "properties",
                 "traits", "timestamp", "sentAt", "originalTimestamp",
                 "receivedAt", "rudderId", "request_ip", "integrations",
                 "version"]
        out = {k: ev[k] for k in order if k in ev}
        for k in ev:
            if k not in out:
                out[k] = ev[k]
        return out

    # ---- flawed events ---------------------------------------------------

    def props_event(self, u, aware=False):
        typ = self.wchoice([("track", 6), ("page", 2), ("screen", 1)])
        return getattr(self, typ)(u, aware=aware)

    def flawed(self, kind):
        """Returns (event object or raw line text)."""
        r = self.r
        u = r.choice(self.users)
        if kind == "missing_type":
            ev = self.good(u)
            x = r.random()
            if x < 0.7:
                del ev["type"]
            elif x < 0.85:
                ev["type"] = ""
            else:
                ev["type"] = None
            return ev
        if kind == "unsupported_type":
            ev = self.envelope(u, r.choice(["alias", "group", "Alias",
                                            "group"]))
            if ev["type"].lower() == "alias":
                ev["previousId"] = u["anonymousId"]
                ev["userId"] = u["userId"] or "usr_" + self.alnum(12)
            else:
                ev["groupId"] = "grp_" + self.alnum(10)
                ev["traits"] = {"name": u["company"],
                                "industry": r.choice(INDUSTRIES),
                                "employees": r.choice([12, 48, 230, 1500]),
                                "plan": u["plan"],
                                "createdAt": self.date_str(-800, -30)}
            return self.reorder(ev)
        if kind == "track_without_event":
            ev = self.track(u)
            x = r.random()
            if x < 0.45:
                del ev["event"]
            elif x < 0.9:
                ev["event"] = ""
            else:
                ev["event"] = None
            return ev
        if kind == "no_user_or_anonymous_id":
            ev = self.props_event(u)
            ev.pop("userId", None)
            ev.pop("anonymousId", None)
            ctx = ev["context"]
            if "traits" in ctx:
                ctx["traits"].pop("userId", None)
            if "device" in ctx:
                del ctx["device"]["id"]
            return ev
        if kind == "identify_without_ids":
            ev = self.identify(u)
            ev.pop("userId", None)
            ev.pop("anonymousId", None)
            for t in (ev.get("traits"), ev["context"].get("traits")):
                if t:
                    t.pop("userId", None)
                    t.pop("id", None)
            ev["context"].pop("externalId", None)
            if "device" in ev["context"]:
                del ev["context"]["device"]["id"]
            return ev
        if kind == "unicode_names":
            typ = self.wchoice([("track", 6), ("page", 2), ("screen", 2)])
            ev = getattr(self, typ)(u)
            if typ == "track":
                ev["event"] = r.choice(UNICODE_TRACK)
            elif typ == "page":
                ev["name"] = r.choice(UNICODE_PAGES)
            else:
                ev["name"] = r.choice(UNICODE_SCREENS)
            if r.random() < 0.5:
                ev["properties"]["catégorie"] = r.choice(["Été", "冬物",
                                                          "Außen"])
            return ev
        if kind == "numeric_user_id":
            typ = self.wchoice([("track", 6), ("page", 2), ("screen", 1),
                                ("identify", 2)])
            u2 = dict(u, userId=r.randint(1000, 9999999))
            ev = getattr(self, typ)(u2)
            return ev
        if kind == "properties_not_object":
            ev = self.props_event(u)
            x = r.random()
            if x < 0.75:
                ev["properties"] = r.choice([
                    "Order Completed", "checkout", "{\"order_id\": 12}",
                    "n/a"])
            else:
                ev["properties"] = ["order_id", "ORD-%06d" % r.randint(1, 999999)]
            return ev
        if kind == "deeply_nested_properties":
            ev = self.props_event(u, aware=r.random() < 0.5)
            depth = r.randint(5, 12)
            node = {"leaf": "value", "count": r.randint(1, 9)}
            for i in range(depth):
                node = {"level%d" % (depth - i): node,
                        "items": [{"id": i, "tags": ["x", "y"]}]}
            ev["properties"]["metadata"] = node
            return ev
        # Flaws of the meta conventions: applied on a Kustomer-aware event,
        # so that the convention break is the event's distinctive problem.
        if kind in ("number_key_without_Num", "string_under_Num_key",
                    "date_key_without_At", "At_key_not_a_date"):
            ev = self.props_event(u, aware=True)
            p = ev["properties"]
            if kind == "number_key_without_Num":
                for k, v in r.sample([("amount", self.price(5, 900)),
                                      ("seats", r.randint(1, 50)),
                                      ("score", r.randint(0, 100)),
                                      ("discount", 12.5),
                                      ("itemCount", r.randint(1, 9)),
                                      ("latitude", round(r.uniform(-60, 60), 6))],
                                     r.randint(1, 3)):
                    p[k] = v
            elif kind == "string_under_Num_key":
                for k, v in r.sample([("totalNum", "49.99"),
                                      ("seatsNum", "ten"),
                                      ("quantityNum", "3"),
                                      ("orderNum", "ORD-%06d" % r.randint(1, 999999)),
                                      ("phoneNum", "+1 555 0100")],
                                     r.randint(1, 2)):
                    p[k] = v
            elif kind == "date_key_without_At":
                for k, v in r.sample([("trial_end", self.date_str(5, 30)),
                                      ("renewal", self.date_str(20, 365, True)),
                                      ("shipped", self.date_str(-3, 0)),
                                      ("lastPurchase", self.date_str(-90, -1)),
                                      ("delivery_date", self.date_str(1, 9, True))],
                                     r.randint(1, 2)):
                    p[k] = v
            else:
                for k, v in r.sample([("expiresAt", "never"),
                                      ("shippedAt", "pending"),
                                      ("renewAt", "next month"),
                                      ("lastSeenAt", "yesterday"),
                                      ("updatedAt", "N/A")],
                                     r.randint(1, 2)):
                    p[k] = v
            return ev
        if kind == "malformed_json_line":
            ev = self.good(u)
            text = dumps(ev)
            # Cycle through the variants so that even a few lines show each.
            variant = self.n_malformed % 3
            self.n_malformed += 1
            if variant == 0:     # truncated mid-line (a partial write)
                cut = r.randint(len(text) // 4, len(text) - 10)
                return text[:cut]
            if variant == 1:     # trailing comma before the closing brace
                return text[:-1] + ",}"
            return text.replace('"type":', "type:", 1)   # unquoted key
        raise ValueError(kind)

    def good(self, u):
        typ = self.wchoice([("track", 60), ("page", 20), ("screen", 10),
                            ("identify", 10)])
        return getattr(self, typ)(u)


# --------------------------------------------------------------------------
# The realistic profile: payloads as the SDKs send them today.
#
# RudderStack's and Segment's JavaScript and mobile SDKs write long context
# objects (app, library, os, screen, page, campaign, device, network,
# traits, userAgent and its client hints, timezone, consent), and e-commerce
# and product events carry the spec's nested shapes: products as arrays of
# objects, shipping and billing addresses, payment and variant objects,
# booleans and nulls.  Numbers are what JSON.stringify writes (129, not
# 129.0), including the long fractions that float arithmetic leaves
# (19.990000000000002).

VARIANTS = ["Black / M", "Navy / L", "Olive / S", "Red / XL", "One Size",
            "Graphite", "Blue / 42", "Sand / 40"]
CARD_BRANDS = ["visa", "mastercard", "amex", "discover"]
UA_BRANDS = {
    "Chrome": [{"brand": "Chromium", "version": "122"},
               {"brand": "Not(A:Brand", "version": "24"},
               {"brand": "Google Chrome", "version": "122"}],
    "Edge": [{"brand": "Not A(Brand", "version": "99"},
             {"brand": "Microsoft Edge", "version": "121"},
             {"brand": "Chromium", "version": "121"}],
}
CONSENT_IDS = ["C0001", "C0002", "C0003", "C0004", "C0005"]
UTM_TERMS = ["running shoes", "rain jacket", "tent 2 person", None]
UTM_CONTENTS = ["hero", "sidebar_ad", "footer_link", "textlink"]
WAREHOUSES = ["us-east-1", "us-west-2", "eu-central-1"]


def js_number(x):
    """A float as JSON.stringify writes it: integral values as integers."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return int(x)
    return x


class RealisticGen(Gen):
    profile = "realistic"

    # ---- envelope ------------------------------------------------------

    def context(self, u, typ, with_traits):
        r = self.r
        ctx = {}
        p = u["platform"]
        if p == "web":
            rudder = u["sdk"] == "rudder"
            if rudder:
                ctx["app"] = {"name": "RudderLabs JavaScript SDK",
                              "namespace": "com.rudderlabs.javascript",
                              "version": "3.0.3", "installType": "npm"}
            else:
                ctx["app"] = {"name": "Example Shop Web", "version": "4.12.0",
                              "build": "4120",
                              "namespace": "com.example.web"}
            ctx["traits"] = self.context_traits(u, typ, with_traits)
            ctx["library"] = ({"name": "RudderLabs JavaScript SDK",
                               "version": "3.0.3"} if rudder else
                              {"name": "analytics.js",
                               "version": "npm:next-1.64.0"})
            prof = r.choice(WEB_PROFILES)
            ctx["userAgent"] = prof[2]
            if "Chrome/" in prof[2] or "Edg/" in prof[2]:
                brands = UA_BRANDS["Edge" if "Edg/" in prof[2]
                                   else "Chrome"]
                ctx["userAgentData"] = {
                    "brands": [dict(b) for b in brands],
                    "mobile": "Mobile" in prof[2],
                    "platform": {"Mac OS X": "macOS", "Windows": "Windows",
                                 "Linux": "Linux", "Android": "Android",
                                 "iOS": "iOS"}[prof[0]]}
            ctx["os"] = {"name": prof[0], "version": prof[1]}
            ctx["locale"] = u["locale"]
            ctx["screen"] = {"width": prof[3], "height": prof[4],
                             "density": prof[5],
                             "innerWidth": prof[3] - r.choice([0, 15, 17]),
                             "innerHeight": prof[4] - r.randint(80, 180)}
            ref = r.choice(REFERRERS)
            pg = r.choice(PAGES)
            search = r.choice(["", "", "?utm_source=google&utm_medium=cpc",
                               "?q=tent", "?ref=producthunt"])
            ctx["page"] = {"path": pg[1], "referrer": ref,
                           "referring_domain": ref.split("/")[2]
                           if ref.startswith("http") else "",
                           "search": search, "title": pg[2],
                           "url": SITE + pg[1] + search,
                           "tab_url": SITE + pg[1] + search,
                           "initial_referrer": u["first_referrer"],
                           "initial_referring_domain":
                               u["first_referrer"].split("/")[2]
                               if u["first_referrer"].startswith("http")
                               else ""}
            if r.random() < 0.55:
                ctx["campaign"] = {"name": "spring_sale_2024",
                                   "source": r.choice(UTM_SOURCES),
                                   "medium": r.choice(UTM_MEDIUMS),
                                   "term": r.choice(UTM_TERMS),
                                   "content": r.choice(UTM_CONTENTS)}
            elif rudder:
                ctx["campaign"] = {}
            ctx["timezone"] = "GMT%+03d00" % r.choice([-8, -5, 0, 1, 9])
            if rudder:
                ctx["sessionId"] = u["session"]
                if r.random() < 0.1:
                    ctx["sessionStart"] = True
                ctx["consentManagement"] = {
                    "deniedConsentIds": r.sample(CONSENT_IDS[2:],
                                                 r.randint(0, 2)),
                    "allowedConsentIds": CONSENT_IDS[:2],
                    "provider": "oneTrust", "resolutionStrategy": "and"}
            else:
                ctx["ip"] = u["ip"]
        else:
            ios = p == "ios"
            ctx["app"] = {"build": str(r.randint(520, 560)),
                          "name": "Example Shop",
                          "namespace": ("com.example.shop" if ios else
                                        "com.example.shop.android"),
                          "version": r.choice(["5.2.0", "5.2.1", "5.3.0"])}
            ctx["device"] = {"id": u["anonymousId"],
                             "manufacturer": "Apple" if ios else
                             r.choice(["Samsung", "Google", "Xiaomi"]),
                             "model": r.choice(["iPhone15,2", "iPhone14,5"])
                             if ios else r.choice(["SM-S918B", "Pixel 8",
                                                   "Redmi Note 12"]),
                             "name": "iPhone" if ios else "android",
                             "type": "iOS" if ios else "Android",
                             "adTrackingEnabled": r.random() < 0.4,
                             "advertisingId": None if r.random() < 0.6
                             else self.uuid()}
            if ios:
                ctx["device"]["attTrackingStatus"] = r.choice([0, 2, 3])
            ctx["library"] = ({"name": "rudder-ios-library",
                               "version": "1.22.1"} if ios else
                              {"name": "com.rudderstack.android.sdk.core",
                               "version": "1.22.1"})
            ctx["locale"] = u["locale"]
            ctx["network"] = {"carrier": r.choice(["T-Mobile", "Verizon",
                                                   "AT&T", "Vodafone"]),
                              "bluetooth": False, "cellular": True,
                              "wifi": r.random() < 0.6}
            ctx["os"] = ({"name": "iOS", "version": "17.3.1"} if ios else
                         {"name": "Android",
                          "version": str(r.randint(11, 14))})
            ctx["screen"] = {"density": r.choice([2, 3]) if ios else
                             r.choice([440, 560]),
                             "height": r.choice([844, 926, 2400]),
                             "width": r.choice([390, 428, 1080])}
            ctx["timezone"] = u["timezone"]
            ctx["traits"] = self.context_traits(u, typ, with_traits)
            ctx["userAgent"] = (
                "Example Shop/5.2.0 (iPhone; iOS 17.3.1; Scale/3.00)" if ios
                else "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/"
                     "UQ1A.240205.004)")
            ctx["sessionId"] = u["session"]
            ctx["instanceId"] = u["anonymousId"]
        return ctx

    def context_traits(self, u, typ, with_traits):
        """context.traits as the SDKs keep it: the user's known traits on
        every message once identified, {} (web) or the anonymousId
        (mobile) before."""
        r = self.r
        t = {}
        if u["platform"] != "web":
            t["anonymousId"] = u["anonymousId"]
        if typ == "identify" or not with_traits:
            return t
        if u["userId"] is not None and r.random() < 0.5:
            t["userId"] = u["userId"]
        t["email"] = u["email"]
        if r.random() < 0.5:
            t["name"] = u["first"] + " " + u["last"]
        else:
            t["firstName"] = u["first"]
            t["lastName"] = u["last"]
        t["plan"] = u["plan"]
        if r.random() < 0.4:
            t["company"] = {"name": u["company"], "plan": u["plan"]}
        if r.random() < 0.3:
            t["address"] = self.address(u)
        t["subscribed"] = r.random() < 0.7
        return t

    def make_user(self, i):
        u = Gen.make_user(self, i)
        u["first_referrer"] = self.r.choice(REFERRERS)
        return u

    # ---- properties ----------------------------------------------------

    def address(self, u):
        r = self.r
        c = u["city"]
        a = {"first_name": u["first"], "last_name": u["last"],
             "street": "%d %s" % (r.randint(1, 9999), r.choice(STREETS)),
             "street2": None if r.random() < 0.7 else
             "Apt %d" % r.randint(1, 40),
             "city": c[0], "state": c[1] or None,
             "postal_code": c[3] + "%02d" % r.randint(0, 99),
             "country": c[2]}
        if r.random() < 0.3:
            a["phone"] = u["phone"]
        return a

    def product(self):
        r = self.r
        name, cat, brand, price = r.choice(PRODUCTS)
        sku = "%s-%04d" % (brand[:3].upper(), r.randint(1, 9999))
        p = {"product_id": self.hexs(8), "sku": sku, "name": name,
             "category": cat, "brand": brand,
             "variant": r.choice(VARIANTS), "price": js_number(price),
             "quantity": r.randint(1, 3)}
        x = r.random()
        if x < 0.3:
            p["coupon"] = r.choice(COUPONS)
        elif x < 0.4:
            p["coupon"] = None
        p["position"] = r.randint(1, 24)
        p["url"] = SITE + "/products/" + name.lower().replace(" ", "-")
        p["image_url"] = "https://cdn.example.com/img/%s.jpg" % sku
        if r.random() < 0.35:
            p["categories"] = [cat, r.choice(["Sale", "New", "Outdoor",
                                              "Gifts"])]
        if r.random() < 0.25:
            p["in_stock"] = r.random() < 0.9
        return p

    def money(self, x):
        """A sum rounded to cents, or now and then as float arithmetic left
        it (0.1 + 0.2 is 0.30000000000000004), as sources that compute
        totals in JavaScript send them."""
        if self.r.random() < 0.15:
            return js_number(x)
        return js_number(round(x, 2))

    def common_props(self, u):
        r = self.r
        pool = Gen.common_props(self, u)
        pool += [
            ("experiment", {"id": "exp_%d" % r.randint(100, 999),
                            "variant": r.choice(["control", "a", "b"]),
                            "enrolled": r.random() < 0.9}),
            ("device_info", {"type": r.choice(["desktop", "mobile",
                                               "tablet"]),
                             "touch": r.random() < 0.4,
                             "dark_mode": r.random() < 0.3}),
            ("previous_page", None if r.random() < 0.3 else
             r.choice(PAGES)[1]),
            ("logged_in", u["userId"] is not None),
        ]
        return pool

    def track_props(self, u, name):
        r = self.r
        base = name.replace("-", " ").replace("_", " ").lower()
        cur = r.choice(CURRENCIES)
        if base in ("order completed", "order refunded", "checkout started",
                    "payment info entered", "order shipped"):
            prods = [self.product() for _ in range(r.randint(1, 5))]
            sub = sum(x["price"] * x["quantity"] for x in prods)
            ship = js_number(r.choice([0, 4.99, 9.99]))
            tax = self.money(sub * 0.08)
            disc = r.choice([0, 0, 5, 10])
            p = {"checkout_id": self.uuid(),
                 "order_id": "ORD-%06d" % r.randint(1, 999999),
                 "affiliation": r.choice(["Online Store", "iOS App",
                                          "Android App"]),
                 "total": self.money(sub + ship + tax - disc),
                 "subtotal": self.money(sub),
                 "revenue": self.money(sub - disc),
                 "shipping": ship, "tax": tax, "discount": disc,
                 "coupon": r.choice(COUPONS) if disc else None,
                 "currency": cur, "products": prods}
            if base in ("order completed", "order shipped",
                        "payment info entered"):
                addr = self.address(u)
                p["shipping_address"] = addr
                p["billing_address"] = (dict(addr) if r.random() < 0.7
                                        else self.address(u))
                p["shipping_method"] = {"id": r.choice(["std", "exp",
                                                        "next_day"]),
                                        "carrier": r.choice(["UPS", "FedEx",
                                                             "USPS"]),
                                        "price": ship,
                                        "estimated_days": r.randint(1, 7)}
            if base in ("order completed", "payment info entered"):
                p["payment"] = {"method": r.choice(["card", "paypal",
                                                    "apple_pay"]),
                                "card_brand": r.choice(CARD_BRANDS),
                                "last4": "%04d" % r.randint(0, 9999),
                                "saved": r.random() < 0.5,
                                "three_d_secure": r.random() < 0.3}
            if base == "order completed":
                p["completed_at"] = iso(self.now)
                p["is_first_order"] = r.random() < 0.3
                p["gift_wrap"] = r.random() < 0.05
                p["notes"] = None
            if base == "order shipped":
                p["tracking_number"] = "1Z" + self.alnum(16).upper()
                p["estimated_delivery"] = self.date_str(2, 7, True)
                p["fulfillment"] = {"warehouse": r.choice(WAREHOUSES),
                                    "packages": r.randint(1, 3),
                                    "partial": False}
            if base == "order refunded":
                p["reason"] = r.choice(["damaged", "wrong size",
                                        "not as described"])
                p["restock"] = r.random() < 0.6
            return p
        if base in ("product viewed", "product added", "product removed",
                    "promotion clicked"):
            p = self.product()
            p["currency"] = cur
            p["value"] = js_number(p["price"] * p["quantity"])
            p["dimensions"] = {"weight_kg": r.choice([0.2, 0.45, 1.3, 2.8]),
                               "size": r.choice(["S", "M", "L", None]),
                               "color": r.choice(["black", "navy", "olive"])}
            p["rating"] = {"average": round(r.uniform(3, 5), 1),
                           "count": r.randint(0, 2400)}
            if base == "product added":
                p["cart_id"] = self.uuid()
                p["cart"] = {"id": p["cart_id"],
                             "item_count": r.randint(1, 8),
                             "value": self.money(r.uniform(20, 900))}
            if base == "promotion clicked":
                p["promotion"] = {"id": "promo_%d" % r.randint(1, 40),
                                  "creative": r.choice(["hero_banner",
                                                        "sidebar", "popup"]),
                                  "position": r.choice(["top", "side"])}
            return p
        if base in ("cart viewed", "coupon applied"):
            prods = [self.product() for _ in range(r.randint(1, 5))]
            p = {"cart_id": self.uuid(), "products": prods,
                 "value": self.money(sum(x["price"] * x["quantity"]
                                         for x in prods)),
                 "currency": cur, "is_empty": False,
                 "saved_for_later": []}
            if base == "coupon applied":
                p["coupon"] = {"id": "cpn_%d" % r.randint(1, 99),
                               "name": r.choice(COUPONS),
                               "discount": js_number(r.choice([5, 10, 15.5,
                                                               20])),
                               "stackable": r.random() < 0.2}
            return p
        if base in ("products searched", "product list viewed"):
            p = {"query": r.choice(["rain jacket", "tent", "socks",
                                    "running", "headphones",
                                    "gift for dad"]),
                 "list_id": "list_%d" % r.randint(1, 50),
                 "category": r.choice(PRODUCTS)[1],
                 "results_count": r.randint(0, 180),
                 "filters": [{"type": "price", "value": "0-100"},
                             {"type": "brand",
                              "value": r.choice(PRODUCTS)[2]},
                             {"type": "in_stock", "value": True}],
                 "sorts": [{"type": "price", "value": "asc"}],
                 "products": [{"product_id": self.hexs(8),
                               "name": pr[0], "price": js_number(pr[3]),
                               "position": i + 1}
                              for i, pr in enumerate(
                                  r.sample(PRODUCTS, r.randint(2, 6)))],
                 "page": r.randint(1, 4), "has_more": r.random() < 0.5}
            return p
        if base in ("signed up", "logged in", "trial started"):
            p = {"method": r.choice(["email", "google", "apple", "sso"]),
                 "plan": u["plan"], "referrer": r.choice(REFERRERS),
                 "remember_me": r.random() < 0.5}
            if r.random() < 0.5:
                p["mfa"] = {"enabled": r.random() < 0.3,
                            "type": r.choice(["totp", "sms", None])}
            if base == "trial started":
                p["trial_start_date"] = iso(self.now)
                p["trial_end_date"] = self.date_str(14, 14)
                p["trial_days"] = 14
            if base == "signed up":
                p["signup_source"] = r.choice(["landing_page", "pricing",
                                               "invite"])
                p["invited_by"] = (None if r.random() < 0.6
                                   else "usr_" + self.alnum(12))
                p["consent"] = {"marketing": r.random() < 0.6,
                                "terms": True, "version": "2024-01"}
            return p
        if base in ("subscription started", "plan upgraded",
                    "invoice paid"):
            seats = r.randint(1, 250)
            p = {"plan": {"id": r.choice(PLANS[1:]),
                          "interval": r.choice(["month", "year"]),
                          "seats": seats,
                          "price": self.money(r.uniform(19, 4999))},
                 "previous_plan": u["plan"], "mrr": self.money(
                     r.uniform(19, 4999)),
                 "currency": cur, "invoice_id": "in_" + self.alnum(14),
                 "renewal_date": self.date_str(25, 365),
                 "auto_renew": r.random() < 0.85,
                 "addons": [{"id": a, "quantity": r.randint(1, 5)}
                            for a in r.sample(["sso", "audit", "api",
                                               "sandbox"],
                                              r.randint(0, 2))],
                 "trial_converted": r.random() < 0.4}
            return p
        if base in ("feature used", "report exported"):
            return {"feature": r.choice(FEATURES),
                    "workspace": {"id": "ws_" + self.alnum(8),
                                  "name": u["company"], "plan": u["plan"],
                                  "members": r.randint(1, 80)},
                    "duration_ms": r.randint(50, 90000),
                    "format": r.choice(["csv", "xlsx", "pdf"]),
                    "row_count": r.randint(1, 50000),
                    "filters": {"date_range": r.choice(["7d", "30d",
                                                        "90d"]),
                                "segment": None, "include_archived": False},
                    "success": r.random() < 0.97}
        if base in ("support ticket created", "chat started",
                    "form submitted"):
            return {"subject": r.choice(["Where is my order?",
                                         "Refund request", "Cannot log in",
                                         "Billing question"]),
                    "priority": r.choice(["low", "normal", "high"]),
                    "channel": r.choice(["email", "chat", "web_form"]),
                    "order_id": "ORD-%06d" % r.randint(1, 999999),
                    "form_id": "form_%d" % r.randint(1, 20),
                    "fields": [{"name": "email", "filled": True},
                               {"name": "order_id", "filled": True},
                               {"name": "message",
                                "filled": r.random() < 0.9}],
                    "attachments": r.randint(0, 2),
                    "urgent": r.random() < 0.1}
        if base == "email link clicked":
            return {"email_id": self.hexs(16),
                    "campaign": {"name": r.choice(["March Newsletter",
                                                   "Abandoned Cart",
                                                   "Win-back"]),
                                 "id": "cmp_%d" % r.randint(1, 90),
                                 "segment": r.choice(["all", "vip",
                                                      "lapsed"])},
                    "link_url": SITE + r.choice(PAGES)[1],
                    "sent_at": self.date_str(-3, 0),
                    "opened": True}
        if base == "video playback started":
            return {"session_id": self.uuid(),
                    "content_asset_id": "vid_%d" % r.randint(1, 500),
                    "position": 0, "total_length": r.randint(30, 3600),
                    "bitrate": r.choice([800, 1500, 3000]),
                    "livestream": False, "video_player": "html5",
                    "sound": r.randint(0, 100), "full_screen": False,
                    "content": {"title": "How to pitch a tent",
                                "program": "Camp Basics",
                                "season": None, "episode": r.randint(1, 9)}}
        return {"region": r.choice(["north", "south", "east", "west"]),
                "value": r.randint(1, 500), "retry": False}


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False)


def allocate(total, weights):
    """Split total among weighted kinds (largest remainder, stable order)."""
    wsum = sum(w for _, w in weights)
    raw = [(k, total * w / wsum) for k, w in weights]
    counts = {k: int(x) for k, x in raw}
    rest = total - sum(counts.values())
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i][1] - int(raw[i][1])), i))
    for i in order[:rest]:
        counts[raw[i][0]] += 1
    return counts


PROFILES = {"simple": Gen, "realistic": RealisticGen}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="number of events")
    ap.add_argument("--seed", type=int, default=1, help="PRNG seed")
    ap.add_argument("--flawed", type=float, default=0.0,
                    help="share of deliberately flawed events (0..1)")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="simple",
                    help="simple (the default: the demo's sample and the "
                         "tests) or realistic (what SDKs send; the bench's)")
    a = ap.parse_args()
    if a.n < 0 or not 0.0 <= a.flawed <= 1.0:
        ap.error("--n must be >= 0 and --flawed in [0, 1]")

    g = PROFILES[a.profile](a.seed)
    r = g.r
    nflawed = int(round(a.n * a.flawed))
    counts = allocate(nflawed, FLAW_WEIGHTS)
    kinds = [k for k, _ in FLAW_WEIGHTS for _ in range(counts[k])]
    r.shuffle(kinds)
    slots = sorted(r.sample(range(a.n), nflawed))
    plan = dict(zip(slots, kinds))

    out = sys.stdout.buffer
    total = 0
    stats = {}
    for i in range(a.n):
        kind = plan.get(i)
        if kind is None:
            ev = g.good(r.choice(g.users))
            line = dumps(ev)
            key = "good " + ev["type"]
        else:
            ev = g.flawed(kind)
            line = ev if isinstance(ev, str) else dumps(ev)
            key = "flawed " + kind
        stats[key] = stats.get(key, 0) + 1
        b = (line + "\n").encode("utf-8")
        total += len(b)
        out.write(b)
    out.flush()

    err = sys.stderr
    if a.n:
        err.write("events: %d (%s), average size: %.0f bytes (%.2f KB), "
                  "total %d bytes\n" % (a.n, a.profile, total / a.n,
                                        total / a.n / 1024, total))
    for k in sorted(stats):
        err.write("  %-38s %d\n" % (k, stats[k]))


if __name__ == "__main__":
    main()
