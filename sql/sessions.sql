-- Session ids for the events that have none, then the Kustomer requests.
-- Run from the repository root, after building dist/kustomer.so:
--
--     sqlite3 :memory: < sql/sessions.sql
--
-- Kustomer groups tracking events by event.sessionId, which the
-- transformation takes from properties.kustomerSessionId,
-- properties.kustomer_session_id or context.sessionId (RudderStack's SDKs
-- set the last one).  Server-side and imported events often have none.
-- This recipe cuts each user's events into sessions with kustomer_session()
-- (a new session after 30 minutes without an event) and writes the id into
-- properties.kustomer_session_id of the track, page and screen events that
-- lack one; an id already in the event always wins.  Nothing is changed in
-- the archive: the result is a view.

.bail on
.load ./dist/kustomer

-- A small archive: u42 has two sessions (10:41 is 28.5 minutes after 10:12,
-- 14:05 is more than 3 hours after 10:41); anon-7 brings its own ids.
CREATE TABLE events(id INTEGER PRIMARY KEY, payload TEXT);
INSERT INTO events(payload) VALUES
  ('{"type":"page","name":"Home","userId":"u42","timestamp":"2024-05-01T10:00:00.000Z"}'),
  ('{"type":"track","event":"Product Viewed","userId":"u42","timestamp":"2024-05-01T10:12:30.250Z","properties":{"sku":"A-1"}}'),
  ('{"type":"track","event":"Order Completed","userId":"u42","timestamp":"2024-05-01T10:41:00.000Z","properties":{"totalNum":99.5}}'),
  ('{"type":"track","event":"Signed In","userId":"u42","timestamp":"2024-05-01T14:05:00.000Z"}'),
  ('{"type":"identify","userId":"u42","timestamp":"2024-05-01T14:05:01.000Z","traits":{"email":"ada@example.com"}}'),
  ('{"type":"screen","name":"Cart","anonymousId":"anon-7","timestamp":"2024-05-01T10:05:00.000Z"}'),
  ('{"type":"track","event":"Cart Viewed","anonymousId":"anon-7","timestamp":"2024-05-01T10:20:00.000Z","properties":{"kustomer_session_id":"app-s-991"}}'),
  ('{"type":"track","event":"Checkout Started","anonymousId":"anon-7","timestamp":"2024-05-01T10:21:00.000Z","context":{"sessionId":1714558860000}}'),
  ('{"type":"track","event":"Synced","userId":"u42"}');

-- One session id per event with a timestamp.  Every event counts as
-- activity (identify too, and events that carry their own id), so gaps are
-- measured over all of them.  The id is unique across users: user_key, the
-- 4th argument, hashes the user into it.  ORDER BY ts is chronological
-- because the archive writes every timestamp in the same ISO-8601 format;
-- otherwise order by something that is (kustomer_session() reads ISO text,
-- Unix seconds and milliseconds alike, but SQL sorts text after numbers).
CREATE TEMP VIEW event_sessions AS
SELECT id, payload, type,
       kustomer_session(ts, 30, NULL, user_key)
         OVER (PARTITION BY user_key ORDER BY ts, id) AS session_id
  FROM (SELECT id, payload,
               lower(json_extract(payload, '$.type')) AS type,
               coalesce(json_extract(payload, '$.timestamp'),
                        json_extract(payload, '$.originalTimestamp')) AS ts,
               coalesce(nullif(json_extract(payload, '$.userId'), ''),
                        json_extract(payload, '$.anonymousId')) AS user_key
          FROM events
         WHERE json_valid(payload));

-- The events as they are sent.  An event keeps its own id when it has one
-- that the transformation would use (present, not null, not ""); events
-- without a timestamp get none.  json_set creates "properties" when it is
-- missing (the request then has "meta":{}, as RudderStack sends an event
-- whose properties hold only a session id) and leaves a non-object
-- "properties" alone.  Malformed JSON is passed on unchanged, for
-- kustomer_request() to report.
CREATE TEMP VIEW events_with_sessions AS
SELECT e.id,
       CASE WHEN s.session_id IS NOT NULL
             AND s.type IN ('track', 'page', 'screen')
             AND nullif(json_extract(e.payload, '$.properties.kustomerSessionId'), '') IS NULL
             AND nullif(json_extract(e.payload, '$.properties.kustomer_session_id'), '') IS NULL
             AND nullif(json_extract(e.payload, '$.context.sessionId'), '') IS NULL
            THEN json_set(e.payload, '$.properties.kustomer_session_id', s.session_id)
            ELSE e.payload END AS payload
  FROM events e LEFT JOIN event_sessions s ON s.id = e.id;

.print '-- The session id each event is sent with'
.headers on
.mode box
SELECT id,
       json_extract(payload, '$.type') AS type,
       coalesce(json_extract(payload, '$.userId'), json_extract(payload, '$.anonymousId')) AS user,
       json_extract(payload, '$.timestamp') AS timestamp,
       json_extract(kustomer_request(payload, '{}'), '$.body.JSON.event.sessionId') AS sessionId
  FROM events_with_sessions ORDER BY id;

.print
.print '-- The requests (one JSON document per line, as for an NDJSON export)'
.headers off
.mode list
SELECT kustomer_request(payload, '{"apiKey":"KEY"}') FROM events_with_sessions ORDER BY id;
