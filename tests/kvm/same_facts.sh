#!/bin/sh
# SPDX-License-Identifier: MIT
# The same guest kernel against both hosts of the protocol: Linux KVM's in-kernel APF and
# libapf-host embedded in the VMM (behind KVM's MSR filter). The guest-visible facts of the
# enable, the wake-all, the ACK and the EOI, and the take-down, must be reported identically
# (same check, same values); the libapf-host run must also pass its sleep/wake checks.
#
#   same_facts.sh APF_KVM_TEST KERNEL WORK_DIR
#
# Exit 77 when either host cannot run here.
set -u
test_bin=$1 kernel=$2 work=$3
mkdir -p "$work"
for h in kvm libapf; do
  "$test_bin" --kernel "$kernel" --check --host "$h" --timeout 25 > "$work/$h.out" 2>&1
  rc=$?
  [ "$rc" = 77 ] && { echo "same_facts: --host $h cannot run here:"; tail -n 3 "$work/$h.out"; exit 77; }
  [ "$rc" = 0 ] || { echo "same_facts: --host $h failed ($rc):"; grep -E 'check: FAIL|^error|SKIP' "$work/$h.out"; exit 1; }
done
n=0 same=0
while IFS= read -r title; do
  n=$((n + 1))
  a=$(grep -F "check: PASS $title" "$work/kvm.out")
  b=$(grep -F "check: PASS $title" "$work/libapf.out")
  if [ -n "$a" ] && [ "$a" = "$b" ]; then
    same=$((same + 1))
  else
    echo "same_facts: DIFFERENT: $title"
    echo "  Linux KVM:   ${a:-(not passed)}"
    echo "  libapf-host: ${b:-(not passed)}"
  fi
done <<'TITLES'
guest booted, local APIC software-enabled
libapf-guest detects the feature
ASYNC_PF_INT written before ASYNC_PF_EN
the host holds INT = vector, EN still 0, right after the INT write
EN = area | ENABLED | SEND_ALWAYS | DELIVERY_AS_INT
the host (KVM, or libapf-host) reads back exactly the values written
wake-all "page ready" (0xffffffff) arrived through the IDT on the vector
guest cleared the token
ACK written once during the handler, EOI sent, vector not in service after it
runtime counters after the wake-all
remote pages read correctly (APF on) (
remote pages read correctly (APF off)
APF taken down: EN written 0 and the host holds 0
guest finished without a fatal fault
TITLES
flow=$(grep -c 'check: PASS libapf-host:' "$work/libapf.out")
echo "same_facts: $same of $n guest-visible facts identical (Linux KVM vs libapf-host);" \
     "libapf-host's sleep/wake flow: $flow checks passed"
[ "$same" = "$n" ] && [ "$flow" = 4 ]
