-- Identify: kustomer_check against Kustomer's customer schema (one check
-- per rule, with the trait's path), trait_not_mapped, Segment's spec traits
-- (traitMapping "segment") and normalizeTraits.  tests/test_identify.py
-- holds the rules against the fake's own validation.

-- the five bodies the fake rejected while the check called them clean
select 'id-gender', (select path || ' ' || rule || ' ' || severity || ' ' || message from kustomer_check('{"type":"identify","userId":"u","traits":{"gender":"female"}}')), '$.traits.gender gender_invalid error Kustomer rejects the customer: gender must be "m" or "f", not the string "female"';
select 'id-tags-string', (select path || ' ' || rule from kustomer_check('{"type":"identify","userId":"u","traits":{"tags":"vip"}}')), '$.traits.tags tags_invalid';
select 'id-tags-mixed', (select path || ' ' || rule from kustomer_check('{"type":"identify","userId":"u","traits":{"tags":["a",1]}}')), '$.traits.tags tags_invalid';
select 'id-tags-ok', (select count(*) from kustomer_check('{"type":"identify","userId":"u","traits":{"tags":["a","b"]}}')), 0;
select 'id-date-epoch', (select path || ' ' || rule || ' ' || message from kustomer_check('{"type":"identify","userId":"u","traits":{"createdAt":1714557600}}')), '$.traits.createdAt date_invalid Kustomer rejects the customer: signedUpAt must be an ISO 8601 date-time string (2024-05-01T12:00:00Z), not the number 1714557600';
select 'id-phone-number', (select path || ' ' || rule || ' ' || message from kustomer_check('{"type":"identify","userId":"u","traits":{"phone":5551234}}')), '$.traits.phone item_invalid Kustomer rejects the customer: phones[0].phone must be a string, not the number 5551234';
select 'id-company-object', (select path || ' ' || rule from kustomer_check('{"type":"identify","userId":"u","traits":{"company":{"industry":"x"}}}')), '$.traits.company string_expected';
select 'id-company-name', (select group_concat(path || ' ' || rule, ' | ') from kustomer_check('{"type":"identify","userId":"u","traits":{"company":{"name":"Acme","plan":"pro"}}}')), '$.traits.company.plan trait_not_mapped';

-- every date field, in the context's traits too; calendar dates only
select 'id-dates', (select group_concat(path, ' ') from kustomer_check('{"type":"identify","userId":"u","traits":{"lastActivityAt":"soon","lastCustomerActivityAt":"2024-02-30","lastSeenAt":"2024-05-01T24:00:00Z","importedAt":true,"dob":"2023-02-29"},"context":{"traits":{"createdAt":"0000-01-01"}}}') where rule='date_invalid'), '$.context.traits.createdAt $.traits.lastActivityAt $.traits.lastCustomerActivityAt $.traits.lastSeenAt $.traits.importedAt $.traits.dob';
select 'id-dates-ok', (select count(*) from kustomer_check('{"type":"identify","userId":"u","traits":{"lastActivityAt":"2024-02-29T23:59:59.123+05:30","lastSeenAt":"2024-05-01","birthday":"1990"}}')), 0;
select 'id-date-null', (select count(*) from kustomer_check('{"type":"identify","userId":"u","traits":{"lastSeenAt":null}}')), 0;

-- the string fields
select 'id-strings', (select group_concat(path || '=' || rule, ' ') from kustomer_check('{"type":"identify","userId":7,"traits":{"name":5,"userName":true,"avatar":["a"],"timeZone":1,"defaultLanguage":{}},"context":{"locale":2}}')), '$.traits.name=string_expected $.userId=string_expected $.traits.userName=string_expected $.traits.avatar=string_expected $.context.locale=string_expected $.traits.timeZone=string_expected $.traits.defaultLanguage=string_expected';
select 'id-gender-context', (select path from kustomer_check('{"type":"identify","userId":"u","context":{"traits":{"gender":"M"}}}')), '$.context.traits.gender';
select 'id-gender-ok', (select count(*) from kustomer_check('{"type":"identify","userId":"u","traits":{"gender":"f"}}')), 0;

-- the lists of objects
select 'id-emails', (select group_concat(path || ' ' || rule, ' | ') from kustomer_check('{"type":"identify","userId":"u","traits":{"emails":[{"email":5,"type":"personal"},"x",{"type":"home"},{"email":"a@b.c","verified":"yes"}]}}')), '$.traits.emails[0].email item_invalid | $.traits.emails[0].type item_type_invalid | $.traits.emails[1] item_invalid | $.traits.emails[2] item_invalid | $.traits.emails[3].verified item_invalid';
select 'id-emails-not-array', (select message from kustomer_check('{"type":"identify","userId":"u","traits":{"emails":"a@b.c"}}')), 'Kustomer rejects the customer: emails must be an array of objects, not the string "a@b.c"';
select 'id-phones-type', (select path || ' ' || message from kustomer_check('{"type":"identify","userId":"u","traits":{"phones":[{"phone":"1","type":"cell"}]}}')), '$.traits.phones[0].type Kustomer rejects the customer: phones[0].type must be mobile, home, work, fax or other, not the string "cell"';
select 'id-whatsapps', (select path || ' ' || rule from kustomer_check('{"type":"identify","userId":"u","traits":{"whatsapps":[{"phone":"1","type":"home"}]}}')), '$.traits.whatsapps[0].type item_type_invalid';
select 'id-socials', (select group_concat(path || ' ' || rule, ' | ') from kustomer_check('{"type":"identify","userId":"u","traits":{"socials":[{"type":"myspace","username":"u"},{"type":"twitter"}]}}')), '$.traits.socials[0].type item_type_invalid | $.traits.socials[1] item_invalid';
select 'id-website-number', (select path || ' ' || message from kustomer_check('{"type":"identify","userId":"u","traits":{"website":5}}')), '$.traits.website Kustomer rejects the customer: urls[0].url must be a string, not the number 5';
select 'id-lists-ok', (select count(*) from kustomer_check('{"type":"identify","userId":"u","traits":{"emails":[{"email":"a@b.c","type":"work","verified":true}],"phones":[{"phone":"+1 555","type":"mobile"}],"socials":[{"type":"twitter","username":"u"}],"whatsapps":[{"phone":"1"}],"facebookIds":[{"pageId":"p","userId":"u"}]}}')), 0;

-- custom attributes, sentiment, rev
select 'id-custom', (select group_concat(path || ' ' || rule, ' | ') from kustomer_check('{"type":"identify","userId":"u","traits":{"customObject":{"plain":1,"aStr":2,"bNum":"1","cAt":"soon","dBool":1,"eUrl":"not a uri","fId":"","okStr":"x","okUrl":"https://x.io/a","nullNum":null}}}')), '$.traits.customObject.plain custom_invalid | $.traits.customObject.aStr custom_invalid | $.traits.customObject.bNum custom_invalid | $.traits.customObject.cAt custom_invalid | $.traits.customObject.dBool custom_invalid | $.traits.customObject.eUrl custom_invalid | $.traits.customObject.fId custom_invalid';
select 'id-custom-long', (select message from kustomer_check('{"type":"identify","userId":"u","traits":{"customObject":{"noteTxt":"' || printf('%.1025c', 'y') || '"}}}')), 'Kustomer rejects the customer: custom.noteTxt must be at most 1024 characters, not the string starting "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"';
select 'id-custom-not-object', (select path || ' ' || rule from kustomer_check('{"type":"identify","userId":"u","traits":{"customObject":[1]}}')), '$.traits.customObject custom_invalid';
select 'id-custom-key-quoted', (select path from kustomer_check('{"type":"identify","userId":"u","traits":{"customObject":{"a b":1}}}')), '$.traits.customObject."a b"';
select 'id-sentiment', (select group_concat(path || ' ' || rule, ' | ') from kustomer_check('{"type":"identify","userId":"u","traits":{"sentiment":{"polarity":2,"confidence":"high"}}}')), '$.traits.sentiment.polarity sentiment_invalid | $.traits.sentiment.confidence sentiment_invalid';
select 'id-sentiment-ok', (select count(*) from kustomer_check('{"type":"identify","userId":"u","traits":{"sentiment":{"polarity":-1,"confidence":0.5}}}')), 0;
select 'id-rev', (select path || ' ' || rule from kustomer_check('{"type":"identify","userId":"u","traits":{"rev":"2"}}')), '$.traits.rev rev_invalid';

-- trait_not_mapped: one warning per trait (or part of one) sent nowhere
select 'id-unmapped', (select group_concat(path || ' ' || severity, ' | ') from kustomer_check('{"type":"identify","userId":"u","traits":{"title":"CEO","description":"d","plan":null,"firstName":"Ann","address":{"city":"Miami","country":"US"}}}') where rule='trait_not_mapped'), '$.traits.title warning | $.traits.description warning | $.traits.firstName warning | $.traits.address.country warning';
select 'id-unmapped-message', (select message from kustomer_check('{"type":"identify","userId":"u","traits":{"title":"CEO"}}')), 'title is not sent: no field of Kustomer''s customer is mapped from it (custom attributes go in customObject)';
select 'id-unmapped-email-shadowed', (select path || ' ' || message from kustomer_check('{"type":"identify","userId":"u","traits":{"emails":[{"email":"a@b.c"}],"email":"z@b.c"}}')), '$.traits.email email is not sent: emails is given, and email is added only when it is not';
select 'id-unmapped-address-country-only', (select path || ' ' || message from kustomer_check('{"type":"identify","userId":"u","traits":{"address":{"country":"US"}}}')), '$.traits.address address is not sent: none of street, city, state and postalCode is set';
select 'id-unmapped-context-copy', (select count(*) from kustomer_check('{"type":"identify","userId":"u","traits":{"name":"A"},"context":{"traits":{"name":"A"}}}')), 0;
select 'id-unmapped-identity', (select count(*) from kustomer_check('{"type":"identify","userId":"u","traits":{"userId":"u","id":"u"}}')), 0;
select 'id-unmapped-quoted', (select path from kustomer_check('{"type":"identify","userId":"u","traits":{"job title":"x"}}')), '$.traits."job title"';
select 'id-clean-rudderstack', (select count(*) from kustomer_check('{"type":"identify","userId":"u","traits":{"name":"Ann Lee","email":"a@b.c","phone":"+1","userName":"ann","createdAt":"2024-01-01T00:00:00Z","gender":"f","tags":["vip"],"website":"https://a.io","address":{"street":"1 Main","city":"Miami","state":"FL","postalCode":"33101"}},"context":{"locale":"en-US"}}')), 0;

-- traitMapping "segment": Segment's identify spec traits
select 'seg-identify', kustomer_identify('{"type":"identify","userId":"u1","traits":{"username":"ann","avatar":"https://a.io/p.png","birthday":"1990-05-04","createdAt":"2024-01-01T00:00:00Z","company":{"name":"Acme","plan":"pro"},"address":{"street":"1 Main","city":"Miami","state":"FL","postalCode":33101,"country":"US"},"firstName":"Ann","lastName":"Lee","email":"a@b.c","phone":"+1 555","gender":"f","website":"https://a.io"},"context":{"locale":"en-US"}}', '{"traitMapping":"segment"}'), '{"externalId":"u1","username":"ann","company":"Acme","signedUpAt":"2024-01-01T00:00:00Z","avatarUrl":"https://a.io/p.png","gender":"f","locale":"en-US","birthdayAt":"1990-05-04","name":"Ann Lee","emails":[{"type":"home","email":"a@b.c"}],"phones":[{"type":"home","phone":"+1 555"}],"urls":[{"url":"https://a.io"}],"locations":[{"type":"home","address":"1 Main","cityName":"Miami","regionName":"FL","zipCode":"33101","countryCode":"US"}]}';
select 'seg-country-name', json_extract(kustomer_identify('{"type":"identify","userId":"u","traits":{"address":{"country":"Spain"}}}', '{"traitMapping":"segment"}'), '$.locations'), '[{"type":"home","countryName":"Spain"}]';
select 'seg-address-string', json_extract(kustomer_identify('{"type":"identify","userId":"u","traits":{"address":"1 Main St"}}', '{"traitMapping":"segment"}'), '$.locations'), '[{"type":"home","address":"1 Main St"}]';
select 'seg-first-name-alone', json_extract(kustomer_identify('{"type":"identify","userId":"u","traits":{"firstName":"Ann"}}', '{"traitMapping":"segment"}'), '$.name'), 'Ann';
select 'seg-company-no-name', kustomer_identify('{"type":"identify","userId":"u","traits":{"company":{"id":"c1"}}}', '{"traitMapping":"segment"}'), '{"externalId":"u"}';
select 'seg-company-no-name-check', (select path || ' ' || message from kustomer_check('{"type":"identify","userId":"u","traits":{"company":{"id":"c1"}}}', '{"traitMapping":"segment"}')), '$.traits.company company is not sent: Segment''s company is sent by its name, and this one has none';
select 'seg-rudderstack-names-unmapped', (select group_concat(path, ' ') from kustomer_check('{"type":"identify","userId":"u","traits":{"userName":"a","dob":"1990-01-01","age":30}}', '{"traitMapping":"segment"}')), '$.traits.userName $.traits.dob $.traits.age';
select 'seg-address-extra', (select path from kustomer_check('{"type":"identify","userId":"u","traits":{"address":{"city":"Miami","zip":"1"}}}', '{"traitMapping":"segment"}')), '$.traits.address.zip';
select 'seg-clean', (select count(*) from kustomer_check('{"type":"identify","userId":"u","traits":{"username":"a","avatar":"https://a.io","birthday":"1990-05-04","address":{"city":"Miami","country":"US"},"company":{"name":"Acme"}}}', '{"traitMapping":"segment"}')), 0;
select 'seg-default-unchanged', kustomer_identify('{"type":"identify","userId":"u","traits":{"username":"a","userName":"b","dob":"1990-01-01","address":{"city":"Miami","country":"US"}}}', '{"traitMapping":"rudderstack"}'), '{"externalId":"u","username":"b","birthdayAt":"1990-01-01","locations":[{"type":"home","address":" Miami  "}]}';

-- normalizeTraits: repairs, and the check sees what is sent
select 'norm-identify', kustomer_identify('{"type":"identify","userId":42,"traits":{"gender":" Female ","tags":"vip, beta","createdAt":1714557600,"lastSeenAt":1714557600123,"dob":"-315619200","phone":5551234,"emails":[{"email":7,"type":"work"}],"name":5}}', '{"normalizeTraits":true}'), '{"name":"5","externalId":"42","signedUpAt":"2024-05-01T10:00:00.000Z","lastSeenAt":"2024-05-01T10:00:00.123Z","gender":"f","tags":["vip, beta"],"emails":[{"email":"7","type":"work"}],"birthdayAt":"1960-01-01T00:00:00.000Z","phones":[{"type":"home","phone":"5551234"}]}';
select 'norm-check-clean', (select count(*) from kustomer_check('{"type":"identify","userId":42,"traits":{"gender":"MALE","tags":"vip","createdAt":1714557600,"phone":5551234}}', '{"normalizeTraits":true}')), 0;
select 'norm-gender-dropped', kustomer_identify('{"type":"identify","userId":"u","traits":{"gender":"non-binary"}}', '{"normalizeTraits":true}'), '{"externalId":"u"}';
select 'norm-gender-dropped-check', (select path || ' ' || rule || ' ' || severity || ' ' || message from kustomer_check('{"type":"identify","userId":"u","traits":{"gender":"non-binary"}}', '{"normalizeTraits":true}')), '$.traits.gender trait_not_mapped warning gender "non-binary" is not sent: Kustomer takes only "m" or "f" and normalizeTraits reads no other word as one of them';
select 'norm-gender-number-dropped', kustomer_identify('{"type":"identify","userId":"u","traits":{"gender":1}}', '{"normalizeTraits":true}'), '{"externalId":"u"}';
select 'norm-date-unrepairable', (select path || ' ' || rule from kustomer_check('{"type":"identify","userId":"u","traits":{"lastSeenAt":"yesterday"}}', '{"normalizeTraits":true}')), '$.traits.lastSeenAt date_invalid';
select 'norm-date-out-of-range', (select rule from kustomer_check('{"type":"identify","userId":"u","traits":{"lastSeenAt":1e300}}', '{"normalizeTraits":true}')), 'date_invalid';
select 'norm-duplicate-keys', json_extract(kustomer_identify('{"type":"identify","userId":"u","traits":{"phones":[{"phone":1,"type":"home","phone":2}]}}', '{"normalizeTraits":true}'), '$.phones'), '[{"phone":"2","type":"home"}]';
select 'norm-off-bytes', kustomer_identify('{"type":"identify","userId":42,"traits":{"gender":"female","createdAt":1714557600,"phone":5551234}}'), '{"externalId":42,"signedUpAt":1714557600,"gender":"female","phones":[{"type":"home","phone":5551234}]}';

-- bad input: malformed, wrong types, deep, invalid UTF-8: rows, never a crash
select 'id-bad-traits-type', (select count(*) from kustomer_check('{"type":"identify","userId":"u","traits":"x"}')), 0;
select 'id-bad-context-traits', (select count(*) from kustomer_check('{"type":"identify","userId":"u","context":{"traits":[1,2]}}')), 0;
select 'id-malformed', (select rule from kustomer_check('{"type":"identify","userId":"u","traits":{"gender":')), 'malformed_json';
select 'id-deep-trait', (select rule from kustomer_check('{"type":"identify","userId":"u","traits":{"tags":' || printf('%.200c', '[') || printf('%.200c', ']') || '}}')), 'tags_invalid';
select 'id-bad-utf8', (select rule from kustomer_check(cast(x'7b2274797065223a226964656e74696679222c22757365724964223a2275222c22747261697473223a7b2267656e646572223a22ff227d7d' as text))), 'malformed_json';
select 'id-huge-trait', (select rule from kustomer_check('{"type":"identify","userId":"u","traits":{"gender":"' || printf('%.100000c', 'x') || '"}}')), 'gender_invalid';
