#!/usr/bin/env bash
# Run the libFuzzer targets built in build/fuzz/ (see `make fuzz`).
#
#   tests/fuzz/run.sh [TARGET...]     (default: all six)
#
# Environment: FUZZ_SECONDS (default 60) per target.  Each target first
# replays tests/fuzz/regressions/<target>-*, then fuzzes from
# build/fuzz/corpus/<target>/ (which grows).  Crash inputs go to
# build/fuzz/artifacts/<target>/, the fuzzer's output to build/fuzz/log/.
# Prints "ok fuzz <target>: <execs> runs in <s> s" or
# "FAIL fuzz <target>: <crash file>" per target; exits 1 if any failed.
set -u
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 2
secs=${FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_functions fuzz_json fuzz_jsnum fuzz_http fuzz_sync fuzz_events)
failed=0
for t in "${targets[@]}"; do
  bin=build/fuzz/$t
  art=build/fuzz/artifacts/$t/
  log=build/fuzz/log/$t.log
  mkdir -p "$art" build/fuzz/log "build/fuzz/corpus/$t"
  maxlen=65536
  [ "$t" = fuzz_jsnum ] && maxlen=8
  if [ ! -x "$bin" ]; then
    echo "FAIL fuzz $t: $bin not built"; failed=$((failed+1)); continue
  fi
  regs=(tests/fuzz/regressions/"$t"-*)
  if [ -e "${regs[0]}" ]; then
    if ! "$bin" -timeout=10 -rss_limit_mb=2048 "${regs[@]}" > "$log.regressions" 2>&1; then
      echo "FAIL fuzz $t: regression input fails, see $log.regressions"
      failed=$((failed+1)); continue
    fi
  fi

  start=$(date +%s)
  "$bin" -max_total_time="$secs" -max_len="$maxlen" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art" \
    "build/fuzz/corpus/$t" > "$log" 2>&1
  rc=$?
  el=$(( $(date +%s) - start ))
  crash=$(grep -o "Test unit written to [^ ]*" "$log" | tail -1 | sed 's/^Test unit written to //')
  if [ $rc -ne 0 ] || [ -n "$crash" ]; then
    echo "FAIL fuzz $t: ${crash:-exit $rc, see $log}"
    failed=$((failed+1))
  else
    runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    echo "ok fuzz $t: ${runs:-?} runs in $el s"
  fi

done
[ $failed -eq 0 ]
