#!/bin/sh
# SPDX-License-Identifier: MIT
# Exhaustive SPIN runs of tests/model/apf.pml: every small configuration must verify with 0
# errors; every mutation (a historical KVM bug re-introduced) must be caught. Prints one line
# per run; exit 1 if a configuration fails or a mutation survives.
#   tests/model/check.sh [WORK_DIR]
# QUICK=1 (CI): the no-throttle transport without the offline cycle (its offline paths are
# the slot's and the ring's, checked with it); everything else as in the full run.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-${TMPDIR:-/tmp}/apf-model}
mkdir -p "$work"
cp "$here/apf.pml" "$work/"
cd "$work"
command -v spin >/dev/null || { echo "spin not installed"; exit 77; }
fail=0

# run NAME EXPECT DEFINES: EXPECT = pass (0 errors) or caught (an error found)
run() {
  name=$1 expect=$2 defs=$3
  spin -a $defs apf.pml >/dev/null
  cc -O1 -DSAFETY -DNOREDUCE -DCOLLAPSE -w -o pan pan.c
  t0=$(date +%s)
  ./pan -m4000 -w24 >pan.out 2>&1 || true
  secs=$(( $(date +%s) - t0 ))
  states=$(sed -n 's/^ *\([0-9]*\) states, stored.*/\1/p' pan.out)
  errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out)
  what=$(grep -m1 -E '^pan:1: ' pan.out | sed 's/^pan:1: //; s/ (at depth [0-9]*)//' || true)
  if grep -q 'max search depth too small' pan.out; then errors=depth; fi
  if [ "$expect" = pass ] && [ "$errors" = 0 ]; then verdict="verified, 0 errors"
  elif [ "$expect" = caught ] && [ "$errors" != 0 ] && [ "$errors" != depth ]; then verdict="CAUGHT: $what"
  else verdict="UNEXPECTED (errors $errors): $what"; fail=1
  fi
  printf '%-34s %-44s %10s states %4ss  %s\n' "$name" "$defs" "$states" "$secs" "$verdict"
}

run "slot+ACK, 2 tasks, offline/restore" pass   "-DDELIV=1 -DNT=2 -DDIS=1 -DTOG=0"
run "slot+ACK, 2 tasks, toggles"         pass   "-DDELIV=1 -DNT=2 -DDIS=0 -DTOG=1"
run "slot+ACK, pool of 1 placeholder"    pass   "-DDELIV=1 -DNT=2 -DDIS=0 -DTOG=0 -DNPH=1"
run "ring (2 entries), 2 tasks, offline" pass   "-DDELIV=2 -DNT=2 -DDIS=1 -DTOG=0 -DRSZ=2"
run "ring (2 entries), toggles"          pass   "-DDELIV=2 -DNT=2 -DDIS=0 -DTOG=1 -DRSZ=2"
if [ "${QUICK:-0}" = 1 ]; then
run "no throttle, 2 tasks"               pass   "-DDELIV=3 -DNT=2 -DDIS=0 -DTOG=0"
else
run "no throttle, 2 tasks, offline"      pass   "-DDELIV=3 -DNT=2 -DDIS=1 -DTOG=0"
fi
run "slot+ACK, 2 vCPUs"                  pass   "-DDELIV=1 -DNV=2 -DNT=1 -DDIS=0 -DTOG=0"
run "ring, 2 vCPUs"                      pass   "-DDELIV=2 -DNV=2 -DNT=1 -DDIS=0 -DTOG=0"
run "MUT no barrier before kick check"   caught "-DDELIV=1 -DNT=2 -DDIS=0 -DTOG=0 -DMUT_NO_BARRIER"
run "MUT ready dropped on paging toggle" caught "-DDELIV=1 -DNT=2 -DDIS=0 -DTOG=1 -DMUT_PAGING_DROP"
run "MUT wake-all leaves placeholders"   caught "-DDELIV=1 -DNT=2 -DDIS=1 -DTOG=0 -DMUT_WAKEALL_PH"
run "MUT ready to a disabled irqchip"    caught "-DDELIV=1 -DNT=2 -DDIS=0 -DTOG=1 -DMUT_IRQCHIP"
run "MUT ready to a disabled irqchip (ring)" caught "-DDELIV=2 -DNT=2 -DDIS=0 -DTOG=1 -DMUT_IRQCHIP"
[ "$fail" = 0 ] && echo "model: all configurations verified, all mutations caught"
exit $fail
