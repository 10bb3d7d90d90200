-- Table-valued functions: kustomer_meta_each and kustomer_check.
select 'each-rows', (select group_concat(key || ':' || type || ':' || ifnull(kustomer_key, '-') || ':' || ifnull(problem, 'ok'), ' | ') from kustomer_meta_each('{"revenue":3,"priceNum":"x","when":"2021-01-01","createdAt":"soon","o":{},"b":true,"s":"hi","kustomer_session_id":"s1","n":null}')), 'revenue:integer:revenue:number value: Kustomer requires its key to end in Num | priceNum:text:priceNum:string value under a key ending in Num: Kustomer expects a number | when:text:when:date-time value: its key should end in At to be stored as a date | createdAt:text:createdAt:key ends in At but the value is not an ISO-8601 date-time | o:object:o:nested object or array: meta values must be flat | b:true:b:boolean value: meta accepts numbers, strings and date-times | s:text:s:ok | kustomer_session_id:text:-:ok | n:null:n:ok';
select 'each-advanced', (select group_concat(key || '=' || kustomer_key || '=' || kustomer_value || '=' || ifnull(problem, 'ok'), ' | ') from kustomer_meta_each('{"revenue":3,"when":"2021-01-01","b":true,"arr":[1,"x"],"o":{"k":1}}', '{"advancedTransform":true}')), 'revenue=revenueNum=3=ok | when=whenAt=2021-01-01=ok | b=b=true=ok | arr=arr=1,"x"=ok | o=o={"k":1}=ok';
select 'each-value-types', (select group_concat(typeof(value), ',') from kustomer_meta_each('{"i":1,"r":1.5,"t":"x","n":null,"a":[1],"o":{},"y":true}')), 'integer,real,text,null,text,text,integer';
select 'each-value-subtype', (select json_group_array(value) from kustomer_meta_each('{"a":[1,{"b":2}]}')), '[[1,{"b":2}]]';
select 'each-duplicate', (select group_concat(key || '=' || value || '=' || ifnull(kustomer_key, '-'), ' ') from kustomer_meta_each('{"a":1,"a":2}')), 'a=1=- a=2=a';
select 'each-collision', (select group_concat(key || '=' || ifnull(kustomer_key, '-') || '=' || ifnull(problem, 'ok'), ' | ') from kustomer_meta_each('{"a b":"x","a-b":"y"}', '{"advancedTransform":true}')), 'a b=-=a later property maps to the same Kustomer key and replaces this value | a-b=a-b=ok';
select 'each-email-dropped', (select count(*) from kustomer_meta_each('{"email":"e"}', '{"setIdentityEmail":1,"disableEmailAsTrackingProperty":1}') where kustomer_key is null and problem is null), 1;
select 'each-not-object', (select count(*) from kustomer_meta_each('[1,2,3]')), 0;
select 'each-null', (select count(*) from kustomer_meta_each(NULL)), 0;
select 'each-hidden-columns', (select count(*) from kustomer_meta_each where properties = '{"a":1}' and settings = '{}'), 1;

select 'check-clean', (select count(*) from kustomer_check('{"type":"track","event":"Cart-Viewed","userId":"u","properties":{"totalNum":3,"doneAt":"2021-01-01","s":"x"}}')), 0;
select 'check-rules', (select group_concat(path || ' ' || rule || ' ' || severity, ' | ') from kustomer_check('{"type":"track","event":"Cart Viewed","properties":{"revenue":3,"priceNum":"x","when":"2021-01-01","o":{},"a b":[1],"f":false}}')), '$.userId missing_user_id error | $.event event_name_spaces error | $.properties.revenue number_key_without_num error | $.properties.priceNum num_key_with_string error | $.properties.when date_key_without_at warning | $.properties.o nested_value error | $.properties."a b" nested_value error | $.properties.f boolean_value error';
select 'check-advanced', (select group_concat(path || ' ' || rule || ' ' || message, ' | ') from kustomer_check('{"type":"track","event":"Cart Viewed","userId":"u","properties":{"revenue":3,"yearArr":["2020"],"priceNum":true}}', '{"advancedTransform":true}')), '$.properties.yearArr nested_value nested object or array: meta values must be flat (sent as ''yearArrAt'') | $.properties.priceNum num_key_with_string string value under a key ending in Num: Kustomer expects a number';
select 'check-malformed', (select path || ' ' || rule || ' ' || message from kustomer_check('{"type":')), '$ malformed_json Event is not valid JSON (unexpected end)';
select 'check-missing-type', (select path || ' ' || rule || ' ' || message from kustomer_check('{"userId":"u"}')), '$.type missing_type Event type is required';
select 'check-unsupported', (select path || ' ' || rule || ' ' || message from kustomer_check('{"type":"group","userId":"u"}')), '$.type unsupported_type Event type group is not supported';
select 'check-not-object', (select path || ' ' || rule from kustomer_check('"track"')), '$ not_an_object';
select 'check-missing-event', (select path || ' ' || rule || ' ' || message from kustomer_check('{"type":"track","userId":"u"}')), '$.event missing_event_name Missing required value from "event"';
select 'check-number-event', (select path || ' ' || rule from kustomer_check('{"type":"track","event":5,"userId":"u"}')), '$.event event_name_not_string';
select 'check-identify-no-id', (select rule || ' ' || severity from kustomer_check('{"type":"identify","traits":{"email":"e"}}')), 'missing_user_id error';
select 'check-identify-clean', (select count(*) from kustomer_check('{"type":"identify","userId":"u"}')), 0;
select 'check-page-spaces', (select path || ' ' || rule from kustomer_check('{"type":"page","name":"My Page","userId":"u"}')), '$.name event_name_spaces';
select 'check-page-advanced-clean', (select count(*) from kustomer_check('{"type":"page","name":"My Page","userId":"u"}', '{"advancedTransform":true}')), 0;
select 'check-properties-string', (select rule || ' ' || severity from kustomer_check('{"type":"track","event":"E","userId":"u","properties":"x"}')), 'properties_not_object error';
select 'check-null', (select count(*) from kustomer_check(NULL)), 0;
create table ev(id integer primary key, payload text);
insert into ev(payload) values ('{"type":"track","event":"A B","userId":"u"}'), ('{"type":"track","event":"A-B","userId":"u"}'), ('{bad');
create table st(s text);
insert into st values ('{"advancedTransform":true}');
select 'check-join', (select group_concat(ev.id || ':' || c.rule, ' ') from ev, kustomer_check(ev.payload) c), '1:event_name_spaces 3:malformed_json';
select 'check-join-settings-from-table', (select group_concat(ev.id || ':' || c.rule, ' ') from ev, st, kustomer_check(ev.payload, st.s) c), '3:malformed_json';
select 'check-join-settings-table-first', (select group_concat(ev.id || ':' || c.rule, ' ') from st, kustomer_check(ev.payload, st.s) c, ev), '3:malformed_json';
-- sent: the value as sent, JSON text; NULL only when not sent
select 'each-sent', (select group_concat(key || '=' || ifnull(sent, 'NOT SENT'), ' ') from kustomer_meta_each('{"b":true,"f":false,"n":null,"s":"x","i":1,"o":{"k":[1]},"kustomer_session_id":"s"}')), 'b=true f=false n=null s="x" i=1 o={"k":[1]} kustomer_session_id=NOT SENT';
select 'each-sent-advanced', (select group_concat(key || '=' || sent, ' ') from kustomer_meta_each('{"b":true,"o":{"k":1},"a":[1,"x"]}', '{"advancedTransform":true}')), 'b="true" o="{\"k\":1}" a="1,\"x\""';
select 'each-sent-json', (select json_group_array(sent) from kustomer_meta_each('{"o":{"k":1}}')), '[{"k":1}]';
