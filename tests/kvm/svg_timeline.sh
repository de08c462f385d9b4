#!/bin/sh
# SPDX-License-Identifier: MIT
# The SVG timeline: apf-trace-check --svg on a Linux KVM trace and on a broken one, and the
# timeline of a short `apf-postcopy --trace` run (1 round of 3000 accesses: the default five
# rounds took 50 s); each must contain its events (one mark
# per event drawn, by kind) and render headless with rsvg-convert to a non-empty PNG of the
# SVG's size, larger than the rendering of an empty trace.
#
#   svg_timeline.sh APF_TRACE_CHECK TRACES_DIR WORK_DIR [APF_POSTCOPY]
#
# Exit 77 (skip) without rsvg-convert, unless APF_REQUIRE_RSVG=1 (CI) makes that a failure.
set -eu
check=$1 traces=$2 work=$3 postcopy=${4:-}
mkdir -p "$work"
fail() { echo "svg_timeline: FAIL: $*"; exit 1; }

# count CLASS FILE: the marks of one kind in an SVG
count() { grep -o "<g class=\"ev $1[\" ]" "$2" | wc -l | tr -d ' '; }

# 1. a KVM trace: 4 not present, 6 page ready (3 of them wake-alls), 5 completions
"$check" --svg "$work/kvm.svg" "$traces/kvm_written.tracefs.txt" >/dev/null ||
  fail "apf-trace-check --svg on a good trace"
[ "$(count host-np "$work/kvm.svg")" = 4 ] || fail "kvm.svg: host-np marks"
[ "$(count host-ready "$work/kvm.svg")" = 6 ] || fail "kvm.svg: host-ready marks"
[ "$(grep -o 'class="ev host-ready wake-all"' "$work/kvm.svg" | wc -l | tr -d ' ')" = 3 ] ||
  fail "kvm.svg: wake-all marks"
[ "$(count host-done "$work/kvm.svg")" = 5 ] || fail "kvm.svg: host-done marks"
grep -q 'no violation' "$work/kvm.svg" || fail "kvm.svg: verdict"

# 2. a broken trace: the violation marked, with its line
rc=0
"$check" --svg "$work/bad.svg" "$traces/bad_kvm_two_readies_without_ack.txt" >/dev/null || rc=$?
[ "$rc" = 1 ] || fail "broken trace: exit $rc"
grep -q 'class="violation"' "$work/bad.svg" || fail "bad.svg: no violation mark"
grep -q 'first violation (line 24): event 10 (host.ready vcpu 0 token 0x2000): second page ready' \
  "$work/bad.svg" || fail "bad.svg: violation text"

# 3. an empty trace, for the size comparison
: > "$work/empty.txt"
"$check" --svg "$work/empty.svg" "$work/empty.txt" >/dev/null || fail "empty trace"

# 4. apf-postcopy --trace: FILE.svg beside FILE
if [ -n "$postcopy" ]; then
  rm -f "$work/postcopy.trace" "$work/postcopy.trace.svg"
  "$postcopy" --rounds 1 --accesses 3000 --trace "$work/postcopy.trace" >/dev/null 2>&1 || fail "apf-postcopy --trace"
  [ -s "$work/postcopy.trace.svg" ] || fail "apf-postcopy wrote no timeline"
  # the marks of the events drawn (the first 4000 event lines)
  np=$(grep -v '^#' "$work/postcopy.trace" | head -n 4000 | grep -c ' host.np ' || true)
  [ "$np" -gt 0 ] || fail "postcopy trace has no host.np"
  [ "$(count host-np "$work/postcopy.trace.svg")" = "$np" ] || fail "postcopy.svg: host-np marks"
  gs=$(grep -v '^#' "$work/postcopy.trace" | head -n 4000 | grep -c ' guest.sleep ' || true)
  [ "$(count guest-sleep "$work/postcopy.trace.svg")" = "$gs" ] ||
    fail "postcopy.svg: guest-sleep marks"
fi

if ! command -v rsvg-convert >/dev/null 2>&1; then
  [ "${APF_REQUIRE_RSVG:-0}" = 1 ] && fail "rsvg-convert not installed"
  echo "svg_timeline: rsvg-convert not installed: SVG content checked, rendering skipped"
  exit 77
fi
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{print $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8}'; }
svg_size() { sed -n 's/.*<svg [^>]*width="\([0-9]*\)" height="\([0-9]*\)".*/\1 \2/p' "$1" | head -n 1; }
for s in kvm bad empty ${postcopy:+postcopy.trace}; do
  rsvg-convert -o "$work/$s.png" "$work/$s.svg" || fail "$s.svg does not render"
  [ -s "$work/$s.png" ] || fail "$s.png is empty"
  [ "$(png_size "$work/$s.png")" = "$(svg_size "$work/$s.svg")" ] ||
    fail "$s.png: $(png_size "$work/$s.png"), the SVG says $(svg_size "$work/$s.svg")"
  echo "svg_timeline: $s.svg rendered: $(png_size "$work/$s.png") px, $(wc -c < "$work/$s.png") bytes"
done
[ "$(wc -c < "$work/kvm.png")" -gt "$(wc -c < "$work/empty.png")" ] ||
  fail "kvm.png is no larger than an empty trace's rendering"
echo "svg_timeline: all timelines checked"
