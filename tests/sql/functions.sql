-- Scalar functions: results, NULL handling, settings, JSON subtype.
-- the build passes VERSION's x.y.z (tests/test_install.py compares the text)
select 'version', kustomer_version() glob '[0-9]*.[0-9]*.[0-9]*' and kustomer_version() not glob '*[^0-9.]*';

-- NULL in, NULL out
select 'null-event-name', kustomer_event_name(NULL) is null;
select 'null-meta', kustomer_meta(NULL) is null;
select 'null-identify', kustomer_identify(NULL, '{}') is null;
select 'null-tracking', kustomer_tracking(NULL) is null;
select 'null-request', kustomer_request(NULL, '{}') is null;
select 'null-settings-are-defaults', kustomer_request('{"type":"track","event":"E","userId":"u"}', NULL), '{"version":"1","type":"REST","method":"POST","endpoint":"https://api.kustomerapp.com/v1/tracking/identityEvent","headers":{"Content-Type":"application/json","Authorization":"Bearer undefined"},"params":{},"body":{"JSON":{"identity":{"externalId":"u"},"event":{"name":"E"}},"JSON_ARRAY":{},"XML":{},"FORM":{}},"files":{},"userId":""}';

-- event names
select 'name-track', kustomer_event_name('{"type":"track","event":"Order Completed"}'), 'Order Completed';
select 'name-track-advanced', kustomer_event_name('{"type":"track","event":"  Order   Completed  "}', '{"advancedTransform":true}'), 'Order-Completed';
select 'name-track-advanced-tab-nbsp', kustomer_event_name('{"type":"track","event":"a\tb' || char(160) || 'c"}', '{"advancedTransform":true}'), 'a-b-c';
select 'name-page', kustomer_event_name('{"type":"page","name":"Home"}'), 'Web-Page-Viewed-Home';
select 'name-page-order', kustomer_event_name('{"type":"page","name":"N","properties":{"name":"P","event":"PE"}}'), 'Web-Page-Viewed-PE';
select 'name-page-default', kustomer_event_name('{"type":"page"}'), 'Web-Page-Viewed';
select 'name-page-empty-skipped', kustomer_event_name('{"type":"page","event":"","name":"N"}'), 'Web-Page-Viewed-N';
select 'name-page-generic', kustomer_event_name('{"type":"page","name":"Home"}', '{"genericPage":true}'), 'Web-Page-Viewed';
select 'name-page-generic-not-screen', kustomer_event_name('{"type":"screen","name":"S"}', '{"genericPage":true}'), 'Screen-Viewed-S';
select 'name-screen', kustomer_event_name('{"type":"screen","name":"Cart"}'), 'Screen-Viewed-Cart';
select 'name-screen-generic', kustomer_event_name('{"type":"screen","name":"Cart"}', '{"genericScreen":1}'), 'Screen-Viewed';
select 'name-page-trailing-space-trimmed', kustomer_event_name('{"type":"page","name":"  My  Page  "}'), 'Web-Page-Viewed-  My  Page';
select 'name-page-advanced', kustomer_event_name('{"type":"page","name":"My  Home Page "}', '{"advancedTransform":true}'), 'Web-Page-Viewed-My-Home-Page';
select 'name-page-no-html-escape', kustomer_event_name('{"type":"page","name":"A&B <c> \"d\" ''e'' =f `g`"}'), 'Web-Page-Viewed-A&B <c> "d" ''e'' =f `g`';
select 'name-page-number', kustomer_event_name('{"type":"page","name":1e21}'), 'Web-Page-Viewed-1e+21';
select 'name-page-array', kustomer_event_name('{"type":"page","name":["a",null,2]}'), 'Web-Page-Viewed-a,,2';
select 'name-page-object', kustomer_event_name('{"type":"page","name":{"x":1}}'), 'Web-Page-Viewed-{"x":1}';
select 'name-identify-null', kustomer_event_name('{"type":"identify","userId":"u"}') is null;
select 'name-type-case', kustomer_event_name('{"type":"TRACK","event":"E"}'), 'E';
select 'name-track-number-raw', kustomer_event_name('{"type":"track","event":0}'), '0';

-- meta
select 'meta-passthrough-order', kustomer_meta('{"b":1,"2":"two","a":2,"1":"one"}'), '{"b":1,"2":"two","a":2,"1":"one"}';
select 'meta-excludes', kustomer_meta('{"kustomerSessionId":1,"kustomer_session_id":2,"kustomerTrackingId":3,"kustomer_tracking_id":4,"x":5}'), '{"x":5}';
select 'meta-empty', kustomer_meta('{}'), '{}';
select 'meta-null-is-absent', kustomer_meta('null') is null;
select 'meta-empty-string-absent', kustomer_meta('""') is null;
select 'meta-primitive', kustomer_meta('"str"'), '"str"';
select 'meta-array', kustomer_meta('[1,2]'), '[1,2]';
select 'meta-duplicate-key', kustomer_meta('{"a":1,"b":2,"a":3}'), '{"a":3,"b":2}';
select 'meta-numbers-js', kustomer_meta('{"a":1.0,"b":1e21,"c":-0,"d":0.0000001,"e":4755720007535669,"f":123456789012345678901234}'), '{"a":1,"b":1e+21,"c":0,"d":1e-7,"e":4755720007535669,"f":1.2345678901234569e+23}';
select 'meta-strings-escaped', kustomer_meta('{"s":"\u0001\b\f\n\r\t\"\\/\u2028é"}'), '{"s":"\u0001\b\f\n\r\t\"\\/' || char(8232) || 'é"}';
select 'meta-advanced', kustomer_meta('{"total":12.5,"totalNum":3,"year":"2020","yr5":"12345","flag":true,"tags":["a","b"],"obj":{"b":1},"nothing":null," spaced key ":"v","yearArr":["2020"]}', '{"advancedTransform":true}'), '{"totalNum":3,"yearAt":"2020","yr5":"12345","flag":"true","tags":"\"a\",\"b\"","obj":"{\"b\":1}","nothing":null,"spaced-key":"v","yearArrAt":["2020"]}';
select 'meta-advanced-collision', kustomer_meta('{"a b":"first","x":1,"a-b":"second","cnt":5,"cntNum":6}', '{"advancedTransform":true}'), '{"a-b":"second","xNum":1,"cntNum":6}';
select 'meta-advanced-dup-then-transform', kustomer_meta('{"a":1,"b":"x","a":"2020"}', '{"advancedTransform":true}'), '{"aAt":"2020","b":"x"}';
select 'meta-advanced-primitive-empty', kustomer_meta('"str"', '{"advancedTransform":true}'), '{}';
select 'meta-advanced-null-empty', kustomer_meta('null', '{"advancedTransform":true}'), '{}';
select 'meta-drop-email', kustomer_meta('{"email":"a@b","x":1}', '{"setIdentityEmail":true,"disableEmailAsTrackingProperty":true}'), '{"x":1}';
select 'meta-drop-email-needs-both', kustomer_meta('{"email":"a@b"}', '{"disableEmailAsTrackingProperty":true}'), '{"email":"a@b"}';
select 'meta-string-false-is-truthy', kustomer_meta('{"n":1}', '{"advancedTransform":"false"}'), '{"nNum":1}';
-- more than 16 keys takes the hashed duplicate detection
create temp table big as with recursive c(i) as (select 1 union all select i+1 from c where i<40) select '{' || group_concat('"k' || i || '":' || i, ',') || ',"k5":"dup"}' as props from c;
select 'meta-large-object-dups', (select json_extract(m, '$.k5') || ' ' || (select count(*) from json_each(m)) || ' ' || (select key from json_each(m) limit 1 offset 4) from (select kustomer_meta(props) m from big)), 'dup 40 k5';
select 'meta-large-object-dups-advanced', (select json_extract(m, '$.k5') || ' ' || json_extract(m, '$.k6Num') || ' ' || (select count(*) from json_each(m)) from (select kustomer_meta(props, '{"advancedTransform":true}') m from big)), 'dup 6 40';
select 'tracking-large-object-dups', (select json_extract(t, '$.event.meta.k5') from (select kustomer_tracking('{"type":"track","event":"E","properties":' || props || '}') t from big)), 'dup';

-- JSON subtype: results nest as objects
select 'subtype-meta', json_object('m', kustomer_meta('{"a":1}')), '{"m":{"a":1}}';
select 'subtype-request', json_extract(kustomer_request('{"type":"track","event":"E","userId":"u"}', '{}'), '$.body.JSON.event.name'), 'E';
select 'subtype-tracking', json_object('t', kustomer_tracking('{"type":"track","event":"E","userId":"u"}')), '{"t":{"identity":{"externalId":"u"},"event":{"name":"E"}}}';
select 'name-is-text-not-json', json_object('n', kustomer_event_name('{"type":"track","event":"E"}')), '{"n":"E"}';

-- tracking body
select 'tracking-ids', kustomer_tracking('{"type":"track","event":"E","userId":7,"properties":{"kustomer_session_id":"s","kustomerTrackingId":"t","p":1}}'), '{"identity":{"externalId":7},"event":{"name":"E","sessionId":"s","trackingId":"t","meta":{"p":1}}}';
select 'tracking-context-session', kustomer_tracking('{"type":"track","event":"E","anonymousId":"a","context":{"sessionId":1700000000000}}'), '{"identity":{"externalId":"a"},"event":{"name":"E","sessionId":1700000000000}}';
select 'tracking-no-user', kustomer_tracking('{"type":"track","event":"E"}'), '{"identity":{"externalId":null},"event":{"name":"E"}}';
select 'tracking-identity-email', kustomer_tracking('{"type":"track","event":"E","userId":"u","context":{"traits":{"email":"c@x"}},"properties":{"email":"p@x"}}', '{"setIdentityEmail":true}'), '{"identity":{"externalId":"u","email":"c@x"},"event":{"name":"E","meta":{"email":"p@x"}}}';
select 'tracking-no-externalid-email', kustomer_tracking('{"type":"track","event":"E","userId":"u","context":{"externalId":[{"type":"x","id":"e@x"}]}}', '{"setIdentityEmail":true}'), '{"identity":{"externalId":"u","email":null},"event":{"name":"E"}}';
select 'tracking-advanced-meta-always', kustomer_tracking('{"type":"screen","userId":"u"}', '{"advancedTransform":true}'), '{"identity":{"externalId":"u"},"event":{"name":"Screen-Viewed","meta":{}}}';
select 'tracking-dotted-key-quirk', kustomer_tracking('{"type":"track","event":"E","traits.id":"T"}'), '{"identity":{"externalId":"T"},"event":{"name":"E"}}';
select 'tracking-string-in-path', kustomer_tracking('{"type":"track","event":"E","traits":"abc","anonymousId":"a"}'), '{"identity":{"externalId":"a"},"event":{"name":"E"}}';

-- identify body
select 'identify-basic', kustomer_identify('{"type":"identify","userId":"u","traits":{"name":"N","email":"e@x","phone":"1","website":"w","address":"Main St"}}'), '{"name":"N","externalId":"u","emails":[{"type":"home","email":"e@x"}],"phones":[{"type":"home","phone":"1"}],"urls":[{"url":"w"}],"locations":[{"type":"home","address":"Main St"}]}';
select 'identify-name-compose', kustomer_identify('{"type":"identify","userId":"u","traits":{"firstName":"A","lastName":"B","createdAt":"2020-01-01"}}'), '{"externalId":"u","signedUpAt":"2020-01-01","name":"A B"}';
select 'identify-falsy-name-replaced-in-place', kustomer_identify('{"type":"identify","userId":"u","traits":{"name":0,"firstName":"A","lastName":"B"}}'), '{"name":"A B","externalId":"u"}';
select 'identify-company-name', kustomer_identify('{"type":"identify","userId":"u","traits":{"company":{"name":"Co","id":1}}}'), '{"externalId":"u","company":"Co"}';
select 'identify-company-object', kustomer_identify('{"type":"identify","userId":"u","traits":{"company":{"id":1}}}'), '{"externalId":"u","company":{"id":1}}';
select 'identify-address-partial', kustomer_identify('{"type":"identify","userId":"u","traits":{"address":{"city":"Miami","postalCode":33101}}}'), '{"externalId":"u","locations":[{"type":"home","address":" Miami  33101"}]}';
select 'identify-emails-kept', kustomer_identify('{"type":"identify","userId":"u","traits":{"emails":[{"email":"w@x"}],"email":"e@x"}}'), '{"externalId":"u","emails":[{"email":"w@x"}]}';
select 'identify-locale-single-path', kustomer_identify('{"type":"identify","userId":"u","context":{"locale":"fr"}}'), '{"externalId":"u","locale":"fr"}';
select 'identify-anonymous', kustomer_identify('{"type":"identify","anonymousId":"a"}'), '{"externalId":"a"}';
select 'identify-context-traits', kustomer_identify('{"type":"identify","userId":"u","context":{"traits":{"email":"c@x","gender":"f"}}}'), '{"externalId":"u","gender":"f","emails":[{"type":"home","email":"c@x"}]}';

-- request envelope
select 'request-post-customer', json_extract(kustomer_request('{"type":"identify","userId":"u"}', '{"apiKey":"k"}'), '$.method') || ' ' || json_extract(kustomer_request('{"type":"identify","userId":"u"}', '{"apiKey":"k"}'), '$.endpoint'), 'POST https://api.kustomerapp.com/v1/customers';
select 'request-put-customer-id', json_extract(kustomer_request('{"type":"identify","userId":"u"}', '{"apiKey":"k"}', 'abc123'), '$.endpoint'), 'https://api.kustomerapp.com/v1/customers/abc123?replace=false';
select 'request-customer-id-integer', json_extract(kustomer_request('{"type":"identify","userId":"u"}', '{}', 42), '$.endpoint'), 'https://api.kustomerapp.com/v1/customers/42?replace=false';
select 'request-customer-id-encoded', json_extract(kustomer_request('{"type":"identify","userId":"u"}', '{}', 'a/b c?d#é'), '$.endpoint'), 'https://api.kustomerapp.com/v1/customers/a%2Fb%20c%3Fd%23%C3%A9?replace=false';
select 'request-customer-id-null', json_extract(kustomer_request('{"type":"identify","userId":"u"}', '{}', NULL), '$.method'), 'POST';
select 'request-kustomerid-wins', json_extract(kustomer_request('{"type":"identify","userId":"u","context":{"externalId":[{"type":"kustomerId","id":"kid"}]}}', '{}', 'other'), '$.endpoint'), 'https://api.kustomerapp.com/v1/customers/kid?replace=false';
select 'request-base-trailing-slashes', json_extract(kustomer_request('{"type":"track","event":"E"}', '{"baseEndpoint":"https://api.prod2.kustomerapp.com//"}'), '$.endpoint'), 'https://api.prod2.kustomerapp.com/v1/tracking/identityEvent';
select 'request-base-empty-is-default', json_extract(kustomer_request('{"type":"track","event":"E"}', '{"baseEndpoint":""}'), '$.endpoint'), 'https://api.kustomerapp.com/v1/tracking/identityEvent';
select 'request-apikey-number', json_extract(kustomer_request('{"type":"track","event":"E"}', '{"apiKey":12.5}'), '$.headers.Authorization'), 'Bearer 12.5';
select 'request-apikey-escaped', json_extract(kustomer_request('{"type":"track","event":"E"}', '{"apiKey":"a\"b"}'), '$.headers.Authorization'), 'Bearer a"b';
select 'request-missing-type', kustomer_request('{"userId":"u"}', '{}'), '{"statusCode":400,"error":"Event type is required"}';
select 'request-empty-type', kustomer_request('{"type":""}', '{}'), '{"statusCode":400,"error":"Event type is required"}';
select 'request-unsupported', kustomer_request('{"type":"Alias"}', '{}'), '{"statusCode":400,"error":"Event type Alias is not supported"}';
select 'request-type-number', kustomer_request('{"type":7}', '{}'), '{"statusCode":400,"error":"Event type must be a string"}';
select 'request-missing-event', kustomer_request('{"type":"track","event":""}', '{}'), '{"statusCode":400,"error":"Missing required value from \"event\""}';
select 'request-missing-userid', kustomer_request('{"type":"identify","traits":{"email":"x@y"}}', '{}'), '{"statusCode":400,"error":"Missing required value from \"userId\""}';
select 'request-advanced-number-name', kustomer_request('{"type":"track","event":42}', '{"advancedTransform":true}'), '{"statusCode":400,"error":"Event name must be a string when advancedTransform is on, got integer"}';
select 'request-not-object', kustomer_request('[1,2]', '{}'), '{"statusCode":400,"error":"Event must be a JSON object"}';
select 'request-malformed', kustomer_request('{"type":"track",', '{}'), '{"statusCode":400,"error":"Event is not valid JSON (unexpected end)"}';
select 'request-trailing-garbage', json_extract(kustomer_request('{"type":"track"} x', '{}'), '$.error'), 'Event is not valid JSON (error at offset 17)';
select 'request-settings-cached-per-row', (select count(distinct kustomer_request(e, '{"apiKey":"k"}')) from (select '{"type":"track","event":"A"}' e union all select '{"type":"track","event":"B"}')), 2;

-- hosts: orgName and pod (Segment's orgPod), apiKeyEnv
select 'host-org', json_extract(kustomer_request('{"type":"track","event":"E"}', '{"orgName":"acme"}'), '$.endpoint'), 'https://acme.api.kustomerapp.com/v1/tracking/identityEvent';
select 'host-pod-eu', json_extract(kustomer_request('{"type":"track","event":"E"}', '{"pod":"prod2"}'), '$.endpoint'), 'https://api.prod2.kustomerapp.com/v1/tracking/identityEvent';
select 'host-orgpod-india', json_extract(kustomer_request('{"type":"track","event":"E"}', '{"orgPod":"PROD4"}'), '$.endpoint'), 'https://api.prod4.kustomerapp.com/v1/tracking/identityEvent';
select 'host-pod-us', json_extract(kustomer_request('{"type":"track","event":"E"}', '{"pod":"prod1"}'), '$.endpoint'), 'https://api.kustomerapp.com/v1/tracking/identityEvent';
select 'host-base-wins', json_extract(kustomer_request('{"type":"track","event":"E"}', '{"baseEndpoint":"https://h.example","orgName":"acme","pod":"prod2"}'), '$.endpoint'), 'https://h.example/v1/tracking/identityEvent';
select 'host-org-over-pod', json_extract(kustomer_request('{"type":"track","event":"E"}', '{"orgName":"acme","pod":"prod2"}'), '$.endpoint'), 'https://acme.api.kustomerapp.com/v1/tracking/identityEvent';
select 'apikeyenv-no-header', json_extract(kustomer_request('{"type":"track","event":"E"}', '{"apiKeyEnv":"KUSTOMER_API_KEY"}'), '$.headers'), '{"Content-Type":"application/json"}';
select 'apikey-over-env', json_extract(kustomer_request('{"type":"track","event":"E"}', '{"apiKey":"k","apiKeyEnv":"KUSTOMER_API_KEY"}'), '$.headers.Authorization'), 'Bearer k';
-- pure functions may be used in views, triggers and generated columns
create view v_pure as select kustomer_event_name('{"type":"track","event":"E"}') as n;
select 'pure-function-in-view', (select n from v_pure), 'E';
create table gen(e text, n text generated always as (kustomer_event_name(e)) virtual);
insert into gen(e) values ('{"type":"page","name":"Home"}');
select 'pure-function-generated-column', (select n from gen), 'Web-Page-Viewed-Home';
