#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# apf-postcopy --transport (issue 11): every wire end to end with real userfaultfd pages
# (or the presence map where userfaultfd is unavailable), the protocol trace checked, and the
# per-"page ready" costs reported: 1 ACK exit each on the slot transports, none on the ring
# transports, at most one notification each.
#   run_transports.sh PATH/TO/apf-postcopy WORK_DIR
set -u
prog=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
fail=0
small=(--memory-size 4M --accesses 3000 --tasks 4 --compute 20 --latency fixed:100 --no-progress
  --modes apf --json)
check() {
  local what=$1
  shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}
field() { grep -o "\"$2\": [^,}]*" "$1" | head -n1 | sed 's/.*: //'; }
for t in kvm-x86 kvm-arm64 xen mmio s390; do
  "$prog" "${small[@]}" --transport "$t" --trace "$work/$t.trace" >"$work/$t.json" 2>"$work/$t.err"
  rc=$?
  check "$t: exit 0 (rc=$rc)" test $rc -eq 0
  check "$t: apf ok" grep -q '"ok": true' "$work/$t.json"
  check "$t: transport in the config" grep -q "\"transport\": \"$t\"" "$work/$t.json"
  acks=$(field "$work/$t.json" ack_exits_per_ready)
  notes=$(field "$work/$t.json" notifications_per_ready)
  case $t in
    kvm-*) check "$t: one ACK exit per page ready ($acks)" test "$acks" = 1.000
           check "$t: one notification per page ready ($notes)" test "$notes" = 1.000 ;;
    *)     check "$t: no ACK exit ($acks)" test "$acks" = 0.000
           check "$t: at most one notification per page ready ($notes)" \
             awk -v n="$notes" 'BEGIN { exit !(n > 0 && n <= 1) }' ;;
  esac
  check "$t: trace checked" test "$(field "$work/$t.json" trace_events)" -gt 0
done
"$prog" --transport kvm-s390 >"$work/bad.out" 2>"$work/bad.err"
rc=$?
check "bad --transport: exit 2 (rc=$rc)" test $rc -eq 2
check "bad --transport: named" grep -q -- "--transport" "$work/bad.err"
exit $fail
