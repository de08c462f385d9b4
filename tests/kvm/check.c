/* SPDX-License-Identifier: MIT */
/*
 * The checks of a run (--check), in three groups: what must hold on any KVM that offers APF
 * (including hosts that emulate the guest's instructions); the libapf-host's phase; and,
 * only where KVM itself delivered "page not present" to the guest (detected from the run),
 * KVM's own asynchronous path. The runtime's counters are checked against all events seen.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>

#include "apf/proto.h"
#include "facts.h"

struct checker {
    FILE *out;
    int failures;
};

static void check(struct checker *c, int ok, const char *what, const char *detail_fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void check(struct checker *c, int ok, const char *what, const char *detail_fmt, ...)
{
    fprintf(c->out, "check: %s %s", ok ? "PASS" : "FAIL", what);
    if (detail_fmt != NULL && detail_fmt[0] != '\0') {
        va_list ap;
        va_start(ap, detail_fmt);
        fprintf(c->out, " (");
        vfprintf(c->out, detail_fmt, ap);
        fprintf(c->out, ")");
        va_end(ap);
    }
    fprintf(c->out, "\n");
    if (!ok)
        c->failures++;
}

static const struct facts_wrmsr *first_write(const struct vmm_facts *f, uint32_t msr)
{
    for (uint32_t i = 0; i < f->n_wrmsr; i++)
        if (f->wrmsr[i].msr == msr)
            return &f->wrmsr[i];
    return NULL;
}

static const struct facts_irq *first_wake_all(const struct vmm_facts *f)
{
    for (uint32_t i = 0; i < f->n_irq; i++)
        if (f->irq[i].token_before == APF_TOKEN_WAKE_ALL)
            return &f->irq[i];
    return NULL;
}

/* The "page ready" interrupt that carried @p token, or NULL. */
static const struct facts_irq *irq_for_token(const struct vmm_facts *f, uint32_t token)
{
    for (uint32_t i = 0; i < f->n_irq; i++)
        if (f->irq[i].token_before == token)
            return &f->irq[i];
    return NULL;
}

/* The "not present" events of one phase: tokens well formed, each answered by its own
 * "page ready" on the vector (slot cleared, one ACK), the task slept and another made
 * progress meanwhile. */
struct pf_summary {
    uint32_t events, bad_tokens, unmatched, bad_ready, slept, progressed;
};

static struct pf_summary summarize_phase(const struct vmm_facts *f, uint32_t phase, int strict_wake)
{
    struct pf_summary s = {0};
    for (uint32_t i = 0; i < f->n_pf; i++) {
        const struct facts_pf *p = &f->pf[i];
        if (p->phase != phase)
            continue;
        s.events++;
        uint64_t t = p->cr2;
        if (t > UINT32_MAX || !apf_token_is_fault((uint32_t)t) ||
            apf_token_kvm_vcpu((uint32_t)t) != 0)
            s.bad_tokens++;
        const struct facts_irq *q = irq_for_token(f, (uint32_t)t);
        if (q == NULL)
            s.unmatched++;
        else if (q->vector != f->vector || q->token_after != APF_TOKEN_INVALID || q->acks != 1 ||
                 q->woken < 0 || (strict_wake && q->woken != 1))
            s.bad_ready++;
        if (p->slept)
            s.slept++;
        if (p->slept && p->progress_after > p->progress_before)
            s.progressed++;
    }
    return s;
}

static void check_common(struct checker *c, const struct vmm_facts *f,
                         const struct vmm_remote_stats *rs)
{
    const uint64_t want_en_flags = APF_EN_ENABLED | APF_EN_SEND_ALWAYS | APF_EN_DELIVERY_AS_INT;

    check(c, f->boot && (f->svr & 0x100u) && (!f->kvm_svr_ok || (f->kvm_svr & 0x100u)),
          "guest booted, local APIC software-enabled", "SVR 0x%x, KVM_GET_LAPIC SVR 0x%x", f->svr,
          f->kvm_svr);
    check(c,
          f->cpuid_sig_seen && f->cpuid_feat_seen &&
              ((f->cpuid_feat >> APF_KVM_FEATURE_ASYNC_PF) & 1u) &&
              ((f->cpuid_feat >> APF_KVM_FEATURE_ASYNC_PF_INT) & 1u),
          "guest CPUID: KVM signature and ASYNC_PF + ASYNC_PF_INT", "leaf 0x%x, features 0x%x",
          f->cpuid_sig[0], f->cpuid_feat);
    check(c, f->probe_seen && f->probe_rc == 0 && f->available == 1,
          "libapf-guest detects the feature", "apf_guest_available %" PRId64, f->available);

    const struct facts_wrmsr *wi = first_write(f, APF_KVM_MSR_ASYNC_PF_INT);
    const struct facts_wrmsr *we = first_write(f, APF_KVM_MSR_ASYNC_PF_EN);
    check(c, wi != NULL && we != NULL && wi->seq < we->seq && f->int_first,
          "ASYNC_PF_INT written before ASYNC_PF_EN", "INT write #%u, EN write #%u",
          wi ? wi->seq : 0, we ? we->seq : 0);
    check(c,
          wi != NULL && wi->value == f->vector && wi->kvm_ok && wi->kvm_int == f->vector &&
              wi->kvm_en == 0,
          "the host holds INT = vector, EN still 0, right after the INT write",
          "wrote 0x%" PRIx64 ", host INT 0x%" PRIx64 " EN 0x%" PRIx64, wi ? wi->value : 0,
          wi ? wi->kvm_int : 0, wi ? wi->kvm_en : 0);
    check(c,
          we != NULL && f->online_seen && f->online_rc == 0 &&
              (we->value & APF_EN_FLAGS_MASK) == want_en_flags &&
              (we->value & APF_EN_ADDR_MASK) == f->area && f->area % APF_AREA_ALIGN == 0,
          "EN = area | ENABLED | SEND_ALWAYS | DELIVERY_AS_INT",
          "wrote 0x%" PRIx64 ", area 0x%" PRIx64, we ? we->value : 0, f->area);
    check(c, we != NULL && we->kvm_ok && we->kvm_en == we->value && we->kvm_int == f->vector,
          "the host (KVM, or libapf-host) reads back exactly the values written",
          "EN 0x%" PRIx64 " / 0x%" PRIx64 ", INT 0x%" PRIx64 " / 0x%x", we ? we->kvm_en : 0,
          we ? we->value : 0, we ? we->kvm_int : 0, f->vector);

    const struct facts_irq *wa = first_wake_all(f);
    check(c, wa != NULL && wa->vector == f->vector,
          "wake-all \"page ready\" (0xffffffff) arrived through the IDT on the vector",
          "vector 0x%x", wa ? wa->vector : 0);
    check(c, wa != NULL && wa->token_after == APF_TOKEN_INVALID, "guest cleared the token",
          "token after 0x%x", wa ? wa->token_after : 0);
    /* Whether the vector shows in the ISR while it is handled depends on how the host injects
     * it (not under PVM's instruction emulation): only "not in service after EOI" is
     * required. */
    check(c, wa != NULL && wa->acks == 1 && wa->isr_after == 0,
          "ACK written once during the handler, EOI sent, vector not in service after it",
          "ACKs %u, ISR %u -> %u", wa ? wa->acks : 0, wa ? wa->isr_before : 0,
          wa ? wa->isr_after : 0);
    check(c,
          f->stats_wake_seen && f->stats_wake[GABI_ST_WAKE_ALL] == 1 &&
              f->stats_wake[GABI_ST_ACKS] == 1 && f->stats_wake[GABI_ST_ENABLED] == 1 &&
              f->stats_wake[GABI_ST_SPURIOUS] == 0 && f->stats_wake[GABI_ST_BAD_HOST_VALUES] == 0,
          "runtime counters after the wake-all",
          "wake_all %" PRIu64 ", acks %" PRIu64 ", enabled %" PRIu64 ", spurious %" PRIu64
          ", bad host values %" PRIu64,
          f->stats_wake[GABI_ST_WAKE_ALL], f->stats_wake[GABI_ST_ACKS],
          f->stats_wake[GABI_ST_ENABLED], f->stats_wake[GABI_ST_SPURIOUS],
          f->stats_wake[GABI_ST_BAD_HOST_VALUES]);

    static const struct {
        uint32_t phase;
        const char *what;
    } phases[] = {
        {GABI_PHASE_APF_ON, "remote pages read correctly (APF on)"},
        {GABI_PHASE_SIM_HOST, "remote pages read correctly (APF on, libapf-host)"},
        {GABI_PHASE_APF_OFF, "remote pages read correctly (APF off)"},
    };
    uint32_t n_phases = 0;
    for (unsigned k = 0; k < sizeof(phases) / sizeof(phases[0]); k++) {
        const struct facts_phase *p = &f->phase[phases[k].phase];
        if (phases[k].phase == GABI_PHASE_SIM_HOST && !f->sim_enabled)
            continue;
        n_phases++;
        check(c,
              p->ended && p->pages == f->pages_per_phase && p->bad == 0 &&
                  p->words == (uint64_t)f->pages_per_phase * (GABI_PAGE_SIZE / 8u),
              phases[k].what, "%" PRIu64 " pages, %" PRIu64 " words, %" PRIu64 " wrong", p->pages,
              p->words, p->bad);
    }
    check(c, rs->copies == n_phases * f->pages_per_phase && rs->errors == 0,
          "every remote page was copied in exactly once (UFFDIO_COPY)",
          "%" PRIu64 " copies for %u pages, %" PRIu64 " errors", rs->copies,
          n_phases * f->pages_per_phase, rs->errors);
    check(c,
          f->offline_seen && f->offline_rc >= 0 && f->offline_en == 0 && f->end_msrs_ok &&
              f->end_en == 0,
          "APF taken down: EN written 0 and the host holds 0", "offline %" PRId64 ", host EN 0x%" PRIx64,
          f->offline_rc, f->end_en);
    check(c, !f->fatal && f->exited && f->exit_status == 0, "guest finished without a fatal fault",
          "exit status %u", f->exit_status);
}

/* The libapf-host's phase: the guest's "not present" path against real exception and
 * interrupt delivery, with the VMM in the host's role. */
static void check_sim_host(struct checker *c, const struct vmm_facts *f)
{
    /* The "page ready" cannot beat the sleeper here: the #PF handler runs with interrupts
     * off until the task has switched away, so each ready wakes exactly one task. */
    struct pf_summary s = summarize_phase(f, GABI_PHASE_SIM_HOST, 1);
    uint32_t same = s.events == f->n_sim_tokens;
    for (uint32_t i = 0, k = 0; same && i < f->n_pf; i++)
        if (f->pf[i].phase == GABI_PHASE_SIM_HOST)
            same = f->pf[i].cr2 == f->sim_tokens[k++];
    check(c,
          f->n_sim_tokens == f->pages_per_phase && s.events == f->n_sim_tokens && same &&
              s.bad_tokens == 0,
          "libapf-host: every injected \"not present\" reached the #PF handler with its "
          "token in CR2",
          "%u injected, %u taken, %u malformed", f->n_sim_tokens, s.events, s.bad_tokens);
    check(c, s.unmatched == 0 && s.bad_ready == 0,
          "libapf-host: each token's \"page ready\" woke its sleeper via the IDT, slot "
          "cleared, one ACK",
          "%u unmatched, %u wrong", s.unmatched, s.bad_ready);
    check(c, s.events > 0 && s.slept == s.events && s.progressed == s.events,
          "libapf-host: the faulting task slept and the compute task progressed meanwhile",
          "%u of %u slept, %u with progress", s.slept, s.events, s.progressed);
    const struct facts_phase *sim = &f->phase[GABI_PHASE_SIM_HOST];
    const struct facts_phase *off = &f->phase[GABI_PHASE_APF_OFF];
    check(c, sim->progress > off->progress,
          "libapf-host: compute progress with APF exceeds APF off", "%" PRIu64 " vs %" PRIu64,
          sim->progress, off->progress);
}

/* Only where KVM itself sent "not present" (hardware virtualization). */
static void check_hardware(struct checker *c, const struct vmm_facts *f)
{
    struct pf_summary s = summarize_phase(f, GABI_PHASE_APF_ON, 0);
    check(c, s.events > 0 && s.bad_tokens == 0,
          "KVM: \"not present\" #PFs carry KVM tokens in CR2 (seq << 12 | vCPU 0)",
          "%u events, %u malformed", s.events, s.bad_tokens);
    check(c, s.unmatched == 0 && s.bad_ready == 0,
          "KVM: every token got its \"page ready\" on the vector, slot cleared, one ACK",
          "%u unmatched, %u wrong", s.unmatched, s.bad_ready);
    check(c, s.progressed > 0, "KVM: another task made progress while the faulting task slept",
          "%u of %u sleeps", s.progressed, s.events);
    const struct facts_phase *on = &f->phase[GABI_PHASE_APF_ON];
    const struct facts_phase *off = &f->phase[GABI_PHASE_APF_OFF];
    check(c, on->progress > off->progress, "KVM: compute progress with APF on exceeds APF off",
          "%" PRIu64 " vs %" PRIu64, on->progress, off->progress);
}

/* The runtime's own counters against the events the VMM saw. */
static void check_counters(struct checker *c, const struct vmm_facts *f)
{
    uint32_t readies = 0, wake_alls = 0, slept = 0;
    for (uint32_t i = 0; i < f->n_irq; i++) {
        if (f->irq[i].token_before == APF_TOKEN_WAKE_ALL)
            wake_alls++;
        else if (apf_token_is_fault(f->irq[i].token_before))
            readies++;
    }
    for (uint32_t i = 0; i < f->n_pf; i++)
        slept += f->pf[i].slept;
    const uint64_t *st = f->stats_final;
    check(c,
          f->stats_final_seen && st[GABI_ST_NOT_PRESENT] == f->n_pf && st[GABI_ST_SLEPT] == slept &&
              st[GABI_ST_READY] == readies && st[GABI_ST_WAKE_ALL] == wake_alls &&
              st[GABI_ST_ACKS] == readies + wake_alls && st[GABI_ST_LOST_WAKEUPS] == 0 &&
              st[GABI_ST_BAD_HOST_VALUES] == 0 && st[GABI_ST_SPURIOUS] == 0 &&
              st[GABI_ST_PLACEHOLDERS_IN_USE] == 0,
          "final runtime counters agree with the events seen",
          "not_present %" PRIu64 "/%u, slept %" PRIu64 "/%u, ready %" PRIu64
          "/%u, wake_all %" PRIu64 "/%u, acks %" PRIu64 "/%u",
          st[GABI_ST_NOT_PRESENT], f->n_pf, st[GABI_ST_SLEPT], slept, st[GABI_ST_READY], readies,
          st[GABI_ST_WAKE_ALL], wake_alls, st[GABI_ST_ACKS], readies + wake_alls);
}

int facts_check(const struct vmm_facts *f, const struct vmm_remote_stats *rs, FILE *out)
{
    struct checker c = {out, 0};
    fprintf(out, "\n== checks\n");
    check_common(&c, f, rs);
    if (f->sim_enabled)
        check_sim_host(&c, f);
    check_counters(&c, f);
    if (facts_not_present_seen(f)) {
        check_hardware(&c, f);
    } else {
        fprintf(out, "check: SKIP KVM's own \"not present\" path (tokens in CR2, sleeping "
                     "task, ready per token, APF on vs off): KVM sent none here, as it does not "
                     "where it emulates the guest's instructions; it needs hardware KVM\n");
    }
    fprintf(out, "checks: %d failed\n", c.failures);
    return c.failures;
}
