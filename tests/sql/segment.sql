-- Segment's conventions: the examples of Segment's Kustomer documentation,
-- as analytics.js sends them, and Segment's setting names (apiKey, orgPod).
-- Expected requests written by hand from Segment's description: userId ->
-- externalId, context.locale -> locale, kustomer_session_id -> sessionId.

-- analytics.identify('userId123', {email: 'john.doe@example.com'})
select 'segment-identify', kustomer_identify('{"type":"identify","userId":"userId123","anonymousId":"507f191e810c19729de860ea","traits":{"email":"john.doe@example.com"},"context":{"locale":"en-US","library":{"name":"analytics.js","version":"4.1.0"}},"messageId":"ajs-next-1","receivedAt":"2024-01-24T10:00:00.000Z","integrations":{}}'), '{"externalId":"userId123","locale":"en-US","emails":[{"type":"home","email":"john.doe@example.com"}]}';
select 'segment-identify-request', json_extract(kustomer_request('{"type":"identify","userId":"userId123","traits":{"email":"john.doe@example.com"}}', '{"apiKey":"segment-key","orgPod":"prod2"}'), '$.method') || ' ' || json_extract(kustomer_request('{"type":"identify","userId":"userId123","traits":{"email":"john.doe@example.com"}}', '{"apiKey":"segment-key","orgPod":"prod2"}'), '$.endpoint'), 'POST https://api.prod2.kustomerapp.com/v1/customers';
-- traits only in context.traits (Segment's server libraries on track calls)
select 'segment-identify-context-traits', kustomer_identify('{"type":"identify","userId":"u7","context":{"traits":{"email":"c@example.com","name":"Cee"}}}'), '{"name":"Cee","externalId":"u7","emails":[{"type":"home","email":"c@example.com"}]}';

-- analytics.page('Pricing', {title, url, kustomer_session_id}); analytics.js
-- also copies the name, path, referrer, search into properties
select 'segment-page', kustomer_tracking('{"type":"page","name":"Pricing","userId":"userId123","properties":{"name":"Pricing","path":"/pricing","referrer":"","search":"","title":"Segment Pricing","url":"https://segment.com/pricing","kustomer_session_id":"abc123"}}'), '{"identity":{"externalId":"userId123"},"event":{"name":"Web-Page-Viewed-Pricing","sessionId":"abc123","meta":{"name":"Pricing","path":"/pricing","referrer":"","search":"","title":"Segment Pricing","url":"https://segment.com/pricing"}}}';
select 'segment-page-advanced-check', (select group_concat(rule) from kustomer_check('{"type":"page","name":"Pricing","userId":"userId123","properties":{"title":"Segment Pricing","url":"https://segment.com/pricing","kustomer_session_id":"abc123"}}', '{"apiKey":"k","orgPod":"prod1","advancedTransform":true}')) is null;

-- [[SEGAnalytics sharedAnalytics] screen:@"Home" properties:@{@"kustomer_session_id": @"abc123"}]
select 'segment-screen', kustomer_tracking('{"type":"screen","name":"Home","anonymousId":"A1B2-C3D4","properties":{"kustomer_session_id":"abc123"},"context":{"app":{"name":"Example","version":"1.0"},"os":{"name":"iOS","version":"17.2"}}}'), '{"identity":{"externalId":"A1B2-C3D4"},"event":{"name":"Screen-Viewed-Home","sessionId":"abc123","meta":{}}}';

-- analytics.track("Registered", {plan: "Pro Annual", accountType: "Facebook", kustomer_session_id: "abc123"})
select 'segment-track', kustomer_tracking('{"type":"track","event":"Registered","userId":"userId123","properties":{"plan":"Pro Annual","accountType":"Facebook","kustomer_session_id":"abc123"}}'), '{"identity":{"externalId":"userId123"},"event":{"name":"Registered","sessionId":"abc123","meta":{"plan":"Pro Annual","accountType":"Facebook"}}}';
select 'segment-track-clean', (select count(*) from kustomer_check('{"type":"track","event":"Registered","userId":"userId123","properties":{"plan":"Pro Annual","accountType":"Facebook","kustomer_session_id":"abc123"}}')), 0;
select 'segment-track-request', json_extract(kustomer_request('{"type":"track","event":"Registered","userId":"userId123","properties":{"plan":"Pro Annual"}}', '{"apiKey":"segment-key","orgPod":"prod2"}'), '$.endpoint') || ' ' || json_extract(kustomer_request('{"type":"track","event":"Registered","userId":"userId123","properties":{"plan":"Pro Annual"}}', '{"apiKey":"segment-key","orgPod":"prod2"}'), '$.headers.Authorization'), 'https://api.prod2.kustomerapp.com/v1/tracking/identityEvent Bearer segment-key';
-- an explicit kustomerSessionId wins over kustomer_session_id, both over context.sessionId
select 'segment-session-precedence', json_extract(kustomer_tracking('{"type":"track","event":"E","userId":"u","context":{"sessionId":1700000000000},"properties":{"kustomer_session_id":"snake","kustomerSessionId":"camel"}}'), '$.event.sessionId'), 'camel';
