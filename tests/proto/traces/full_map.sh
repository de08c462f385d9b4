#!/bin/sh
# SPDX-License-Identifier: MIT
# Regression: apf-trace-check must end with a clear verdict on traces that fill the checker's
# per-vCPU token map completely (it used to hang for ever: the map's remove scanned for an
# empty entry that a full map does not have). Every run is bounded by `timeout`.
#   full_map.sh APF_TRACE_CHECK TRACES_DIR
set -u
chk=$1
dir=$2
tmp=$(mktemp "${TMPDIR:-/tmp}/apf-full-map.XXXXXX") || exit 1
trap 'rm -f "$tmp" "$tmp.out"' EXIT INT TERM
fails=0

# expect RC PATTERN ARGS...: runs the checker (20 s at most), checks exit status and output.
expect() {
    want_rc=$1
    pattern=$2
    shift 2
    timeout 20 "$chk" "$@" >"$tmp.out" 2>&1
    rc=$?
    if [ "$rc" = 124 ]; then
        echo "FAIL: apf-trace-check $*: no verdict after 20 s (hang)"
        fails=$((fails + 1))
    elif [ "$rc" != "$want_rc" ] || ! grep -q -- "$pattern" "$tmp.out"; then
        echo "FAIL: apf-trace-check $*: exit $rc (want $want_rc), output:"
        cat "$tmp.out"
        fails=$((fails + 1))
    else
        echo "ok: exit $rc: $(cat "$tmp.out")"
    fi
}

# 8,196 lines: enable, wake-all, ACK, 8,192 outstanding "not present" (the default
# --max-outstanding 4096 gives 8,192 map entries: full), then one "page ready".
awk 'BEGIN {
    print "0 host.enable 0 0x0 0x1000 9"; print "1 host.ready 0 0xffffffff 0x0 236"
    print "2 host.ack 0 0x0 0x0 1"
    for (i = 1; i <= 8192; i++) printf "%d host.np 0 0x%x 0x0 0\n", i + 2, i * 4096
    print "9000 host.ready 0 0x1000 0x0 236"
}' >"$tmp"
[ "$(wc -l <"$tmp")" -eq 8196 ] || { echo "FAIL: generator"; exit 1; }
expect 1 "end of trace: not present never answered" "$tmp"
# the same with a checker too small for it: says so (exit 2), does not hang
expect 2 "cannot check: .*sized for (see --max-outstanding)" --max-outstanding 1 "$tmp"

# every one of the 8,192 answered in turn, each removal from a full map: consistent
awk 'BEGIN {
    print "0 host.enable 0 0x0 0x1000 9"; print "1 host.ready 0 0xffffffff 0x0 236"
    print "2 host.ack 0 0x0 0x0 1"
    for (i = 1; i <= 8192; i++) printf "%d host.np 0 0x%x 0x0 0\n", i + 2, i * 4096
    for (i = 1; i <= 8192; i++) {
        printf "%d host.ready 0 0x%x 0x0 236\n", 9000 + 2 * i, i * 4096
        printf "%d host.ack 0 0x0 0x0 1\n", 9001 + 2 * i
    }
}' >"$tmp"
expect 0 "24579 events, 1 vCPUs: consistent" "$tmp"

# the smallest map (2 entries), full after the second "not present" of this trace
expect 1 "line 8: .*second page ready before the guest ACKed the first" --max-outstanding 1 \
    "$dir/bad_second_ready_before_ack.txt"

[ "$fails" = 0 ] || exit 1
echo "full_map: all verdicts in time"
