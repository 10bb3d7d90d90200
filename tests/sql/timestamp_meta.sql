-- timestampMeta: the event's own time in meta, for replayed archives.
-- Off by default: the reference's bytes stay.
select 'ts-off', kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"2024-05-01T12:00:00.123Z","properties":{"a":1}}'), '{"identity":{"externalId":"u"},"event":{"name":"A","meta":{"a":1}}}';
select 'ts-null-setting', kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"2024-05-01T12:00:00.123Z","properties":{"a":1}}', '{"timestampMeta":null}'), '{"identity":{"externalId":"u"},"event":{"name":"A","meta":{"a":1}}}';
-- timestamp, added last; the text of an ISO date-time is kept
select 'ts-timestamp', kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"2024-05-01T12:00:00.123Z","originalTimestamp":"2020-01-01T00:00:00Z","properties":{"a":1}}', '{"timestampMeta":"occurredAt"}'), '{"identity":{"externalId":"u"},"event":{"name":"A","meta":{"a":1,"occurredAt":"2024-05-01T12:00:00.123Z"}}}';
select 'ts-offset-kept', json_extract(kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"2024-05-01T14:00:00+02:00"}', '{"timestampMeta":"occurredAt"}'), '$.event.meta.occurredAt'), '2024-05-01T14:00:00+02:00';
-- else originalTimestamp, else sentAt; not a time: the next one
select 'ts-original', json_extract(kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"yesterday","originalTimestamp":"2024-05-01T12:00:00Z","sentAt":"2024-05-02T00:00:00Z"}', '{"timestampMeta":"occurredAt"}'), '$.event.meta.occurredAt'), '2024-05-01T12:00:00Z';
select 'ts-sentat', json_extract(kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":true,"sentAt":"2024-05-02T00:00:00Z"}', '{"timestampMeta":"occurredAt"}'), '$.event.meta.occurredAt'), '2024-05-02T00:00:00Z';
-- epoch seconds and milliseconds become ISO 8601
select 'ts-epoch-s', json_extract(kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":1714564800}', '{"timestampMeta":"occurredAt"}'), '$.event.meta.occurredAt'), '2024-05-01T12:00:00.000Z';
select 'ts-epoch-ms', json_extract(kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":1714564800123}', '{"timestampMeta":"occurredAt"}'), '$.event.meta.occurredAt'), '2024-05-01T12:00:00.123Z';
-- no time at all: meta as without the setting
select 'ts-none', kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"2024","properties":{"a":1}}', '{"timestampMeta":"occurredAt"}'), '{"identity":{"externalId":"u"},"event":{"name":"A","meta":{"a":1}}}';
-- empty or absent properties: meta holds the time alone
select 'ts-empty-props', kustomer_tracking('{"type":"screen","name":"Home","userId":"u","timestamp":"2024-05-01T12:00:00Z","properties":{}}', '{"timestampMeta":"occurredAt"}'), '{"identity":{"externalId":"u"},"event":{"name":"Screen-Viewed-Home","meta":{"occurredAt":"2024-05-01T12:00:00Z"}}}';
select 'ts-no-props', kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"2024-05-01T12:00:00Z"}', '{"timestampMeta":"occurredAt"}'), '{"identity":{"externalId":"u"},"event":{"name":"A","meta":{"occurredAt":"2024-05-01T12:00:00Z"}}}';
-- a property of that name wins; the same name deeper, or in a value, does not
select 'ts-property-wins', kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"2024-05-01T12:00:00Z","properties":{"occurredAt":"2023-01-01T00:00:00Z"}}', '{"timestampMeta":"occurredAt"}'), '{"identity":{"externalId":"u"},"event":{"name":"A","meta":{"occurredAt":"2023-01-01T00:00:00Z"}}}';
select 'ts-nested-same-name', kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"2024-05-01T12:00:00Z","properties":{"b":{"occurredAt":1},"c":"occurredAt"}}', '{"timestampMeta":"occurredAt"}'), '{"identity":{"externalId":"u"},"event":{"name":"A","meta":{"b":{"occurredAt":1},"c":"occurredAt","occurredAt":"2024-05-01T12:00:00Z"}}}';
-- with advancedTransform: the property's converted key is what counts
select 'ts-advanced', kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"2024-05-01T12:00:00Z","properties":{"b":{"occurredAt":1},"n":2}}', '{"timestampMeta":"occurredAt","advancedTransform":true}'), '{"identity":{"externalId":"u"},"event":{"name":"A","meta":{"b":"{\"occurredAt\":1}","nNum":2,"occurredAt":"2024-05-01T12:00:00Z"}}}';
select 'ts-advanced-property-wins', json_extract(kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"2024-05-01T12:00:00Z","properties":{"occurredAt":"2023-01-01T00:00:00Z"}}', '{"timestampMeta":"occurredAt","advancedTransform":true}'), '$.event.meta'), '{"occurredAt":"2023-01-01T00:00:00Z"}';
-- a key that needs escaping is written escaped
select 'ts-key-escaped', kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"2024-05-01T12:00:00Z"}', '{"timestampMeta":"the \"sent\" At"}'), '{"identity":{"externalId":"u"},"event":{"name":"A","meta":{"the \"sent\" At":"2024-05-01T12:00:00Z"}}}';
-- the same through kustomer_request, page and the full parse (an identify
-- first member does not apply; a page event with an escaped key does)
select 'ts-request-page', json_extract(kustomer_request('{"type":"page","name":"P","userId":"u","timestamp":"2024-05-01T12:00:00Z","properties":{"url":"x"}}', '{"apiKey":"k","timestampMeta":"viewedAt"}'), '$.body.JSON.event.meta'), '{"url":"x","viewedAt":"2024-05-01T12:00:00Z"}';
select 'ts-full-parse', json_extract(kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"2024-05-01T12:00:00Z","properties":{"a\u0062":1}}', '{"timestampMeta":"occurredAt"}'), '$.event.meta'), '{"ab":1,"occurredAt":"2024-05-01T12:00:00Z"}';
-- identify has no meta: unchanged
select 'ts-identify', kustomer_identify('{"type":"identify","userId":"u","timestamp":"2024-05-01T12:00:00Z","traits":{"name":"N"}}', '{"timestampMeta":"occurredAt"}'), '{"name":"N","externalId":"u"}';
-- kustomer_check with the setting: clean
select 'ts-check-clean', (select count(*) from kustomer_check('{"type":"track","event":"A","userId":"u","timestamp":"2024-05-01T12:00:00Z","properties":{"plan":"Pro"}}', '{"apiKey":"k","timestampMeta":"occurredAt"}')), 0;
-- NULL event: NULL
select 'ts-null-event', kustomer_tracking(NULL, '{"timestampMeta":"occurredAt"}') is null;
-- properties that are not an object: meta is sent as it is, with no time
select 'ts-props-array', kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"2024-05-01T12:00:00Z","properties":[1,2]}', '{"timestampMeta":"occurredAt"}'), '{"identity":{"externalId":"u"},"event":{"name":"A","meta":[1,2]}}';
select 'ts-props-string', kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"2024-05-01T12:00:00Z","properties":"str"}', '{"timestampMeta":"occurredAt"}'), '{"identity":{"externalId":"u"},"event":{"name":"A","meta":"str"}}';
select 'ts-props-true', kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"2024-05-01T12:00:00Z","properties":true}', '{"timestampMeta":"occurredAt"}'), '{"identity":{"externalId":"u"},"event":{"name":"A","meta":true}}';
select 'ts-props-number', kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"2024-05-01T12:00:00Z","properties":5}', '{"timestampMeta":"occurredAt"}'), '{"identity":{"externalId":"u"},"event":{"name":"A","meta":5}}';
-- with advancedTransform such properties send an empty meta: the time goes in it
select 'ts-props-array-advanced', kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":"2024-05-01T12:00:00Z","properties":[1,2]}', '{"timestampMeta":"occurredAt","advancedTransform":true}'), '{"identity":{"externalId":"u"},"event":{"name":"A","meta":{"occurredAt":"2024-05-01T12:00:00Z"}}}';
-- every output valid JSON, whatever properties are
select 'ts-all-valid', (select min(json_valid(kustomer_tracking('{"type":"track","event":"A","userId":"u","timestamp":1714564800,"properties":' || p || '}', s))) from (select column1 as p from (values ('[1,2]'), ('"s"'), ('5'), ('null'), ('true'), ('false'), ('{}'), ('{"a":{"b":[{}]}}'), ('[]'), ('""'))), (select column1 as s from (values ('{"timestampMeta":"occurredAt"}'), ('{"timestampMeta":"occurredAt","advancedTransform":true}')))), 1;
