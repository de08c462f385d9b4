#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs every fuzz target (libFuzzer + ASan + UBSan, clang) for a bounded time, then replays
# the checked-in corpora through the same binaries. Exit 1 on any finding (crash, invariant
# violation, sanitizer report, leak, timeout); the input is kept in the work directory.
#   tests/fuzz/run.sh [SECONDS_PER_TARGET [BUILD_DIR [WORK_DIR]]]
# CI: 10 s per target. Long run (docs/hardening.md): JOBS=2 RUNS=5000000, SECONDS as a cap.
# RUNS=N stops each libFuzzer job after N executions (JOBS x RUNS per target in all).
# MERGE=1 minimises what the run found into tests/fuzz/corpus/<target>/ (to check in).
# TARGETS="kvm_x86 trace" restricts the run.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-25}
build=${2:-$top/build-fuzz}
work=${3:-${TMPDIR:-/tmp}/apf-fuzz-work}
targets=${TARGETS:-"kvm_x86 kvm_arm64 xen mmio s390 guest guest_transports restore trace trace_kvm"}
jobs=${JOBS:-1}
runs=${RUNS:--1}

cmake -S "$top" -B "$build" -DCMAKE_C_COMPILER=clang -DAPF_FUZZ=ON -DAPF_SANITIZE=address \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_SHARED_LIBS=OFF -DAPF_BUILD_DOCS=OFF \
  -DAPF_BUILD_EXAMPLES=OFF -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
build=$(cd "$build" && pwd)
mkdir -p "$work"
work=$(cd "$work" && pwd)
for t in $targets; do
  cmake --build "$build" -j "${BUILD_JOBS:-2}" --target "fuzz_$t" >/dev/null
done

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fail=0
printf '%-16s %12s %8s %8s %8s  %s\n' target executions cov ft corpus result
for t in $targets; do
  bin=$build/tests/fuzz/fuzz_$t
  mkdir -p "$work/$t" "$work/$t.artifacts"
  rm -f "$work/$t.artifacts"/fuzz-*.log
  cp "$top/tests/fuzz/corpus/$t/"* "$work/$t/" 2>/dev/null || true
  log=$work/$t.log
  rc=0
  if [ "$jobs" -gt 1 ]; then
    (cd "$work/$t.artifacts" && "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -runs="$runs" -jobs="$jobs" -workers="$jobs" "$work/$t" >"$log" 2>&1) || rc=$?
    # libFuzzer copies each job's fuzz-<j>.log into its own output when the job ends.
  else
    (cd "$work/$t.artifacts" && "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -runs="$runs" "$work/$t" >"$log" 2>&1) || rc=$?
  fi
  execs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
  last=$(grep -h -E '^#[0-9]+.*cov: ' "$log" | tail -1)
  cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
  corp=$(ls "$work/$t" | wc -l)
  if [ "$rc" = 0 ] && ! grep -q -E 'ERROR: |invariant violated' "$log"; then
    res=ok
  else
    res="FINDING (rc $rc, see $log and $work/$t.artifacts)"
    fail=1
  fi
  printf '%-16s %12s %8s %8s %8s  %s\n' "$t" "$execs" "${cov:-?}" "${ft:-?}" "$corp" "$res"
  # The checked-in corpus, replayed by the sanitizer build.
  if ! "$bin" -runs=0 "$top/tests/fuzz/corpus/$t" >"$work/$t.replay.log" 2>&1; then
    echo "$t: the checked-in corpus fails (see $work/$t.replay.log)"
    fail=1
  fi
  if [ "${MERGE:-0}" = 1 ]; then
    mkdir -p "$work/$t.min"
    "$bin" -merge=1 "$work/$t.min" "$top/tests/fuzz/corpus/$t" "$work/$t" >/dev/null 2>&1
    cp "$work/$t.min/"* "$top/tests/fuzz/corpus/$t/" 2>/dev/null || true
  fi
done
exit $fail
