#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end test of apf-postcopy (needs only bash, grep and coreutils):
#   run_postcopy.sh PATH/TO/apf-postcopy WORK_DIR
# 1. every mode on a small configuration: exit 0, pages verified (the program fails loudly on
#    a checksum mismatch), host and vCPU counters agree (checked by the program), the
#    counters are those of each mode, the protocol trace passes the checker;
# 2. the software presence map instead of userfaultfd;
# 3. bad options: exit status 2 and a message naming the option;
# 4. the TCP source option end to end (a source process on 127.0.0.1), and a source with
#    another seed refused;
# 5. a source that dies mid-run: a clear error, exit 1, no hang, clean teardown;
# 6. a sweep with an SVG plot;
# 7. both host sides (event loop, worker pool) in one run, and the layout options.
# Every check is on behaviour (exit status, counters, fields present), never on a timing
# figure: latency hidden, for one, can be anything on a loaded machine, even null (sync no
# slower than ideal), so only its presence is checked.
set -u
prog=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
fail=0
small=(--memory-size 4M --accesses 3000 --tasks 4 --compute 20 --latency fixed:100 --no-progress --rounds 1)

check() { # check DESCRIPTION CONDITION...
  local what=$1
  shift
  if "$@"; then
    echo "ok   $what"
  else
    echo "FAIL $what"
    fail=1
  fi
}
json_field() { # json_field FILE MODE FIELD: the value of FIELD in MODE's object
  grep -o "{\"mode\": \"$2\"[^}]*}" "$1" | grep -o "\"$3\": [^,}]*" | head -n1 | sed 's/.*: //'
}

# ---- 1. all modes ----------------------------------------------------------------------------
"$prog" "${small[@]}" --json --trace "$work/trace.txt" >"$work/all.json" 2>"$work/all.err"
rc=$?
check "all modes exit 0 (rc=$rc)" test $rc -eq 0
check "three modes ok" test "$(grep -o '"ok": true' "$work/all.json" | wc -l)" -eq 3
check "apf: faults went async" test "$(json_field "$work/all.json" apf faults_async)" -gt 0
check "apf: ready latency measured" test "$(json_field "$work/all.json" apf ready_samples)" -gt 0
check "sync: every fault synchronous" test "$(json_field "$work/all.json" sync faults_async)" -eq 0
check "sync: faults stalled the vCPU" test "$(json_field "$work/all.json" sync faults_sync)" -gt 0
check "ideal: no fault at all" test "$(json_field "$work/all.json" ideal faults_sync)$(json_field "$work/all.json" ideal faults_async)" = "00"
check "apf and sync fetched the same pages" test "$(json_field "$work/all.json" apf pages_fetched)" -eq "$(json_field "$work/all.json" sync pages_fetched)"
check "every access completed" test "$(json_field "$work/all.json" apf accesses)" -eq 3000
check "latency hidden reported (a number, or null when not computable)" grep -Eq '"latency_hidden": ([0-9.-]|null)' "$work/all.json"
check "per-fault parts reported" grep -q '"fault_parts_us": {"faults": [1-9]' "$work/all.json"
check "floor probed" grep -q '"floor": {"exit_us": [0-9]' "$work/all.json"
check "layout reported" grep -q '"layout": {"host": "loop"' "$work/all.json"
check "trace checked" test "$(json_field "$work/all.json" apf trace_events)" -gt 0
check "trace file written" grep -q "host.np" "$work/trace.txt"
if [ -n "${TRACE_CHECK:-}" ]; then
  "$TRACE_CHECK" "$work/trace.txt" >"$work/trace-check.out"
  check "apf-trace-check agrees with the trace" grep -q consistent "$work/trace-check.out"
fi

# ---- 2. presence map ---------------------------------------------------------------------------
"$prog" "${small[@]}" --memory map --modes apf,sync --json >"$work/map.json" 2>"$work/map.err"
check "presence map: exit 0" test $? -eq 0
check "presence map used" grep -q '"memory": "presence map"' "$work/map.json"

# ---- 3. bad options ---------------------------------------------------------------------------
bad() { # bad EXPECTED_TEXT ARGS...
  local want=$1
  shift
  "$prog" "$@" >/dev/null 2>"$work/bad.err"
  local rc=$?
  check "bad option $* -> exit 2 naming it" bash -c "test $rc -eq 2 && grep -q -- '$want' '$work/bad.err'"
}
bad --vcpus --vcpus 0
bad --pattern --pattern diagonal
bad --latency --latency gaussian:3
bad --memory-size --memory-size 3000
bad --modes --modes apf,fast
bad "needs --sweep" --plot x.svg
bad "unknown option" --frobnicate
bad "unexpected argument" extra

# ---- 4. TCP source -----------------------------------------------------------------------------
start_source() { # start_source ARGS...: sets src_pid and src_port
  "$prog" --source-listen 0 "$@" >"$work/src.out" 2>"$work/src.err" &
  src_pid=$!
  src_port=
  for _ in $(seq 100); do
    src_port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/src.out")
    [ -n "$src_port" ] && return 0
    sleep 0.1
  done
  return 1
}
start_source --memory-size 4M --seed 7 --latency fixed:100
check "source process listening" test -n "$src_port"
"$prog" "${small[@]}" --seed 7 --source "127.0.0.1:$src_port" --json >"$work/tcp.json" 2>"$work/tcp.err"
check "TCP source: all modes exit 0" test $? -eq 0
check "TCP source: three modes ok" test "$(grep -o '"ok": true' "$work/tcp.json" | wc -l)" -eq 3
check "TCP source: pages came over the wire" test "$(json_field "$work/tcp.json" apf pages_fetched)" -gt 0
"$prog" "${small[@]}" --seed 8 --modes apf --source "127.0.0.1:$src_port" >/dev/null 2>"$work/seed.err"
rc=$?
check "TCP source with another seed refused (rc=$rc)" bash -c "test $rc -eq 1 && grep -qi seed '$work/seed.err'"
kill "$src_pid" 2>/dev/null
wait "$src_pid" 2>/dev/null

# ---- 5. the source dies mid-run ------------------------------------------------------------------
# 64 MiB at 2 ms a page, 4 in flight: at least 8 s of fetching, so the kill at 1.5 s always
# lands mid-run, however fast or loaded the machine (the run ends within the 5 s deadline)
start_source --memory-size 64M --seed 3 --latency fixed:2000
check "second source process listening" test -n "$src_port"
start=$(date +%s)
"$prog" --memory-size 64M --accesses 200000 --tasks 4 --compute 20 --seed 3 --modes apf --no-progress --rounds 1 \
  --source "127.0.0.1:$src_port" >"$work/dead.out" 2>"$work/dead.err" &
client=$!
sleep 1.5
kill -9 "$src_pid"
wait "$src_pid" 2>/dev/null
# bounded: every fetch has a 5 s deadline; allow generous slack on a loaded machine
for _ in $(seq 600); do
  kill -0 "$client" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$client" 2>/dev/null; then
  check "source death: the run ends (it hung)" false
  kill -9 "$client"
fi
wait "$client"
rc=$?
check "source death: exit 1 (rc=$rc, $(( $(date +%s) - start )) s)" test $rc -eq 1
check "source death: clear error" grep -qi "source" "$work/dead.err"
check "source death: clean teardown (no leak reported)" bash -c "! grep -q leaked '$work/dead.err' '$work/dead.out'"

# ---- 6. sweep and plot ------------------------------------------------------------------------------
"$prog" --memory-size 2M --accesses 600 --compute 20 --latency fixed:100 --sweep latency --rounds 1 --host both --plot "$work/sweep.svg" --no-progress >"$work/sweep.out" 2>"$work/sweep.err"
check "sweep: exit 0" test $? -eq 0
check "sweep: table" grep -q "hidden" "$work/sweep.out"
check "sweep: SVG plot" grep -q "<svg" "$work/sweep.svg"
check "sweep: a curve per host" test "$(grep -c '<polyline' "$work/sweep.svg")" -eq 4

# ---- 7. both hosts, rounds, layouts ------------------------------------------------------------
"$prog" "${small[@]}" --rounds 2 --host both --json >"$work/both.json" 2>"$work/both.err"
check "both hosts: exit 0" test $? -eq 0
check "both hosts: 2 rounds x 4 runs ok" test "$(grep -o '"ok": true' "$work/both.json" | wc -l)" -eq 8
check "both hosts: loop and pool runs" bash -c "grep -q '\"host\": \"loop\"' '$work/both.json' && grep -q '\"host\": \"pool\"' '$work/both.json'"
check "both hosts: the same pages fetched" test "$(grep -o '"pages_fetched": [0-9]*' "$work/both.json" | sort -u | grep -vc ': 0$')" -eq 1
"$prog" "${small[@]}" --modes apf --pin off --spin off >"$work/nopin.out" 2>&1
check "--pin off --spin off: exit 0" test $? -eq 0
check "--pin off --spin off: said so" grep -q "no spinning (--spin off)" "$work/nopin.out"
"$prog" "${small[@]}" --modes apf --pin on --spin on --host pool >"$work/pin.out" 2>&1
check "--pin on --spin on --host pool: exit 0" test $? -eq 0
bad --rounds --rounds 0
bad --host --host threads
bad --spin --spin maybe

[ $fail -eq 0 ] && echo "postcopy end to end: all checks passed"
exit $fail
