-- The extension's SQL surface, compared with tests/surface.expected by
-- tests/run.sh.  flags is pragma_function_list's number: SQLite 3.40 shows
-- funcFlags & (DETERMINISTIC|DIRECTONLY|SUBTYPE|INNOCUOUS), so
-- SQLITE_DETERMINISTIC|SQLITE_INNOCUOUS = 0x800|0x200000 = 2099200
-- (SQLITE_UTF8 is the enc column; SQLITE_RESULT_SUBTYPE is not shown).
-- The network functions are SQLITE_DIRECTONLY = 0x80000 = 524288 and
-- neither deterministic nor innocuous.
.headers off
.mode list
.separator "|"
select name, narg, flags from pragma_function_list where name like 'kustomer%' order by name, narg;
select name from pragma_module_list where name like 'kustomer%' order by name;
