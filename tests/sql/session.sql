-- kustomer_session(): session ids as a window function and an aggregate.
-- Expected ids are base-36 epoch milliseconds of the session's start:
-- 2024-05-01T10:00:00Z = 1714557600000 = 'lvnnbr40'.

-- Three users, inserted interleaved and out of time order; ORDER BY ts decides.
create table events(id integer primary key, user text, ts);
insert into events values
  (1, 'u2', '2024-05-01T10:50:00Z'),
  (2, 'u1', '2024-05-01T11:29:59.999Z'),
  (3, 'u3', '2024-05-01T13:00:00Z'),
  (4, 'u1', '2024-05-01T10:00:00.000Z'),
  (5, 'u2', '2024-05-01T09:00:00Z'),
  (6, 'u1', '2024-05-01T12:00:00.001Z'),
  (7, 'u2', '2024-05-01T10:10:00Z'),
  (8, 'u1', '2024-05-01T10:29:59.999Z'),
  (9, 'u3', '2024-05-01T09:30:00Z'),
  (10, 'u1', '2024-05-01T10:59:59.999Z'),
  (11, 'u2', '2024-05-01T09:45:00Z'),
  (12, 'u1', '2024-05-01T12:00:00.000Z'),
  (13, 'u2', '2024-05-01T10:51:00Z');
create view s30 as
  select id, user, ts,
         kustomer_session(ts, 30) over (partition by user order by ts) as sid
    from events;
-- u1: gaps of 29:59.999 (below), 30:00.000 twice (exactly: no new session),
-- 30:00.001 (above: new session), 0:00.001.
select 'window-u1', (select group_concat(sid, ' ') from (select sid from s30 where user = 'u1' order by ts)), 'lvnnbr40 lvnnbr40 lvnnbr40 lvnnbr40 lvnrm2o0 lvnrm2o0';
select 'window-u2', (select group_concat(sid, ' ') from (select sid from s30 where user = 'u2' order by ts)), 'lvnl6lc0 lvnmsgo0 lvnmsgo0 lvnp41xc lvnp41xc';
select 'window-u3', (select group_concat(sid, ' ') from (select sid from s30 where user = 'u3' order by ts)), 'lvnm9680 lvntr8g0';
select 'window-per-row-by-id', (select group_concat(id || '=' || sid, ' ') from (select id, sid from s30 order by id)), '1=lvnp41xc 2=lvnnbr40 3=lvntr8g0 4=lvnnbr40 5=lvnl6lc0 6=lvnrm2o0 7=lvnmsgo0 8=lvnnbr40 9=lvnm9680 10=lvnnbr40 11=lvnmsgo0 12=lvnrm2o0 13=lvnp41xc';
select 'window-result-type', (select group_concat(distinct typeof(sid)) from s30), 'text';
select 'default-gap-is-30', (select count(*) from (select kustomer_session(ts) over (partition by user order by ts) as a, kustomer_session(ts, 30) over (partition by user order by ts) as b from events) where a is not b), '0';
select 'null-gap-is-default', (select count(*) from (select kustomer_session(ts, NULL) over (partition by user order by ts) as a, kustomer_session(ts, 30.0) over (partition by user order by ts) as b from events) where a is not b), '0';
select 'custom-gap-10', (select group_concat(s, ' ') from (select kustomer_session(ts, 10) over (order by ts) as s from events where user = 'u1' order by ts)), 'lvnnbr40 lvnoebzz lvnpgwvz lvnqjhrz lvnrm2o0 lvnrm2o0';
select 'custom-gap-90', (select group_concat(s, ' ') from (select kustomer_session(ts, 90) over (order by ts) as s from events where user = 'u2' order by ts)), 'lvnl6lc0 lvnl6lc0 lvnl6lc0 lvnl6lc0 lvnl6lc0';
select 'custom-gap-fraction', (select group_concat(s, ' ') from (select kustomer_session(t, 0.5) over (order by t) as s from (select column1 as t from (values ('2024-05-01T10:00:00Z'), ('2024-05-01T10:00:30Z'), ('2024-05-01T10:01:00.001Z'), ('2024-05-01T10:01:10Z'))) order by t)), 'lvnnbr40 lvnnbr40 lvnnd1ep lvnnd1ep';
select 'two-windows-independent', (select group_concat(a || '/' || b, ' ') from (select kustomer_session(ts, 30) over (order by ts) as a, kustomer_session(ts, 10) over (order by ts) as b from events where user = 'u1' order by ts)), 'lvnnbr40/lvnnbr40 lvnnbr40/lvnoebzz lvnnbr40/lvnpgwvz lvnnbr40/lvnqjhrz lvnrm2o0/lvnrm2o0 lvnrm2o0/lvnrm2o0';

-- Rows in another ORDER BY: gaps are measured between consecutive rows in
-- the window's order; a negative gap never starts a session.
create table ooo(seq integer, ts text);
insert into ooo values (1, '2024-05-01T10:00:00Z'), (2, '2024-05-01T11:00:00Z'), (3, '2024-05-01T10:05:00Z'), (4, '2024-05-01T10:20:00Z'), (5, '2024-05-01T11:10:00Z'), (6, '2024-05-01T11:10:00Z');
select 'order-by-seq', (select group_concat(s, ' ') from (select kustomer_session(ts) over (order by seq) as s from ooo order by seq)), 'lvnnbr40 lvnpgww0 lvnpgww0 lvnpgww0 lvnptruo lvnptruo';
select 'order-by-ts', (select group_concat(s, ' ') from (select kustomer_session(ts) over (order by ts) as s from ooo order by ts)), 'lvnnbr40 lvnnbr40 lvnnbr40 lvnpgww0 lvnpgww0 lvnpgww0';
select 'order-by-ts-desc', (select group_concat(s, ' ') from (select kustomer_session(ts) over (order by ts desc) as s from ooo order by ts desc)), 'lvnptruo lvnptruo lvnptruo lvnptruo lvnptruo lvnptruo';

-- Ties: peers of ORDER BY ts are all stepped before the value is taken; they
-- have the same timestamp, so the same session, in RANGE, ROWS and GROUPS frames.
create table tie(seq integer, ts text);
insert into tie values (1, '2024-05-01T10:00:00Z'), (2, '2024-05-01T10:00:00Z'), (3, '2024-05-01T10:40:00Z'), (4, '2024-05-01T10:40:00Z'), (5, '2024-05-01T10:40:00Z'), (6, '2024-05-01T10:50:00Z');
select 'ties-range', (select group_concat(s, ' ') from (select kustomer_session(ts) over (order by ts) as s from tie order by ts, seq)), 'lvnnbr40 lvnnbr40 lvnor6yo lvnor6yo lvnor6yo lvnor6yo';
select 'ties-rows', (select group_concat(s, ' ') from (select kustomer_session(ts) over (order by ts rows unbounded preceding) as s from tie order by ts, seq)), 'lvnnbr40 lvnnbr40 lvnor6yo lvnor6yo lvnor6yo lvnor6yo';
select 'ties-groups', (select group_concat(s, ' ') from (select kustomer_session(ts) over (order by ts groups unbounded preceding) as s from tie order by ts, seq)), 'lvnnbr40 lvnnbr40 lvnor6yo lvnor6yo lvnor6yo lvnor6yo';
select 'ties-count', (select count(distinct s) from (select kustomer_session(ts) over (order by ts) as s from tie)), '2';

-- NULL timestamps: NULL id, and the row is skipped when gaps are measured
-- (10:00, NULL, 10:20 is one session; 10:40, NULL, 11:20 is two).
create table nul(seq integer, user text, ts text);
insert into nul values (1, 'n1', NULL), (2, 'n1', '2024-05-01T10:00:00Z'), (3, 'n1', NULL), (4, 'n1', '2024-05-01T10:20:00Z'), (5, 'n1', NULL), (6, 'n1', '2024-05-01T10:40:00Z'), (7, 'n1', NULL), (8, 'n1', '2024-05-01T11:20:00Z'), (9, 'n1', NULL),
  (20, 'n2', NULL), (21, 'n2', NULL);
select 'null-window-by-seq', (select group_concat(coalesce(s, '-'), ' ') from (select kustomer_session(ts) over (order by seq) as s from nul where user = 'n1' order by seq)), '- lvnnbr40 - lvnnbr40 - lvnnbr40 - lvnq6mtc -';
select 'null-window-by-ts', (select group_concat(coalesce(s, '-'), ' ') from (select kustomer_session(ts) over (order by ts) as s from nul where user = 'n1' order by ts, seq)), '- - - - - lvnnbr40 lvnnbr40 lvnnbr40 lvnq6mtc';
select 'null-all-null-partition', (select group_concat(coalesce(s, '-'), ' ') from (select kustomer_session(ts) over (partition by user order by seq) as s from nul where user = 'n2')), '- -';
select 'null-single', (select kustomer_session(NULL) is null), '1';
select 'null-aggregate-ignored', (select kustomer_session(ts) from (select ts from nul where user = 'n1' order by seq)), 'lvnq6mtc';
select 'null-aggregate-all-null', (select coalesce(kustomer_session(ts), 'NULL') from nul where user = 'n2'), 'NULL';

-- Mixed formats in one partition (ordered by seq: text and numbers do not
-- sort together): ISO with Z, offsets, milliseconds, SQLite's own format,
-- Unix seconds (integer and real) and milliseconds (integer and real).
create table mix(seq integer, ts);
insert into mix values
  (1, '2024-05-01T10:00:00Z'),
  (2, 1714558200),
  (3, '2024-05-01 10:20:00'),
  (4, 1714560000000),
  (5, '2024-05-01T13:15:00.500+02:00'),
  (6, 1714563000.25),
  (7, '2024-05-01T06:30:00-05:30'),
  (8, 1.7145648e12),
  (9, '2024-05-01t13:00:00.001z');
select 'mixed-formats', (select group_concat(s, ' ') from (select kustomer_session(ts) over (order by seq) as s from mix order by seq)), 'lvnnbr40 lvnnbr40 lvnnbr40 lvnnbr40 lvnq07pw lvnq07pw lvnq07pw lvnq07pw lvntr8g1';

-- One row: the id of that timestamp.  All of these are 2024-05-01T10:00:00Z.
select 'parse-same-01', kustomer_session('2024-05-01T10:00:00Z'), 'lvnnbr40';
select 'parse-same-02', kustomer_session('2024-05-01T10:00:00.000Z'), 'lvnnbr40';
select 'parse-same-03', kustomer_session('2024-05-01T10:00Z'), 'lvnnbr40';
select 'parse-same-04', kustomer_session('2024-05-01 10:00:00'), 'lvnnbr40';
select 'parse-same-05', kustomer_session('2024-05-01T10:00:00'), 'lvnnbr40';
select 'parse-same-06', kustomer_session('2024-05-01T10:00:00,000Z'), 'lvnnbr40';
select 'parse-same-07', kustomer_session('2024-05-01T12:00:00+02:00'), 'lvnnbr40';
select 'parse-same-08', kustomer_session('2024-05-01T12:00:00+0200'), 'lvnnbr40';
select 'parse-same-09', kustomer_session('2024-05-01T12:00:00+02'), 'lvnnbr40';
select 'parse-same-10', kustomer_session('2024-05-01T05:30:00-04:30'), 'lvnnbr40';
select 'parse-same-11', kustomer_session('2024-05-01T10:00:00.0004Z'), 'lvnnbr40';
select 'parse-same-12', kustomer_session('2024-05-01T09:59:59.9995Z'), 'lvnnbr40';
select 'parse-same-13', kustomer_session(1714557600), 'lvnnbr40';
select 'parse-same-14', kustomer_session(1714557600000), 'lvnnbr40';
select 'parse-same-15', kustomer_session(1714557600.0), 'lvnnbr40';
select 'parse-same-16', kustomer_session(1714557600000.0), 'lvnnbr40';
select 'parse-same-17', kustomer_session(1714557600.0004), 'lvnnbr40';
select 'parse-same-18', kustomer_session('2024-05-02T00:00:00+14:00'), 'lvnnbr40';
select 'parse-date-only', kustomer_session('2024-05-01'), 'lvn1w5c0';
select 'parse-fraction-1', kustomer_session('2024-05-01T10:00:00.1Z'), 'lvnnbr6s';
select 'parse-fraction-2', kustomer_session('2024-05-01T10:00:00.12Z'), 'lvnnbr7c';
select 'parse-fraction-rounds-down', kustomer_session('2024-05-01T10:00:00.1234Z'), 'lvnnbr7f';
select 'parse-fraction-rounds-up', kustomer_session('2024-05-01T10:00:00.1235Z'), 'lvnnbr7g';
select 'parse-leap-day', kustomer_session('2024-02-29T23:59:59Z'), 'lt7w15w8';
select 'parse-leap-day-2000', kustomer_session('2000-02-29'), 'c58qo000';
select 'parse-min-year', kustomer_session('0000-01-01T00:00:00Z'), '-m1b8579c0';
select 'parse-max-year', kustomer_session('9999-12-31T23:59:59.999Z'), '2htner8qnz';
select 'parse-epoch-zero', kustomer_session(0), '0';
select 'parse-negative-seconds', kustomer_session(-1), '-rs';
select 'parse-1e11-is-seconds', kustomer_session(100000000000), 'zg3d62r5s';
select 'parse-above-1e11-is-ms', kustomer_session(100000000001), '19xtf1tt';
select 'parse-year-0-in-seconds', kustomer_session(-62167219200), '-m1b8579c0';
select 'parse-below-minus-1e11-is-ms', kustomer_session(-100000000001), '-19xtf1tt';
select 'parse-real-seconds', kustomer_session(1714557600.5), 'lvnnbrhw';
select 'parse-real-ms', kustomer_session(1714557600500.4), 'lvnnbrhw';
select 'parse-max-ms', kustomer_session(253402300799999), '2htner8qnz';

-- prefix (3rd argument) is put in front as it is; user_key (4th) adds 8
-- base-36 characters of its 64-bit FNV-1a hash modulo 36^8.
select 'prefix-text', kustomer_session('2024-05-01T10:00:00Z', 30, 'acct-7:'), 'acct-7:lvnnbr40';
select 'prefix-integer', kustomer_session('2024-05-01T10:00:00Z', 30, 42), '42lvnnbr40';
select 'prefix-null', kustomer_session('2024-05-01T10:00:00Z', 30, NULL), 'lvnnbr40';
select 'prefix-empty', kustomer_session('2024-05-01T10:00:00Z', 30, ''), 'lvnnbr40';
select 'prefix-utf8', kustomer_session('2024-05-01T10:00:00Z', 30, 'café/'), 'café/lvnnbr40';
select 'prefix-long', kustomer_session('2024-05-01T10:00:00Z', 30, printf('%.300c', 'x')) = printf('%.300c', 'x') || 'lvnnbr40';
select 'prefix-per-row', (select group_concat(s, ' ') from (select kustomer_session(ts, 30, 'r' || seq || ':') over (order by seq) as s from ooo order by seq)), 'r1:lvnnbr40 r2:lvnpgww0 r3:lvnpgww0 r4:lvnpgww0 r5:lvnptruo r6:lvnptruo';
select 'key-text', kustomer_session('2024-05-01T10:00:00Z', 30, NULL, 'u42'), 'rt2v9pi2lvnnbr40';
select 'key-integer-as-text', kustomer_session('2024-05-01T10:00:00Z', 30, NULL, 42), 'gjuds2sjlvnnbr40';
select 'key-empty', kustomer_session('2024-05-01T10:00:00Z', 30, NULL, ''), 'hzj4ux45lvnnbr40';
select 'key-null', kustomer_session('2024-05-01T10:00:00Z', 30, NULL, NULL), 'lvnnbr40';
select 'key-email', kustomer_session('2024-05-01T10:00:00Z', 30, NULL, 'diego.kowalski69@proton.me'), 'yoi9kde1lvnnbr40';
select 'key-and-prefix', kustomer_session('2024-05-01T10:00:00Z', 30, 'k-', 'u42'), 'k-rt2v9pi2lvnnbr40';
select 'key-before-1970', kustomer_session(-1, 30, NULL, 'u42'), 'rt2v9pi2-rs';
select 'key-users-differ', kustomer_session('2024-05-01T10:00:00Z', 30, NULL, 'alice') <> kustomer_session('2024-05-01T10:00:00Z', 30, NULL, 'bob'), '1';
select 'window-prefix-per-user', (select group_concat(s, ' ') from (select kustomer_session(ts, 30, user || ':') over (partition by user order by ts) as s from events where user in ('u1', 'u3') order by user, ts)), 'u1:lvnnbr40 u1:lvnnbr40 u1:lvnnbr40 u1:lvnnbr40 u1:lvnrm2o0 u1:lvnrm2o0 u3:lvnm9680 u3:lvntr8g0';
select 'window-key-per-user', (select group_concat(s, ' ') from (select kustomer_session(ts, 30, NULL, user) over (partition by user order by ts) as s from events order by user, ts)), '1ltuo9gzlvnnbr40 1ltuo9gzlvnnbr40 1ltuo9gzlvnnbr40 1ltuo9gzlvnnbr40 1ltuo9gzlvnrm2o0 1ltuo9gzlvnrm2o0 fmxribhilvnl6lc0 fmxribhilvnmsgo0 fmxribhilvnmsgo0 fmxribhilvnp41xc fmxribhilvnp41xc to1ocdi1lvnm9680 to1ocdi1lvntr8g0';
select 'window-key-unique', (select count(distinct s) from (select kustomer_session(ts, 30, NULL, user) over (partition by user order by ts) as s from events)), '7';

-- Determinism: the same query twice, and a fresh table holding the same rows
-- inserted in another order, give the same ids.
create table events2(user text, ts, id integer);
insert into events2 select user, ts, id from events order by id desc;
create table events3(user text, ts, id integer);
insert into events3 select user, ts, id from events order by ts, user;
select 'determinism-same-query', (select group_concat(id || '=' || s, ' ') from (select id, kustomer_session(ts, 30, NULL, user) over (partition by user order by ts) as s from events order by id)) = (select group_concat(id || '=' || s, ' ') from (select id, kustomer_session(ts, 30, NULL, user) over (partition by user order by ts) as s from events order by id)), '1';
select 'determinism-reversed-insert', (select group_concat(id || '=' || s, ' ') from (select id, kustomer_session(ts, 30, NULL, user) over (partition by user order by ts) as s from events2 order by id)) = (select group_concat(id || '=' || s, ' ') from (select id, kustomer_session(ts, 30, NULL, user) over (partition by user order by ts) as s from events order by id)), '1';
select 'determinism-sorted-insert', (select group_concat(id || '=' || s, ' ') from (select id, kustomer_session(ts, 30, NULL, user) over (partition by user order by ts) as s from events3 order by id)) = (select group_concat(id || '=' || s, ' ') from (select id, kustomer_session(ts, 30, NULL, user) over (partition by user order by ts) as s from events order by id)), '1';

-- Aggregate: the group's last session, rows taken in the order given (an
-- ordered subquery).
select 'aggregate-group-by', (select group_concat(user || '=' || s, ' ') from (select user, kustomer_session(ts) as s from (select user, ts from events order by user, ts) group by user order by user)), 'u1=lvnrm2o0 u2=lvnp41xc u3=lvntr8g0';
select 'aggregate-matches-window', (select count(*) from (select user, kustomer_session(ts) as s from (select user, ts from events order by user, ts) group by user) a where s <> (select sid from s30 where s30.user = a.user order by ts desc limit 1)), '0';
select 'aggregate-with-prefix-and-key', (select kustomer_session(ts, 30, 'p', user) from (select user, ts from events where user = 'u2' order by ts)), 'pfmxribhilvnp41xc';
select 'aggregate-empty', (select coalesce(kustomer_session(ts), 'NULL') from events where 0), 'NULL';

-- Other frames: the value is the session of the frame's last row, over the
-- rows in the frame (a session cannot start before the frame does).
select 'frame-rows-unbounded', (select group_concat(s, ' ') from (select kustomer_session(ts) over (order by ts rows between unbounded preceding and current row) as s from events where user = 'u1' order by ts)), 'lvnnbr40 lvnnbr40 lvnnbr40 lvnnbr40 lvnrm2o0 lvnrm2o0';
select 'frame-rows-1-preceding', (select group_concat(coalesce(s, '-'), ' ') from (select kustomer_session(ts) over (order by ts rows between 1 preceding and current row) as s from events where user = 'u1' order by ts)), 'lvnnbr40 lvnnbr40 lvnoebzz lvnpgwvz lvnrm2o0 lvnrm2o0';
select 'frame-rows-empty-first', (select group_concat(coalesce(s, '-'), ' ') from (select kustomer_session(ts) over (order by ts rows between 2 preceding and 1 preceding) as s from events where user = 'u1' order by ts)), '- lvnnbr40 lvnnbr40 lvnoebzz lvnpgwvz lvnrm2o0';
select 'frame-rows-following', (select group_concat(coalesce(s, '-'), ' ') from (select kustomer_session(ts) over (order by ts rows between current row and unbounded following) as s from events where user = 'u1' order by ts)), 'lvnrm2o0 lvnrm2o0 lvnrm2o0 lvnrm2o0 lvnrm2o0 lvnrm2o1';
select 'frame-rows-0-preceding', (select group_concat(coalesce(s, '-'), ' ') from (select kustomer_session(ts) over (order by ts rows between 0 preceding and current row) as s from events where user = 'u1' order by ts)), 'lvnnbr40 lvnoebzz lvnpgwvz lvnqjhrz lvnrm2o0 lvnrm2o1';
select 'frame-rows-1-preceding-nulls', (select group_concat(coalesce(s, '-'), ' ') from (select kustomer_session(ts) over (order by seq rows between 1 preceding and current row) as s from nul where user = 'n1' order by seq)), '- lvnnbr40 - lvno1h1c - lvnor6yo - lvnq6mtc -';
select 'frame-rows-2-preceding-nulls', (select group_concat(coalesce(s, '-'), ' ') from (select kustomer_session(ts) over (order by seq rows between 2 preceding and current row) as s from nul where user = 'n1' order by seq)), '- lvnnbr40 - lvnnbr40 - lvno1h1c - lvnq6mtc -';
create table num(t integer);
insert into num values (1714557600), (1714558200), (1714560000), (1714561900), (1714562000), (1714566600), (1714566700);
select 'frame-range-3600-preceding', (select group_concat(s, ' ') from (select kustomer_session(t) over (order by t range between 3600 preceding and current row) as s from num order by t)), 'lvnnbr40 lvnnbr40 lvnnbr40 lvnpvx0g lvnpvx0g lvnsonk0 lvnsonk0';
select 'frame-groups-1-preceding', (select group_concat(s, ' ') from (select kustomer_session(ts) over (order by ts groups between 1 preceding and current row) as s from tie order by ts, seq)), 'lvnnbr40 lvnnbr40 lvnor6yo lvnor6yo lvnor6yo lvnor6yo';

-- A long partition: 2000 rows, sessions of 12 to 41 rows (the timestamps of
-- a session are kept for sliding frames), gaps of 0 s to 1 h; checked against
-- lag() and a plain-SQL statement of the frame rule.
create table series(i integer primary key, t integer);
insert into series with recursive s(i, t) as (select 1, 1714557600 union all select i + 1, t + case (i * 7919) % 53 when 0 then 3600 when 1 then 1801 when 2 then 1800 when 3 then 1799 when 4 then 0 else (i % 5) * 60 end from s where i < 2000) select i, t from s;
create table series_s(i integer primary key, t, g, lb, s_default, s_sliding);
insert into series_s select i, t, g, max(case when i = 1 or g > 1800 then i end) over (order by i), s_default, s_sliding from (select i, t, t - lag(t) over (order by i) as g, kustomer_session(t) over (order by i) as s_default, kustomer_session(t) over (order by i rows between 20 preceding and current row) as s_sliding from series);
-- lb: the last row at or before i that starts a session (gap above 1800 s).
select 'long-default-breaks', (select count(*) from series_s a left join series_s p on p.i = a.i - 1 where (a.g > 1800) is not (a.s_default <> p.s_default)), '0';
select 'long-default-distinct', (select count(distinct s_default) = 1 + sum(g > 1800) from series_s), '1';
select 'long-default-start', (select count(*) from series_s a join series_s p on p.i = a.lb where a.s_default <> (select kustomer_session(x) from (select p.t as x))), '0';
select 'long-sliding-start', (select count(*) from series_s a join series_s p on p.i = max(a.lb, a.i - 20) where a.s_sliding <> (select kustomer_session(x) from (select p.t as x))), '0';
select 'long-sliding-differs', (select count(*) > 0 from series_s where s_sliding <> s_default), '1';
