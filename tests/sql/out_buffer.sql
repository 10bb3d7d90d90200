-- With a constant settings argument the functions write their results into
-- one buffer per statement (support.c, kustomer_out_begin): every row's
-- result equals the one written into a string of its own, which a
-- settings value read from a table gets.  Good and failing events take
-- turns, and a result over the buffer's 256 KB lets it go mid-statement.

create table ob_event(i integer primary key, e);
insert into ob_event(e) values
('{"type":"track","event":"Order Completed","userId":"u1","properties":{"total":12.5,"items":[{"sku":"a"}]}}'),
('{"type":"track","event":"x"'),
('{"type":"identify","userId":"u2","traits":{"email":"a@b.c","name":"A B"}}'),
('[1,2]'),
('{"type":"page","name":"Home","anonymousId":"a1","properties":{"url":"https://x/"}}'),
('{"type":"alias","userId":"u3"}'),
('{"type":"track","event":"Big","userId":"u4","properties":{"blob":"' || replace(hex(zeroblob(150000)), '00', 'xy') || '"}}'),
('{"type":"screen","name":"S","userId":"u5","properties":{"a":true}}'),
('{"type":"track","userId":"u6"}'),
('{"type":"identify","userId":"u7","traits":{"gender":"female","tags":"a,b"}}'),
('{"type":"track","event":"Last","userId":"u8","properties":{"n":1}}');
create table ob_set(v);
insert into ob_set values ('{"apiKey":"k","advancedTransform":true}');

-- rows: 49
select 'outbuf-' || f || '-' || i, got, want from (
  select i, 'request' as f,
         kustomer_request(e, '{"apiKey":"k","advancedTransform":true}') as got,
         kustomer_request(e, s.v) as want from ob_event, ob_set s
  union all
  select i, 'tracking',
         quote(iif(e->>'type' in ('track','page','screen') and e->>'event' is not null or e->>'type' in ('page','screen'),
                   kustomer_tracking(e, '{"apiKey":"k","advancedTransform":true}'), 'n/a')),
         quote(iif(e->>'type' in ('track','page','screen') and e->>'event' is not null or e->>'type' in ('page','screen'),
                   kustomer_tracking(e, s.v), 'n/a'))
    from ob_event, ob_set s where json_valid(e)
  union all
  select i, 'identify',
         iif(e->>'type'='identify', kustomer_identify(e, '{"apiKey":"k","advancedTransform":true}'), 'n/a'),
         iif(e->>'type'='identify', kustomer_identify(e, s.v), 'n/a')
    from ob_event, ob_set s where json_valid(e)
  union all
  select i, 'meta',
         kustomer_meta(e->'properties', '{"apiKey":"k","advancedTransform":true}'),
         kustomer_meta(e->'properties', s.v)
    from ob_event, ob_set s where json_valid(e) and json_type(e) = 'object'
  union all
  select i, 'name',
         iif(e->>'type' in ('track','page','screen') and e->>'event' is not null or e->>'type' in ('page','screen'),
             kustomer_event_name(e, '{"apiKey":"k","advancedTransform":true}'), 'n/a'),
         iif(e->>'type' in ('track','page','screen') and e->>'event' is not null or e->>'type' in ('page','screen'),
             kustomer_event_name(e, s.v), 'n/a')
    from ob_event, ob_set s where json_valid(e)
) order by f, i;
-- the big result is there, whole
select 'outbuf-big-length', length(kustomer_request((select e from ob_event where i=7), '{"apiKey":"k"}')) > 300000;
