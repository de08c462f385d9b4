/* SPDX-License-Identifier: MIT */
/* Decoding the guest's reports, and the run's summary. */
#include "facts.h"

#include <inttypes.h>
#include <string.h>

#include "apf/proto.h"

static double ms_since(const struct vmm_facts *f, uint64_t t)
{
    return (double)(t - f->t0_ns) / 1e6;
}

static const char *phase_name(uint32_t ph)
{
    switch (ph) {
    case GABI_PHASE_APF_ON:
        return "APF on";
    case GABI_PHASE_SIM_HOST:
        return "APF on, libapf-host";
    case GABI_PHASE_APF_OFF:
        return "APF off";
    default:
        return "?";
    }
}

static const char *msr_name(uint32_t msr)
{
    switch (msr) {
    case APF_KVM_MSR_ASYNC_PF_EN:
        return "ASYNC_PF_EN";
    case APF_KVM_MSR_ASYNC_PF_INT:
        return "ASYNC_PF_INT";
    case APF_KVM_MSR_ASYNC_PF_ACK:
        return "ASYNC_PF_ACK";
    default:
        return "?";
    }
}

static void on_wrmsr(struct vmm_facts *f, struct vmm_vm *vm, const uint64_t *a, FILE *out)
{
    struct facts_wrmsr w = {0};
    w.seq = (uint32_t)a[0];
    w.msr = (uint32_t)a[1];
    w.value = a[2];
    w.rc = (int64_t)a[3];
    /* The guest is stopped at this port write: read what KVM now holds. */
    const uint32_t idx[2] = {APF_KVM_MSR_ASYNC_PF_EN, APF_KVM_MSR_ASYNC_PF_INT};
    uint64_t val[2] = {0, 0};
    w.kvm_ok = (f->get_msrs ? f->get_msrs(f->get_msrs_ctx, idx, val, 2)
                            : vmm_vm_get_msrs(vm, idx, val, 2)) == 2;
    w.kvm_en = val[0];
    w.kvm_int = val[1];
    w.kvm_isr = -1;
    uint32_t isr;
    if (w.msr == APF_KVM_MSR_ASYNC_PF_ACK &&
        vmm_vm_lapic_reg(vm, 0x100u + 0x10u * (f->vector / 32u), &isr) == 0)
        w.kvm_isr = (int)((isr >> (f->vector % 32u)) & 1u);
    if (f->n_wrmsr < FACTS_MAX_WRMSR)
        f->wrmsr[f->n_wrmsr++] = w;
    fprintf(out,
            "  wrmsr #%u %s (0x%08x) = 0x%" PRIx64 " -> %s holds: EN=0x%" PRIx64
            " INT=0x%" PRIx64 "%s%s\n",
            w.seq, msr_name(w.msr), w.msr, w.value, f->host_name ? f->host_name : "KVM",
            w.kvm_en, w.kvm_int, w.kvm_ok ? "" : " (MSR read-back failed)",
            w.kvm_isr < 0 ? ""
            : w.kvm_isr   ? "; KVM_GET_LAPIC: vector in service"
                          : "; KVM_GET_LAPIC: vector not in service");
}

void facts_on_report(struct vmm_facts *f, struct vmm_vm *vm, const struct gabi_report *r, FILE *out)
{
    const uint64_t *a = r->arg;
    uint64_t now = vmm_now_ns();
    fprintf(out, "[%9.3f ms] ", ms_since(f, now));
    switch (r->event) {
    case GABI_EV_BOOT:
        f->boot = 1;
        f->lapic_mode = (uint32_t)a[0];
        f->svr = (uint32_t)a[1];
        f->apic_id = (uint32_t)a[2];
        f->kvm_svr_ok = vmm_vm_lapic_reg(vm, 0xf0, &f->kvm_svr) == 0;
        fprintf(out, "boot: %s, SVR 0x%x (KVM_GET_LAPIC: 0x%x), APIC id %u, vector 0x%x\n",
                f->lapic_mode == GABI_LAPIC_X2APIC ? "x2APIC" : "xAPIC", f->svr, f->kvm_svr,
                f->apic_id, (uint32_t)a[3]);
        break;
    case GABI_EV_CALIB:
        if (a[0] == 0) {
            f->t_calib_begin = now;
            fprintf(out, "calibration: %" PRIu64 " iterations of dec+jnz...\n", a[1]);
        } else {
            f->t_calib_end = now;
            f->calib_done = 1;
            double ns = (double)(now - f->t_calib_begin) / (2.0 * (double)(a[1] ? a[1] : 1));
            fprintf(out, "calibration: %.1f ms, %.1f ns per instruction\n",
                    (double)(now - f->t_calib_begin) / 1e6, ns);
        }
        break;
    case GABI_EV_CPUID:
        fprintf(out,
                "guest cpuid 0x%08" PRIx64 ": eax=0x%08" PRIx64 " ebx=0x%08" PRIx64
                " ecx=0x%08" PRIx64 " edx=0x%08" PRIx64 "\n",
                a[0], a[1], a[2], a[3], a[4]);
        if (a[2] == APF_KVM_SIGNATURE_EBX && a[3] == APF_KVM_SIGNATURE_ECX &&
            a[4] == APF_KVM_SIGNATURE_EDX) {
            f->cpuid_sig_seen = 1;
            f->cpuid_sig[0] = (uint32_t)a[0];
            f->cpuid_sig[1] = (uint32_t)a[2];
            f->cpuid_sig[2] = (uint32_t)a[3];
            f->cpuid_sig[3] = (uint32_t)a[4];
        } else if (f->cpuid_sig_seen && a[0] == (uint64_t)f->cpuid_sig[0] + 1) {
            f->cpuid_feat_seen = 1;
            f->cpuid_feat = (uint32_t)a[1];
        }
        break;
    case GABI_EV_PROBE:
        f->probe_seen = 1;
        f->available = (int64_t)a[0];
        f->runtime_bytes = a[1];
        f->probe_rc = (int64_t)a[3];
        fprintf(out,
                "probe: apf_guest_init %" PRId64 ", apf_guest_available %" PRId64
                ", runtime memory %" PRIu64 " bytes, vector 0x%" PRIx64 "\n",
                f->probe_rc, f->available, f->runtime_bytes, a[2]);
        break;
    case GABI_EV_WRMSR:
        on_wrmsr(f, vm, a, out);
        break;
    case GABI_EV_ONLINE:
        f->online_seen = 1;
        f->online_rc = (int64_t)a[0];
        f->area = a[1];
        f->en_written = a[2];
        f->int_written = a[3];
        f->int_first = (uint32_t)a[4];
        f->irr_after_enable = (uint32_t)a[5];
        fprintf(out,
                "online: apf_guest_cpu_online %" PRId64 ", area 0x%" PRIx64 ", EN 0x%" PRIx64
                ", INT 0x%" PRIx64 ", INT before EN: %s, vector pending"
                " in IRR: %s\n",
                f->online_rc, f->area, f->en_written, f->int_written, f->int_first ? "yes" : "no",
                f->irr_after_enable ? "yes" : "no");
        break;
    case GABI_EV_IRQ: {
        struct facts_irq q = {.phase = f->cur_phase,
                              .vector = (uint32_t)a[0],
                              .token_before = (uint32_t)a[1],
                              .token_after = (uint32_t)a[2],
                              .woken = (int64_t)a[3],
                              .isr_before = (uint32_t)a[4],
                              .isr_after = (uint32_t)a[5],
                              .acks = (uint32_t)a[6],
                              .t_ns = now};
        if (f->n_irq < FACTS_MAX_IRQ)
            f->irq[f->n_irq++] = q;
        fprintf(out,
                "interrupt: vector 0x%x via IDT, token 0x%08x%s -> 0x%08x, woken %" PRId64
                ", ACKs %u, ISR %u -> %u after EOI\n",
                q.vector, q.token_before, q.token_before == APF_TOKEN_WAKE_ALL ? " (wake-all)" : "",
                q.token_after, q.woken, q.acks, q.isr_before, q.isr_after);
        break;
    }
    case GABI_EV_STATS: {
        uint64_t *dst = a[0] == GABI_STATS_FINAL ? f->stats_final : f->stats_wake;
        for (unsigned i = 0; i < GABI_ST_COUNT; i++)
            dst[i] = a[i];
        if (a[0] == GABI_STATS_FINAL)
            f->stats_final_seen = 1;
        else
            f->stats_wake_seen = 1;
        fprintf(out,
                "stats (%s): not_present %" PRIu64 " slept %" PRIu64 " halted %" PRIu64
                " ready %" PRIu64 " wake_all %" PRIu64 " woken %" PRIu64 " acks %" PRIu64
                " placeholders %" PRIu64 " spurious %" PRIu64 " bad_host_values %" PRIu64
                " enabled %" PRIu64 "\n",
                a[0] == GABI_STATS_FINAL ? "final" : "after wake-all", a[GABI_ST_NOT_PRESENT],
                a[GABI_ST_SLEPT], a[GABI_ST_HALTED], a[GABI_ST_READY], a[GABI_ST_WAKE_ALL],
                a[GABI_ST_WOKEN], a[GABI_ST_ACKS], a[GABI_ST_PLACEHOLDERS], a[GABI_ST_SPURIOUS],
                a[GABI_ST_BAD_HOST_VALUES], a[GABI_ST_ENABLED]);
        break;
    }
    case GABI_EV_APF_PF: {
        struct facts_pf p = {.phase = f->cur_phase,
                             .cr2 = a[0],
                             .rip = a[1],
                             .progress_before = a[2],
                             .progress_after = a[3],
                             .addr = a[4],
                             .slept = (uint32_t)a[5],
                             .t_ns = now};
        if (f->n_pf < FACTS_MAX_PF)
            f->pf[f->n_pf++] = p;
        fprintf(out,
                "not present: #PF CR2 (token) 0x%" PRIx64 " at rip 0x%" PRIx64 " reading 0x%" PRIx64
                ", slept %u, compute progress %" PRIu64 " -> %" PRIu64 "\n",
                p.cr2, p.rip, p.addr, p.slept, p.progress_before, p.progress_after);
        break;
    }
    case GABI_EV_FATAL:
        f->fatal = 1;
        memcpy(f->fatal_args, a, sizeof(f->fatal_args));
        fprintf(out,
                "FATAL: vector %" PRIu64 " error 0x%" PRIx64 " rip 0x%" PRIx64 " cr2 0x%" PRIx64
                "\n",
                a[0], a[1], a[2], a[3]);
        break;
    case GABI_EV_PHASE: {
        uint32_t ph = (uint32_t)a[0];
        if (ph == 0 || ph >= GABI_PHASES) {
            fprintf(out, "phase: unknown %u\n", ph);
            break;
        }
        struct facts_phase *p = &f->phase[ph];
        const char *name = phase_name(ph);
        if (a[1] == 0) {
            f->cur_phase = ph;
            p->begun = 1;
            p->t_begin_ns = now;
            p->np_before = a[6];
            fprintf(out, "phase %s: begin\n", name);
        } else {
            f->cur_phase = 0;
            p->ended = 1;
            p->t_end_ns = now;
            p->pages = a[2];
            p->words = a[3];
            p->bad = a[4];
            p->progress = a[5];
            p->np_after = a[6];
            fprintf(out,
                    "phase %s: %" PRIu64 " pages, %" PRIu64 " words checked, %" PRIu64
                    " wrong, %.1f ms, compute progress %" PRIu64 ", not present %" PRIu64 "\n",
                    name, p->pages, p->words, p->bad, (double)(now - p->t_begin_ns) / 1e6,
                    p->progress, p->np_after - p->np_before);
        }
        break;
    }
    case GABI_EV_LOG: {
        char text[GABI_REPORT_TEXT];
        memcpy(text, r->text, sizeof(text));
        text[sizeof(text) - 1] = '\0';
        f->logs++;
        fprintf(out, "libapf-guest log (level %" PRId64 "): %s\n", (int64_t)a[0], text);
        break;
    }
    case GABI_EV_OFFLINE:
        f->offline_seen = 1;
        f->offline_rc = (int64_t)a[0];
        f->offline_en = a[1];
        fprintf(out, "offline: apf_guest_cpu_offline %" PRId64 ", last EN written 0x%" PRIx64 "\n",
                f->offline_rc, f->offline_en);
        break;
    default:
        fprintf(out, "unknown report %u\n", r->event);
        break;
    }
}

void facts_on_announce(struct vmm_facts *f, uint64_t gpa, int64_t token, FILE *out)
{
    f->sim_announces++;
    if (token > 0 && f->n_sim_tokens < FACTS_MAX_PF)
        f->sim_tokens[f->n_sim_tokens++] = (uint32_t)token;
    fprintf(out, "[%9.3f ms] libapf-host: guest announces 0x%" PRIx64 ": ",
            ms_since(f, vmm_now_ns()), gpa);
    if (token > 0)
        fprintf(out, "\"not present\" injected, token 0x%" PRIx64 "\n", (uint64_t)token);
    else if (token == 0)
        fprintf(out, "no event (APF off, page present or already in flight)\n");
    else
        fprintf(out, "error %" PRId64 "\n", token);
}

int facts_not_present_seen(const struct vmm_facts *f)
{
    for (uint32_t i = 0; i < f->n_pf; i++)
        if (f->pf[i].phase == GABI_PHASE_APF_ON)
            return 1;
    return 0;
}

void facts_print_summary(const struct vmm_facts *f, const struct vmm_remote *remote,
                         const struct vmm_remote_stats *rs, FILE *out)
{
    fprintf(out, "\n== summary\n");
    fprintf(out,
            "KVM: KVM_CAP_ASYNC_PF %d; CPUID leaf 0x%08x \"%s\", features offered 0x%x,"
            " given 0x%x\n",
            f->cap_async_pf, f->cpuid.base, f->cpuid.signature, f->cpuid.offered, f->cpuid.given);
    if (f->calib_done)
        fprintf(out, "vCPU speed: %.1f ns per instruction (%s)\n",
                (double)(f->t_calib_end - f->t_calib_begin) /
                    (2.0 * (double)(f->calib_iters ? f->calib_iters : 1)),
                (double)(f->t_calib_end - f->t_calib_begin) /
                            (2.0 * (double)(f->calib_iters ? f->calib_iters : 1)) >
                        50.0
                    ? "instruction emulation"
                    : "native execution");
    if (f->end_msrs_ok)
        fprintf(out,
                "host MSRs at exit: ASYNC_PF_EN 0x%" PRIx64 ", ASYNC_PF_INT 0x%" PRIx64 "\n",
                f->end_en, f->end_int);
    fprintf(out,
            "remote slot: %" PRIu64 " userfaultfd faults (raised by the vCPU thread %" PRIu64
            ", by another thread %" PRIu64 "%s), %" PRIu64 " pages copied by libapf-host's completion"
            " thread; %" PRIu64 " copies, %" PRIu64 " raced, %" PRIu64 " errors\n",
            rs->faults, rs->from_vcpu, rs->from_other,
            remote->thread_ids ? "" : ", thread ids unavailable", rs->sim_copies, rs->copies,
            rs->raced, rs->errors);
    uint64_t lat = 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < remote->log_len; i++)
        if (remote->log[i].tid >= 0) {
            lat += remote->log[i].t_done_ns - remote->log[i].t_msg_ns;
            n++;
        }
    if (n > 0)
        fprintf(out,
                "remote slot: userfaultfd fault to UFFDIO_COPY done: mean %.2f ms "
                "(configured delay %.2f ms)\n",
                (double)lat / n / 1e6, (double)f->delay_us / 1e3);
    static const uint32_t order[] = {GABI_PHASE_APF_ON, GABI_PHASE_SIM_HOST, GABI_PHASE_APF_OFF};
    for (unsigned k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
        uint32_t ph = order[k];
        const struct facts_phase *p = &f->phase[ph];
        if (!p->ended)
            continue;
        fprintf(out,
                "phase %-22s: %" PRIu64 " pages in %.1f ms, compute progress %" PRIu64
                " (%.0f per page), not present %" PRIu64 "\n",
                phase_name(ph), p->pages, (double)(p->t_end_ns - p->t_begin_ns) / 1e6, p->progress,
                p->pages ? (double)p->progress / (double)p->pages : 0.0,
                p->np_after - p->np_before);
    }
    fprintf(out, "mode: %s\n",
            facts_not_present_seen(f)
                ? "KVM delivered \"not present\" to the guest (hardware KVM path)"
                : "KVM delivered no \"not present\": its remote pages were resolved "
                  "synchronously");
}
