-- The outbox table offline: storage, shadow tables, commands.  Delivery is
-- tested against the fake Kustomer API by tests/test_outbox.py.
create virtual table out using kustomer_outbox(settings='{"apiKeyEnv":"KUSTOMER_API_KEY","advancedTransform":true}', rate_limit=1000, budget=0.8, max_attempts=5);
select 'shadow-tables-created', (select group_concat(name, ' ') from (select name from sqlite_master where name like 'out%' order by name)), 'out out_config out_data';
select 'ledger-created', (select group_concat(name, ' ') from (select name from sqlite_master where name like 'kustomer_r%' order by name)), 'kustomer_ratelimit kustomer_requests kustomer_requests_t';
select 'due-index-created', (select count(*) from sqlite_master where type='index' and tbl_name='out_data' and name like 'kustomer_outbox_%_due'), 1;
select 'config-stored', (select group_concat(k || '=' || v, ' ') from (select k, v from out_config where k in ('rate_limit','budget','max_attempts','rate_window','concurrency') order by k)), 'budget=0.8 concurrency=4 max_attempts=5 rate_limit=1000 rate_window=60';
insert into out(event) values ('{"type":"track","event":"Order Completed","userId":"u1","properties":{"total":9.5}}');
insert into out(event) values ('{"type":"identify","userId":"u2","traits":{"email":"u2@x.com"}}');
insert into out(event) values ('{"type":"alias","userId":"u3"}');
insert into out(event) values ('{not json');
insert into out(id, event) values (100, '{"type":"page","name":"Home","anonymousId":"a1"}');
select 'insert-statuses', (select group_concat(id || ':' || status, ' ') from out), '1:pending 2:pending 3:invalid 4:invalid 100:pending';
select 'invalid-keeps-reason', (select error from out where id=3), 'Event type alias is not supported';
select 'invalid-malformed-reason', (select error from out where id=4), 'Event is not valid JSON (error at offset 2)';
select 'invalid-has-no-request', (select count(*) from out where status='invalid' and request is null), 2;
select 'request-transformed', (select json_extract(request, '$.body.JSON.event.name') || ' ' || json_extract(request, '$.body.JSON.event.meta.totalNum') from out where id=1), 'Order-Completed 9.5';
select 'request-has-no-key', (select count(*) from out where request like '%Authorization%' or request like '%Bearer%'), 0;
select 'request-is-json-subtype', (select json_object('r', request) from out where id=100) like '{"r":{"version":"1"%';
select 'event-kept-verbatim', (select event from out where id=1), '{"type":"track","event":"Order Completed","userId":"u1","properties":{"total":9.5}}';
select 'enqueued-at-iso', (select count(*) from out where enqueued_at like '____-__-__T__:__:__.___Z'), 5;
select 'columns', (select group_concat(name, ',') from pragma_table_info('out')), 'id,event,request,status,attempts,http_status,error,kustomer_id,enqueued_at,sent_at,next_attempt_at';
select 'lookup-by-id', (select status from out where id=100), 'pending';
select 'lookup-by-status', (select count(*) from out where status='pending'), 3;
delete from out where id=4;
select 'delete', (select count(*) from out), 4;
-- the retry command puts failed rows back to pending
update out_data set status='failed', attempts=5, error='HTTP 503 (after 5 attempts)' where id=1;
insert into out(out) values ('retry');
select 'retry-command', (select status || ' ' || attempts || ' ' || ifnull(error, '-') from out where id=1), 'pending 0 -';
select 'retry-leaves-invalid', (select status from out where id=3), 'invalid';
-- rolled back with the caller's transaction: nothing is sent at INSERT
begin;
insert into out(event) values ('{"type":"track","event":"E","userId":"u"}');
rollback;
select 'insert-rolls-back', (select count(*) from out), 4;
-- rename and drop carry the shadow tables
alter table out rename to out2;
select 'renamed', (select group_concat(name, ' ') from (select name from sqlite_master where name like 'out%' order by name)), 'out2 out2_config out2_data';
select 'renamed-readable', (select count(*) from out2), 4;
insert into out2(event) values ('{"type":"screen","name":"S","userId":"u"}');
select 'renamed-writable', (select count(*) from out2_data), 5;
drop table out2;
select 'dropped', (select count(*) from sqlite_master where name like 'out%' or name like 'kustomer_outbox_%'), 0;
select 'ledger-kept', (select count(*) from sqlite_master where name='kustomer_requests'), 1;
-- one row per messageId: an archive loaded twice is stored once
create virtual table dd using kustomer_outbox(settings='{"apiKeyEnv":"KUSTOMER_API_KEY"}');
insert into dd(event) values ('{"type":"track","event":"A","userId":"u","messageId":"m-1"}');
insert into dd(event) values ('{"type":"track","event":"A","userId":"u","messageId":"m-1"}');
insert into dd(event) values ('{"type":"track","event":"B","userId":"u","messageId":"m-2"}'), ('{"type":"track","event":"B again","userId":"u","messageId":"m-2"}');
insert into dd(event) values ('{"type":"track","event":"C","userId":"u"}'), ('{"type":"track","event":"C","userId":"u"}');
insert into dd(event) values ('{"type":"track","event":"D","userId":"u","messageId":42}'), ('{"type":"track","event":"D","userId":"u","messageId":42}');
select 'dedupe-one-row-per-message-id', (select group_concat(json_extract(event, '$.event'), ',') from dd), 'A,B,C,C,D,D';
select 'dedupe-first-kept', (select count(*) from dd where json_extract(event, '$.event')='B again'), 0;
select 'dedupe-index-made', (select count(*) from sqlite_master where type='index' and tbl_name='dd_data' and name like 'kustomer_outbox_%_msg'), 1;
create virtual table nd using kustomer_outbox(settings='{"apiKeyEnv":"KUSTOMER_API_KEY"}', dedupe=0);
insert into nd(event) values ('{"type":"track","event":"A","userId":"u","messageId":"m-1"}'), ('{"type":"track","event":"A","userId":"u","messageId":"m-1"}');
select 'dedupe-0-keeps-both', (select count(*) from nd), 2;
-- messages whose integrations turn Kustomer off are skipped, as RudderStack and Segment skip them
create virtual table ig using kustomer_outbox(settings='{"apiKeyEnv":"KUSTOMER_API_KEY"}');
insert into ig(event) values ('{"type":"track","event":"A","userId":"u","integrations":{"Kustomer":false}}'), ('{"type":"track","event":"B","userId":"u","integrations":{"All":false}}'), ('{"type":"track","event":"C","userId":"u","integrations":{"All":false,"Kustomer":true}}'), ('{"type":"track","event":"D","userId":"u","integrations":{"All":false,"Kustomer":{"x":1}}}'), ('{"type":"track","event":"E","userId":"u","integrations":{"KUSTOMER":false,"All":true}}');
select 'integrations-skipped', (select group_concat(json_extract(event, '$.event') || ':' || status, ' ') from ig), 'A:skipped B:skipped C:pending D:pending E:skipped';
select 'integrations-reason', (select error from ig where json_extract(event, '$.event')='B'), 'integrations.All is false and Kustomer is not turned on';
select 'integrations-request-kept', (select count(*) from ig where status='skipped' and request is not null), 3;
create virtual table ig2 using kustomer_outbox(settings='{"apiKeyEnv":"KUSTOMER_API_KEY"}', integrations=ignore);
insert into ig2(event) values ('{"type":"track","event":"A","userId":"u","integrations":{"Kustomer":false}}');
select 'integrations-ignore-sends', (select status from ig2), 'pending';
select 'check-integration-disabled', (select path || ' ' || severity from kustomer_check('{"type":"track","event":"A","userId":"u","integrations":{"Kustomer":false}}') where rule='integration_disabled'), '$.integrations warning';
select 'check-integration-enabled', (select count(*) from kustomer_check('{"type":"track","event":"A","userId":"u","integrations":{"All":false,"Kustomer":true}}') where rule='integration_disabled'), 0;
select 'request-unchanged-by-integrations', (select kustomer_request('{"type":"track","event":"A","userId":"u","integrations":{"Kustomer":false}}', '{"apiKey":"k"}') = kustomer_request('{"type":"track","event":"A","userId":"u"}', '{"apiKey":"k"}')), 1;
