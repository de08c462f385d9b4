#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs a kvm test and dumps what it saw, so a run on any machine (hardware KVM included) can
# be checked with the same tool:
#
#   run_traced.sh APF_TRACE_CHECK OUT -- COMMAND [ARG...]
#
# Where tracefs can be used (root), COMMAND runs under record-kvm-trace.sh: OUT.tracefs.txt
# (and OUT.report.txt with trace-cmd) hold Linux KVM's tracepoints; otherwise it runs as is.
# A libapf-format trace the command wrote to OUT.apf.txt is checked too. Exit status: the
# command's (77 = skip), or 1 if a dumped trace fails apf-trace-check.
set -u
check=$1 out=$2
shift 2
[ "${1:-}" = "--" ] && shift
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$(dirname "$out")"
rm -f "$out.tracefs.txt" "$out.report.txt" "$out.dat" "$out.apf.txt"
rc=0
if [ "$(id -u)" = 0 ]; then
  sh "$here/record-kvm-trace.sh" "$out" -- "$@" || rc=$?
  if [ "$rc" = 77 ] && [ ! -f "$out.tracefs.txt" ]; then
    echo "run_traced: no tracefs: running without KVM's tracepoints"
    rc=0
    "$@" || rc=$?
  fi
else
  echo "run_traced: not root: running without KVM's tracepoints"
  "$@" || rc=$?
fi
[ "$rc" = 0 ] || exit "$rc"
for f in "$out.tracefs.txt" "$out.report.txt" "$out.apf.txt"; do
  [ -f "$f" ] || continue
  if "$check" "$f" > "$f.check" 2>&1; then
    echo "run_traced: $(basename "$f"): $(head -n 1 "$f.check")"
  else
    echo "run_traced: $(basename "$f") FAILS the checker:"
    cat "$f.check"
    exit 1
  fi
done
exit 0
