#!/usr/bin/env python3
"""fake_kustomer.py: a local stand-in for Kustomer's REST API, for tests and dry runs.

Python 3 standard library only.  Start it with one command:

    python3 tests/fake_kustomer.py [--port 0] [--host 127.0.0.1] [--port-file FILE]
        [--log FILE] [--lookups FILE] [--api-key KEY] [--rate-limit N]
        [--rate-window SECONDS] [--search-rate-limit N] [--search-max-page N]
        [--fail-every N] [--fail-status 503] [--drop-every N] [--cut-every N]
        [--hang-after N] [--throttle-every N] [--retry-after VALUE] [--slow-ms MS]
        [--slow-every N] [--audit-forbidden] [--bulk-delay-polls N|random:A-B]
        [--bulk-results wrapped|bare] [--seed-random N] [--seed FILE]
        [--seed-customers N] [--seed-messages-per-conversation N] [--seed-notes N]
        [--seed-companies N] [--seed-klasses NAME:N,...] [--seed-users N]
        [--seed-teams N] [--seed-work-sessions-per-user N] [--now TIME]
    (--help describes each option.)

It binds a loopback IPv4 address only (default 127.0.0.1; "localhost" means 127.0.0.1;
anything else is refused with exit status 2), on a free port with --port 0, writes the
port to --port-file (a temporary file renamed into place), prints
"fake-kustomer listening on http://127.0.0.1:PORT" on stdout and serves until
SIGTERM/SIGINT, then exits 0.  Replies are compact JSON (separators "," and ":").

What it imitates, in short: Kustomer's REST API answers JSON:API-like documents
({"data": record or [records]}, records {type, id, attributes, relationships, links}),
authenticates with "Authorization: Bearer <API key>", pages lists with page/pageSize
and relative links.next, searches with POST /v1/customers/search (queryContext and
criteria, the last two years of data; older data through /v1/customers/archive/search),
limits an org to a number of requests per 60-second window (x-ratelimit-limit,
-remaining, -reset headers; 429 beyond; searches by API keys have a lower limit of
their own), and creates/updates customers in bulk as asynchronous jobs (up to 100
items, one rate-limit unit).  Where Kustomer's public documentation leaves a shape
open, this file chooses one and says so; this docstring is the fake's whole
specification.

Shapes chosen where Kustomer's documentation is silent
------------------------------------------------------
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
GET /v1/bulk/{id} -> 200, the same document; every GET of the job (this one or
    its batches) is one poll, as time passes for the real one.  With
    --bulk-delay-polls N (default 2): polls 1..N-1 answer "running" (batches.complete
    grows in proportion), poll N and later answer "complete".  N=0: the job runs at
    submission and the POST already answers "complete".  An integer N is read at
    each poll (a change through POST /_fake/config applies to running jobs too);
    "random:A-B" (A <= B, integers >= 0) draws N once per job, at submission, from
    A..B with a PRNG seeded by --seed-random (default 0) and reseeded by
    POST /_fake/reset, so the draws repeat.  Items are applied to the
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
    upsert); PUT items give "updated" ("error" for a missing or unknown id); a PUT
    item's attributes are merged into the stored customer and its updatedAt and
    modifiedAt bumped to the clock's now, rev + 1.
    --bulk-results bare (config bulk_results "wrapped" (default) | "bare"): the
    answer is a bare array of the completed batches' attributes,
    [{"successCount","failureCount","objectIds","results"}, ...].
  Request-level 400s: the body is not an array (PUT ?ids=a,b,c takes one object
  instead), 0 or more than 100 items, _clientRef on some items but not all, a
  _clientRef that is not a non-empty string of at most 255 characters, a duplicate
  _clientRef, _clientRef in ?ids= mode.  An invalid item only fails its own result.

Paginated lists: {"data":[...],"meta":{"page","pageSize","total","totalPages"},
    "links":{"self","first","prev","next","last"}}; links are relative paths keeping
    the other query parameters; prev is null on page 1, next null on the last page;
    totalPages = ceil(total / pageSize) (0 when empty; last then points at page 1).
    page must be an integer >= 1 and pageSize 1..100 (search 1..500), else 400 with
    source.parameter.  GET lists accept sort=asc|desc with order_by=<attribute>
    (default createdAt; ties keep store order).  Search: see its section below.

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

Scripted lookups (--lookups FILE, POST /_fake/lookups): {url: reply}, e.g.
    {"https://api.kustomerapp.com/v1/customers/externalId=u1": {"status": 404,
    "body": null}, "/v1/customers/email=a@b.c": {"networkError": "ECONNRESET"}}.
    They answer GET (and HEAD) requests whose
    path+query equals the URL's path+query (scheme and host ignored; percent-encoding
    compared after RFC 3986 normalisation), before the store is consulted.  When two
    URLs of one table share a path (e.g. US and EU hosts), the one whose host equals
    the request's Host header wins, else the first in the table.  {status, body}:
    body null -> empty body; a string -> text/plain, raw; anything else -> compact JSON.
    Status 204/304 never carry a body (HTTP forbids it).  {networkError: ...} (any
    value) -> the connection is closed without an answer.  Auth, rate limiting and
    faults apply to scripted paths as to any other request.

Stores, records and seeding
---------------------------
 The fake keeps one store per type; every record is served as JSON:API
   {"type":T,"id":"<24 lowercase hex>","attributes":{...}[,"relationships":{...}]
    [,"links":{"self":"<path>"}]}
 (ids the fake makes are 24 hex digits; records given to --seed, /_fake/seed or
 /_fake/add keep the id given) with attributes.createdAt, updatedAt and modifiedAt
 as "YYYY-MM-DDTHH:MM:SS.sssZ" (audit_log entries: createdAt only).
 "relationships" is left out when a record has none.  A to-one relationship is
 {"data":{"type","id"},"links":{"self":"<path of the target>"}} (org: /v1/orgs/<id>);
 a to-many one is {"data":[{"type","id"},...]} (no links).  Names: org, createdBy,
 modifiedBy, deletedBy (type user), customer, conversation, company, brand, queue,
 user, team, klass, sla (to-one); versions (to-many, on slas).
 Types (T), links.self, and what the generator puts in them:
   customer      /v1/customers/<id>     see "Generators" below
   company       /v1/companies/<id>     name, externalId, domains[] (strings),
                 emails[{email,type}], phones[{phone,type}], socials[{type,username}],
                 urls[{url,type}], locations[{type,name,cityName,countryCode}], tags[]
                 (tag ids), custom
   conversation  /v1/conversations/<id>
   message       /v1/messages/<id>      channel, app, direction in|out, directionType,
                 preview, meta{subject}, status, auto, size, sentAt, assignedUsers[],
                 assignedTeams[], createdByTeams[], shortcuts[] (ids), attachments
                 [{id,name,contentType,contentLength}], custom; relationships org,
                 customer, conversation (+ createdBy, modifiedBy on "out" messages)
   note          /v1/notes/<id>         body, userMentions[], teamMentions[] (ids),
                 custom; relationships org, customer, conversation, createdBy,
                 modifiedBy
   kobject       /v1/klasses/<klass name>/<id>   title, description, externalId, icon,
                 images[], status, tags[] (ids), data{}, custom; relationships org,
                 klass ({"data":{"type":"klass","id"},"links":{"self":
                 "/v1/klasses/<name>"}}), customer, company, createdBy, modifiedBy.
                 Every klass's kobjects share one store; "kobject_<klass>" names one
                 klass's part wherever a type is given (seed, dump, control calls).
   user          /v1/users/<id>         name, displayName, email, userType, roles[]
                 (strings)
   team          /v1/teams/<id>         name, displayName, icon, members[] (user ids)
   tag           /v1/tags/<id>          name, color
   brand         /v1/brands/<id>        name, displayName, default, icon
   shortcut      /v1/shortcuts/<id>     name, text, tags[], assignedUsers[],
                 assignedTeams[] (ids)
   queue         /v1/routing/queues/<id>  name, displayName, priority, description
   sla           /v1/slas/<id>          name, description, enabled, priority,
                 currentVersion (a version number); relationships.versions (to-many
                 sla_version)
   sla_version   /v1/slas/versions/<id> version (1, 2, ...), name, metrics[{type,
                 target (ms), businessHours}], criteria[{attribute,operator,value}];
                 relationships.sla
   schedule      /v1/schedules/<id>     (a business schedule) name, timezone, default,
                 hours {"0".."6" (0 = Sunday): [[startMinute, endMinute], ...]},
                 holidays [{id, name, startDate, endDate}] (dates YYYY-MM-DD)
   custom_attribute_metadata  /v1/metadata/<resource>   one record per custom
                 attribute of a resource: resource (customer, company, conversation,
                 message, note, user or kobject_<klass>), name (e.g. "tierStr"),
                 displayName, type (string|text|number|date|boolean|url|id by the
                 suffix Str|Txt|Num|At|Bool|Url|Id), enabled, hidden
   klass         /v1/klasses/<name>     name, displayName, description, icon, color,
                 status
   work_session  /v1/routing/work-sessions/<id>  statusType, routable, capacityStatus,
                 capacityRemaining, totalCapacity, signedInAt, signedOutAt (null while
                 the session is active), idleSince, lastAssignedItemAt, handled*/
                 workItem counts, totalAvailableTime, channels[] (strings), capacity
                 [{channel,capacity,used}], rev; relationships org, user, team, queue,
                 createdBy, modifiedBy
   audit_log     (no links)  {"type":"audit_log","id","attributes":{"eventVerb",
                 "objectType","objectId","createdAt"}} only; written by deletes (see
                 the control API and DELETE /v1/customers/{id}), never generated
 Custom attributes (attributes.custom) of generated customer, company, conversation,
 message, note and kobject records use every suffix: Str, Txt, Num, At, Bool, Url, Id.
 A soft-deleted record has attributes.deleted true, deletedAt, and relationships
 .deletedBy.

 Generators (deterministic: ids are seed_id(kind, numbers...) = the first 24 hex digits
 of md5("<kind>-<n>-<m>..."), timestamps count from 2025-01-01T00:00:00.000Z):
   --seed-customers N   customers 1..N, each with two conversations.  Alone, the
                        customers and conversations are exactly those of earlier
                        versions: no relationships on customers, conversations with
                        relationships.customer only, custom {tierStr, ordersNum}.
   --seed-messages-per-conversation M, --seed-notes K (per conversation),
   --seed-companies C, --seed-klasses order:3,device:1 (kobjects per klass, in total,
   given to customers and companies round robin), --seed-users U, --seed-teams T,
   --seed-work-sessions-per-user W (default 2; the last session of every odd-numbered
   user is active; alone it seeds nothing): when any of these but W is > 0 the
   generator is "extended": customers
   gain phones, urls, socials, locations, sharedEmails, tags, watchers (user ids),
   conversationCounts{all,open,done,snoozed}, sentiment{polarity,confidence}, custom
   of every suffix (tierStr and ordersNum keep their values) and relationships org,
   createdBy, modifiedBy, company; conversations gain tags, suggestedTags,
   assignedUsers, assignedTeams, satisfactionLevel{rating}, sentiment, custom,
   firstMessageIn{id,sentAt,channel} (when M > 0) and relationships org, createdBy,
   modifiedBy, brand, queue, company.  References to users, teams or companies are
   only made when some exist (empty arrays, no relationship otherwise).
   Any generator option > 0 also creates the default reference data: 4 tags, 2 brands,
   3 shortcuts, 2 queues, 2 slas (with 2 and 1 versions), 2 schedules, and one
   custom_attribute_metadata record per custom attribute name the generated records
   of a resource carry.  --seed FILE alone creates none of them.
 --seed FILE: {"<type>": [record, ...], ...} with type one of the types above
   (kobjects as "kobject_<klass>"; a klass that does not exist yet is created with id
   seed_id("klass", name)).  A record is {"id"?,"type"?,"attributes"?,"relationships"?}
   ("links" is ignored; other keys, a type other than the key's, a non-string id or a
   timestamp that is not ISO 8601 are errors: exit status 2).  Missing id: seed_id(
   "<type>", "made", n) with n counting every id the fake made since the start/reset.
   Missing createdAt: the clock's now; missing updatedAt: createdAt; missing
   modifiedAt: updatedAt; createdAt, updatedAt, modifiedAt and deletedAt are rewritten
   as ms ISO UTC.  The generators run first, then the file (same ids: the file wins).
 POST /_fake/seed  the same object (all or nothing: a 400 names the first problem and
   changes nothing), and/or "generate": {"customers":N,"messages_per_conversation":M,
   "notes":K,"companies":C,"klasses":{"order":3} or "order:3","users":U,"teams":T,
   "work_sessions_per_user":W} (generated first).  Records are added, or replace the
   record with the same id in place.  -> 200 {"ok":true,"counts":{"<type>":n,...}}
   (kobjects counted as kobject_<klass>).  It changes the current store only:
   POST /_fake/reset goes back to the command line's seeding.
 GET /_fake/dump[?type=<type>|kobject_<klass>|kobject]  the store as API records
   (exactly as the API serves them), soft-deleted included, sorted by id; without
   type an object {"customer":[...], "company":[...], ..., "kobject_<klass>":[...] per
   klass, ..., "audit_log":[...], "conversation_time":[...]} holding every type (empty
   ones as []; conversation_time as in /v1/conversations/times).  An unknown
   type -> 400 with source.parameter "type".
 GET /_fake/customers  the customer store in insertion order (as before).
 GET /v1/customers and /v1/conversations leave soft-deleted records out; GET
 /v1/customers/{id} still answers them; email=/externalId= lookups skip them.
 DELETE /v1/customers/{id} also writes an audit_log entry (eventVerb "delete").

Search: POST /v1/customers/search and POST /v1/customers/archive/search
-----------------------------------------------------------------------
 ?page (>= 1) &pageSize (1..500) &idsOnly=true.  Body {"queryContext", "and", "or",
 "not", "sort", "includeDeleted"}; other keys are ignored.
 queryContext: customer, conversation, message, note, company, user, kobject_<klass>
 (an unknown klass gives an empty result; others -> 400 at /queryContext).
 Criteria {"<key>":{"<op>":value}}; an array, or one object, under and (all must
 hold), or (one must), not (none may).  Ops: equals (strings case-insensitive; on an
 array attribute: contains the value), in (a list of values), contains (substring,
 case-insensitive; on an array: has the value), gt, gte, lt, lte, not_set (true: the
 value is missing, null, "" or []; false: the opposite).  Strings that look like
 dates (start YYYY-MM) compare as instants, a bare YYYY-MM-DD as midnight UTC.
 Keys are "<ctx>_<snake_case attribute>"; kobject contexts accept both
 "kobject_<attr>" and "kobject_<klass>_<attr>" (the klass prefix is tried first).
 The field after the prefix reads: "id" the record id; "custom_<name>" custom.<name>
 (e.g. customer_custom_tierStr); otherwise attributes.<camelCase> (updated_at ->
 updatedAt); when the record has no such attribute, relationships.<camelCase>.data.id,
 and for a field ending in "_id" relationships.<camelCase without _id>.data.id (so
 message_conversation_id and note_customer_id work).  A key of another context, an
 unknown operator or a non-object -> 400 (one entry per problem, with its pointer).
 includeDeleted: a boolean (else 400); without it, or false, records whose
 attributes.deleted is true are left out.
 Archive: records whose updatedAt is more than 730 days before the fake clock's now
 (updatedAt < now - 730 days) are only served by /v1/customers/archive/search, which
 serves only them; body, validation, paging and response are the same.
 sort: [{"<key>":"asc"|"desc"}, ...] (one object may hold several keys, taken in
 order); records are ordered by the first key, then the next, ...; ties left after
 the last key by id ascending; records missing a key's value come last.  Without
 sort: store (insertion) order.
 Response: the paginated list shape above; meta.total and meta.totalPages always
 (0 and 0 when nothing matches); idsOnly=true gives {type,id} items.
 Page cap: a page above --search-max-page (default 100; config search_max_page,
 >= 1) -> 400 {"detail":"search results are limited to N pages","source":
 {"parameter":"page"}}.
 Search rate limit: --search-rate-limit N (config search_rate_limit; 0 = off): a
 second fixed window of --rate-window seconds (real time), opened by the first search
 after the previous one ended; beyond N accepted searches in it a search answers 429
 (the 429 body) with Retry-After: the whole seconds until the search window ends
 (rounded up, at least 1), plus the usual x-ratelimit-* headers.  An accepted search
 uses one unit of the general limit and one of the search limit; a search refused by
 either limit uses neither.  Both search paths count as searches.

Reference lists and other reads (GET; paginated as above unless said otherwise)
-------------------------------------------------------------------------------
 Records are served exactly as stored (see the types above), in store (insertion)
 order unless sort/order_by is given.  pageSize is 1..500 for /v1/users and
 /v1/teams, 1..100 for the others.  Soft-deleted reference records stay in their
 lists with attributes.deleted true; hard-deleted ones are gone.
   /v1/users                   users that are not deleted; ?deleted=true: only the
                               deleted ones
   /v1/teams, /v1/tags, /v1/brands, /v1/shortcuts, /v1/routing/queues, /v1/schedules,
   /v1/klasses
   /v1/slas                    slas, plus a top-level "included" array of sla_version
                               records of the slas on this page (sla page order, then
                               version ascending): ?versions=all every version, else
                               the highest version of each sla
   /v1/metadata/{resource}     the custom_attribute_metadata records of that resource
                               (customer, company, conversation, message, note, user,
                               kobject_<klass> of a known klass; others -> 404)
   /v1/routing/work-sessions   newest first (createdAt descending, ties by id);
                               ?active=true only sessions with signedOutAt null,
                               ?active=false only the others (other values -> 400)
   /v1/audit-logs              not paginated by page: ?filter[objectType]=a,b
                               &filter[include]=c,d (the object types wanted: their
                               union; neither given: all), &filter[start]=<ISO> (createdAt
                               >= start), &count=1..1000 (default 100), &after=<entry id>
                               (entries after that one).  Brackets and commas may be
                               percent-encoded or not.  Order: createdAt ascending,
                               ties in the order written.  -> {"data":[entries],
                               "meta":{"count":n},"links":{"self","next"}}; next is the
                               same query with after=<last id of the page>, null when
                               nothing follows.  Bad count, filter[start] or an unknown
                               after -> 400 with source.parameter.  --audit-forbidden
                               (config audit_forbidden) -> 403 {"errors":[{"status":403,
                               "code":"forbidden","title":"Forbidden"}]}.
   /v1/conversations/times/{ids}  ids comma-separated, 1..100 (else 400); -> {"data":
                               [...]}: one record per known id, in request order
                               (unknown ids left out), derived from the conversation:
                               {"type":"conversation_time","id":<conversation id>,
                               "attributes":{firstResponseTime, firstResponseBusinessTime,
                               lastResponseTime, handleTime, customerWaitTime (ms,
                               fixed per id), channels (the conversation's),
                               createdByTeams (its assignedTeams), createdAt, updatedAt,
                               modifiedAt (the conversation's)},"relationships":
                               {"conversation":..},"links":{"self":..}}.  GET /_fake/dump
                               lists them under "conversation_time" (?type= too).
   /v1/<users|teams|tags|brands|shortcuts|slas|schedules|companies|conversations|
   messages|notes>/{id}, /v1/routing/<queues|work-sessions>/{id}: {"data": record}, 404
                               when unknown.  Other methods on these paths -> 405.

Order of checks for every non-control request
---------------------------------------------
 1. the global request counter n is incremented (every request not under /_fake/,
    whatever its outcome: 401s, 404s, 429s, faults, drops and hangs all count), and
    the POST /_fake/script entries with at_request == n run (so request n already
    sees their changes, whatever happens to it next);
 2. --hang-after H: when n >= H the request is recorded (status null, fault "hang")
    and never answered: the connection is held until hang_after is set again through
    POST /_fake/config, POST /_fake/reset, or the server stops; then it is closed
    without an answer.  Nothing else happens to the request (the store is untouched);
 3. --drop-every D: when n % D == 0 the connection is closed without an answer;
 4. --fail-every F: when n % F == 0 the answer is --fail-status with the error body;
    else --throttle-every T: when n % T == 0 the answer is 429 with
    x-ratelimit-remaining 0 and the reset rate_window seconds ahead (and
    Retry-After: --retry-after's value, when set);
 5. auth: missing/non-Bearer/empty Authorization, or a key other than --api-key -> 401;
 6. rate limit, then (searches) the search rate limit; 7. the endpoint itself.
 --slow-ms MS delays the reply of request n by MS milliseconds when n % --slow-every
 == 0 (--slow-every defaults to 1, i.e. every reply, once --slow-ms is set).
 --cut-every C (config cut_every): when n % C == 0, whatever the answer (a fault, a
 401, a 429 or the endpoint's), its status line and headers (Content-Length of the
 whole body) are sent with the first half of the body (len // 2 bytes), then the
 connection is closed.  The request was handled in full (e.g. a bulk job exists).
 --hang-after and --drop-every requests are never cut.

Request statistics: GET /_fake/stats
------------------------------------
 {"requests":n (the counter),"by_route":{"<METHOD> <path>":count,...},"accepted":a,
  "rejected_429":r,"dropped":d,"cut":c}.  by_route counts every counted request; its
 path has no query, and 24-hex segments and the segment after a collection (other
 than a route word such as bulk, search, archive, batches, times) become {id},
 email=<v> becomes email={email}, externalId=<v> externalId={externalId}, the list
 after /times/ {ids} (e.g. "POST /v1/customers/bulk", "GET /v1/bulk/{id}/batches",
 "GET /v1/customers/email={email}"; metadata resources and klass names stay).
 accepted: requests that reached the endpoint (passed faults, auth and the rate
 limits); rejected_429: answers with status 429, whatever the cause (limits,
 --throttle-every, a scripted lookup); dropped: --drop-every drops and networkError
 lookups; cut: --cut-every answers.  POST /_fake/reset clears them.

Rate limiting (--rate-limit N, --rate-window S, default 60; 0 = off, no headers)
---------------------------------------------------------------------------------
 A fixed window opens at the first counted request after the previous one ended and
 lasts S seconds.  Only ACCEPTED requests use the budget: a request that passed steps
 2-5 and is not itself answered 429 (Kustomer counts accepted requests; rejected 429s,
 401s, injected faults and drops do not).  Beyond N accepted requests in the window,
 answers are 429 until the window ends.  Every non-control answer carries
 x-ratelimit-limit: N, x-ratelimit-remaining: N - used (>= 0) and x-ratelimit-reset:
 the window's end in UTC epoch seconds (an integer, rounded up; with S < 10 the
 fraction is kept, 3 digits).  A bulk request is one unit, as in Kustomer.  Rate
 windows and the record's "time"/"ts" use real time, never the fake clock.
 POST /_fake/config {"external_usage": U}: other apps used U units of the current
 window (one is opened now if none is open): "used" above is the fake's accepted
 requests plus U, so x-ratelimit-remaining is U lower and the 429s start U requests
 earlier.  It replaces an earlier U of the same window; the next window starts at 0
 again (GET /_fake/config shows the current window's U, 0 once it ended).

Clock
-----
 Every timestamp the fake writes into data (createdAt/updatedAt/modifiedAt/deletedAt of
 records created or changed by the API or the control API, bulk jobs, audit-log
 entries, tracking events, the seconds of generated 24-hex ids) and the archive
 cut-off of search come from the fake clock.  It follows real time until set; once
 set it runs on with real time from the set point, unless frozen.  --now T (ISO 8601
 or epoch ms) sets it at start; POST /_fake/reset puts it back to that start
 (unfrozen).
 GET  /_fake/clock   {"now":"<ISO ms>","now_ms":<epoch ms>,"frozen":bool,
                      "real_time":bool (true while it was never set)}
 POST /_fake/clock   {"now": ISO or epoch ms, "advance_ms": integer (may be negative),
                      "frozen": bool}: any subset, applied in that order; -> the GET
                      answer.  Unknown keys or bad values -> 400.

Recording
---------
 Every non-control request (including dropped ones) becomes one JSON object, appended
 to the in-memory record and, with --log FILE, as one line to FILE (flushed per line):
   {"seq":n,"time":"<ISO UTC>","ts":<epoch float>,"method":..,"path":"<path?query>",
    "headers":{lower-case name: value},"body":"<text>","status":<int or null if not
    answered>,"dropped":bool,"fault":null|"drop"|"fail"|"throttle"|"network_error"|
    "hang","scripted":bool,"slow":bool,"cut":bool (--cut-every),"peer":<the
    client's port: one per connection>}
 It is recorded before the reply is written.

Control API (/_fake/..., no auth, never counted, rate-limited, faulted or recorded)
----------------------------------------------------------------------------------
 Bodies are JSON; a body that is not JSON, or not the shape described, -> 400 with the
 error body (source.pointer ""); an unknown record -> 404 with a detail.
 GET  /_fake/health     {"ok":true,"port":P,"requests":n}
 GET  /_fake/requests   the record, a JSON array
 POST /_fake/reset      clears the record (and truncates --log FILE), the request
                        counter, the rate windows, bulk jobs, tracking events, the
                        script, the fake-made id counter; releases hung requests; the
                        store goes back to its seeded start and the clock to its start.
                        Config and lookups are kept.
 GET  /_fake/config     current settings (plus "external_usage", see Rate limiting)
 POST /_fake/config     {rate_limit, rate_window, fail_every, fail_status, drop_every,
                        slow_ms, slow_every, api_key (string or null = any key),
                        bulk_delay_polls, throttle_every, retry_after (string or
                        null), search_rate_limit, search_max_page (>= 1), hang_after,
                        external_usage, audit_forbidden (bool), cut_every,
                        bulk_results ("wrapped"|"bare"); bulk_delay_polls also
                        "random:A-B"}: any subset; unknown keys -> 400.  Answers
                        the resulting settings.  Integers are >= 0 unless noted.
 GET  /_fake/lookups    scripted lookups;  POST /_fake/lookups replaces them.
 GET  /_fake/customers  the customer store, a JSON array of API records
 GET  /_fake/events     tracking events received
 GET  /_fake/stats      request statistics (see "Request statistics")
 GET  /_fake/dump, POST /_fake/seed: see "Stores, records and seeding".
 GET/POST /_fake/clock: see "Clock".
 In the calls below "type" is a store type or kobject_<klass> (a bare "kobject" is
 accepted where only an id is looked up); an unknown type -> 400, an unknown id (or a
 kobject of another klass) -> 404.  "Bump" means: updatedAt and modifiedAt := the
 clock's now (ms), and a numeric attributes.rev + 1.  Picking "the N oldest" means the
 N non-deleted records with the smallest updatedAt, ties by id ascending (fewer if
 there are fewer).
 POST /_fake/mutate {"type","id","attributes"?,"relationships"?} or
                    {"type","count":N,"attributes"?,"relationships"?} (the N oldest):
                    top-level attributes replace, except "custom", merged key by key;
                    relationships replace by name; each record is bumped, but an
                    updatedAt (and/or modifiedAt) given in attributes is kept (as ms
                    ISO).  -> {"ok":true,"ids":[...]}
 POST /_fake/delete {"type","id","soft":bool (default false),"by":user id (default
                    seed_id("user", 0))}: soft: attributes.deleted true, deletedAt
                    now, relationships.deletedBy the user, bumped; hard: removed.
                    Both append an audit_log entry {eventVerb "delete", objectType
                    the store type ("kobject" for kobjects), objectId, createdAt now}
                    (id seed_id("audit_log", "made", n)).
                    -> {"ok":true,"id","soft","audit_log":"<entry id>"}
 POST /_fake/touch  {"type","count":N,"same_ms":bool (default false),"at": ISO or
                    epoch ms (default now)}: the N oldest get updatedAt/modifiedAt
                    "at" (same_ms) or consecutive milliseconds ending at "at", in
                    that order (at - N + 1 ... at); rev + 1.
                    -> {"ok":true,"ids":[...],"updatedAt":[distinct values, sorted]}
 POST /_fake/merge  {"source","target","by"?} (customer ids, both live, different):
                    the conversations, messages, notes and kobjects whose
                    relationships.customer is the source get the target (bumped);
                    the source is soft-deleted (as above, with an audit_log entry);
                    the target is bumped.
                    -> {"ok":true,"moved":{"conversation":n,...},"audit_log":id}
 POST /_fake/add    {"type","count":N}: N new records, ids seed_id(type, "made", n),
                    timestamps now; conversations go to existing customers, messages
                    and notes to existing conversations, work sessions to users
                    (round robin; 400 when there is none); audit_log cannot be added.
                    Or {"type","record":{...}}: one record as in --seed.
                    -> {"ok":true,"ids":[...]}
 POST /_fake/script [{"at_request":N,"do":"mutate"|"delete"|"touch"|"add"|"merge",
                    ...the arguments of that call}, ...]: replaces the pending
                    script; each entry runs once, when request N arrives (step 1
                    above).  at_request must be > the current counter.
                    -> {"ok":true,"pending":k}
 GET  /_fake/script {"pending":[entries],"done":[entry + "status" and "result" (the
                    call's HTTP status and answer)]}
"""

import argparse
import copy
import datetime
import hashlib
import http
import ipaddress
import json
import math
import random
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
CONVERSATION_TIMES_MAX = 100
AUDIT_DEFAULT_COUNT = 100
AUDIT_MAX_COUNT = 1000

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
SEARCH_CONTEXTS = ("customer", "conversation", "message", "note", "company", "user")
SEARCH_OPS = ("equals", "in", "contains", "gt", "gte", "lt", "lte", "not_set")
CONFIG_KEYS = ("rate_limit", "rate_window", "fail_every", "fail_status", "drop_every",
               "slow_ms", "slow_every", "api_key", "bulk_delay_polls", "throttle_every",
               "retry_after", "search_rate_limit", "search_max_page", "hang_after",
               "external_usage", "audit_forbidden", "cut_every", "bulk_results")

DROP = object()   # a route's answer meaning: close the connection, answer nothing


# ---------------------------------------------------------------------------- helpers

def cjson(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def now_iso(t=None):
    if t is None:
        t = time.time()
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def iso_ms(ms):
    """Integer epoch milliseconds -> 'YYYY-MM-DDTHH:MM:SS.sssZ'."""
    d = EPOCH + datetime.timedelta(milliseconds=int(ms))
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)


def ms_of(value):
    """An ISO 8601 string (see parse_iso) or an integer of epoch ms -> epoch ms, or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    d = parse_iso(value)
    if d is None:
        return None
    return (d - EPOCH) // datetime.timedelta(milliseconds=1)


class Clock:
    """The fake's clock: real time until set; once set it runs on from the set point
    with real time, unless frozen."""

    def __init__(self, start_ms=None):
        self.start_ms = start_ms
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.frozen = False
            self.base_fake = self.start_ms
            self.base_real = time.time()

    def _now(self):
        if self.base_fake is None:
            return int(time.time() * 1000)
        if self.frozen:
            return self.base_fake
        return self.base_fake + int((time.time() - self.base_real) * 1000)

    def now_ms(self):
        with self.lock:
            return self._now()

    def set_ms(self, ms):
        with self.lock:
            self.base_fake, self.base_real = int(ms), time.time()

    def advance(self, ms):
        with self.lock:
            self.base_fake, self.base_real = self._now() + int(ms), time.time()

    def freeze(self, frozen):
        with self.lock:
            self.base_fake, self.base_real = self._now(), time.time()
            self.frozen = bool(frozen)

    def info(self):
        with self.lock:
            now = self._now()
            return {"now": iso_ms(now), "now_ms": now, "frozen": self.frozen,
                    "real_time": self.base_fake is None}


CLOCK = Clock()


def data_now():
    """The fake clock's now as the ISO text every stored timestamp uses."""
    return iso_ms(CLOCK.now_ms())


_id_lock = threading.Lock()
_id_counter = [secrets.randbelow(1 << 24)]


def new_id():
    """A 24-hex, Mongo ObjectId-like id: the fake clock's seconds, random, counter."""
    with _id_lock:
        _id_counter[0] = (_id_counter[0] + 1) & 0xFFFFFF
        c = _id_counter[0]
    return "%08x%s%06x" % ((CLOCK.now_ms() // 1000) & 0xFFFFFFFF, secrets.token_hex(5), c)


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


# ------------------------------------------------------------------------ data model

BASE_MS = 1735689600000            # 2025-01-01T00:00:00.000Z: generated data starts here
DAY_MS = 86400000
ARCHIVE_DAYS = 730
ORG_ID = seed_id("org", 1)
ACTOR_ID = seed_id("user", 0)      # "by" of control-API deletes that name nobody

# Store types (JSON:API "type" values).  Kobjects of every klass share the "kobject"
# store; "kobject_<klass>" names one klass's part of it wherever a type is asked for.
TYPES = ("customer", "company", "conversation", "message", "note", "kobject", "user",
         "team", "tag", "brand", "shortcut", "queue", "sla", "sla_version", "schedule",
         "custom_attribute_metadata", "klass", "work_session", "audit_log")
# links.self of each type's records
SELF_PATHS = {
    "customer": "/v1/customers/%s", "company": "/v1/companies/%s",
    "conversation": "/v1/conversations/%s", "message": "/v1/messages/%s",
    "note": "/v1/notes/%s", "user": "/v1/users/%s", "team": "/v1/teams/%s",
    "tag": "/v1/tags/%s", "brand": "/v1/brands/%s", "shortcut": "/v1/shortcuts/%s",
    "queue": "/v1/routing/queues/%s", "sla": "/v1/slas/%s",
    "sla_version": "/v1/slas/versions/%s", "schedule": "/v1/schedules/%s",
    "work_session": "/v1/routing/work-sessions/%s", "org": "/v1/orgs/%s",
    "conversation_time": "/v1/conversations/times/%s",
}
KLASS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
# generator parameters: name -> default
GEN_KEYS = ("customers", "messages_per_conversation", "notes", "companies", "klasses",
            "users", "teams", "work_sessions_per_user")
# custom attribute names the extended generator gives each type, one per suffix
CUSTOM_NAMES = {
    "customer": ("tierStr", "noteTxt", "ordersNum", "lastOrderAt", "vipBool", "homepageUrl",
                 "accountId"),
    "company": ("industryStr", "aboutTxt", "employeesNum", "renewalAt", "partnerBool",
                "websiteUrl", "crmId"),
    "conversation": ("topicStr", "summaryTxt", "scoreNum", "followUpAt", "escalatedBool",
                     "ticketUrl", "ownerId"),
    "message": ("langStr", "rawTxt", "wordsNum", "readAt", "spamBool", "sourceUrl",
                "threadId"),
    "note": ("kindStr", "extraTxt", "minutesNum", "remindAt", "pinnedBool", "linkUrl",
             "refId"),
    "kobject": ("skuStr", "detailsTxt", "amountNum", "placedAt", "paidBool", "trackingUrl",
                "sourceId"),
}
SUFFIX_TYPES = {"Str": "string", "Txt": "text", "Num": "number", "At": "date",
                "Bool": "boolean", "Url": "url", "Id": "id"}


def rel(t, i, path=None):
    """A to-one relationship: {"data":{type,id}[,"links":{"self":..}]}."""
    r = {"data": {"type": t, "id": i}}
    p = path or (SELF_PATHS[t] % i if t in SELF_PATHS else None)
    if p:
        r["links"] = {"self": p}
    return r


def rels(t, ids):
    """A to-many relationship: {"data":[{type,id},...]}."""
    return {"data": [{"type": t, "id": i} for i in ids]}


def stamps(created_ms, updated_ms=None):
    u = created_ms if updated_ms is None else updated_ms
    return {"createdAt": iso_ms(created_ms), "updatedAt": iso_ms(u), "modifiedAt": iso_ms(u)}


def custom_value(kind, name, n):
    suffix = next(s for s in CUSTOM_SUFFIXES if name.endswith(s))
    if suffix == "Str":
        return "%s-%d" % (name[:-3], n % 5)
    if suffix == "Txt":
        return "%s %d\nsecond line" % (kind, n)
    if suffix == "Num":
        return n % 7 if n % 2 else n + 0.5
    if suffix == "At":
        return iso_ms(BASE_MS + (n % 400) * DAY_MS)
    if suffix == "Bool":
        return n % 2 == 0
    if suffix == "Url":
        return "https://example.com/%s/%d" % (kind, n)
    return seed_id("ref", kind, n)


def custom_all(kind, n):
    return {name: custom_value(kind, name, n) for name in CUSTOM_NAMES[kind]}


def pick(ids, n, k=1):
    """k ids of ids starting at n (round robin), without repeats; [] when ids is empty."""
    if not ids:
        return []
    return [ids[(n + j) % len(ids)] for j in range(min(k, len(ids)))]


def base_rels(n, users, created=True):
    out = {"org": rel("org", ORG_ID)}
    if users and created:
        out["createdBy"] = rel("user", pick(users, n)[0])
        out["modifiedBy"] = rel("user", pick(users, n + 1)[0])
    return out


def gen_params(obj):
    """Validate generator parameters -> (params, error)."""
    if not isinstance(obj, dict):
        return None, "generate must be an object"
    p = {}
    for k, v in obj.items():
        if k not in GEN_KEYS:
            return None, 'unknown generate key "%s" (known: %s)' % (k, ", ".join(GEN_KEYS))
        if k == "klasses":
            if isinstance(v, str):
                v, err = parse_klasses(v)
                if err:
                    return None, err
            if not isinstance(v, dict) or not all(
                    isinstance(n, str) and KLASS_NAME.fullmatch(n) and isinstance(c, int)
                    and not isinstance(c, bool) and c >= 0 for n, c in v.items()):
                return None, 'klasses must be {name: count >= 0} or "name:count,..."'
        elif not isinstance(v, int) or isinstance(v, bool) or v < 0:
            return None, "%s must be an integer >= 0" % k
        p[k] = v
    return p, None


def parse_klasses(text):
    """'order:3,device:1' -> ({'order': 3, 'device': 1}, None) or (None, error)."""
    out = {}
    for part in [x for x in text.split(",") if x.strip()]:
        name, sep, count = part.strip().partition(":")
        if not sep or not KLASS_NAME.fullmatch(name) or not re.fullmatch(r"[0-9]+", count):
            return None, 'bad klass spec "%s": want name:count' % part
        out[name] = int(count)
    return out, None


def generate(p):
    """Generator parameters -> {type: [record, ...]} (deterministic: ids from seed_id,
    timestamps from BASE_MS).  Records are {"type","id","attributes"[,"relationships"]}
    (kobjects also "_klass")."""
    n_cust = p.get("customers", 0)
    n_msg = p.get("messages_per_conversation", 0)
    n_note = p.get("notes", 0)
    n_comp = p.get("companies", 0)
    klasses = p.get("klasses") or {}
    n_user = p.get("users", 0)
    n_team = p.get("teams", 0)
    n_ws = p.get("work_sessions_per_user")
    if n_ws is None:
        n_ws = 2
    extended = bool(n_msg or n_note or n_comp or any(klasses.values()) or n_user or n_team)
    out = {t: [] for t in TYPES}

    def add(t, i, attrs, relationships=None, **extra):
        r = {"type": t, "id": i, "attributes": attrs}
        if relationships:
            r["relationships"] = relationships
        r.update(extra)
        out[t].append(r)
        return r

    # users, teams
    users = [seed_id("user", u) for u in range(1, n_user + 1)]
    for u, uid in enumerate(users, 1):
        add("user", uid, dict({
            "name": "Seed User %d" % u, "displayName": "Seed User %d" % u,
            "email": "user%d@example.com" % u, "userType": "user",
            "roles": ["org.user.customer.read", "org.user.conversation.write"][:1 + u % 2],
        }, **stamps(BASE_MS - 90 * DAY_MS + u * 3600000)), {"org": rel("org", ORG_ID)})
    teams = [seed_id("team", t) for t in range(1, n_team + 1)]
    for t, tid in enumerate(teams, 1):
        add("team", tid, dict({
            "name": "Seed Team %d" % t, "displayName": "Seed Team %d" % t,
            "icon": "users", "members": [u for k, u in enumerate(users) if k % n_team == t - 1],
        }, **stamps(BASE_MS - 80 * DAY_MS + t * 3600000)), base_rels(t, users))

    # default reference data
    ref0 = BASE_MS - 100 * DAY_MS
    tags = []
    for k, (name, color) in enumerate((("vip", "#f5a623"), ("billing", "#4a90e2"),
                                       ("bug", "#d0021b"), ("refund", "#7ed321")), 1):
        tags.append(seed_id("tag", k))
        add("tag", tags[-1], dict({"name": name, "color": color},
                                  **stamps(ref0 + k * 60000)), base_rels(k, users))
    brands = []
    for k, name in enumerate(("Acme", "Acme EU"), 1):
        brands.append(seed_id("brand", k))
        add("brand", brands[-1], dict({"name": name, "displayName": name, "default": k == 1,
                                       "icon": "brand-%d" % k},
                                      **stamps(ref0 + k * 120000)), base_rels(k, users))
    shortcuts = []
    for k, name in enumerate(("Greeting", "Refund policy", "Closing"), 1):
        shortcuts.append(seed_id("shortcut", k))
        add("shortcut", shortcuts[-1], dict({
            "name": name, "text": "%s text" % name, "tags": pick(tags, k, k - 1),
            "assignedUsers": pick(users, k, 1 if k != 2 else 2),
            "assignedTeams": pick(teams, k, 1 if k == 3 else 0),
        }, **stamps(ref0 + k * 180000)), base_rels(k, users))
    queues = []
    for k, name in enumerate(("Default", "Escalations"), 1):
        queues.append(seed_id("queue", k))
        add("queue", queues[-1], dict({"name": name, "displayName": name, "priority": k,
                                       "description": "%s queue" % name},
                                      **stamps(ref0 + k * 240000)), base_rels(k, users))
    for k, (name, nver) in enumerate((("Standard", 2), ("Premium", 1)), 1):
        sid = seed_id("sla", k)
        vids = [seed_id("sla_version", k, v) for v in range(1, nver + 1)]
        add("sla", sid, dict({"name": name, "description": "%s SLA" % name, "enabled": True,
                              "priority": k, "currentVersion": nver},
                             **stamps(ref0 + k * 300000, ref0 + k * 300000 + nver * 60000)),
            dict(base_rels(k, users), versions=rels("sla_version", vids)))
        for v, vid in enumerate(vids, 1):
            add("sla_version", vid, dict({
                "version": v, "name": "%s v%d" % (name, v),
                "metrics": [{"type": "firstResponse", "target": 3600000 // (k * v),
                             "businessHours": True},
                            {"type": "nextResponse", "target": 7200000 // v,
                             "businessHours": k == 1}][:1 + (v + k) % 2],
                "criteria": [{"attribute": "conversation_priority", "operator": "gte",
                              "value": k + v}],
            }, **stamps(ref0 + k * 300000 + v * 60000)),
                dict(base_rels(k, users), sla=rel("sla", sid)))
    for k, (name, tz) in enumerate((("Business hours", "America/New_York"),
                                    ("Weekend", "Europe/Paris")), 1):
        hours = {str(d): ([[540, 1020]] if (1 <= d <= 5) == (k == 1) else []) for d in range(7)}
        if k == 1:
            hours["3"] = [[540, 720], [780, 1020]]
        add("schedule", seed_id("schedule", k), dict({
            "name": name, "timezone": tz, "default": k == 1, "hours": hours,
            "holidays": [{"id": seed_id("holiday", k, h), "name": "Holiday %d" % h,
                          "startDate": "2025-%02d-25" % (11 + h), "endDate": "2025-%02d-26"
                          % (11 + h)} for h in range(k)],
        }, **stamps(ref0 + k * 360000)), base_rels(k, users))

    # companies
    companies = [seed_id("company", c) for c in range(1, n_comp + 1)]
    for c, coid in enumerate(companies, 1):
        add("company", coid, dict({
            "name": "Seed Company %d" % c, "externalId": "company-%d" % c,
            "domains": ["company%d.example.com" % c],
            "emails": [{"email": "info@company%d.example.com" % c, "type": "work"}],
            "phones": [{"phone": "+1555%07d" % (9000000 + c), "type": "work"}],
            "socials": [{"type": "linkedin", "username": "company%d" % c}] if c % 2 else [],
            "urls": [{"url": "https://company%d.example.com" % c, "type": "website"}],
            "locations": [{"type": "work", "name": "HQ", "cityName": "Boston",
                           "countryCode": "US"}],
            "tags": pick(tags, c, c % 2), "custom": custom_all("company", c),
        }, **stamps(BASE_MS - 10 * DAY_MS + c * 5400000,
                    BASE_MS - 10 * DAY_MS + c * 5400000 + (c * 37 % 100) * 60000)),
            base_rels(c, users))

    # customers and their two conversations (the original seeding, unchanged; the
    # extended generator adds arrays, nested objects, custom attributes, relationships)
    tiers = ("bronze", "silver", "gold")
    statuses = ("open", "done", "snoozed")
    for i in range(1, n_cust + 1):
        cid = seed_id("customer", i)
        created = BASE_MS + i * 3600000
        updated = created + ((i * 7919) % 2000) * 60000
        attrs = {
            "name": "Seed Customer %d" % i,
            "displayName": "Seed Customer %d" % i,
            "externalId": "seed-%d" % i,
            "externalIds": [{"externalId": "seed-%d" % i, "verified": True}],
            "emails": [{"email": "seed%d@example.com" % i, "type": "home",
                        "verified": False}],
            "phones": [], "urls": [], "socials": [], "locations": [], "tags": [],
            "custom": {"tierStr": tiers[i % 3], "ordersNum": i % 7},
            "createdAt": iso_ms(created), "updatedAt": iso_ms(updated),
            "modifiedAt": iso_ms(updated), "rev": 1,
        }
        crels = None
        conv_status = [statuses[(i + j) % 3] for j in range(2)]
        if extended:
            attrs.update({
                "phones": [{"phone": "+1555%07d" % i, "type": "mobile"}],
                "urls": [{"url": "https://seed%d.example.com" % i, "type": "website"}],
                "socials": [{"type": "twitter", "username": "seed%d" % i}] if i % 2 == 0
                else [],
                "locations": [{"type": "home", "name": "Home", "address": "%d Main St" % i,
                               "cityName": "Springfield", "countryCode": "US"}],
                "tags": pick(tags, i, 1 + i % 2),
                "sharedEmails": [{"email": "shared%d@example.com" % i, "type": "work"}]
                if i % 3 == 0 else [],
                "watchers": pick(users, i, i % 3),
                "conversationCounts": {"all": 2, "open": conv_status.count("open"),
                                       "done": conv_status.count("done"),
                                       "snoozed": conv_status.count("snoozed")},
                "sentiment": {"polarity": i % 3 - 1, "confidence": 0.5 + (i % 5) / 10},
            })
            custom = custom_all("customer", i)
            custom.update(attrs["custom"])
            attrs["custom"] = {k: custom[k] for k in CUSTOM_NAMES["customer"]}
            crels = base_rels(i, users)
            if companies:
                crels["company"] = rel("company", pick(companies, i)[0])
        add("customer", cid, attrs, crels)
        for j in range(2):
            vc = created + (j + 1) * 1800000
            vu = vc + ((i * 31 + j * 17) % 3000) * 60000
            vid = seed_id("conversation", i, j)
            cattrs = {
                "name": "Seed conversation %d.%d" % (i, j + 1),
                "status": conv_status[j],
                "priority": 1 + (i + j) % 5,
                "messageCount": 1 + (i * 3 + j) % 9,
                "channels": ["email"],
                "direction": "in",
                "createdAt": iso_ms(vc), "updatedAt": iso_ms(vu),
                "modifiedAt": iso_ms(vu), "lastActivityAt": iso_ms(vu),
            }
            vrels = {"customer": rel("customer", cid)}
            n = i * 2 + j
            conv_users, conv_teams = pick(users, n, n % 3), pick(teams, n, n % 2)
            if extended:
                if n % 4 == 1:
                    cattrs["channels"] = ["email", "chat"]
                cattrs.update({
                    "tags": pick(tags, n, n % 3), "suggestedTags": pick(tags, n + 2, n % 2),
                    "assignedUsers": conv_users, "assignedTeams": conv_teams,
                    "satisfactionLevel": {"rating": 1 + n % 5},
                    "sentiment": {"polarity": n % 3 - 1, "confidence": 0.25 + (n % 4) / 8},
                    "custom": custom_all("conversation", n),
                })
                if n_msg:
                    cattrs["firstMessageIn"] = {"id": seed_id("message", i, j, 0),
                                                "sentAt": iso_ms(vc + 60000),
                                                "channel": "email"}
                vrels.update(base_rels(n, users))
                vrels["brand"] = rel("brand", pick(brands, n)[0])
                vrels["queue"] = rel("queue", pick(queues, n)[0])
                if companies:
                    vrels["company"] = rel("company", pick(companies, i)[0])
            add("conversation", vid, cattrs, vrels)
            for k in range(n_msg):
                mc = vc + (k + 1) * 60000
                mu = mc + ((i * 13 + j * 7 + k * 3) % 500) * 1000
                out_dir = k % 2 == 1
                m = i * 1000 + j * 100 + k
                mrels = {"org": rel("org", ORG_ID), "customer": rel("customer", cid),
                         "conversation": rel("conversation", vid)}
                if out_dir and users:
                    mrels["createdBy"] = rel("user", pick(users, m)[0])
                    mrels["modifiedBy"] = rel("user", pick(users, m)[0])
                add("message", seed_id("message", i, j, k), dict({
                    "channel": "email", "app": "gmail",
                    "direction": "out" if out_dir else "in",
                    "directionType": ("response-out" if out_dir else
                                      "initial-in" if k == 0 else "follow-up-in"),
                    "preview": "Message %d of conversation %d.%d" % (k + 1, i, j + 1),
                    "meta": {"subject": "Seed subject %d.%d" % (i, j + 1)},
                    "status": "sent" if out_dir else "received", "auto": False,
                    "size": 100 + m % 900, "sentAt": iso_ms(mc),
                    "assignedUsers": conv_users if out_dir else [],
                    "assignedTeams": conv_teams if out_dir else [],
                    "createdByTeams": pick(teams, m, 1) if out_dir else [],
                    "shortcuts": pick(shortcuts, m, 1) if out_dir and k % 4 == 1 else [],
                    "attachments": [{"id": seed_id("attachment", i, j, k), "name":
                                     "file-%d.pdf" % m, "contentType": "application/pdf",
                                     "contentLength": 1000 + m}] if (i + j + k) % 3 == 0 else [],
                    "custom": custom_all("message", m),
                }, **stamps(mc, mu)), mrels)
            for k in range(n_note):
                nc = vc + (k + 1) * 90000
                nu = nc + ((i * 11 + j * 5 + k * 7) % 400) * 1000
                m = i * 1000 + j * 100 + k
                add("note", seed_id("note", i, j, k), dict({
                    "body": "Note %d on conversation %d.%d" % (k + 1, i, j + 1),
                    "userMentions": pick(users, m, m % 2),
                    "teamMentions": pick(teams, m, (m + 1) % 2),
                    "custom": custom_all("note", m),
                }, **stamps(nc, nu)), dict(base_rels(m, users),
                                          customer=rel("customer", cid),
                                          conversation=rel("conversation", vid)))

    # klasses and kobjects
    customers = [seed_id("customer", i) for i in range(1, n_cust + 1)]
    for kn, (name, count) in enumerate(sorted(klasses.items()), 1):
        kid = seed_id("klass", name)
        add("klass", kid, dict({"name": name, "displayName": name.replace("-", " ").title(),
                                "description": "Seed klass %s" % name, "icon": "box",
                                "color": "#9013fe", "status": "enabled"},
                               **stamps(ref0 + kn * 420000)), base_rels(kn, users))
        for o in range(count):
            oc = BASE_MS + 5 * DAY_MS + kn * 3600000 + o * 600000
            ou = oc + ((o * 53 + kn * 7) % 900) * 60000
            orels = dict(base_rels(o, users), klass=rel("klass", kid, "/v1/klasses/%s" % name))
            if customers:
                orels["customer"] = rel("customer", pick(customers, o)[0])
            if companies:
                orels["company"] = rel("company", pick(companies, o)[0])
            add("kobject", seed_id("kobject", name, o), dict({
                "title": "%s %d" % (name, o + 1), "description": "Seed %s %d" % (name, o + 1),
                "externalId": "%s-%d" % (name, o + 1), "icon": "box", "images": [],
                "status": ("active", "closed")[o % 2], "tags": pick(tags, o, o % 2),
                "data": {"index": o}, "custom": custom_all("kobject", o),
            }, **stamps(oc, ou)), orels, _klass=name)

    # work sessions: n_ws per user, the last one of every odd user still active
    for u, uid in enumerate(users, 1):
        for s in range(n_ws):
            wc = BASE_MS + 20 * DAY_MS + (u * n_ws + s) * 36000000
            active = s == n_ws - 1 and u % 2 == 1
            wu = wc + (0 if active else 8 * 3600000)
            wrels = dict(base_rels(u, users), user=rel("user", uid))
            if teams:
                wrels["team"] = rel("team", pick(teams, u)[0])
            wrels["queue"] = rel("queue", pick(queues, u + s)[0])
            add("work_session", seed_id("work_session", u, s), dict({
                "statusType": "available" if active else "offline", "routable": active,
                "capacityStatus": "available" if active else "unavailable",
                "capacityRemaining": 4 if active else 0, "totalCapacity": 5,
                "signedInAt": iso_ms(wc), "signedOutAt": None if active else iso_ms(wu),
                "idleSince": None, "lastAssignedItemAt": iso_ms(wc + 600000),
                "handledItemCount": s + u, "handledConversationCount": s + u,
                "workItemCount": 1 if active else 0, "pausedWorkItemCount": 0,
                "totalAvailableTime": 3600000 * (1 + s),
                "channels": ["email", "chat"] if u % 2 else ["email"],
                "capacity": [{"channel": "email", "capacity": 3, "used": 1 if active else 0},
                             {"channel": "chat", "capacity": 2, "used": 0}][:2 if u % 2 else 1],
                "rev": 1,
            }, **stamps(wc, wu)), wrels)

    # custom attribute metadata: one row per custom attribute present, per resource
    for t, resource_of in (("customer", None), ("company", None), ("conversation", None),
                           ("message", None), ("note", None), ("kobject", "klass")):
        seen = {}
        for r in out[t]:
            res = "kobject_" + r["_klass"] if resource_of else t
            for name in (r["attributes"].get("custom") or {}):
                seen.setdefault((res, name), None)
        for q, (res, name) in enumerate(seen):
            suffix = next(s for s in CUSTOM_SUFFIXES if name.endswith(s))
            add("custom_attribute_metadata", seed_id("custom_attribute_metadata", res, name),
                dict({"resource": res, "name": name,
                      "displayName": re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ",
                                            name[:-len(suffix)]).title(),
                      "type": SUFFIX_TYPES[suffix], "enabled": True, "hidden": False},
                     **stamps(ref0 + 500000 + q * 1000)))
    return out


def conversation_time(v):
    """GET /v1/conversations/times/{ids}: a conversation's times, derived from it."""
    a = v["attributes"]
    h = int(v["id"][:6], 16) if re.fullmatch(r"[0-9a-f]{6}.*", v["id"]) else len(v["id"])
    teams = a.get("assignedTeams") if isinstance(a.get("assignedTeams"), list) else []
    return {"type": "conversation_time", "id": v["id"], "attributes": {
        "firstResponseTime": 60000 + h % 3600000,
        "firstResponseBusinessTime": 30000 + h % 1800000,
        "lastResponseTime": 120000 + h % 7200000,
        "handleTime": 300000 + h % 600000,
        "customerWaitTime": 60000 + h % 900000,
        "channels": list(a.get("channels") or []), "createdByTeams": list(teams),
        "createdAt": a.get("createdAt"), "updatedAt": a.get("updatedAt"),
        "modifiedAt": a.get("modifiedAt")},
        "relationships": {"conversation": rel("conversation", v["id"])},
        "links": {"self": SELF_PATHS["conversation_time"] % v["id"]}}


# ------------------------------------------------------------------------------ state

def resolve_type(name):
    """'customer' -> ('customer', None); 'kobject_order' -> ('kobject', 'order');
    anything else (including a bare 'kobject') -> None."""
    if not isinstance(name, str):
        return None
    if name.startswith("kobject_") and KLASS_NAME.fullmatch(name[len("kobject_"):]):
        return "kobject", name[len("kobject_"):]
    if name in TYPES and name != "kobject":
        return name, None
    return None


TIME_ATTRS = ("createdAt", "updatedAt", "modifiedAt", "deletedAt")


def normalize_record(t, klass, obj, where, make_id, now):
    """A record given to --seed / POST /_fake/seed / add -> (record, None) or (None, error).
    Missing id: make_id(); missing createdAt: now; missing updatedAt: createdAt;
    missing modifiedAt: updatedAt; the four timestamps are rewritten as ms ISO UTC."""
    if not isinstance(obj, dict):
        return None, "%s must be an object" % where
    for k in obj:
        if k not in ("type", "id", "attributes", "relationships", "links"):
            return None, '%s: unknown key "%s" (records are {type,id,attributes,' \
                'relationships})' % (where, k)
    if obj.get("type", t) != t:
        return None, '%s: type "%s" is not "%s"' % (where, obj.get("type"), t)
    rid = obj.get("id")
    if rid is None:
        rid = make_id()
    if not isinstance(rid, str) or not rid:
        return None, "%s: id must be a non-empty string" % where
    attrs = copy.deepcopy(obj.get("attributes") or {})
    rs = copy.deepcopy(obj.get("relationships") or {})
    if not isinstance(attrs, dict):
        return None, "%s: attributes must be an object" % where
    if not isinstance(rs, dict):
        return None, "%s: relationships must be an object" % where
    for k in TIME_ATTRS:
        v = attrs.get(k)
        if v is not None:
            ms = ms_of(v) if isinstance(v, str) else None
            if ms is None:
                return None, "%s: attributes.%s must be an ISO 8601 date-time" % (where, k)
            attrs[k] = iso_ms(ms)
    attrs.setdefault("createdAt", now)
    attrs.setdefault("updatedAt", attrs["createdAt"])
    attrs.setdefault("modifiedAt", attrs["updatedAt"])
    rec = {"type": t, "id": rid, "attributes": attrs}
    if rs:
        rec["relationships"] = rs
    if klass is not None:
        rec["_klass"] = klass
    return rec, None


class State:
    def __init__(self, args):
        self.lock = threading.RLock()
        self.hang_cond = threading.Condition(self.lock)
        self.stopping = False
        self.config = {
            "rate_limit": args.rate_limit, "rate_window": args.rate_window,
            "fail_every": args.fail_every, "fail_status": args.fail_status,
            "drop_every": args.drop_every, "slow_ms": args.slow_ms,
            "slow_every": args.slow_every, "api_key": args.api_key,
            "bulk_delay_polls": args.bulk_delay_polls,
            "throttle_every": args.throttle_every,
            "retry_after": args.retry_after,
            "search_rate_limit": args.search_rate_limit,
            "search_max_page": args.search_max_page,
            "hang_after": args.hang_after,
            "audit_forbidden": args.audit_forbidden,
            "cut_every": args.cut_every,
            "bulk_results": args.bulk_results,
        }
        self.seed_random = args.seed_random
        self.gen = {}
        for k in GEN_KEYS:
            v = getattr(args, "seed_" + k, None)
            if k == "messages_per_conversation":
                v = getattr(args, "seed_messages_per_conversation", None)
            if v is not None:
                self.gen[k] = v
        if not any(v for k, v in self.gen.items() if k != "work_sessions_per_user"):
            self.gen = {}
        self.seed_file = getattr(args, "seed_data", None) or {}
        self.lookups_raw = {}
        self.lookups = {}
        self.log_path = args.log
        self.log_file = open(args.log, "a", encoding="utf-8") if args.log else None
        self.port = None
        self.reset_locked()

    # -- lifecycle
    def reset_locked(self):
        CLOCK.reset()
        self.requests = []
        self.counter = 0
        self.window_start = None
        self.window_used = 0
        self.window_external = 0
        self.search_start = None
        self.search_used = 0
        self.stores = {t: {} for t in TYPES}
        self.customers = self.stores["customer"]
        self.bulk = {}
        self.events = []
        self.made = 0              # records given ids by the fake (seed, add, audit)
        self.rng = random.Random(self.seed_random)
        self.stats = {"by_route": {}, "accepted": 0, "rejected_429": 0, "dropped": 0,
                      "cut": 0}
        self.script = []           # pending POST /_fake/script entries
        self.script_done = []
        self.release_hung()
        err = self.seed()
        if err:
            raise ValueError(err)
        if self.log_file is not None:
            self.log_file.seek(0)
            self.log_file.truncate()
            self.log_file.flush()

    def release_hung(self):
        """Let go of the requests held by --hang-after (closed without an answer)."""
        with self.hang_cond:
            self.hang_gen = getattr(self, "hang_gen", 0) + 1
            self.hang_cond.notify_all()

    def seed(self):
        if self.gen:
            self.put_generated(generate(self.gen))
        if self.seed_file:
            counts, err = self.put_seed(self.seed_file)
            if err:
                return err
        return None

    def make_id(self, kind):
        self.made += 1
        return seed_id(kind, "made", self.made)

    def put_generated(self, data):
        counts = {}
        for t, recs in data.items():
            for r in recs:
                self.stores[t][r["id"]] = r
                key = "kobject_" + r["_klass"] if t == "kobject" else t
                counts[key] = counts.get(key, 0) + 1
        return counts

    def put_seed(self, obj):
        """{type: [records]} -> (counts, None) or (None, error); all or nothing."""
        if not isinstance(obj, dict):
            return None, "seed data must be an object {type: [records]}"
        now = data_now()
        staged = []
        for key, recs in obj.items():
            rt = resolve_type(key)
            if rt is None:
                return None, 'unknown type "%s" (known: %s, kobject_<klass>)' % (
                    key, ", ".join(t for t in TYPES if t != "kobject"))
            if not isinstance(recs, list):
                return None, "%s must be an array of records" % key
            t, klass = rt
            for i, x in enumerate(recs):
                rec, err = normalize_record(t, klass, x, "%s[%d]" % (key, i),
                                            lambda t=t: self.make_id(t), now)
                if err:
                    return None, err
                staged.append((key, rec))
        counts = {}
        for key, rec in staged:
            if rec["type"] == "kobject":
                self.ensure_klass(rec["_klass"], now)
            self.stores[rec["type"]][rec["id"]] = rec
            counts[key] = counts.get(key, 0) + 1
        return counts, None

    def ensure_klass(self, name, now=None):
        for k in self.stores["klass"].values():
            if k["attributes"].get("name") == name:
                return k
        now = now or data_now()
        k = {"type": "klass", "id": seed_id("klass", name), "attributes": {
            "name": name, "displayName": name, "status": "enabled",
            "createdAt": now, "updatedAt": now, "modifiedAt": now}}
        self.stores["klass"][k["id"]] = k
        return k

    def klass_names(self):
        names = [k["attributes"].get("name") for k in self.stores["klass"].values()]
        names += [o["_klass"] for o in self.stores["kobject"].values()]
        return sorted(set(n for n in names if isinstance(n, str)))

    def records(self, t, klass=None):
        """Records of a store type (insertion order); kobjects of one klass."""
        recs = self.stores[t].values()
        if t == "kobject" and klass is not None:
            return [r for r in recs if r.get("_klass") == klass]
        return list(recs)

    # -- documents
    @staticmethod
    def self_link(rec):
        t, i = rec["type"], rec["id"]
        if t == "kobject":
            return "/v1/klasses/%s/%s" % (rec.get("_klass"), i)
        if t == "klass":
            return "/v1/klasses/%s" % rec["attributes"].get("name", i)
        if t == "custom_attribute_metadata":
            return "/v1/metadata/%s" % rec["attributes"].get("resource")
        if t in SELF_PATHS:
            return SELF_PATHS[t] % i
        return None

    def doc(self, rec):
        """A stored record as the API serves it."""
        d = {"type": rec["type"], "id": rec["id"], "attributes": rec["attributes"]}
        if rec.get("relationships"):
            d["relationships"] = rec["relationships"]
        link = self.self_link(rec)
        if link:
            d["links"] = {"self": link}
        return d

    def customer_doc(self, c):
        return self.doc(c)

    def config_view(self):
        v = dict(self.config)
        v["external_usage"] = self.external_now(time.time())
        return v

    def dump(self, name=None):
        """GET /_fake/dump: records as API records, sorted by id, soft-deleted included."""
        def sorted_docs(recs):
            return [self.doc(r) for r in sorted(recs, key=lambda r: r["id"])]
        if name == "conversation_time":
            return [conversation_time(r) for r in sorted(self.stores["conversation"].values(),
                                                         key=lambda r: r["id"])]
        if name is None:
            out = {}
            for t in TYPES:
                if t == "kobject":
                    for k in self.klass_names():
                        out["kobject_" + k] = sorted_docs(self.records("kobject", k))
                else:
                    out[t] = sorted_docs(self.records(t))
            out["conversation_time"] = self.dump("conversation_time")
            return out
        if name == "kobject":
            return sorted_docs(self.records("kobject"))
        t, klass = resolve_type(name)
        return sorted_docs(self.records(t, klass))

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
            self.window_external = 0

    def rate_headers(self, now):
        limit = self.config["rate_limit"]
        if not limit:
            return []
        self._roll_window(now)
        used = self.window_used + self.window_external
        return [("x-ratelimit-limit", str(limit)),
                ("x-ratelimit-remaining", str(max(0, limit - used))),
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

    def _roll_search_window(self, now):
        w = float(self.config["rate_window"])
        if self.search_start is None or now >= self.search_start + w:
            self.search_start = now
            self.search_used = 0

    def admit(self, now, is_search):
        """Rate limits -> "ok" (the request uses one unit of the general budget, and a
        search one of the search budget), "limit" or "search_limit" (nothing used)."""
        limit = self.config["rate_limit"]
        slimit = self.config["search_rate_limit"]
        if limit:
            self._roll_window(now)
            if self.window_used + self.window_external >= limit:
                return "limit"
        if is_search and slimit:
            self._roll_search_window(now)
            if self.search_used >= slimit:
                return "search_limit"
        if limit:
            self.window_used += 1
        if is_search and slimit:
            self.search_used += 1
        return "ok"

    def search_retry_after(self, now):
        end = self.search_start + float(self.config["rate_window"])
        return "%d" % max(1, math.ceil(end - now))

    # -- customers (call with the lock held)
    @staticmethod
    def live(rec):
        return rec["attributes"].get("deleted") is not True

    def find_by_email(self, email):
        e = email.lower()
        for c in self.customers.values():
            if not self.live(c):
                continue
            for item in c["attributes"].get("emails") or []:
                if isinstance(item, dict) and isinstance(item.get("email"), str) \
                        and item["email"].lower() == e:
                    return c
        return None

    def find_by_external_id(self, xid):
        for c in self.customers.values():
            if not self.live(c):
                continue
            a = c["attributes"]
            if a.get("externalId") == xid:
                return c
            for item in a.get("externalIds") or []:
                if isinstance(item, dict) and item.get("externalId") == xid:
                    return c
        return None

    def find_by_phone(self, phone):
        for c in self.customers.values():
            if not self.live(c):
                continue
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
        now = data_now()
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
            attrs["createdAt"] = now
        attrs["updatedAt"] = attrs["modifiedAt"] = now
        attrs["rev"] = 1
        cid = new_id()
        c = {"type": "customer", "id": cid, "attributes": attrs}
        self.customers[cid] = c
        return c

    def update_customer(self, c, body, replace=False):
        now = data_now()
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
        attrs["updatedAt"] = attrs["modifiedAt"] = now
        attrs["rev"] = (old.get("rev") or 0) + 1 if is_num(old.get("rev")) else 1
        c["attributes"] = attrs
        return c

    # -- mutations (call with the lock held)
    @staticmethod
    def bump(rec, ms):
        """updatedAt and modifiedAt := ms; a numeric rev counts up."""
        a = rec["attributes"]
        a["updatedAt"] = a["modifiedAt"] = iso_ms(ms)
        if is_num(a.get("rev")):
            a["rev"] += 1

    def oldest(self, t, klass, count):
        """The count live records of a type with the oldest updatedAt (ties: id)."""
        recs = [r for r in self.records(t, klass) if self.live(r)]
        recs.sort(key=lambda r: (ms_of(r["attributes"].get("updatedAt")) or 0, r["id"]))
        return recs[:count]

    def soft_delete(self, rec, by, ms):
        a = rec["attributes"]
        a["deleted"] = True
        a["deletedAt"] = iso_ms(ms)
        rec.setdefault("relationships", {})["deletedBy"] = rel("user", by)
        self.bump(rec, ms)

    def move_customer(self, source, target, ms):
        """Records whose relationships.customer is source -> target (bumped)."""
        moved = {}
        for t in ("conversation", "message", "note", "kobject"):
            for r in self.stores[t].values():
                c = (r.get("relationships") or {}).get("customer")
                if isinstance(c, dict) and isinstance(c.get("data"), dict) \
                        and c["data"].get("id") == source:
                    r["relationships"]["customer"] = rel("customer", target)
                    self.bump(r, ms)
                    moved[t] = moved.get(t, 0) + 1
        return moved

    def make_record(self, t, klass, n, ms):
        """A new record for POST /_fake/add {"type","count"} -> (record, None) or
        (None, error)."""
        rid = self.make_id(t)
        a = {}
        rs = {"org": rel("org", ORG_ID)}

        def first_live(kind):
            live = [r for r in self.stores[kind].values() if self.live(r)]
            return live[n % len(live)] if live else None
        if t == "customer":
            a = {"name": "Added Customer %d" % n, "displayName": "Added Customer %d" % n,
                 "externalId": "added-%d" % n,
                 "emails": [{"email": "added%d@example.com" % n, "type": "home",
                             "verified": False}],
                 "phones": [], "urls": [], "socials": [], "locations": [], "tags": [],
                 "custom": {"tierStr": "bronze", "ordersNum": 0}, "rev": 1}
            rs = None
        elif t == "conversation":
            c = first_live("customer")
            if c is None:
                return None, "adding a conversation needs a customer"
            a = {"name": "Added conversation %d" % n, "status": "open", "priority": 1,
                 "messageCount": 0, "channels": ["email"], "direction": "in", "tags": [],
                 "suggestedTags": [], "assignedUsers": [], "assignedTeams": []}
            rs["customer"] = rel("customer", c["id"])
        elif t in ("message", "note"):
            v = first_live("conversation")
            if v is None:
                return None, "adding a %s needs a conversation" % t
            if t == "message":
                a = {"channel": "email", "direction": "in", "directionType": "follow-up-in",
                     "preview": "Added message %d" % n, "sentAt": iso_ms(ms),
                     "assignedUsers": [], "assignedTeams": [], "createdByTeams": [],
                     "shortcuts": [], "attachments": []}
            else:
                a = {"body": "Added note %d" % n, "userMentions": [], "teamMentions": []}
            c = (v.get("relationships") or {}).get("customer")
            if c:
                rs["customer"] = copy.deepcopy(c)
            rs["conversation"] = rel("conversation", v["id"])
        elif t == "kobject":
            k = self.ensure_klass(klass)
            a = {"title": "Added %s %d" % (klass, n), "externalId": "added-%s-%d" % (klass, n),
                 "tags": [], "images": [], "data": {}}
            rs["klass"] = rel("klass", k["id"], "/v1/klasses/%s" % klass)
            c = first_live("customer")
            if c:
                rs["customer"] = rel("customer", c["id"])
        elif t == "work_session":
            u = first_live("user")
            if u is None:
                return None, "adding a work_session needs a user"
            a = {"statusType": "available", "routable": True, "signedInAt": iso_ms(ms),
                 "signedOutAt": None, "channels": ["email"],
                 "capacity": [{"channel": "email", "capacity": 3, "used": 0}], "rev": 1}
            rs["user"] = rel("user", u["id"])
        elif t == "team":
            a = {"name": "Added Team %d" % n, "displayName": "Added Team %d" % n,
                 "members": []}
        elif t == "klass":
            a = {"name": "added-%d" % n, "displayName": "Added %d" % n, "status": "enabled"}
        elif t == "audit_log":
            return None, "audit_log entries are written by deletes, not added"
        else:
            a = {"name": "Added %s %d" % (t, n)}
        a.update(stamps(ms))
        rec = {"type": t, "id": rid, "attributes": a}
        if rs:
            rec["relationships"] = rs
        if t == "kobject":
            rec["_klass"] = klass
        return rec, None

    # -- external usage (the general window's units used by other apps)
    def set_external(self, n, now):
        self._roll_window(now)
        self.window_external = n

    def external_now(self, now):
        w = float(self.config["rate_window"])
        if self.window_start is None or now >= self.window_start + w:
            return 0
        return self.window_external

    def audit(self, verb, t, oid):
        """Append an audit-log entry (eventVerb, objectType, objectId, createdAt now)."""
        e = {"type": "audit_log", "id": self.make_id("audit_log"), "attributes": {
            "eventVerb": verb, "objectType": t, "objectId": oid, "createdAt": data_now()}}
        self.stores["audit_log"][e["id"]] = e
        return e


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


def search_prefixes(ctx):
    """Criteria/sort key prefixes of a queryContext, longest first."""
    if ctx.startswith("kobject_"):
        return (ctx + "_", "kobject_")
    return (ctx + "_",)


def search_field(key, prefixes):
    for p in prefixes:
        if key.startswith(p) and len(key) > len(p):
            return key[len(p):]
    return None


def search_value(doc, prefixes, key):
    """The value a criterion or sort key reads: <ctx>_id the id, <ctx>_custom_<name>
    custom.<name>, <ctx>_<snake> attributes.<camel>; when the record has no such
    attribute, relationships.<camel>.data.id, then (for <x>_id) relationships.<x>."""
    field = search_field(key, prefixes)
    if field is None:
        return None
    if field == "id":
        return doc["id"]
    attrs = doc["attributes"]
    if field.startswith("custom_"):
        return (attrs.get("custom") or {}).get(field[len("custom_"):])
    name = snake_to_camel(field)
    if name in attrs:
        return attrs[name]
    rs = doc.get("relationships") or {}
    for rname in (name, snake_to_camel(field[:-3]) if field.endswith("_id") else None):
        r = rs.get(rname) if rname else None
        if isinstance(r, dict) and isinstance(r.get("data"), dict):
            return r["data"].get("id")
    return None


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


def check_criteria(crits, ctx, prefixes, parts, errs):
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
            if search_field(key, prefixes) is None:
                errs.add(kp, 'unknown attribute "%s" for queryContext "%s"' % (key, ctx))
                continue
            if not isinstance(cond, dict) or not cond:
                errs.add(kp, "%s must be an object {operator: value}" % dotted(kp))
                continue
            for op in cond:
                if op not in SEARCH_OPS:
                    errs.add(kp + (op,), 'unknown operator "%s"' % op)


def criteria_match(doc, prefixes, crits, mode):
    if isinstance(crits, dict):
        crits = [crits]
    results = []
    for c in crits:
        ok = all(op_match(search_value(doc, prefixes, key), op, val)
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

    def _write(self, status, payload, ctype, headers=(), cut=False):
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
        if cut:         # --cut-every: half the body, then the connection closes
            payload = payload[:len(payload) // 2]
            self.close_connection = True
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
                status, obj = self._control(split, body)
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
            try:
                self.run_script(n)
            except Exception:                # noqa: BLE001
                traceback.print_exc()
            cfg = dict(st.config)
            gen = st.hang_gen
            key = route_key(self.command, path)
            st.stats["by_route"][key] = st.stats["by_route"].get(key, 0) + 1
        rec = {"seq": n, "time": now_iso(t), "ts": t, "method": self.command,
               "path": target, "headers": hdrs, "body": text, "status": None,
               "dropped": False, "fault": None, "scripted": False, "slow": False,
               "cut": False, "peer": self.client_address[1]}

        if cfg["hang_after"] and n >= cfg["hang_after"]:
            rec["fault"] = "hang"
            st.record(rec)
            with st.hang_cond:
                while st.hang_gen == gen and not st.stopping:
                    st.hang_cond.wait(0.5)
            self.close_connection = True
            return

        if cfg["drop_every"] and n % cfg["drop_every"] == 0:
            rec.update(dropped=True, fault="drop")
            with st.lock:
                st.stats["dropped"] += 1
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
                is_search = self.command == "POST" and path.rstrip("/") in (
                    "/v1/customers/search", "/v1/customers/archive/search")
                with st.lock:
                    verdict = st.admit(t, is_search)
                    reply_headers = st.rate_headers(t)
                    if verdict == "search_limit":
                        reply_headers.append(("Retry-After", st.search_retry_after(t)))
                if verdict != "ok":
                    status, payload = 429, cjson(error_body(429)).encode()
                else:
                    with st.lock:
                        st.stats["accepted"] += 1
                    with st.lock:
                        res = self._route(split, body, hdrs, rec)
                    if res is DROP:
                        rec.update(dropped=True, fault="network_error")
                        with st.lock:
                            st.stats["dropped"] += 1
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
        cut = bool(cfg["cut_every"]) and n % cfg["cut_every"] == 0
        rec["cut"] = cut
        with st.lock:
            st.stats["rejected_429"] += status == 429
            st.stats["cut"] += cut
        st.record(rec)
        if slow:
            time.sleep(cfg["slow_ms"] / 1000.0)
        self._write(status, payload, ctype, reply_headers, cut)

    @staticmethod
    def _authorized(value, key):
        if not value:
            return False
        parts = value.strip().split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "bearer" or not parts[1].strip():
            return False
        return key is None or parts[1].strip() == key

    # -- control API
    def _control(self, split, body):
        st = self.state
        method = self.command
        path = split.path
        name = path[len("/_fake/"):].strip("/") if path.startswith("/_fake/") else ""
        if not re.fullmatch(r"[a-z_]+", name):
            return 404, error_body(404)
        verb = "get" if method in ("GET", "HEAD") else method.lower()
        fn = getattr(self, "_ctl_%s_%s" % (name, verb), None)
        if fn is None:
            if any(hasattr(self, "_ctl_%s_%s" % (name, v)) for v in ("get", "post")):
                return 405, error_body(405)
            return 404, error_body(404)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        obj = None
        if verb == "post":
            try:
                obj = parse_json(body.decode("utf-8")) if body.strip() else None
            except (ValueError, UnicodeDecodeError) as e:
                return 400, error_body(400, "invalid JSON: %s" % e, {"pointer": ""})
        with st.lock:
            return fn(query, obj)

    @staticmethod
    def _bad(detail):
        return 400, error_body(400, detail, {"pointer": ""})

    def _ctl_health_get(self, q, obj):
        return 200, {"ok": True, "port": self.state.port, "requests": self.state.counter}

    def _ctl_requests_get(self, q, obj):
        return 200, list(self.state.requests)

    def _ctl_customers_get(self, q, obj):
        return 200, [self.state.doc(c) for c in self.state.customers.values()]

    def _ctl_stats_get(self, q, obj):
        st = self.state
        return 200, {"requests": st.counter, "by_route": dict(st.stats["by_route"]),
                     "accepted": st.stats["accepted"],
                     "rejected_429": st.stats["rejected_429"],
                     "dropped": st.stats["dropped"], "cut": st.stats["cut"]}

    def _ctl_events_get(self, q, obj):
        return 200, list(self.state.events)

    def _ctl_config_get(self, q, obj):
        return 200, self.state.config_view()

    def _ctl_config_post(self, q, obj):
        err = apply_config(self.state, obj)
        if err:
            return self._bad(err)
        return 200, self.state.config_view()

    def _ctl_lookups_get(self, q, obj):
        return 200, self.state.lookups_raw

    def _ctl_lookups_post(self, q, obj):
        st = self.state
        try:
            st.lookups = compile_lookups(obj)
        except ValueError as e:
            return self._bad(str(e))
        st.lookups_raw = obj
        return 200, {"ok": True, "count": len(obj)}

    def _ctl_reset_post(self, q, obj):
        self.state.reset_locked()
        return 200, {"ok": True}

    def _ctl_dump_get(self, q, obj):
        st = self.state
        t = q.get("type")
        if t is not None and t not in ("kobject", "conversation_time") \
                and resolve_type(t) is None:
            return 400, error_body(400, 'unknown type "%s"' % t, {"parameter": "type"})
        return 200, st.dump(t)

    def _ctl_seed_post(self, q, obj):
        st = self.state
        if not isinstance(obj, dict):
            return self._bad("seed body must be an object {type: [records]} "
                             "and/or {\"generate\": {...}}")
        obj = dict(obj)
        data = None
        if "generate" in obj:
            p, err = gen_params(obj.pop("generate"))
            if err:
                return self._bad(err)
            data = generate(p)
        saved = {t: dict(v) for t, v in st.stores.items()}, st.made
        counts = st.put_generated(data) if data is not None else {}
        if obj:             # generated first, then the records (which win)
            c, err = st.put_seed(obj)
            if err:
                st.stores, st.made = saved
                st.customers = st.stores["customer"]
                return self._bad(err)
            for k, v in c.items():
                counts[k] = counts.get(k, 0) + v
        return 200, {"ok": True, "counts": counts}

    # -- clock and mutations (control API)
    def _ctl_clock_get(self, q, obj):
        return 200, CLOCK.info()

    def _ctl_clock_post(self, q, obj):
        if not isinstance(obj, dict):
            return self._bad('clock body must be an object {"now"|"advance_ms"|"frozen"}')
        for k in obj:
            if k not in ("now", "advance_ms", "frozen"):
                return self._bad('unknown clock key "%s" (known: now, advance_ms, frozen)'
                                 % k)
        now = obj.get("now")
        if now is not None:
            now = ms_of(now) if isinstance(now, (str, int)) and not isinstance(now, bool) \
                else None
            if now is None:
                return self._bad("now must be an ISO 8601 date-time or epoch milliseconds")
        adv = obj.get("advance_ms")
        if adv is not None and (not isinstance(adv, int) or isinstance(adv, bool)):
            return self._bad("advance_ms must be an integer")
        frozen = obj.get("frozen")
        if frozen is not None and not isinstance(frozen, bool):
            return self._bad("frozen must be a boolean")
        if now is not None:
            CLOCK.set_ms(now)
        if adv is not None:
            CLOCK.advance(adv)
        if frozen is not None:
            CLOCK.freeze(frozen)
        return 200, CLOCK.info()

    def _target_type(self, obj):
        """obj["type"] -> ((store type, klass), None) or (None, error reply)."""
        if not isinstance(obj, dict):
            return None, self._bad("body must be an object")
        name = obj.get("type")
        rt = resolve_type(name) if name != "kobject" else ("kobject", None)
        if rt is None:
            return None, self._bad('unknown type %s' % json.dumps(name))
        return rt, None

    def _target_record(self, obj):
        rt, err = self._target_type(obj)
        if err:
            return None, err
        rid = obj.get("id")
        rec = self.state.stores[rt[0]].get(rid) if isinstance(rid, str) else None
        if rec is None or (rt[1] is not None and rec.get("_klass") != rt[1]):
            return None, (404, error_body(404, "no %s with id %s" % (obj.get("type"),
                                                                   json.dumps(rid))))
        return rec, None

    @staticmethod
    def _count(obj):
        c = obj.get("count")
        if not isinstance(c, int) or isinstance(c, bool) or c < 0:
            return None
        return c

    def _ctl_mutate_post(self, q, obj):
        st = self.state
        if isinstance(obj, dict) and "id" in obj and "count" in obj:
            return self._bad("give id or count, not both")
        if isinstance(obj, dict) and "count" in obj:
            rt, err = self._target_type(obj)
            if err:
                return err
            n = self._count(obj)
            if n is None:
                return self._bad("count must be an integer >= 0")
            recs = st.oldest(rt[0], rt[1], n)
        else:
            rec, err = self._target_record(obj)
            if err:
                return err
            recs = [rec]
        attrs = obj.get("attributes", {})
        rs = obj.get("relationships", {})
        if not isinstance(attrs, dict) or not isinstance(rs, dict):
            return self._bad("attributes and relationships must be objects")
        for k in TIME_ATTRS:
            if k in attrs and attrs[k] is not None and ms_of(attrs[k]) is None:
                return self._bad("attributes.%s must be an ISO 8601 date-time or epoch ms"
                                 % k)
        ms = CLOCK.now_ms()
        for rec in recs:
            a = rec["attributes"]
            for k, v in attrs.items():
                if k == "custom" and isinstance(v, dict) and isinstance(a.get(k), dict):
                    a[k].update(copy.deepcopy(v))
                elif k in TIME_ATTRS and v is not None:
                    a[k] = iso_ms(ms_of(v))
                else:
                    a[k] = copy.deepcopy(v)
            for k, v in rs.items():
                rec.setdefault("relationships", {})[k] = copy.deepcopy(v)
            given = {k: a[k] for k in ("updatedAt", "modifiedAt") if k in attrs}
            st.bump(rec, ms)
            if "updatedAt" in given:
                a["updatedAt"] = a["modifiedAt"] = given["updatedAt"]
            if "modifiedAt" in given:
                a["modifiedAt"] = given["modifiedAt"]
        return 200, {"ok": True, "ids": [r["id"] for r in recs]}

    def _ctl_delete_post(self, q, obj):
        st = self.state
        rec, err = self._target_record(obj)
        if err:
            return err
        soft = obj.get("soft", False)
        by = obj.get("by", ACTOR_ID)
        if not isinstance(soft, bool):
            return self._bad("soft must be a boolean")
        if not isinstance(by, str) or not by:
            return self._bad("by must be a user id")
        ms = CLOCK.now_ms()
        if soft:
            st.soft_delete(rec, by, ms)
        else:
            del st.stores[rec["type"]][rec["id"]]
        e = st.audit("delete", rec["type"], rec["id"])
        return 200, {"ok": True, "id": rec["id"], "soft": soft, "audit_log": e["id"]}

    def _ctl_touch_post(self, q, obj):
        st = self.state
        rt, err = self._target_type(obj)
        if err:
            return err
        n = self._count(obj)
        if n is None:
            return self._bad("count must be an integer >= 0")
        same = obj.get("same_ms", False)
        if not isinstance(same, bool):
            return self._bad("same_ms must be a boolean")
        at = obj.get("at")
        ms = CLOCK.now_ms() if at is None else ms_of(at)
        if ms is None or isinstance(at, bool):
            return self._bad("at must be an ISO 8601 date-time or epoch milliseconds")
        recs = st.oldest(rt[0], rt[1], n)
        for k, rec in enumerate(recs):
            st.bump(rec, ms if same else ms - (len(recs) - 1) + k)
        return 200, {"ok": True, "ids": [r["id"] for r in recs],
                     "updatedAt": sorted(set(r["attributes"]["updatedAt"] for r in recs))}

    def _ctl_merge_post(self, q, obj):
        st = self.state
        if not isinstance(obj, dict):
            return self._bad('merge body must be an object {"source","target"}')
        ids = [obj.get("source"), obj.get("target")]
        recs = [st.customers.get(i) if isinstance(i, str) else None for i in ids]
        for name, i, r in zip(("source", "target"), ids, recs):
            if r is None:
                return 404, error_body(404, "no customer with id %s (%s)"
                                       % (json.dumps(i), name))
            if not st.live(r):
                return self._bad("%s customer %s is deleted" % (name, i))
        if ids[0] == ids[1]:
            return self._bad("source and target are the same customer")
        by = obj.get("by", ACTOR_ID)
        if not isinstance(by, str) or not by:
            return self._bad("by must be a user id")
        ms = CLOCK.now_ms()
        moved = st.move_customer(ids[0], ids[1], ms)
        st.soft_delete(recs[0], by, ms)
        st.bump(recs[1], ms)
        e = st.audit("delete", "customer", ids[0])
        return 200, {"ok": True, "moved": moved, "audit_log": e["id"]}

    def _ctl_add_post(self, q, obj):
        st = self.state
        rt, err = self._target_type(obj)
        if err:
            return err
        t, klass = rt
        if t == "kobject" and klass is None:
            return self._bad("give kobjects as kobject_<klass>")
        ms = CLOCK.now_ms()
        if ("record" in obj) == ("count" in obj):
            return self._bad('give "record" or "count"')
        if "record" in obj:
            rec, err = normalize_record(t, klass, obj["record"], "record",
                                        lambda: st.make_id(t), iso_ms(ms))
            if err:
                return self._bad(err)
            if t == "kobject":
                st.ensure_klass(klass)
            recs = [rec]
        else:
            n = self._count(obj)
            if n is None:
                return self._bad("count must be an integer >= 0")
            recs = []
            base = len(st.stores[t])
            for k in range(n):
                rec, err = st.make_record(t, klass, base + k + 1, ms)
                if err:
                    return self._bad(err)
                recs.append(rec)
        for rec in recs:
            st.stores[t][rec["id"]] = rec
        return 200, {"ok": True, "ids": [r["id"] for r in recs]}

    SCRIPT_DO = ("mutate", "delete", "touch", "add", "merge")

    def _ctl_script_get(self, q, obj):
        st = self.state
        return 200, {"pending": list(st.script), "done": list(st.script_done)}

    def _ctl_script_post(self, q, obj):
        st = self.state
        if not isinstance(obj, list):
            return self._bad('script must be an array of {"at_request":N,"do":..., ...}')
        for i, e in enumerate(obj):
            if not isinstance(e, dict):
                return self._bad("script[%d] must be an object" % i)
            n = e.get("at_request")
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                return self._bad("script[%d].at_request must be an integer >= 1" % i)
            if n <= st.counter:
                return self._bad("script[%d].at_request %d has passed (request counter %d)"
                                 % (i, n, st.counter))
            if e.get("do") not in self.SCRIPT_DO:
                return self._bad("script[%d].do must be one of %s"
                                 % (i, ", ".join(self.SCRIPT_DO)))
        st.script = [copy.deepcopy(e) for e in obj]
        return 200, {"ok": True, "pending": len(st.script)}

    def run_script(self, n):
        """Run the script entries of request n (lock held)."""
        st = self.state
        due = [e for e in st.script if e["at_request"] == n]
        if not due:
            return
        st.script = [e for e in st.script if e["at_request"] != n]
        for e in due:
            args = {k: v for k, v in e.items() if k not in ("at_request", "do")}
            try:
                status, body = getattr(self, "_ctl_%s_post" % e["do"])({}, args)
            except Exception as x:           # noqa: BLE001
                traceback.print_exc()
                status, body = 500, error_body(500, "script entry failed: %s" % x)
            st.script_done.append(dict(e, status=status, result=body))

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
                    return J(*self._list([c for c in st.customers.values() if st.live(c)],
                                         st.doc,
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
            if len(dec) == 4 and sub == "archive" and dec[3] == "search":
                if method == "POST":
                    return J(*self._search(json_body, raw_path, query_pairs, query, True))
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
                    st.audit("delete", "customer", sub)
                    return J(204, None)
                return not_allowed()
            return J(404, error_body(404))

        if method in ("GET", "HEAD"):
            r = self._lists(dec, raw_path, query_pairs, query)
            if r is not None:
                return J(*r)
        elif res != "customers" and self._lists(dec, raw_path, query_pairs, query) \
                is not None:
            return not_allowed()

        if res == "conversations" and len(dec) == 2:
            if method in ("GET", "HEAD"):
                return J(*self._list([v for v in st.stores["conversation"].values()
                                      if st.live(v)], st.doc, raw_path, query_pairs, query))
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
            job["polls"] += 1
            self._advance_bulk(job)
            if len(dec) == 3:
                return J(200, {"data": self._bulk_doc(job)})
            done = [b for b in job["batches"] if b is not None]
            if st.config["bulk_results"] == "bare":
                return J(200, [b["attributes"] for b in done])
            return J(200, {"data": done})

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

    # -- reference lists, work sessions, audit logs, conversation times
    LIST_PATHS = {          # path after /v1/ -> (store type, max pageSize)
        ("users",): ("user", 500), ("teams",): ("team", 500), ("tags",): ("tag", 100),
        ("brands",): ("brand", 100), ("shortcuts",): ("shortcut", 100),
        ("routing", "queues"): ("queue", 100), ("slas",): ("sla", 100),
        ("schedules",): ("schedule", 100), ("klasses",): ("klass", 100),
        ("routing", "work-sessions"): ("work_session", 100),
    }
    ONE_PATHS = {           # GET /v1/<path>/<id> -> store type
        ("users",): "user", ("teams",): "team", ("tags",): "tag", ("brands",): "brand",
        ("shortcuts",): "shortcut", ("routing", "queues"): "queue", ("slas",): "sla",
        ("schedules",): "schedule", ("routing", "work-sessions"): "work_session",
        ("companies",): "company", ("conversations",): "conversation",
        ("messages",): "message", ("notes",): "note",
    }

    def _lists(self, dec, path, qpairs, query):
        """GET routes of reference data -> (status, obj) or None (not one of them)."""
        st = self.state
        rest = tuple(dec[1:])
        if rest in self.LIST_PATHS:
            t, max_size = self.LIST_PATHS[rest]
            items = list(st.stores[t].values())
            if t == "user":
                want = query.get("deleted", "false").lower() == "true"
                items = [u for u in items if (u["attributes"].get("deleted") is True) == want]
            if t == "work_session":
                active = query.get("active")
                if active is not None:
                    if active not in ("true", "false"):
                        return 400, error_body(400, "active must be true or false",
                                               {"parameter": "active"})
                    items = [w for w in items if (w["attributes"].get("signedOutAt") is None)
                             == (active == "true")]
                items.sort(key=lambda w: w["id"])
                items = sort_items(items, lambda w: w["attributes"].get("createdAt"), True)
            status, body = self._list(items, st.doc, path, qpairs, query, max_size)
            if t == "sla" and status == 200:
                body["included"] = self._sla_versions(body["data"],
                                                      query.get("versions") == "all")
            return status, body
        if len(rest) == 2 and rest[0] == "metadata":
            res = rest[1]
            known = res in ("customer", "company", "conversation", "message", "note",
                            "user") or (res.startswith("kobject_")
                                        and res[8:] in st.klass_names())
            if not known:
                return 404, error_body(404, 'no metadata resource "%s"' % res)
            items = [m for m in st.stores["custom_attribute_metadata"].values()
                     if m["attributes"].get("resource") == res]
            return self._list(items, st.doc, path, qpairs, query)
        if rest[:1] in (("audit-logs",),) and len(rest) == 1:
            return self._audit_logs(path, qpairs, query)
        if rest[:2] == ("conversations", "times") and len(rest) == 3:
            ids = [x for x in rest[2].split(",") if x]
            if not 1 <= len(ids) <= CONVERSATION_TIMES_MAX:
                return 400, error_body(400, "give 1 to %d conversation ids"
                                       % CONVERSATION_TIMES_MAX)
            convs = st.stores["conversation"]
            return 200, {"data": [conversation_time(convs[i]) for i in ids if i in convs]}
        if rest[:-1] in self.ONE_PATHS and len(rest) >= 2:
            rec = st.stores[self.ONE_PATHS[rest[:-1]]].get(rest[-1])
            if rec is None:
                return 404, error_body(404)
            return 200, {"data": st.doc(rec)}
        return None

    def _sla_versions(self, slas, every):
        st = self.state
        out = []
        for s in slas:
            vs = [v for v in st.stores["sla_version"].values()
                  if ((v.get("relationships") or {}).get("sla") or {}).get("data", {})
                  .get("id") == s["id"]]
            vs.sort(key=lambda v: (v["attributes"].get("version") or 0, v["id"]))
            out += [st.doc(v) for v in (vs if every else vs[-1:])]
        return out

    def _audit_logs(self, path, qpairs, query):
        st = self.state
        if st.config["audit_forbidden"]:
            return 403, error_body(403)

        def bad(detail, param):
            return 400, error_body(400, detail, {"parameter": param})
        types = set()
        for key in ("filter[objectType]", "filter[include]"):
            types |= {x for x in (query.get(key) or "").split(",") if x}
        start = query.get("filter[start]")
        start_ms = None
        if start is not None:
            start_ms = ms_of(start)
            if start_ms is None:
                return bad("filter[start] must be an ISO 8601 date-time", "filter[start]")
        raw = query.get("count", str(AUDIT_DEFAULT_COUNT))
        if not re.fullmatch(r"[0-9]+", raw) or not 1 <= int(raw) <= AUDIT_MAX_COUNT:
            return bad("count must be an integer from 1 to %d" % AUDIT_MAX_COUNT, "count")
        count = int(raw)
        entries = list(st.stores["audit_log"].values())
        entries = sorted(entries, key=lambda e: ms_of(e["attributes"]["createdAt"]) or 0)
        pos = {e["id"]: k for k, e in enumerate(entries)}
        after = query.get("after")
        if after is not None and after not in pos:
            return bad("after must be the id of an audit-log entry", "after")
        sel = [e for k, e in enumerate(entries)
               if (not types or e["attributes"]["objectType"] in types)
               and (start_ms is None or ms_of(e["attributes"]["createdAt"]) >= start_ms)
               and (after is None or k > pos[after])]
        page = sel[:count]

        def link(extra):
            pairs = [(k, v) for k, v in qpairs if k != "after"] + extra
            return path + ("?" + urlencode(pairs) if pairs else "")
        return 200, {"data": [st.doc(e) for e in page], "meta": {"count": len(page)},
                     "links": {"self": link([("after", after)] if after else []),
                               "next": link([("after", page[-1]["id"])])
                               if len(sel) > count else None}}

    def _list(self, items, doc, path, qpairs, query, max_size=LIST_MAX_PAGE_SIZE):
        page, size, err = page_params(query, max_size)
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
    def _search_docs(self, ctx):
        st = self.state
        if ctx.startswith("kobject_"):
            return [st.doc(r) for r in st.records("kobject", ctx[len("kobject_"):])]
        return [st.doc(r) for r in st.stores[ctx].values()]

    def _search(self, body, path, qpairs, query, archive=False):
        st = self.state
        page, size, err = page_params(query, SEARCH_MAX_PAGE_SIZE)
        if err:
            return err
        max_page = st.config["search_max_page"]
        if page > max_page:
            return 400, error_body(400, "search results are limited to %d pages"
                                   % max_page, {"parameter": "page"})
        errs = Errors()
        if not isinstance(body, dict):
            errs.add((), "body must be a JSON object")
            return 400, errs.body()
        ctx = body.get("queryContext")
        if not isinstance(ctx, str) or not (
                ctx in SEARCH_CONTEXTS or (ctx.startswith("kobject_")
                                           and KLASS_NAME.fullmatch(ctx[8:]))):
            errs.add(("queryContext",), "queryContext must be one of %s, kobject_<klass>"
                     % ", ".join(SEARCH_CONTEXTS))
            return 400, errs.body()
        prefixes = search_prefixes(ctx)
        for mode in ("and", "or", "not"):
            if body.get(mode) is not None:
                check_criteria(body[mode], ctx, prefixes, (mode,), errs)
        sorts = body.get("sort") or []
        if isinstance(sorts, dict):
            sorts = [sorts]
        if not isinstance(sorts, list):
            errs.add(("sort",), "sort must be an array of {attribute: asc|desc}")
            sorts = []
        keys = []
        for i, s in enumerate(sorts):
            if not isinstance(s, dict) or not s:
                errs.add(("sort", i), "sort[%d] must be an object {attribute: asc|desc}" % i)
                continue
            for k, d in s.items():
                if search_field(k, prefixes) is None:
                    errs.add(("sort", i, k), 'unknown attribute "%s" for queryContext "%s"'
                             % (k, ctx))
                elif d not in ("asc", "desc"):
                    errs.add(("sort", i, k), "sort direction must be asc or desc")
                else:
                    keys.append((k, d == "desc"))
        deleted = body.get("includeDeleted", False)
        if not isinstance(deleted, bool):
            errs.add(("includeDeleted",), "includeDeleted must be a boolean")
        if errs:
            return 400, errs.body()
        docs = self._search_docs(ctx)
        if not deleted:
            docs = [d for d in docs if d["attributes"].get("deleted") is not True]
        cutoff = CLOCK.now_ms() - ARCHIVE_DAYS * DAY_MS

        def archived(d):
            ms = ms_of(d["attributes"].get("updatedAt"))
            return ms is not None and ms < cutoff
        docs = [d for d in docs if archived(d) == archive]
        if body.get("and"):
            docs = [d for d in docs if criteria_match(d, prefixes, body["and"], "and")]
        if body.get("or"):
            docs = [d for d in docs if criteria_match(d, prefixes, body["or"], "or")]
        if body.get("not"):
            docs = [d for d in docs if not criteria_match(d, prefixes, body["not"], "or")]
        if keys:
            docs.sort(key=lambda x: x["id"])
            for k, desc in reversed(keys):
                docs = sort_items(docs, lambda x, k=k: search_value(x, prefixes, k), desc)
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
            "id": eid, "kind": kind, "time": data_now(),
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
        now = data_now()
        total = (len(prepared) + BULK_BATCH_SIZE - 1) // BULK_BATCH_SIZE
        job = {"id": new_id(), "method": method, "uses_ref": uses_ref, "items": prepared,
               "polls": 0, "status": "queued", "createdAt": now,
               "updatedAt": now, "total": total, "batches": [None] * total}
        spec = st.config["bulk_delay_polls"]
        if isinstance(spec, str):        # "random:A-B", drawn once per job
            lo, hi = parse_delay(spec)
            job["delay"] = st.rng.randint(lo, hi)
        st.bulk[job["id"]] = job
        if self._job_delay(job) <= 0:
            self._advance_bulk(job)
        return 201, {"data": self._bulk_doc(job)}

    def _job_delay(self, job):
        if "delay" in job:
            return job["delay"]
        spec = self.state.config["bulk_delay_polls"]
        return spec if isinstance(spec, int) else parse_delay(spec)[1]

    def _advance_bulk(self, job):
        n = self._job_delay(job)
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
            job["updatedAt"] = data_now()
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


def parse_delay(spec):
    """'random:1-3' -> (1, 3); else None."""
    m = re.fullmatch(r"random:([0-9]+)-([0-9]+)", spec) if isinstance(spec, str) else None
    if not m or int(m.group(1)) > int(m.group(2)):
        return None
    return int(m.group(1)), int(m.group(2))


ROUTE_WORDS = {"bulk", "search", "archive", "batches", "times", "identityEvent",
               "identity", "event", "tokens", "current", "routing", "queues",
               "work-sessions", "versions", "metadata"}


def route_key(method, path):
    """'GET /v1/bulk/5f3.../batches' -> 'GET /v1/bulk/{id}/batches' (GET /_fake/stats)."""
    segs = path.split("/")
    out = []
    for k, seg in enumerate(segs):
        prev = segs[k - 1] if k else ""
        if k >= 3 and prev == "times":
            seg = "{ids}"
        elif seg.startswith("email="):
            seg = "email={email}"
        elif seg.startswith("externalId="):
            seg = "externalId={externalId}"
        elif re.fullmatch(r"[0-9a-fA-F]{24}", seg) or (
                k >= 3 and seg and seg not in ROUTE_WORDS and prev not in ("metadata",)
                and segs[1] == "v1" and not (prev == "klasses" and k == 3)):
            seg = "{id}"
        out.append(seg)
    return "%s %s" % (method, "/".join(out))


def apply_config(st, obj):
    """Validate and apply a /_fake/config object; -> error text or None."""
    if not isinstance(obj, dict):
        return "config must be a JSON object"
    new = dict(st.config)
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
        elif k == "bulk_results":
            if v not in ("wrapped", "bare"):
                return "bulk_results must be \"wrapped\" or \"bare\""
        elif k == "bulk_delay_polls":
            if isinstance(v, str):
                if parse_delay(v) is None:
                    return 'bulk_delay_polls must be an integer >= 0 or "random:A-B"'
            elif not isinstance(v, int) or isinstance(v, bool) or v < 0:
                return 'bulk_delay_polls must be an integer >= 0 or "random:A-B"'
        elif k == "audit_forbidden":
            if not isinstance(v, bool):
                return "audit_forbidden must be a boolean"
        elif k == "search_max_page":
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                return "search_max_page must be an integer >= 1"
        elif k == "fail_status":
            if not isinstance(v, int) or isinstance(v, bool) or not 100 <= v <= 599:
                return "fail_status must be an integer 100..599"
        else:
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                return "%s must be an integer >= 0" % k
        new[k] = v
    ext = new.pop("external_usage", None)
    st.config.update(new)
    if ext is not None:
        st.set_external(ext, time.time())
    if "hang_after" in obj:
        st.release_hung()
    return None


# ------------------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="fake_kustomer.py",
        description="A local stand-in for Kustomer's REST API (customers, bulk, tracking, "
                    "search, reference lists, audit logs) for tests: loopback only, "
                    "standard library only.  The module docstring is the full "
                    "specification of every endpoint, shape and option.",
        epilog="Control API (no auth, never counted): /_fake/health, requests, reset, "
               "config, lookups, customers, events, dump, seed, clock, mutate, delete, "
               "touch, merge, add, script, stats.  Config keys set at run time through "
               "POST /_fake/config are named after the options (rate_limit, ...).")

    def nonneg(s):
        v = int(s)
        if v < 0:
            raise argparse.ArgumentTypeError("must be >= 0")
        return v

    def positive(s):
        v = int(s)
        if v < 1:
            raise argparse.ArgumentTypeError("must be >= 1")
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

    def delay(s):
        if re.fullmatch(r"[0-9]+", s):
            return int(s)
        if parse_delay(s) is None:
            raise argparse.ArgumentTypeError('want an integer >= 0 or "random:A-B"')
        return s

    def klasses(s):
        v, err = parse_klasses(s)
        if err:
            raise argparse.ArgumentTypeError(err)
        return v

    def instant(s):
        ms = ms_of(int(s)) if re.fullmatch(r"-?[0-9]+", s) else ms_of(s)
        if ms is None:
            raise argparse.ArgumentTypeError("want an ISO 8601 date-time or epoch ms")
        return ms

    g = p.add_argument_group("server")
    g.add_argument("--port", type=nonneg, default=0,
                   help="TCP port to listen on; 0 (default) picks a free one")
    g.add_argument("--host", default="127.0.0.1",
                   help="loopback IPv4 address to bind (127.0.0.0/8 or localhost; "
                        "anything else exits 2); default 127.0.0.1")
    g.add_argument("--port-file", metavar="FILE",
                   help="write the port to FILE (atomically) once listening")
    g.add_argument("--log", metavar="FILE",
                   help="append every recorded request to FILE as one JSON line")
    g.add_argument("--lookups", metavar="FILE",
                   help="scripted replies: a JSON object {url: {status, body} | "
                        "{networkError: ..}} answering GETs of that path+query")
    g.add_argument("--api-key", metavar="KEY",
                   help="the only Bearer key accepted (default: any non-empty key)")
    g = p.add_argument_group("rate limits and faults")
    g.add_argument("--rate-limit", type=nonneg, default=0, metavar="N",
                   help="accepted requests per window, with x-ratelimit-* headers and "
                        "429s beyond; 0 (default) = off")
    g.add_argument("--rate-window", type=positive_float, default=60.0, metavar="S",
                   help="length of the rate-limit windows in seconds (default 60)")
    g.add_argument("--search-rate-limit", type=nonneg, default=0, metavar="N",
                   help="searches per window; beyond: 429 with Retry-After; 0 = off")
    g.add_argument("--search-max-page", type=positive, default=SEARCH_MAX_PAGE,
                   metavar="N", help="search pages above N answer 400 (default 100)")
    g.add_argument("--fail-every", type=nonneg, default=0, metavar="N",
                   help="answer every Nth request with --fail-status; 0 = off")
    g.add_argument("--fail-status", type=status, default=503, metavar="STATUS",
                   help="status of the --fail-every answers (default 503)")
    g.add_argument("--drop-every", type=nonneg, default=0, metavar="N",
                   help="close every Nth connection without an answer; 0 = off")
    g.add_argument("--cut-every", type=nonneg, default=0, metavar="N",
                   help="send every Nth answer's status line, headers and half its "
                        "body, then close the connection; 0 = off")
    g.add_argument("--hang-after", type=nonneg, default=0, metavar="N",
                   help="record request N and every later one, then never answer "
                        "(until hang_after is set again, a reset or shutdown); 0 = off")
    g.add_argument("--throttle-every", type=nonneg, default=0, metavar="N",
                   help="answer 429 (remaining 0, reset at the window's end) "
                        "to every Nth request, as when other clients use the "
                        "org's budget")
    g.add_argument("--retry-after", default=None, metavar="VALUE",
                   help="a Retry-After header's value for the 429s of "
                        "--throttle-every")
    g.add_argument("--slow-ms", type=nonneg, default=0, metavar="MS",
                   help="delay replies by MS milliseconds (see --slow-every)")
    g.add_argument("--slow-every", type=nonneg, default=0, metavar="N",
                   help="with --slow-ms, delay every Nth reply (default: every one)")
    g.add_argument("--audit-forbidden", action="store_true",
                   help="GET /v1/audit-logs answers 403 (a key without the role)")
    g = p.add_argument_group("bulk jobs")
    g.add_argument("--bulk-delay-polls", type=delay, default=2, metavar="N|random:A-B",
                   help="polls of GET /v1/bulk/{id} until a job completes (default 2; "
                        "0 = complete at submission); random:A-B draws it per job")
    g.add_argument("--bulk-results", choices=("wrapped", "bare"), default="wrapped",
                   help="GET /v1/bulk/{id}/batches as {data:[batch]} (wrapped, "
                        "default) or a bare array of the batches' attributes")
    g.add_argument("--seed-random", type=int, default=0, metavar="N",
                   help="seed of the random:A-B draws (default 0)")
    g = p.add_argument_group("data and clock")
    g.add_argument("--seed", metavar="FILE",
                   help='records to load: a JSON object {"<type>": [record, ...]} '
                        "(kobjects as kobject_<klass>)")
    g.add_argument("--seed-customers", type=nonneg, default=0, metavar="N",
                   help="generate N customers with two conversations each")
    g.add_argument("--seed-messages-per-conversation", type=nonneg, default=None,
                   metavar="N", help="generate N messages per conversation")
    g.add_argument("--seed-notes", type=nonneg, default=None, metavar="N",
                   help="generate N notes per conversation")
    g.add_argument("--seed-companies", type=nonneg, default=None, metavar="N",
                   help="generate N companies")
    g.add_argument("--seed-klasses", type=klasses, default=None, metavar="NAME:N,...",
                   help="generate klasses and N kobjects of each, e.g. order:3,device:1")
    g.add_argument("--seed-users", type=nonneg, default=None, metavar="N",
                   help="generate N users")
    g.add_argument("--seed-teams", type=nonneg, default=None, metavar="N",
                   help="generate N teams (members: the users, round robin)")
    g.add_argument("--seed-work-sessions-per-user", type=nonneg, default=None,
                   metavar="N", help="generated work sessions per user (default 2)")
    g.add_argument("--now", type=instant, default=None, metavar="TIME",
                   help="start the fake clock at TIME (ISO 8601 or epoch ms) instead "
                        "of real time; it runs on with real time")
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

    args.seed_data = None
    if args.seed:
        try:
            with open(args.seed, encoding="utf-8") as f:
                args.seed_data = parse_json(f.read())
        except (OSError, ValueError) as e:
            print("fake-kustomer: --seed %s: %s" % (args.seed, e), file=sys.stderr)
            return 2
    CLOCK.start_ms = args.now
    CLOCK.reset()
    try:
        state = State(args)
    except ValueError as e:
        print("fake-kustomer: --seed %s: %s" % (args.seed, e), file=sys.stderr)
        return 2
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
    with state.hang_cond:
        state.stopping = True
        state.hang_cond.notify_all()
    server.shutdown()
    server.server_close()
    if state.log_file is not None:
        with state.lock:
            state.log_file.close()
            state.log_file = None
    return 0


if __name__ == "__main__":
    sys.exit(main())
