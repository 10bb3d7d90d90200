#!/usr/bin/env bash
# Run every test suite of the extension.
#
#   tests/run.sh [SO_PATH]          (default: dist/kustomer.so)
#
# Environment:
#   SQLITE3                the sqlite3 CLI (default: sqlite3 from PATH)
#   PYTHON                 python for tests/conformance.py (default:
#                          /usr/bin/python3, whose sqlite3 module can load
#                          extensions, else python3 from PATH)
#   KUSTOMER_TEST_WRAP     command prefix for every sqlite3/python run, e.g.
#                          "valgrind --error-exitcode=99 -q"
#   KUSTOMER_TEST_PRELOAD  exported as LD_PRELOAD for those runs only (the
#                          sanitizer build loads into uninstrumented binaries)
#   KUSTOMER_UNIT_DIR      where the unit test binaries are (default: build)
#   KUSTOMER_LIMITS_SO     the extension built with small fetch limits (the
#                          Makefile's LIMITS), for tests/test_fetch.py
#   KUSTOMER_TEST_SKIP_PLAIN  if 1, leave out the suites that run without the
#                          wrapper and preload ($NO_EXTENSION): the sanitizer
#                          and valgrind runs would only repeat them
#
# Suites, in order: the unit test binaries $KUSTOMER_UNIT_DIR/test_* that exist, each
# tests/sql/*.sql and tests/sql/*.err (tests/run_sql.sh), the surface test
# (tests/surface.sql against tests/surface.expected), the layers check
# (tests/layers.sh), tests/conformance.py, every tests/test_*.py (the fake
# Kustomer API's own tests, the suites that run against it, and
# make install / make deb), and last
# tests/check_secrets.py, which searches every error message, stored row,
# request and output line the others left in $KUSTOMER_TEST_ARTIFACTS for
# the test API keys.
#
# Every suite prints "ok <name>" / "FAIL <name>: <detail>" lines; they are
# shown as they come and counted.  A suite that is killed by a signal, or
# exits non-zero without printing FAIL, or prints no result at all, counts as
# one more failure named after it.  The last line is "N passed, N failed";
# the exit status is 1 if anything failed.
set -u

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
so=${1:-dist/kustomer.so}
case $so in /*) ;; *) so=$PWD/$so ;; esac   # relative to the caller
if [ -n "${KUSTOMER_LIMITS_SO:-}" ]; then
  case $KUSTOMER_LIMITS_SO in /*) ;; *) KUSTOMER_LIMITS_SO=$PWD/$KUSTOMER_LIMITS_SO ;; esac
  export KUSTOMER_LIMITS_SO
fi
cd "$root" || exit 2

if [ -z "${PYTHON:-}" ]; then
  if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
export SQLITE3=${SQLITE3:-sqlite3} PYTHON KUSTOMER_SO=$so
read -r -a WRAP <<< "${KUSTOMER_TEST_WRAP:-}"

# Unit test binaries and their arguments (a data file).  A test_* binary
# not listed here runs without arguments.
UNIT_TESTS=(
  "test_jsnum tests/unit/doubles.txt"
)
# Suites run with plain $PYTHON, no wrapper, preload or SO_PATH: the fake's
# own tests, and the install test, which runs make and installs and loads
# dist/kustomer.so (what make install ships) with the sqlite3 CLI.
NO_EXTENSION="test_fake_kustomer.py test_install.py"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kustomer-tests.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
# What the suites leave for the secrets scan (tests/ktap.py, tests/check_secrets.py).
export KUSTOMER_TEST_ARTIFACTS=$tmp/artifacts
mkdir -p "$KUSTOMER_TEST_ARTIFACTS"
passed=0
failed=0

# Run a sqlite3/python command with the optional wrapper and LD_PRELOAD.
run_wrapped() {
  if [ -n "${KUSTOMER_TEST_PRELOAD:-}" ]; then
    LD_PRELOAD=$KUSTOMER_TEST_PRELOAD ${WRAP[@]+"${WRAP[@]}"} "$@"
  else
    ${WRAP[@]+"${WRAP[@]}"} "$@"
  fi
}

# Run python the same way.  Under the sanitizer preload LeakSanitizer would
# report python's own allocations at exit, so leak detection is off for
# python (the sqlite3 CLI runs keep it).
run_python() {
  if [ -n "${KUSTOMER_TEST_PRELOAD:-}" ]; then
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
      run_wrapped "$PYTHON" "$@"
  else
    run_wrapped "$PYTHON" "$@"
  fi
}

# run_suite NAME COMMAND...: run, show and count one suite's results.
run_suite() {
  local name=$1 rc nok nfail t0
  shift
  printf '# %s\n' "$name"
  t0=$(date +%s)
  "$@" 2>&1 | tee "$tmp/suite.out"
  rc=${PIPESTATUS[0]}
  cat "$tmp/suite.out" >>"$KUSTOMER_TEST_ARTIFACTS/output.txt"
  nok=$(grep -c '^ok ' "$tmp/suite.out")
  nfail=$(grep -c '^FAIL ' "$tmp/suite.out")
  if [ "$rc" -ge 128 ]; then
    echo "FAIL $name: killed by signal $((rc - 128)) (exit status $rc)"
    nfail=$((nfail + 1))
  elif [ "$rc" -ne 0 ] && [ "$nfail" -eq 0 ]; then
    echo "FAIL $name: exited with status $rc without reporting a failure"
    nfail=$((nfail + 1))
  elif [ $((nok + nfail)) -eq 0 ]; then
    echo "FAIL $name: reported no results"
    nfail=$((nfail + 1))
  fi
  passed=$((passed + nok))
  failed=$((failed + nfail))
  printf '# %s: %d s\n' "$name" $(($(date +%s) - t0))
}

surface_test() {
  local rc
  run_wrapped "$SQLITE3" -batch -init /dev/null \
    -cmd ".load '$so' sqlite3_kustomer_init" :memory: \
    <tests/surface.sql >"$tmp/surface.out" 2>"$tmp/surface.err"
  rc=$?
  if [ -s "$tmp/surface.err" ] || [ "$rc" -ne 0 ]; then
    echo "FAIL surface: function list: sqlite3 failed (exit status $rc)"
    sed 's/^/  /' "$tmp/surface.err"
    return 1
  fi
  if cmp -s tests/surface.expected "$tmp/surface.out"; then
    echo "ok surface: function list"
    return 0
  fi
  echo "FAIL surface: function list: differs from tests/surface.expected"
  if command -v diff >/dev/null 2>&1; then
    diff -u --label tests/surface.expected --label actual \
      tests/surface.expected "$tmp/surface.out" | sed 's/^/  /'
  else
    echo "  expected:"; sed 's/^/    /' tests/surface.expected
    echo "  actual:"; sed 's/^/    /' "$tmp/surface.out"
  fi
  return 1
}

if [ ! -f "$so" ]; then
  echo "FAIL setup: extension not found: $so (run make first)"
  echo "0 passed, 1 failed"
  exit 1
fi

# 1. Unit test binaries.
shopt -s nullglob
unit_dir=${KUSTOMER_UNIT_DIR:-build}
for bin in "$unit_dir"/test_*; do
  if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then continue; fi
  args=()
  for entry in "${UNIT_TESTS[@]}"; do
    read -r -a words <<< "$entry"
    if [ "${words[0]}" = "${bin##*/}" ]; then
      args=("${words[@]:1}")
      break
    fi
  done
  run_suite "$bin" "$bin" ${args[@]+"${args[@]}"}
done

# 2. SQL test files, then error files.
for f in tests/sql/*.sql; do
  run_suite "$f" bash tests/run_sql.sh "$f" "$so"
done
for f in tests/sql/*.err; do
  run_suite "$f" bash tests/run_sql.sh "$f" "$so"
done
shopt -u nullglob

# 3. The SQL surface, and the layers of the source.
run_suite "surface" surface_test
run_suite "tests/layers.sh" bash tests/layers.sh

# 4. Conformance vectors.
run_suite "tests/conformance.py" run_python tests/conformance.py "$so"

# 5. Every tests/test_*.py: the fake Kustomer API's own tests, then the
#    network functions, fetch, the outbox and the sync against it.
for f in tests/test_*.py; do
  case " $NO_EXTENSION " in
    *" ${f##*/} "*)
      if [ "${KUSTOMER_TEST_SKIP_PLAIN:-0}" = 1 ]; then
        printf '# %s: left out (it runs unwrapped: make test runs it)\n' "$f"
      else
        run_suite "$f" "$PYTHON" "$f"
      fi ;;
    *) run_suite "$f" run_python "$f" "$so" ;;
  esac
done

# 7. Last: the API key in no error, stored row, request or output above.
run_suite "tests/check_secrets.py" "$PYTHON" tests/check_secrets.py "$KUSTOMER_TEST_ARTIFACTS"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
