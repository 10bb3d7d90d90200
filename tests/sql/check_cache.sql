-- kustomer_check() parses its settings once for as long as a join passes
-- the same text: settings that change from row to row, NULL among them,
-- give each row the findings of its own settings (each compared with a
-- call of its own, in a statement of one row).
create table cc_event(i, e);
insert into cc_event values
(1, '{"type":"track","event":"Order Done","userId":"u","properties":{"total":5,"at":"2024-01-02T03:04:05Z","ok":true}}'),
(2, '{"type":"page","name":"Home","anonymousId":"a","properties":{"n":1}}');
create table cc_set(j, s);
insert into cc_set values (1, null), (2, '{"advancedTransform":true}'),
  (3, '{"advancedTransform":true}'), (4, null), (5, '{}'),
  (6, '{"advancedTransform":false}');
create table cc_join as
  select e.i, s.j, c.rule, c.path, c.message
    from cc_event e, cc_set s, kustomer_check(e.e, s.s) c;
-- rows: 11
select 'check-cache-' || e.i || '-' || s.j,
       (select group_concat(rule || ' ' || path || ' ' || message, char(10))
          from cc_join where i=e.i and j=s.j),
       case when s.s is null
            then (select group_concat(rule || ' ' || path || ' ' || message, char(10))
                    from kustomer_check(e.e))
            else (select group_concat(rule || ' ' || path || ' ' || message, char(10))
                    from kustomer_check(e.e, s.s)) end
  from cc_event e, cc_set s order by e.i, s.j;
select 'check-cache-settings-differ',
       (select count(*) from cc_join where j=1) <> (select count(*) from cc_join where j=2);
