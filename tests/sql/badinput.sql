-- Hostile and odd input: huge, deep, invalid UTF-8, \u0000, wrong shapes.
-- kustomer_request reports per-event problems as data; kustomer_check as rows.

-- a 10 MB event is transformed whole
create temp table big as select '{"type":"track","event":"Big","userId":"u","properties":{"blob":"' || printf('%.*c', 10000000, 'x') || '","n":1}}' as e;
select 'huge-event-tracking', (select length(json_extract(kustomer_tracking(e), '$.event.meta.blob')) from big), 10000000;
select 'huge-event-request', (select json_extract(kustomer_request(e, '{"advancedTransform":true}'), '$.body.JSON.event.meta.nNum') from big), 1;
select 'huge-event-check', (select group_concat(rule) from big, kustomer_check(big.e)), 'number_key_without_num';
-- a 10 MB object with 500k keys (hashed duplicate detection, no quadratic time)
create temp table wide as with recursive c(i) as (select 1 union all select i+1 from c where i<500000) select '{' || group_concat('"k' || i || '":' || i, ',') || ',"k7":"dup"}' as p from c;
select 'wide-object-meta', (select json_extract(m, '$.k7') || ' ' || json_extract(m, '$.k500000') from (select kustomer_meta(p) m from wide)), 'dup 500000';
select 'wide-object-each', (select count(*) from wide, kustomer_meta_each(wide.p)), 500001;

-- 100k-deep nesting is refused with a clear message, never a crash
create temp table deep as select '{"type":"track","event":"E","properties":{"d":' || printf('%.*c', 100000, '[') || printf('%.*c', 100000, ']') || '}}' as e;
select 'deep-request', (select kustomer_request(e, '{}') from deep), '{"statusCode":400,"error":"Event is nested deeper than 256 levels"}';
select 'deep-check', (select rule || ': ' || message from deep, kustomer_check(deep.e)), 'malformed_json: Event is nested deeper than 256 levels';
-- within the limit is fine
select 'deep-250-ok', (select json_extract(kustomer_request('{"type":"track","event":"E","properties":{"d":' || printf('%.*c', 250, '[') || printf('%.*c', 250, ']') || '}}', '{}'), '$.body.JSON.event.name')), 'E';

-- invalid UTF-8
select 'utf8-invalid-request', kustomer_request(cast(x'7b2274797065223a22747261636b222c226576656e74223a22c328227d' as text), '{}'), '{"statusCode":400,"error":"Event is not valid UTF-8 (byte 0xc3 at offset 25)"}';
select 'utf8-overlong', json_extract(kustomer_request(cast(x'7b2274797065223a22c0af227d' as text), '{}'), '$.error'), 'Event is not valid UTF-8 (byte 0xc0 at offset 9)';
select 'utf8-surrogate', json_extract(kustomer_request(cast(x'7b2274797065223a22eda080227d' as text), '{}'), '$.error'), 'Event is not valid UTF-8 (byte 0xed at offset 9)';
select 'utf8-valid-4byte', kustomer_event_name('{"type":"track","event":"🎉 Promo"}', '{"advancedTransform":true}'), '🎉-Promo';
select 'utf8-check', (select rule from kustomer_check(cast(x'7b2274797065223aff7d' as text))), 'malformed_json';

-- \u0000 would be truncated by the parser: refused instead
select 'nul-escape-request', kustomer_request('{"type":"track","event":"a\u0000b"}', '{}'), '{"statusCode":400,"error":"Event contains \\u0000 at offset 26, which is not supported"}';
select 'nul-escape-escaped-backslash-ok', kustomer_event_name('{"type":"track","event":"a\\u0000b"}'), 'a\u0000b';

-- what RFC 8259 and SQLite's json() refuse is refused, though cJSON would
-- read it: a \u escape with bad hex digits (cJSON cut the string there),
-- numbers such as 01 and 1., raw control characters
select 'bad-hex-escape-request', kustomer_request('{"type":"track","event":"x\uZZZZy","userId":"u"}', '{}'), '{"statusCode":400,"error":"Event is not valid JSON (bad \\u escape at offset 26)"}';
select 'bad-hex-escape-short', json_extract(kustomer_request('{"type":"track","event":"x\u12"}', '{}'), '$.error'), 'Event is not valid JSON (bad \u escape at offset 26)';
select 'bad-escape', json_extract(kustomer_request('{"type":"track","event":"x\qy"}', '{}'), '$.error'), 'Event is not valid JSON (bad escape at offset 26)';
select 'high-surrogate-alone', json_extract(kustomer_request('{"type":"track","event":"\ud83dx"}', '{}'), '$.error'), 'Event is not valid JSON (unpaired surrogate escape at offset 25)';
select 'high-surrogate-then-high', json_extract(kustomer_request('{"type":"track","event":"\ud83d\ud83d"}', '{}'), '$.error'), 'Event is not valid JSON (unpaired surrogate escape at offset 25)';
select 'low-surrogate-alone', json_extract(kustomer_request('{"type":"track","event":"\ude00"}', '{}'), '$.error'), 'Event is not valid JSON (unpaired surrogate escape at offset 25)';
select 'leading-zero', json_extract(kustomer_request('{"type":"track","event":"E","properties":{"a":01}}', '{}'), '$.error'), 'Event is not valid JSON (bad number at offset 46)';
select 'negative-leading-zero', json_extract(kustomer_request('{"type":"track","event":"E","properties":{"a":-01}}', '{}'), '$.error'), 'Event is not valid JSON (bad number at offset 46)';
select 'dot-without-digits', json_extract(kustomer_request('{"type":"track","event":"E","properties":{"a":1.}}', '{}'), '$.error'), 'Event is not valid JSON (bad number at offset 46)';
select 'exponent-without-digits', json_extract(kustomer_request('{"type":"track","event":"E","properties":{"a":1e+}}', '{}'), '$.error'), 'Event is not valid JSON (bad number at offset 46)';
select 'two-dots', json_extract(kustomer_request('{"type":"track","event":"E","properties":{"a":1.5.2}}', '{}'), '$.error'), 'Event is not valid JSON (bad number at offset 46)';
select 'minus-alone', json_extract(kustomer_request('{"type":"track","event":"E","properties":{"a":-}}', '{}'), '$.error'), 'Event is not valid JSON (bad number at offset 46)';
select 'tab-in-string', json_extract(kustomer_request('{"type":"track","event":"a' || char(9) || 'b"}', '{}'), '$.error'), 'Event is not valid JSON (control character 0x09 in a string at offset 26)';
select 'newline-in-string', json_extract(kustomer_request('{"type":"track","event":"a' || char(10) || 'b"}', '{}'), '$.error'), 'Event is not valid JSON (control character 0x0a in a string at offset 26)';
select 'control-between-tokens', json_extract(kustomer_request('{"type":' || char(12) || '"track","event":"E"}', '{}'), '$.error'), 'Event is not valid JSON (control character 0x0c at offset 8)';
select 'json-whitespace-ok', json_extract(kustomer_request('{"type":' || char(9, 10, 13, 32) || '"track","event":"E"}', '{}'), '$.body.JSON.event.name'), 'E';
select 'numbers-ok', kustomer_meta('{"a":0,"b":-0.5,"c":1E+2,"d":2e-3,"e":10,"f":-0}'), '{"a":0,"b":-0.5,"c":100,"d":0.002,"e":10,"f":0}';
-- accepted exactly when SQLite's json_valid() accepts
select 'strict-as-json-valid', (select count(*) from (select column1 j from (values ('{"a":01}'), ('{"a":1.}'), ('{"a":"\uZZZZ"}'), ('{"a":"\x"}'), ('{"a":' || char(1) || '1}'), ('{"a":"' || char(31) || '"}'), ('{"a":-}'), ('{"a":1e5}'), ('{"a":"\/\b"}'))) where json_valid(j) = (json_extract(kustomer_request(j, '{}'), '$.error') not like 'Event is not valid JSON%')), 9;
select 'nul-byte-request', json_extract(kustomer_request(cast(x'7b7d007b7d' as text), '{}'), '$.error'), 'Event contains a NUL byte at offset 2';
select 'escaped-unicode-ok', kustomer_event_name('{"type":"track","event":"\u00e9\ud83c\udf89"}'), 'é🎉';
select 'lone-surrogate-refused', json_extract(kustomer_request('{"type":"track","event":"\ud800"}', '{}'), '$.statusCode'), 400;

-- wrong shapes inside a valid document
select 'type-object', kustomer_request('{"type":{"a":1}}', '{}'), '{"statusCode":400,"error":"Event type must be a string"}';
select 'properties-number', kustomer_meta('5'), '5';
select 'traits-array', kustomer_identify('{"type":"identify","userId":"u","traits":["a"]}'), '{"externalId":"u"}';
select 'externalid-not-array', json_extract(kustomer_request('{"type":"identify","userId":"u","context":{"externalId":{"type":"kustomerId","id":"k"}}}', '{}'), '$.method'), 'POST';
select 'empty-text-event', json_extract(kustomer_request('', '{}'), '$.error'), 'Event is not valid JSON (unexpected end)';
select 'whitespace-event', json_extract(kustomer_request('   ', '{}'), '$.error'), 'Event is not valid JSON (unexpected end)';
select 'number-overflow-is-null', kustomer_meta('{"x":1e999}'), '{"x":null}';
select 'request-many-rows-one-bad', (select count(*) from (select kustomer_request(e, '{}') r from (select '{"type":"track","event":"E"}' e union all select '{bad' union all select '{"type":"page"}')) where json_extract(r, '$.statusCode') is null), 2;
