#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# How kvm_written.*.txt and bad_kvm_*.txt were written: KVM tracepoint lines to the print
# formats of events/kvm/<name>/format (Linux 6.18), as tracefs and `trace-cmd report` print
# them. Not run by the tests (the files are checked in, with a comment header added); kept to
# show, and redo, what each trace contains.
#   python3 make_traces.py written tracefs|report
#   python3 make_traces.py bad NAME tracefs|report
import sys
# Writes KVM tracepoint lines to the exact print formats (tracefs "trace" and trace-cmd report)
def line(fmt, task, pid, cpu, t, ev, body):
    sec = int(t); us = round((t - sec) * 1e6)
    if fmt == 'tracefs':
        return " %16s-%-7d [%03d] ..... %5d.%06d: %s: %s" % (task, pid, cpu, sec, us, ev, body)
    else:
        return "%16s-%-5d [%03d] %5d.%06d: %-20s %s" % (task, pid, cpu, sec, us, ev + ':', body)

def hx(v, fmt):
    # kernel %#llx prints 0 as 0x0; trace-cmd (libc printf) as 0
    if v == 0 and fmt == 'report': return "0"
    return "%#x" % v

def render(events, fmt):
    out = []
    if fmt == 'tracefs':
        out += ["# tracer: nop", "#", "# entries-in-buffer/entries-written: %d/%d   #P:2" % (len(events), len(events)), "#",
                "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION", "#              | |         |   |||||     |         |"]
    else:
        out += ["cpus=2"]
    for (t, task, pid, cpu, ev, args) in events:
        h = lambda v: hx(v, fmt)
        if ev in ('kvm_try_async_get_page', 'kvm_async_pf_repeated_fault'):
            body = "gva = %s, gfn = %s" % (h(args[0]), h(args[1]))
        elif ev in ('kvm_async_pf_not_present', 'kvm_async_pf_ready'):
            body = "token %s gva %s" % (h(args[0]), h(args[1]))
        elif ev == 'kvm_async_pf_completed':
            body = "gva %s address %s" % (h(args[0]), h(args[1]))
        elif ev == 'kvm_inj_exception':
            body = args[0]
        elif ev == 'kvm_entry':
            body = "vcpu %d, rip 0x%x intr_info 0x%08x error_code 0x%08x" % (args[0], args[1], 0, 0)
        elif ev == 'kvm_userspace_exit':
            body = "reason %s (%d)" % (args[0], args[1])
        elif ev == 'kvm_msr':
            body = "msr_%s %x = 0x%x" % ('write' if args[0] else 'read', args[1], args[2])
        else:
            body = args[0]
        out.append(line(fmt, task, pid, cpu, t, ev, body))
    return "\n".join(out) + "\n"

V0 = ('qemu-system-x86', 4242, 0)   # vCPU 0 thread
V1 = ('qemu-system-x86', 4243, 1)   # vCPU 1 thread
W = ('kworker/1:2', 88, 1)
EN, INT, ACK = 0x4b564d02, 0x4b564d06, 0x4b564d07
def e(t, who, ev, *args): return (t, who[0], who[1], who[2], ev, args)


def written(fmt):
    global t
    ev = []
    t = 100.0
    def at(dt=0.00001):
        global t; t += dt; return t
    # boot: both vCPUs enter, enable APF (INT then EN), KVM queues the wake-all; guest ACKs
    for V, vid in ((V0, 0), (V1, 1)):
        ev.append(e(at(), V, 'kvm_entry', vid, 0xffffffff81000000))
        ev.append(e(at(), V, 'kvm_msr', 1, INT, 0xec))
        ev.append(e(at(), V, 'kvm_msr', 1, EN, 0x7f000 | 0x0b))
        ev.append(e(at(), V, 'kvm_async_pf_ready', 0xffffffff, 0))
        ev.append(e(at(), V, 'kvm_entry', vid, 0xffffffff81000010))
        ev.append(e(at(), V, 'kvm_msr', 1, ACK, 1))
    ev.append(e(at(), V0, 'kvm_exit', 'reason EPT_VIOLATION rip 0x401000 info 184 0'))   # skipped
    # vCPU 0: two async faults, delivered
    ev.append(e(at(), V0, 'kvm_try_async_get_page', 0x40000000, 0x40000))
    ev.append(e(at(), V0, 'kvm_async_pf_not_present', 0x1000, 0x40000000))
    ev.append(e(at(), V0, 'kvm_inj_exception', '#PF (0x0)'))
    ev.append(e(at(), V0, 'kvm_entry', 0, 0x401000))
    ev.append(e(at(), V0, 'kvm_try_async_get_page', 0x40001000, 0x40001))
    ev.append(e(at(), V0, 'kvm_async_pf_not_present', 0x2000, 0x40001000))
    ev.append(e(at(), V0, 'kvm_inj_exception', '#PF (0x0)'))
    ev.append(e(at(), V0, 'kvm_entry', 0, 0x401000))
    # vCPU 1: one async fault, then the same frame again: KVM dedups it (repeated fault, halt)
    ev.append(e(at(), V1, 'kvm_try_async_get_page', 0x40002000, 0x40002))
    ev.append(e(at(), V1, 'kvm_async_pf_not_present', 0x1001, 0x40002000))
    ev.append(e(at(), V1, 'kvm_inj_exception', '#PF (0x0)'))
    ev.append(e(at(), V1, 'kvm_entry', 1, 0x402000))
    ev.append(e(at(), V1, 'kvm_page_fault', 'vcpu 1 rip 0x402008 address 0x0000000040002000 error_code 0x184'))  # skipped
    ev.append(e(at(), V1, 'kvm_try_async_get_page', 0x40002000, 0x40002))
    ev.append(e(at(), V1, 'kvm_async_pf_repeated_fault', 0x40002000, 0x40002))
    # vCPU 0: a try that finds no async work possible (queue full): synchronous fallback
    ev.append(e(at(), V0, 'kvm_try_async_get_page', 0x40003000, 0x40003))
    ev.append(e(at(), V0, 'kvm_entry', 0, 0x401000))
    # completions on a worker, readies in completion order, one at a time with ACKs
    ev.append(e(at(0.01), W, 'kvm_async_pf_completed', 0x40001000, 0x7f1234001000))
    ev.append(e(at(), V0, 'kvm_async_pf_ready', 0x2000, 0x40001000))
    ev.append(e(at(), V0, 'kvm_entry', 0, 0x401100))
    ev.append(e(at(), W, 'kvm_async_pf_completed', 0x40000000, 0x7f1234000000))
    ev.append(e(at(), W, 'kvm_async_pf_completed', 0x40002000, 0x7f1234002000))
    ev.append(e(at(), V1, 'kvm_async_pf_ready', 0x1001, 0x40002000))
    ev.append(e(at(), V1, 'kvm_entry', 1, 0x402100))
    ev.append(e(at(), V0, 'kvm_msr', 1, ACK, 1))
    ev.append(e(at(), V0, 'kvm_async_pf_ready', 0x1000, 0x40000000))
    ev.append(e(at(), V0, 'kvm_entry', 0, 0x401100))
    ev.append(e(at(), V0, 'kvm_msr', 1, ACK, 1))
    ev.append(e(at(), V1, 'kvm_msr', 1, ACK, 1))
    # vCPU 0: one more fault, then the guest re-enables APF: KVM queues a wake-all, and still
    # sends the old token's page ready (a known difference: libapf-host drops it)
    ev.append(e(at(), V0, 'kvm_try_async_get_page', 0x40004000, 0x40004))
    ev.append(e(at(), V0, 'kvm_async_pf_not_present', 0x3000, 0x40004000))
    ev.append(e(at(), V0, 'kvm_inj_exception', '#PF (0x0)'))
    ev.append(e(at(), V0, 'kvm_entry', 0, 0x401000))
    ev.append(e(at(), V0, 'kvm_msr', 1, EN, 0x7f000 | 0x0b))
    ev.append(e(at(), V0, 'kvm_async_pf_ready', 0xffffffff, 0))
    ev.append(e(at(), V0, 'kvm_entry', 0, 0x401200))
    ev.append(e(at(), V0, 'kvm_msr', 1, ACK, 1))
    ev.append(e(at(0.01), W, 'kvm_async_pf_completed', 0x40004000, 0x7f1234004000))
    ev.append(e(at(), V0, 'kvm_async_pf_ready', 0x3000, 0x40004000))
    ev.append(e(at(), V0, 'kvm_entry', 0, 0x401300))
    # vCPU 1: APF off (EN = 0); an access to a missing page: not present traced, not
    # delivered: the artificial halt until the page is in
    ev.append(e(at(), V1, 'kvm_msr', 1, EN, 0))
    ev.append(e(at(), V1, 'kvm_entry', 1, 0x402200))
    ev.append(e(at(), V1, 'kvm_try_async_get_page', 0x40005000, 0x40005))
    ev.append(e(at(), V1, 'kvm_async_pf_not_present', 0x2001, 0x40005000))
    ev.append(e(at(0.01), W, 'kvm_async_pf_completed', 0x40005000, 0x7f1234005000))
    ev.append(e(at(), V1, 'kvm_async_pf_ready', 0x2001, 0x40005000))
    ev.append(e(at(), V1, 'kvm_entry', 1, 0x402300))
    ev.append(e(at(), V1, 'kvm_userspace_exit', 'KVM_EXIT_IO', 2))
    ev.append(e(at(), V0, 'kvm_userspace_exit', 'KVM_EXIT_HLT', 5))
    return render(ev, fmt)


def broken(name, fmt):
    t = [200.0]
    def at(dt=0.00001):
        t[0] += dt; return t[0]
    def prefix():
        return [e(at(), V0, 'kvm_entry', 0, 0x401000), e(at(), V0, 'kvm_msr', 1, INT, 0xec),
                e(at(), V0, 'kvm_msr', 1, EN, 0x7f00b), e(at(), V0, 'kvm_async_pf_ready', 0xffffffff, 0),
                e(at(), V0, 'kvm_msr', 1, ACK, 1)]
    def fault(tok, gva):
        return [e(at(), V0, 'kvm_try_async_get_page', gva, gva >> 12),
                e(at(), V0, 'kvm_async_pf_not_present', tok, gva),
                e(at(), V0, 'kvm_inj_exception', '#PF (0x0)'), e(at(), V0, 'kvm_entry', 0, 0x401000)]
    ev = prefix()
    if name == 'duplicate_token':       # the same token twice while outstanding
        ev += fault(0x1000, 0x40000000) + fault(0x1000, 0x40001000)
    elif name == 'ready_without_np':    # a page ready for a token KVM never sent
        ev += fault(0x1000, 0x40000000)
        ev += [e(at(), W, 'kvm_async_pf_completed', 0x40000000, 0x7f0000000000),
               e(at(), V0, 'kvm_async_pf_ready', 0x1000, 0x40000000), e(at(), V0, 'kvm_msr', 1, ACK, 1),
               e(at(), V0, 'kvm_async_pf_ready', 0x5000, 0x40004000)]
    elif name == 'two_readies_without_ack':
        ev += fault(0x1000, 0x40000000) + fault(0x2000, 0x40001000)
        ev += [e(at(), W, 'kvm_async_pf_completed', 0x40000000, 0x7f0000000000),
               e(at(), W, 'kvm_async_pf_completed', 0x40001000, 0x7f0000001000),
               e(at(), V0, 'kvm_async_pf_ready', 0x1000, 0x40000000),
               e(at(), V0, 'kvm_entry', 0, 0x401000),
               e(at(), V0, 'kvm_async_pf_ready', 0x2000, 0x40001000)]
    elif name == 'ready_before_completion':
        ev += fault(0x1000, 0x40000000)
        ev += [e(at(), V0, 'kvm_async_pf_ready', 0x1000, 0x40000000),
               e(at(), W, 'kvm_async_pf_completed', 0x40000000, 0x7f0000000000)]
    elif name == 'no_dedup':            # a second not present for a frame in flight
        ev += fault(0x1000, 0x40000000) + fault(0x2000, 0x40000008)
    elif name == 'token_format':        # vCPU 0's tokens must end in 0x000 (id << 12 | vcpu_id)
        ev += fault(0x1003, 0x40000000)
    elif name == 'np_while_off':        # delivered although the guest turned APF off
        ev += [e(at(), V0, 'kvm_msr', 1, EN, 0)] + fault(0x1000, 0x40000000)
    elif name == 'halt_never_woken':    # an artificial halt and the trace ends
        ev += [e(at(), V0, 'kvm_msr', 1, EN, 0), e(at(), V0, 'kvm_try_async_get_page', 0x40000000, 0x40000),
               e(at(), V0, 'kvm_async_pf_not_present', 0x1000, 0x40000000),
               e(at(), W, 'kvm_async_pf_completed', 0x40000000, 0x7f0000000000)]
    elif name == 'unanswered':          # delivered, completed, never answered
        ev += fault(0x1000, 0x40000000) + [e(at(), W, 'kvm_async_pf_completed', 0x40000000, 0x7f0000000000)]
    out = render(ev, fmt)
    if name == 'malformed':  # the first lines of "unanswered", then a truncated ready line
        out = "\n".join(render(ev + fault(0x1000, 0x40000000) + [e(at(), W, "kvm_async_pf_completed", 0x40000000, 0x7f0000000000)], fmt).split("\n")[:14]) + \
            "\n qemu-system-x86-4242    [000] .....   200.000150: kvm_async_pf_ready: token 0x1000 gva\n"
    return out


if __name__ == '__main__':
    if sys.argv[1] == 'written':
        sys.stdout.write(written(sys.argv[2]))
    else:
        sys.stdout.write(broken(sys.argv[2], sys.argv[3]))
