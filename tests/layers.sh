#!/usr/bin/env bash
# The layers of README "Layout", checked: the core (jsnum, json, settings,
# transform) names no SQL context, virtual table or network function, and
# only src/http.c includes curl.  Prints ok/FAIL lines; exit 1 on failure.
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
core="src/jsnum.c src/json.c src/settings.c src/transform.c"
status=0
# shellcheck disable=SC2086
bad=$(grep -ln 'sqlite3_context\|sqlite3_vtab\|KHttp\|kustomer_http_\|kustomer_api_\|kustomer_limiter_' $core)
if [ -n "$bad" ]; then
  echo "FAIL layers: the core uses the SQL surface or the network: $bad"
  status=1
else
  echo "ok layers: the core ($core) names no sqlite3_context, vtab or network"
fi
bad=$(grep -l '#include <curl/' src/*.c src/*.h kustomer_ext.c | grep -v '^src/http.c$')
if [ -n "$bad" ]; then
  echo "FAIL layers: curl is included outside src/http.c: $bad"
  status=1
else
  echo "ok layers: only src/http.c includes curl"
fi
exit $status
