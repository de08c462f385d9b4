#!/bin/sh
# SPDX-License-Identifier: MIT
# Records Linux KVM's async page fault tracepoints while a command runs, in a tracefs
# instance of its own (the global trace buffer is not touched):
#
#   tests/kvm/record-kvm-trace.sh OUT -- COMMAND [ARG...]
#
# writes OUT.tracefs.txt (the instance's `trace` file) and, where trace-cmd is installed,
# OUT.dat (`trace-cmd extract`) and OUT.report.txt (`trace-cmd report`). Check them with
# `apf-trace-check OUT.tracefs.txt` (format detected). Exit status: the command's; 77 when
# tracefs cannot be used (not root, no tracefs, no kvm events). Needs root.
set -u
[ $# -ge 3 ] && [ "$2" = "--" ] || { echo "usage: $0 OUT -- COMMAND [ARG...]" >&2; exit 2; }
out=$1
shift 2

tracefs=
for d in /sys/kernel/tracing /sys/kernel/debug/tracing; do
  if [ -d "$d/instances" ]; then tracefs=$d; break; fi
done
if [ -z "$tracefs" ] && [ -d /sys/kernel/tracing ] && [ "$(id -u)" = 0 ]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null && tracefs=/sys/kernel/tracing
fi
if [ -z "$tracefs" ] || [ ! -d "$tracefs/events/kvm/kvm_async_pf_ready" ]; then
  echo "record-kvm-trace: no tracefs with KVM events (root? kvm module?)" >&2
  exit 77
fi
# Two instances: the vCPU-side events of COMMAND's threads only (set_event_pid, with
# event-fork for the threads it creates), and the completions, which KVM's worker threads
# emit (unfiltered: record on an otherwise idle KVM, another VM's async completions would
# mix in).
name=apf-record-$$
inst=$tracefs/instances/$name
winst=$tracefs/instances/$name-workers
mkdir "$inst" 2>/dev/null && mkdir "$winst" 2>/dev/null ||
  { rmdir "$inst" 2>/dev/null; echo "record-kvm-trace: cannot create $inst" >&2; exit 77; }
cleanup() {
  for d in "$inst" "$winst"; do
    [ -d "$d" ] && { echo 0 > "$d/tracing_on"; rmdir "$d"; } 2>/dev/null
  done
}
trap cleanup EXIT INT TERM
for d in "$inst" "$winst"; do echo 8192 > "$d/buffer_size_kb" 2>/dev/null; done
for e in kvm_try_async_get_page kvm_async_pf_not_present kvm_async_pf_ready \
         kvm_async_pf_repeated_fault kvm_inj_exception kvm_entry kvm_userspace_exit kvm_msr; do
  [ -d "$inst/events/kvm/$e" ] && echo 1 > "$inst/events/kvm/$e/enable"
done
echo 1 > "$winst/events/kvm/kvm_async_pf_completed/enable"
echo 1 > "$inst/options/event-fork"
# the command replaces a shell whose pid ($$) is the filter
sh -c 'echo $$ > "$1/set_event_pid" && echo 1 > "$1/tracing_on" && echo 1 > "$2/tracing_on" &&
       shift 2 && exec "$@"' sh "$inst" "$winst" "$@"
rc=$?
echo 0 > "$inst/tracing_on"
echo 0 > "$winst/tracing_on"
# merge the two by timestamp (the column "seconds.fraction:")
{
  grep '^#' "$inst/trace"
  cat "$inst/trace" "$winst/trace" | grep -v '^#' |
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+:$/) { print $i "\t" $0; next } }' |
    sort -s -n -k1,1 | cut -f2-
} > "$out.tracefs.txt"
if command -v trace-cmd >/dev/null 2>&1; then
  # `trace-cmd record` needs to write kernel.ftrace_enabled, which containers may refuse;
  # extract reads the instances' buffers as they are (report merges them by time).
  if trace-cmd extract -B "$name" -B "$name-workers" -o "$out.dat" >/dev/null 2>&1; then
    trace-cmd report -i "$out.dat" > "$out.report.txt" 2>/dev/null
  else
    echo "record-kvm-trace: trace-cmd extract failed; tracefs text only" >&2
  fi
fi
if grep -q 'LOST' "$out.tracefs.txt"; then
  echo "record-kvm-trace: events were lost (buffer too small)" >&2
fi
exit $rc
