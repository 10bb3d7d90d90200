#!/usr/bin/env bash
# Run one SQL test file through the real sqlite3 CLI with the extension loaded.
#
#   tests/run_sql.sh FILE [SO_PATH]
#
# SO_PATH defaults to $KUSTOMER_SO, else dist/kustomer.so.  Environment:
#   SQLITE3                the sqlite3 CLI (default: sqlite3 from PATH)
#   KUSTOMER_TEST_WRAP     command prefix for every sqlite3 run (e.g. valgrind ...)
#   KUSTOMER_TEST_PRELOAD  exported as LD_PRELOAD for the sqlite3 runs only
#
# Output: one line per check, "ok <name>" or "FAIL <name>: <detail>" (detail
# may continue on following lines indented by two spaces).  Exit status 1 if
# anything failed.
#
# FILE.sql: test statements, in the manner of sqlean's test/*.sql.  The file
# runs on an in-memory database, in one CLI process, in ".mode ascii" (columns
# separated by 0x1F, rows by 0x1E, so '|' and newlines inside values are
# harmless) with NULL shown as 0x1D.  Each row a statement prints is a check:
#
#   select 'meta-basic', kustomer_meta('{"a":1}') = '{"a":1}';   -- 2 columns:
#       passes if the second column is exactly 1
#   select 'meta-order', kustomer_meta('{"b":1,"a":2}'), '{"b":1,"a":2}';
#       3 columns: passes if the 2nd equals the 3rd as text (NULL equals
#       only NULL); on failure both values and the first differing byte are
#       shown
#
# The first column is the check's name.  Other statements (create table,
# insert, ...) may appear but must print nothing.  The number of rows printed
# must equal the number of lines starting with "select '" (any case), plus
# N for each line "-- rows: N" (which announces a table-driven statement
# that prints N checks, as a join of cases and settings), so a statement
# that prints nothing cannot vanish silently; any sqlite3 error output is a
# failure.
#
# FILE.err: statements that must fail with an exact error message.
#
#   -- setup:
#   create table t(x);            <- optional; runs before each statement
#                                    (a later setup block replaces it)
#   -- error: kustomer_meta(): argument 1 is not valid JSON
#   select kustomer_meta('{');    <- one statement, may span lines, its last
#                                    line ends with ';'
#
# Each statement runs alone in a fresh CLI process (-bail) after the
# extension and the setup.  The CLI's decoration ("Runtime error near line N:
# ", "Parse error near line N: ", "Error: ", "stepping, ", a trailing " (N)"
# extended code, the echoed SQL and "^--- error here" of a parse error) is
# removed before comparing.  The check is named "<file>: <message>", cut to
# 80 characters.  A statement that succeeds is a failure.  Other lines outside
# blocks must be blank or "--" comments.
set -u

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 FILE.sql|FILE.err [SO_PATH]" >&2
  exit 2
fi
file=$1
so=${2:-${KUSTOMER_SO:-dist/kustomer.so}}
case $so in /*) ;; *) so=$PWD/$so ;; esac
SQLITE3=${SQLITE3:-sqlite3}
read -r -a WRAP <<< "${KUSTOMER_TEST_WRAP:-}"
base=${file##*/}
nfail=0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kustomer-sql.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT

# Run the sqlite3 CLI (with the optional wrapper and LD_PRELOAD).
run_cli() {
  if [ -n "${KUSTOMER_TEST_PRELOAD:-}" ]; then
    LD_PRELOAD=$KUSTOMER_TEST_PRELOAD ${WRAP[@]+"${WRAP[@]}"} "$SQLITE3" "$@"
  else
    ${WRAP[@]+"${WRAP[@]}"} "$SQLITE3" "$@"
  fi
}

# Print "FAIL <name>: <detail>" and the lines of $3 (if any) indented.
fail() {
  printf 'FAIL %s: %s\n' "$1" "$2"
  [ -z "${3:-}" ] || printf '%s\n' "$3" | sed 's/^/  /'
  nfail=$((nfail + 1))
}

describe_rc() {
  if [ "$1" -ge 128 ]; then
    echo "sqlite3 was killed by signal $(($1 - 128)) (exit status $1)"
  else
    echo "sqlite3 exited with status $1"
  fi
}

if [ ! -r "$file" ]; then
  fail "$base" "cannot read $file"
  exit 1
fi
if [ ! -f "$so" ]; then
  fail "$base" "extension not found: $so"
  exit 1
fi
case $so in *"'"*)
  fail "$base" "extension path contains a quote: $so"
  exit 1 ;;
esac
load=".load '$so' sqlite3_kustomer_init"
cli_opts=(-batch -init /dev/null)

# ---------------------------------------------------------------------------
run_sql_file() {
  local rc nexpect
  run_cli "${cli_opts[@]}" -cmd "$load" -cmd ".mode ascii" \
    -cmd '.nullvalue "\035"' :memory: <"$file" >"$tmp/out" 2>"$tmp/err"
  rc=$?

  if ! LC_ALL=C awk -v file="$file" '
    BEGIN { RS = "\036"; FS = "\037"; nfail = 0 }
    function show(v) {
      if (v == "\035") return "NULL"
      gsub(/\n/, "\n    ", v)
      return v
    }
    function firstdiff(a, b,   i, n) {
      n = length(a) < length(b) ? length(a) : length(b)
      for (i = 1; i <= n; i++)
        if (substr(a, i, 1) != substr(b, i, 1)) return i - 1
      return n
    }
    {
      name = $1
      if (name in seen) {
        printf "FAIL %s: duplicate check name in %s\n", name, file
        nfail++
      }
      seen[name] = 1
      if (NF == 2) {
        if ($2 == "1") print "ok " name
        else {
          printf "FAIL %s: expected 1, got %s (%s)\n", name, show($2), file
          nfail++
        }
      } else if (NF == 3) {
        if ($2 == $3) print "ok " name
        else {
          if ($2 == "\035" || $3 == "\035")
            printf "FAIL %s: actual differs from expected (%s)\n", name, file
          else
            printf "FAIL %s: actual differs from expected at byte %d (%s)\n", \
              name, firstdiff($2, $3), file
          printf "  actual:   %s\n", show($2)
          printf "  expected: %s\n", show($3)
          nfail++
        }
      } else {
        v = $0
        gsub(/\037/, "|", v)
        printf "FAIL %s: row with %d columns (need 2 or 3) in %s\n", name, NF, file
        printf "  row: %s\n", show(v)
        nfail++
      }
    }
    END { exit nfail > 0 }
  ' "$tmp/out"; then
    nfail=$((nfail + 1))
  fi

  # "select '" lines, plus what each "-- rows: N" line announces for the
  # table-driven statement after it
  nexpect=$(( $(grep -ciE "^select '" "$file") + $(awk '/^-- rows: *[0-9]+ *$/ { n += $3 } END { print n+0 }' "$file") ))
  nrows=$(LC_ALL=C tr -cd '\036' <"$tmp/out" | wc -c)
  if [ -s "$tmp/err" ]; then
    fail "$base" "sqlite3 error" "$(
      cat "$tmp/err"
      [ "$rc" -eq 0 ] || describe_rc "$rc"
      [ "$nrows" -eq "$nexpect" ] ||
        echo "($nrows result rows for $nexpect checks announced)"
    )"
  elif [ "$rc" -ne 0 ]; then
    fail "$base" "sqlite3 failed" "$(describe_rc "$rc")"
  elif [ "$nrows" -ne "$nexpect" ]; then
    fail "$base" "result count: $nexpect checks announced (\"select '\" lines and \"-- rows:\") but $nrows rows were printed"
  fi
}

# ---------------------------------------------------------------------------
# Strip the CLI's decoration from an error report (file $1), print the message.
cli_message() {
  local -a lines
  local first n
  mapfile -t lines <"$1"
  n=${#lines[@]}
  [ "$n" -gt 0 ] || return 0
  # A parse error with an offset ends with the echoed SQL and a caret line.
  if [ "$n" -ge 2 ] && [[ ${lines[n-1]} =~ ^\ *\^---\ error\ here$ ]]; then
    n=$((n - 2))
  fi
  first=${lines[0]}
  if [[ $first =~ ^(Runtime\ error|Parse\ error|Error)(\ near\ line\ [0-9]+)?:\ (.*)$ ]]; then
    first=${BASH_REMATCH[3]}
    first=${first#stepping, }
  fi
  printf '%s\n' "$first"
  [ "$n" -le 1 ] || printf '%s\n' "${lines[@]:1:n-1}"
}

# Tool reports (valgrind "==123==", sanitizers) mixed into sqlite3's stderr.
is_tool_noise() {
  grep -qE '^==[0-9]+==|^(==|[^ ]*: )?(ERROR|WARNING): [A-Za-z]*Sanitizer|^SUMMARY: [A-Za-z]*Sanitizer|runtime error:' "$1"
}

run_err_case() {  # $1 expected message, $2 statement, $3 setup, $4 line
  local expected=$1 stmt=$2 setup=$3 line=$4 name rc msg alt
  name="$base: $expected"
  [ "${#name}" -le 80 ] || name="${name:0:77}..."
  {
    [ -z "$setup" ] || printf '%s\n' "$setup"
    printf '.print __KUSTOMER_BEGIN__\n%s\n.print __KUSTOMER_END__\n' "$stmt"
  } >"$tmp/case.sql"
  run_cli "${cli_opts[@]}" -bail -cmd "$load" :memory: \
    <"$tmp/case.sql" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if ! grep -qx '__KUSTOMER_BEGIN__' "$tmp/out"; then
    fail "$name" "setup failed before the statement at line $line" \
      "$(cat "$tmp/err"; describe_rc "$rc")"
    return
  fi
  if grep -qx '__KUSTOMER_END__' "$tmp/out"; then
    fail "$name" "statement at line $line did not fail" "$(
      sed -n '/^__KUSTOMER_BEGIN__$/,/^__KUSTOMER_END__$/p' "$tmp/out" |
        sed '1d;$d' | head -n 5 | sed 's/^/output: /'
      cat "$tmp/err"
    )"
    return
  fi
  if [ "$rc" -ne 1 ] || is_tool_noise "$tmp/err"; then
    fail "$name" "sqlite3 failed abnormally (statement at line $line)" \
      "$(cat "$tmp/err"; describe_rc "$rc")"
    return
  fi
  msg=$(cli_message "$tmp/err")
  # kept for the suite-wide secrets scan (tests/check_secrets.py)
  [ -z "${KUSTOMER_TEST_ARTIFACTS:-}" ] ||
    printf '%s\n' "$msg" >>"$KUSTOMER_TEST_ARTIFACTS/errors.txt"
  alt=$msg
  [[ $msg =~ ^(.*)\ \([0-9]+\)$ ]] && alt=${BASH_REMATCH[1]}
  if [ "$msg" = "$expected" ] || [ "$alt" = "$expected" ]; then
    echo "ok $name"
  else
    fail "$name" "wrong error message (statement at line $line of $file)" \
      "$(printf 'actual:   %s\nexpected: %s' "$msg" "$expected")"
  fi
}

run_err_file() {
  local line lineno=0 mode=none setup="" expected="" stmt="" stmt_line=0 trimmed
  local ncase=0
  while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    line=${line%$'\r'}
    case $line in
      "-- setup:"*)
        if [ "$mode" = stmt ]; then
          fail "$base" "line $lineno: \"-- error:\" block at line $stmt_line has no complete statement"
        fi
        mode=setup
        setup=${line#-- setup:}
        setup=${setup# }
        continue ;;
      "-- error:"*)
        if [ "$mode" = stmt ]; then
          fail "$base" "line $lineno: \"-- error:\" block at line $stmt_line has no complete statement"
        fi
        mode=stmt
        ncase=$((ncase + 1))
        expected=${line#-- error:}
        expected=${expected# }
        stmt=""
        stmt_line=$lineno
        continue ;;
    esac
    trimmed=${line%"${line##*[![:space:]]}"}
    case $mode in
      setup)
        setup+=${setup:+$'\n'}$line ;;
      stmt)
        if [ -z "$stmt" ]; then
          case $trimmed in ""|"--"*) continue ;; esac
          stmt_line=$lineno
        fi
        stmt+=${stmt:+$'\n'}$line
        case $trimmed in
          *";")
            run_err_case "$expected" "$stmt" "$setup" "$stmt_line"
            mode=none stmt="" ;;
        esac ;;
      none)
        case $trimmed in
          ""|"--"*) ;;
          *) fail "$base" "line $lineno: SQL outside a \"-- error:\" or \"-- setup:\" block" ;;
        esac ;;
    esac
  done <"$file"
  if [ "$mode" = stmt ]; then
    fail "$base" "\"-- error:\" block at line $stmt_line has no statement ending with ';'"
  fi
  if [ "$ncase" -eq 0 ]; then
    fail "$base" "no \"-- error:\" blocks"
  fi
}

case $file in
  *.sql) run_sql_file ;;
  *.err) run_err_file ;;
  *) fail "$base" "unknown test file type (need .sql or .err)" ;;
esac
[ "$nfail" -eq 0 ]
