-- Demo of the kustomer extension on a sample archive of RudderStack/Segment
-- events.  Run from the repository root, after building dist/kustomer.so:
--
--     sqlite3 :memory: < sql/demo.sql        (or: make demo)
--
-- It loads sql/sample_events.ndjson (3000 events, about 8% deliberately
-- flawed; made by tests/gen_events.py --n 3000 --seed 42 --flawed 0.08),
-- shows the Kustomer requests built from them, lists what kustomer_check
-- finds with and without advancedTransform, and writes every request to
-- out/requests.ndjson and the rejected events to out/rejected.ndjson.
-- Nothing is sent anywhere.

.bail on
.headers on
.nullvalue NULL
.load ./dist/kustomer

.print
.print '== 1. Load sql/sample_events.ndjson into events(id, payload), one message per row'
.print

DROP TABLE IF EXISTS events;
CREATE TABLE events(id INTEGER PRIMARY KEY, payload TEXT);

-- kustomer_events() reads the archive as SDKs and pipelines write it
-- (NDJSON, JSON arrays, {"batch":[...]} envelopes, gzip; a file, a folder
-- or a glob), each message's text exactly as in the file.  A line it
-- cannot read is a row with its error, and the read goes on: those are
-- kept apart, in unreadable.
DROP TABLE IF EXISTS unreadable;
CREATE TABLE unreadable(file TEXT, line INTEGER, error TEXT);
INSERT INTO events(payload)
  SELECT message FROM kustomer_events('sql/sample_events.ndjson')
  WHERE error IS NULL ORDER BY file, line, batch_index;
INSERT INTO unreadable
  SELECT file, line, error FROM kustomer_events('sql/sample_events.ndjson')
  WHERE error IS NOT NULL;

-- The destination settings, defined once: as RudderStack's Kustomer
-- destination is configured, without and with the advanced transform.
-- Scalar functions take them from a join; kustomer_check() takes them as a
-- scalar subquery, evaluated once.
DROP TABLE IF EXISTS temp.settings;
DROP TABLE IF EXISTS temp.settings_adv;
CREATE TEMP TABLE settings(s TEXT);
CREATE TEMP TABLE settings_adv(s TEXT);
INSERT INTO settings VALUES('{"apiKey":"demo-key","advancedTransform":false}');
INSERT INTO settings_adv VALUES('{"apiKey":"demo-key","advancedTransform":true}');

-- The events with their type; js is the payload when it is valid JSON
-- (NULL otherwise), so the json_* calls of the queries below never see a
-- malformed line (the kustomer_* functions take every line as it is).
DROP VIEW IF EXISTS temp.ev;
CREATE TEMP VIEW ev AS
  SELECT id, payload,
         CASE WHEN json_valid(payload) THEN payload END AS js,
         CASE WHEN json_valid(payload) THEN json_extract(payload, '$.type') END
           AS type
  FROM events;

.mode box
WITH f(t) AS (SELECT CAST(readfile('sql/sample_events.ndjson') AS TEXT))
SELECT (SELECT count(*) FROM events) AS rows_loaded,
       (SELECT count(*) FROM unreadable) AS unreadable,
       length(t) - length(replace(t, char(10), '')) AS lines_in_file,
       CASE WHEN (SELECT count(*) FROM events) + (SELECT count(*) FROM unreadable)
                 = length(t) - length(replace(t, char(10), ''))
            THEN 'ok' ELSE 'MISMATCH' END AS check_
FROM f;
SELECT line, error FROM unreadable ORDER BY line;

SELECT CASE WHEN js IS NULL THEN '(not valid JSON)'
            WHEN type IS NULL THEN '(no type)'
            WHEN type = '' THEN '(empty type)'
            ELSE type END AS type,
       count(*) AS events,
       printf('%.1f%%', 100.0 * count(*) / (SELECT count(*) FROM events)) AS share
FROM ev GROUP BY 1 ORDER BY 2 DESC;

SELECT s AS settings FROM settings UNION ALL SELECT s FROM settings_adv;

.print
.print '== 2. Transformed requests'
.print
.print '-- kustomer_event_name(): the first 3 events of each tracking type'
.mode box --wrap 40
WITH pick AS (
  SELECT id, payload, js, type,
         row_number() OVER (PARTITION BY type ORDER BY id) AS rn
  FROM ev, settings
  WHERE type IN ('track', 'page', 'screen')
    AND json_extract(kustomer_request(payload, settings.s), '$.statusCode') IS NULL
)
SELECT p.id, p.type,
       coalesce(json_extract(p.js, '$.event'), json_extract(p.js, '$.name'),
                json_extract(p.js, '$.properties.name')) AS name_in_event,
       kustomer_event_name(p.payload, st.s) AS kustomer_event_name,
       kustomer_event_name(p.payload, sa.s) AS with_advancedTransform
FROM pick p, settings st, settings_adv sa
WHERE p.rn <= 3
ORDER BY p.type, p.id;

.print
.print '-- kustomer_request(): one short event of each type'
.mode box --wrap 110
WITH pick AS (
  SELECT id, payload, type,
         row_number() OVER (PARTITION BY type ORDER BY id) AS rn
  FROM ev, settings
  WHERE type IN ('track', 'page', 'screen', 'identify')
    AND length(payload) < 1300
    AND json_extract(kustomer_request(payload, settings.s), '$.statusCode') IS NULL
)
SELECT p.id, p.type, kustomer_request(p.payload, st.s) AS request
FROM pick p, settings st
WHERE p.rn = 1
ORDER BY p.id;

.print
.print '-- identify with a known Kustomer customer id (3rd argument): PUT instead of POST'
.mode box --wrap 80
SELECT id,
       json_extract(r0, '$.method') || ' ' || json_extract(r0, '$.endpoint') AS without_customer_id,
       json_extract(r1, '$.method') || ' ' || json_extract(r1, '$.endpoint') AS with_customer_id
FROM (SELECT id, kustomer_request(payload, st.s) AS r0,
             kustomer_request(payload, st.s, '65f1c0ffee0123456789abcd') AS r1
      FROM ev, settings st
      WHERE type = 'identify'
        AND json_extract(js, '$.context.externalId') IS NULL
      ORDER BY id LIMIT 1);

.print
.print '-- advancedTransform on one track event: name, and body.JSON.event.meta'
.print '-- (the event with the most kinds of property values)'
.mode line
WITH best AS (
  SELECT e.id
  FROM ev e, json_each(e.js, '$.properties') j
  WHERE e.type = 'track' AND json_type(e.js, '$.properties') = 'object'
  GROUP BY e.id
  HAVING count(*) <= 12 AND sum(j.key GLOB '*Num' OR j.key GLOB '*At') = 0
  ORDER BY count(DISTINCT CASE
             WHEN j.type = 'text' AND j.atom GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-*'
               THEN 'date'
             WHEN j.type IN ('true', 'false') THEN 'boolean'
             ELSE j.type END) DESC,
           length(e.payload), e.id
  LIMIT 1
)
SELECT e.id,
       json_extract(e.js, '$.event') AS event,
       json_extract(e.js, '$.properties') AS properties,
       kustomer_event_name(e.payload, st.s) AS name,
       json_extract(kustomer_request(e.payload, st.s), '$.body.JSON.event.meta') AS meta,
       kustomer_event_name(e.payload, sa.s) AS name_advanced,
       json_extract(kustomer_request(e.payload, sa.s), '$.body.JSON.event.meta') AS meta_advanced
FROM ev e, best, settings st, settings_adv sa
WHERE e.id = best.id;

.print
.print '== 3. kustomer_check(): what Kustomer would reject or store badly'
.print
.print '-- advancedTransform = false'
.mode box
SELECT c.rule, c.severity, count(*) AS problems, count(DISTINCT e.id) AS events
FROM events e, kustomer_check(e.payload, (SELECT s FROM settings)) AS c
GROUP BY c.rule, c.severity
ORDER BY count(*) DESC, c.rule;

.print '-- one example per rule (advancedTransform = false)'
.mode box --wrap 60
WITH x AS (
  SELECT e.id, c.rule, c.path, c.message,
         row_number() OVER (PARTITION BY c.rule ORDER BY e.id, c.path) AS rn
  FROM events e, kustomer_check(e.payload, (SELECT s FROM settings)) AS c
)
SELECT id, rule, path, message FROM x WHERE rn = 1 ORDER BY rule;

.print
.print '-- advancedTransform = true'
.mode box
SELECT c.rule, c.severity, count(*) AS problems, count(DISTINCT e.id) AS events
FROM events e, kustomer_check(e.payload, (SELECT s FROM settings_adv)) AS c
GROUP BY c.rule, c.severity
ORDER BY count(*) DESC, c.rule;

.print '-- one example per rule (advancedTransform = true)'
.mode box --wrap 60
WITH x AS (
  SELECT e.id, c.rule, c.path, c.message,
         row_number() OVER (PARTITION BY c.rule ORDER BY e.id, c.path) AS rn
  FROM events e, kustomer_check(e.payload, (SELECT s FROM settings_adv)) AS c
)
SELECT id, rule, path, message FROM x WHERE rn = 1 ORDER BY rule;

.print
.print '-- summary'
.mode box
WITH
  plain AS (SELECT e.id, c.severity
            FROM events e,
                 kustomer_check(e.payload, (SELECT s FROM settings)) AS c),
  adv AS (SELECT e.id, c.severity
          FROM events e,
               kustomer_check(e.payload, (SELECT s FROM settings_adv)) AS c),
  n(total) AS (SELECT count(*) FROM events)
SELECT 'false' AS advancedTransform,
       (SELECT count(*) FROM plain WHERE severity = 'error') AS errors,
       (SELECT count(*) FROM plain WHERE severity = 'warning') AS warnings,
       (SELECT count(DISTINCT id) FROM plain WHERE severity = 'error') AS events_with_errors,
       total - (SELECT count(DISTINCT id) FROM plain) AS clean_events
FROM n
UNION ALL
SELECT 'true',
       (SELECT count(*) FROM adv WHERE severity = 'error'),
       (SELECT count(*) FROM adv WHERE severity = 'warning'),
       (SELECT count(DISTINCT id) FROM adv WHERE severity = 'error'),
       total - (SELECT count(DISTINCT id) FROM adv)
FROM n;

.print
.print '== 4. Events that cannot be transformed (kustomer_request gives {"statusCode","error"})'
.print
.mode box --wrap 70
SELECT json_extract(r, '$.statusCode') AS status,
       json_extract(r, '$.error') AS error,
       count(*) AS events, min(id) AS first_id
FROM (SELECT e.id, kustomer_request(e.payload, st.s) AS r
      FROM events e, settings st)
WHERE json_extract(r, '$.statusCode') IS NOT NULL
GROUP BY 1, 2
ORDER BY count(*) DESC, 2;

.mode box
SELECT 'false' AS advancedTransform, count(*) AS rejected_events
FROM events e, settings st
WHERE json_extract(kustomer_request(e.payload, st.s), '$.statusCode') IS NOT NULL
UNION ALL
SELECT 'true', count(*)
FROM events e, settings_adv sa
WHERE json_extract(kustomer_request(e.payload, sa.s), '$.statusCode') IS NOT NULL;

.print
.print '== 5. Export: out/requests.ndjson (every event, in id order), out/rejected.ndjson'
.print
.system mkdir -p out
.headers off
.nullvalue ''
.mode list
.once out/requests.ndjson
SELECT kustomer_request(e.payload, st.s)
FROM events e, settings st
ORDER BY e.id;
.once out/rejected.ndjson
SELECT json_object('id', id,
                   'statusCode', json_extract(r, '$.statusCode'),
                   'error', json_extract(r, '$.error'))
FROM (SELECT e.id, kustomer_request(e.payload, st.s) AS r
      FROM events e, settings st)
WHERE json_extract(r, '$.statusCode') IS NOT NULL
ORDER BY id;

-- Read both files back, one line per row, as in section 1.
DROP TABLE IF EXISTS temp.readback;
CREATE TEMP TABLE readback(line TEXT);
.mode ascii
.separator "\037" "\n"
.import out/requests.ndjson readback
DROP TABLE IF EXISTS temp.readback_rejected;
CREATE TEMP TABLE readback_rejected(line TEXT);
.import out/rejected.ndjson readback_rejected
.headers on
.nullvalue NULL
.mode box
SELECT 'out/requests.ndjson' AS file,
       count(*) AS lines,
       sum(json_valid(line)) AS valid_json,
       sum(CASE WHEN json_valid(line) THEN json_extract(line, '$.statusCode') IS NULL END)
         AS requests,
       sum(CASE WHEN json_valid(line) THEN json_extract(line, '$.statusCode') IS NOT NULL END)
         AS errors,
       CASE WHEN count(*) = (SELECT count(*) FROM events) THEN 'ok' ELSE 'MISMATCH' END
         AS one_per_event
FROM readback
UNION ALL
SELECT 'out/rejected.ndjson', count(*), sum(json_valid(line)), NULL, count(*), NULL
FROM readback_rejected;

-- Requests by method and endpoint (customer ids in update URLs masked).
WITH r AS (
  SELECT json_extract(line, '$.method') AS method,
         json_extract(line, '$.endpoint') AS endpoint
  FROM readback
  WHERE CASE WHEN json_valid(line) THEN json_extract(line, '$.statusCode') IS NULL END
)
SELECT method,
       CASE WHEN instr(endpoint, '/v1/customers/') > 0
            THEN substr(endpoint, 1, instr(endpoint, '/v1/customers/') + 13)
                 || '<id>' || substr(endpoint, instr(endpoint, '?'))
            ELSE endpoint END AS endpoint,
       count(*) AS requests
FROM r
GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2;
DROP TABLE temp.readback;
DROP TABLE temp.readback_rejected;
.print
.print 'done.'
