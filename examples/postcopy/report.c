/* SPDX-License-Identifier: MIT */
/* apf-postcopy's output: the table, JSON, the sweep series, and its plot (SVG, or PNG through
 * gnuplot when it is installed). */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "postcopy.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double pc_quantile(double *v, size_t n, double q)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof(double), cmp_double);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static const struct pc_result *find(const struct pc_round *rd, enum pc_mode m, enum pc_host h)
{
    for (int i = 0; i < rd->n; i++) {
        const struct pc_result *x = &rd->r[i];
        if (x->mode == m && x->ok && (m != MODE_APF || h == HOST_AUTO || x->host == h))
            return x;
    }
    return NULL;
}

double pc_hidden(const struct pc_round *rd, enum pc_host h)
{
    const struct pc_result *a = find(rd, MODE_APF, h), *s = find(rd, MODE_SYNC, HOST_AUTO),
                           *i = find(rd, MODE_IDEAL, HOST_AUTO);
    if (!a || !s || !i || s->wall_s <= i->wall_s)
        return NAN;
    return (s->wall_s - a->wall_s) / (s->wall_s - i->wall_s);
}

static struct pc_stat stat_of(double *v, int n)
{
    struct pc_stat st = {NAN, NAN, NAN, 0};
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(v[i]))
            v[k++] = v[i];
    if (k == 0)
        return st;
    st.med = pc_quantile(v, (size_t)k, 0.5);
    st.min = v[0];
    st.max = v[k - 1];
    st.n = k;
    return st;
}

/* A figure of the run (mode, host) over the rounds. */
typedef double (*pc_field_fn)(const struct pc_result *r);
static struct pc_stat over_rounds(const struct pc_round *rd, int nr, enum pc_mode m,
                                  enum pc_host h, pc_field_fn fn)
{
    double v[1000];
    int n = 0;
    for (int k = 0; k < nr && n < 1000; k++) {
        const struct pc_result *x = find(&rd[k], m, h);
        v[n++] = x ? fn(x) : NAN;
    }
    return stat_of(v, n);
}

static struct pc_stat hidden_over_rounds(const struct pc_round *rd, int nr, enum pc_host h)
{
    double v[1000];
    int n = 0;
    for (int k = 0; k < nr && n < 1000; k++)
        v[n++] = pc_hidden(&rd[k], h);
    return stat_of(v, n);
}

#define FIELD(name, expr)                                                                      \
    static double f_##name(const struct pc_result *r) { return (expr); }
FIELD(wall, r->wall_s)
FIELD(tput, r->throughput)
FIELD(idle, r->idle_share)
FIELD(stall, r->stall_share)
FIELD(steal, r->steal_share >= 0 ? r->steal_share : NAN)
FIELD(other, r->other_load >= 0 ? r->other_load : NAN)
FIELD(ready50, r->ready_samples ? r->ready_p50_us : NAN)
FIELD(p_exit, r->parts.exit)
FIELD(p_handoff, r->parts.handoff)
FIELD(p_fetch, r->parts.fetch)
FIELD(p_late, r->parts.late)
FIELD(p_late99, r->late_p99_us)
FIELD(p_copy, r->parts.copy)
FIELD(p_complete, r->parts.complete)
FIELD(p_deliver, r->parts.deliver)
FIELD(p_deliver_busy, r->parts.deliver_busy)
FIELD(p_deliver_idle, r->parts.deliver_idle)
FIELD(p_idle_share, r->parts.idle_share)
FIELD(p_runq, r->parts.runq)
FIELD(p_touch, r->parts.touch)
FIELD(p_over, r->parts.overhead)
FIELD(p_machinery, r->parts.handoff + r->parts.complete + r->parts.deliver)
#undef FIELD

static const char *pattern_name(enum pc_pattern p)
{
    return p == PATTERN_SEQUENTIAL ? "sequential" : p == PATTERN_ZIPF ? "zipf" : "random";
}

static void config_line(const struct pc_opts *o, const char *memory)
{
    char lat[64];
    pc_latency_format(&o->latency, lat, sizeof(lat));
    printf("apf-postcopy: %u vCPU%s x %u tasks, %llu MiB guest memory (%s), %s access, "
           "%llu accesses, compute %.0f us/access,\n  source %s, latency %s, seed %llu\n",
           o->vcpus, o->vcpus == 1 ? "" : "s", o->tasks, (unsigned long long)(o->mem_bytes >> 20),
           memory, pattern_name(o->pattern), (unsigned long long)o->accesses, o->compute_us,
           o->source ? o->source : "in-process", o->source ? "(the source process's)" : lat,
           (unsigned long long)o->seed);
    printf("layout: %s\n", o->layout.why);
}

static void floor_line(const struct pc_floor *f)
{
    if (f->ok)
        printf("floor (probed now, same CPUs): exit %.1f + 4 KiB UFFDIO_COPY %.1f + round trip "
               "%.1f us (%s) = %.1f us; its timer lateness %.1f us (not in it)\n",
               f->exit_us, f->copy_us, f->rt_us, f->rt_how, f->total_us, f->late_us);
}

static void cell_stat(struct pc_stat st, int decimals)
{
    char buf[100];
    if (isnan(st.med)) {
        printf(" %22s", "-");
        return;
    }
    snprintf(buf, sizeof(buf), "%.*f [%.*f-%.*f]", decimals, st.med, decimals, st.min, decimals,
             st.max);
    printf(" %22s", buf);
}

static const char *run_name(const struct pc_result *x, bool both)
{
    if (x->mode != MODE_APF || !both)
        return pc_mode_name(x->mode);
    return x->host == HOST_POOL ? "apf/pool" : "apf/loop";
}

static void disturbance(const struct pc_opts *o, const struct pc_round *rd, int nr)
{
    double steal = 0, other = 0, late = 0;
    for (int k = 0; k < nr; k++)
        for (int i = 0; i < rd[k].n; i++) {
            const struct pc_result *x = &rd[k].r[i];
            steal = fmax(steal, x->steal_share);
            other = fmax(other, x->other_load);
            if (x->mode == MODE_APF && !isnan(x->parts.late))
                late = fmax(late, x->parts.late);
        }
    printf("machine: steal up to %.1f%%, other processes up to %.0f%% of the CPUs (per run), "
           "fetch timer lateness up to %.1f us median per run\n",
           100 * steal, 100 * other, late);
    if (steal > 0.05 || other > 0.10 || late > 20)
        printf("note: the machine disturbed these runs (%s); the figures are not an idle "
               "machine's\n",
               steal > 0.05   ? "the hypervisor below took CPU time"
               : other > 0.10 ? "other processes ran on these CPUs"
                              : "timers fired late");
    (void)o;
}

static void fault_lines(const struct pc_round *rd, int nr, enum pc_host h, bool both,
                        const struct pc_floor *f)
{
    struct pc_stat ov = over_rounds(rd, nr, MODE_APF, h, f_p_over);
    if (isnan(ov.med))
        return;
    const char *name = both ? (h == HOST_POOL ? " (pool)" : " (loop)") : "";
#define M(fn) over_rounds(rd, nr, MODE_APF, h, fn).med
    printf("per fault%s, medians: exit %.1f + hand-off %.1f + copy %.1f + completion & kick %.1f "
           "+ delivery %.1f + first touch %.1f; overhead %.1f us (median of the sums) "
           "[%.1f-%.1f over rounds]",
           name, M(f_p_exit), M(f_p_handoff), M(f_p_copy), M(f_p_complete), M(f_p_deliver),
           M(f_p_touch), ov.med, ov.min, ov.max);
    if (f && f->ok)
        printf(", %.2fx the floor", ov.med / f->total_us);
    printf("\n  APF machinery's own share (engine, runtime, the host's hand-offs): %.1f us; "
           "not overhead: fetch %.1f (the source), timer lateness %.1f (p99 %.1f), run-queue "
           "wait %.1f (other tasks' work)\n",
           M(f_p_machinery), M(f_p_fetch), M(f_p_late), M(f_p_late99), M(f_p_runq));
    printf("  delivery: %.1f us to a running vCPU, %.1f us to an idle one (%.0f%% of faults)\n",
           M(f_p_deliver_busy), M(f_p_deliver_idle), 100 * M(f_p_idle_share));
#undef M
}

void pc_report_table(const struct pc_opts *o, const struct pc_round *rd, int nr,
                     const struct pc_floor *f)
{
    const char *memory = "userfaultfd";
    for (int k = 0; k < nr; k++)
        for (int i = 0; i < rd[k].n; i++)
            if (rd[k].r[i].memory)
                memory = rd[k].r[i].memory;
    config_line(o, memory);
    floor_line(f);
    printf("\n%d round%s (runs interleaved); median [min-max] over rounds:\n", nr,
           nr == 1 ? "" : "s");
    printf("%-9s %22s %22s %7s %7s %5s %6s %6s %6s %6s\n", "run", "wall s", "ready p50 us",
           "async", "sync", "halt", "idle", "stall", "steal", "other");
    if (nr == 0)
        return;
    for (int i = 0; i < rd[0].n; i++) {
        const struct pc_result *x0 = &rd[0].r[i];
        enum pc_mode m = x0->mode;
        enum pc_host h = m == MODE_APF ? x0->host : HOST_AUTO;
        printf("%-9s", run_name(x0, o->both_hosts));
        cell_stat(over_rounds(rd, nr, m, h, f_wall), 2);
        cell_stat(over_rounds(rd, nr, m, h, f_ready50), 0);
        printf(" %7llu %7llu %5llu", (unsigned long long)x0->faults_async,
               (unsigned long long)x0->faults_sync, (unsigned long long)x0->faults_halt);
        printf(" %5.1f%% %5.1f%% %5.1f%% %5.1f%%\n",
               100 * over_rounds(rd, nr, m, h, f_idle).med,
               100 * over_rounds(rd, nr, m, h, f_stall).med,
               100 * over_rounds(rd, nr, m, h, f_steal).max,
               100 * over_rounds(rd, nr, m, h, f_other).max);
    }
    for (int k = 0; k < nr; k++)
        for (int i = 0; i < rd[k].n; i++)
            if (!rd[k].r[i].ok)
                printf("round %d %s failed: %s\n", k + 1, pc_mode_name(rd[k].r[i].mode),
                       rd[k].r[i].error);
    printf("\n");
    enum pc_host hosts[2] = {o->both_hosts ? HOST_LOOP : o->layout.host, HOST_POOL};
    for (int j = 0; j < (o->both_hosts ? 2 : 1); j++) {
        struct pc_stat h = hidden_over_rounds(rd, nr, hosts[j]);
        if (!isnan(h.med))
            printf("fault latency hidden by APF%s: %.1f%% median [%.1f%% to %.1f%%] over %d "
                   "rounds   (T_sync - T_apf) / (T_sync - T_ideal), per round\n",
                   o->both_hosts ? (hosts[j] == HOST_POOL ? " (pool)" : " (loop)") : "",
                   100 * h.med, 100 * h.min, 100 * h.max, h.n);
    }
    for (int j = 0; j < (o->both_hosts ? 2 : 1); j++)
        fault_lines(rd, nr, hosts[j], o->both_hosts, f);
    disturbance(o, rd, nr);
    for (int k = 0, shown = 0; k < nr && !shown; k++)
        for (int i = 0; i < rd[k].n && !shown; i++) {
            const struct pc_result *a = &rd[k].r[i];
            if (a->ok && a->mode == MODE_APF && a->ack_exits_per_ready >= 0) {
                printf("transport %s: %.2f ACK exits and %.2f notifications per page ready\n",
                       pc_transport_name(o->transport), a->ack_exits_per_ready,
                       a->notifications_per_ready);
                shown = 1;
            }
        }
    for (int k = 0; k < nr; k++)
        for (int i = 0; i < rd[k].n; i++)
            if (rd[k].r[i].ok && rd[k].r[i].trace_events) {
                printf("protocol trace: %llu events, conformance checker: OK\n",
                       (unsigned long long)rd[k].r[i].trace_events);
                return;
            }
}

static void json_num(const char *k, double v, int last)
{
    if (isnan(v) || isinf(v))
        printf("\"%s\": null%s", k, last ? "" : ", ");
    else
        printf("\"%s\": %.3f%s", k, v, last ? "" : ", ");
}

static void json_stat(const char *k, struct pc_stat st, int last)
{
    printf("\"%s\": {", k);
    json_num("median", st.med, 0);
    json_num("min", st.min, 0);
    json_num("max", st.max, 0);
    printf("\"rounds\": %d}%s", st.n, last ? "" : ", ");
}

static void json_result(const struct pc_result *x)
{
    printf("{\"mode\": \"%s\", \"ok\": %s, ", pc_mode_name(x->mode), x->ok ? "true" : "false");
    if (!x->ok) {
        printf("\"error\": \"");
        for (const char *c = x->error; *c; c++)
            printf(*c == '"' || *c == '\\' ? "\\%c" : "%c", *c);
        printf("\"}");
        return;
    }
    if (x->mode == MODE_APF)
        printf("\"host\": \"%s\", ", pc_host_name(x->host));
    json_num("wall_s", x->wall_s, 0);
    printf("\"accesses\": %llu, ", (unsigned long long)x->accesses);
    json_num("throughput", x->throughput, 0);
    printf("\"faults_async\": %llu, \"faults_sync\": %llu, \"faults_halt\": %llu, "
           "\"pages_fetched\": %llu, \"ready_samples\": %llu, ",
           (unsigned long long)x->faults_async, (unsigned long long)x->faults_sync,
           (unsigned long long)x->faults_halt, (unsigned long long)x->pages_fetched,
           (unsigned long long)x->ready_samples);
    json_num("ready_p50_us", x->ready_samples ? x->ready_p50_us : NAN, 0);
    json_num("ready_p99_us", x->ready_samples ? x->ready_p99_us : NAN, 0);
    json_num("overhead_p50_us", x->parts.n ? x->parts.overhead : NAN, 0);
    json_num("fetch_p50_us", x->fetch_p50_us, 0);
    json_num("idle_share", x->idle_share, 0);
    json_num("stall_share", x->stall_share, 0);
    json_num("steal_share", x->steal_share >= 0 ? x->steal_share : NAN, 0);
    json_num("other_load", x->other_load >= 0 ? x->other_load : NAN, 0);
    json_num("ack_exits_per_ready", x->ack_exits_per_ready >= 0 ? x->ack_exits_per_ready : NAN, 0);
    json_num("notifications_per_ready",
             x->notifications_per_ready >= 0 ? x->notifications_per_ready : NAN, 0);
    printf("\"memory\": \"%s\", \"trace_events\": %llu, \"ack_exits\": %llu",
           x->memory ? x->memory : "", (unsigned long long)x->trace_events,
           (unsigned long long)x->ack_exits);
    if (x->mode == MODE_APF && x->parts.n) {
        const struct pc_parts *p = &x->parts;
        printf(", \"fault_parts_us\": {\"faults\": %llu, ", (unsigned long long)p->n);
        json_num("exit", p->exit, 0);
        json_num("handoff", p->handoff, 0);
        json_num("copy", p->copy, 0);
        json_num("complete_kick", p->complete, 0);
        json_num("deliver", p->deliver, 0);
        json_num("deliver_busy_vcpu", p->deliver_busy, 0);
        json_num("deliver_idle_vcpu", p->deliver_idle, 0);
        json_num("woke_idle_share", p->idle_share, 0);
        json_num("first_touch", p->touch, 0);
        json_num("overhead", p->overhead, 0);
        json_num("fetch", p->fetch, 0);
        json_num("timer_late", p->late, 0);
        json_num("timer_late_p99", x->late_p99_us, 0);
        json_num("runq_wait", p->runq, 0);
        json_num("end_to_end", p->e2e, 1);
        printf("}");
    }
    printf("}");
}

static void json_config(const struct pc_opts *o)
{
    char lat[64];
    pc_latency_format(&o->latency, lat, sizeof(lat));
    printf("\"config\": {\"vcpus\": %u, \"tasks_per_vcpu\": %u, \"memory_bytes\": %llu, "
           "\"pattern\": \"%s\", \"compute_us\": %.1f, \"accesses\": %llu, \"seed\": %llu, "
           "\"latency\": \"%s\", \"source\": \"%s\", \"transport\": \"%s\", \"rounds\": %u, "
           "\"cpus\": %d}, ",
           o->vcpus, o->tasks, (unsigned long long)o->mem_bytes, pattern_name(o->pattern),
           o->compute_us, (unsigned long long)o->accesses, (unsigned long long)o->seed,
           o->source ? "remote" : lat, o->source ? o->source : "in-process",
           pc_transport_name(o->transport), o->rounds,
           pc_ncpus());
    const struct pc_layout *l = &o->layout;
    printf("\"layout\": {\"host\": \"%s\", \"pin\": %s, \"spare_cpu\": %s, \"spin_host\": %s, "
           "\"spin_vcpu\": %s, \"why\": \"%s\"}, ",
           pc_host_name(l->host), l->pin ? "true" : "false", l->spare ? "true" : "false",
           l->spin_host ? "true" : "false", l->spin_vcpu ? "true" : "false", l->why);
}

static void json_floor(const struct pc_floor *f)
{
    if (!f->ok) {
        printf("\"floor\": null, ");
        return;
    }
    printf("\"floor\": {");
    json_num("exit_us", f->exit_us, 0);
    json_num("copy_us", f->copy_us, 0);
    json_num("round_trip_us", f->rt_us, 0);
    json_num("total_us", f->total_us, 0);
    json_num("timer_late_us", f->late_us, 0);
    printf("\"round_trip\": \"%s\"}, ", f->rt_how);
}

static void json_rounds(const struct pc_opts *o, const struct pc_round *rd, int nr)
{
    printf("\"rounds\": [");
    for (int k = 0; k < nr; k++) {
        printf("{\"runs\": [");
        for (int i = 0; i < rd[k].n; i++) {
            json_result(&rd[k].r[i]);
            printf(i + 1 < rd[k].n ? ", " : "");
        }
        printf("], ");
        if (o->both_hosts) {
            json_num("latency_hidden_loop", pc_hidden(&rd[k], HOST_LOOP), 0);
            json_num("latency_hidden_pool", pc_hidden(&rd[k], HOST_POOL), 1);
        } else {
            json_num("latency_hidden", pc_hidden(&rd[k], o->layout.host), 1);
        }
        printf("}%s", k + 1 < nr ? ", " : "");
    }
    printf("], ");
}

static void json_host_summary(const struct pc_round *rd, int nr, enum pc_host h,
                              const struct pc_floor *f)
{
    printf("{\"host\": \"%s\", ", pc_host_name(h));
    json_stat("latency_hidden", hidden_over_rounds(rd, nr, h), 0);
    struct pc_stat ov = over_rounds(rd, nr, MODE_APF, h, f_p_over);
    json_stat("overhead_us", ov, 0);
    json_num("overhead_x_floor", f->ok ? ov.med / f->total_us : NAN, 0);
    json_num("machinery_us", over_rounds(rd, nr, MODE_APF, h, f_p_machinery).med, 0);
    json_stat("ready_p50_us", over_rounds(rd, nr, MODE_APF, h, f_ready50), 0);
    json_stat("throughput", over_rounds(rd, nr, MODE_APF, h, f_tput), 1);
    printf("}");
}

void pc_report_json(const struct pc_opts *o, const struct pc_round *rd, int nr,
                    const struct pc_floor *f)
{
    printf("{");
    json_config(o);
    json_floor(f);
    json_rounds(o, rd, nr);
    printf("\"hosts\": [");
    json_host_summary(rd, nr, o->both_hosts ? HOST_LOOP : o->layout.host, f);
    if (o->both_hosts) {
        printf(", ");
        json_host_summary(rd, nr, HOST_POOL, f);
    }
    printf("], ");
    double steal = 0, other = 0, late = 0;
    for (int k = 0; k < nr; k++)
        for (int i = 0; i < rd[k].n; i++) {
            const struct pc_result *x = &rd[k].r[i];
            steal = fmax(steal, x->steal_share);
            other = fmax(other, x->other_load);
            if (x->mode == MODE_APF && !isnan(x->parts.late))
                late = fmax(late, x->parts.late);
        }
    printf("\"disturbed\": %s, ", steal > 0.05 || other > 0.10 || late > 20 ? "true" : "false");
    json_num("steal_max", steal, 0);
    json_num("other_load_max", other, 0);
    json_num("timer_late_max_us", late, 0);
    enum pc_host h = o->both_hosts ? HOST_LOOP : o->layout.host;
    struct pc_stat hs = hidden_over_rounds(rd, nr, h);
    struct pc_stat ov = over_rounds(rd, nr, MODE_APF, h, f_p_over);
    json_num("latency_hidden", hs.med, 0);
    json_num("apf_overhead_p50_us", ov.med, 0);
    json_num("overhead_x_floor", f->ok ? ov.med / f->total_us : NAN, 1);
    printf("}\n");
}

/* ---- sweeps ------------------------------------------------------------------------------- */

static const char *sweep_label(const struct pc_opts *o)
{
    return o->sweep == SWEEP_LATENCY ? "source latency (us)" : "tasks per vCPU";
}

static int sweep_hosts(const struct pc_opts *o, enum pc_host *h)
{
    if (o->both_hosts) {
        h[0] = HOST_LOOP, h[1] = HOST_POOL;
        return 2;
    }
    h[0] = o->layout.host;
    return 1;
}

void pc_sweep_report(const struct pc_opts *o, const struct pc_sweep_point *p, int n,
                     const struct pc_floor *f)
{
    enum pc_host hosts[2];
    int nh = sweep_hosts(o, hosts);
    if (o->json) {
        printf("{\"sweep\": \"%s\", ", o->sweep == SWEEP_LATENCY ? "latency" : "tasks");
        json_config(o);
        json_floor(f);
        printf("\"points\": [");
        for (int i = 0; i < n; i++) {
            printf("{\"x\": %g, \"hosts\": [", p[i].x);
            for (int j = 0; j < nh; j++) {
                json_host_summary(p[i].rounds, p[i].nrounds, hosts[j], f);
                printf(j + 1 < nh ? ", " : "");
            }
            printf("], ");
            json_rounds(o, p[i].rounds, p[i].nrounds);
            json_num("latency_hidden", hidden_over_rounds(p[i].rounds, p[i].nrounds, hosts[0]).med,
                     1);
            printf("}%s", i + 1 < n ? ", " : "");
        }
        printf("]}\n");
        return;
    }
    printf("\nsweep over %s, medians over rounds%s:\n", sweep_label(o),
           f->ok ? " (overhead as a multiple of the floor)" : "");
    printf("%8s", "x");
    for (int j = 0; j < nh; j++)
        printf("  %4s:%8s %8s %6s", pc_host_name(hosts[j]), "hidden", "us/fault", "xfloor");
    printf(" %9s %9s %9s\n", "T_apf", "T_sync", "T_ideal");
    for (int i = 0; i < n; i++) {
        const struct pc_round *rd = p[i].rounds;
        int nr = p[i].nrounds;
        printf("%8g", p[i].x);
        for (int j = 0; j < nh; j++) {
            struct pc_stat h = hidden_over_rounds(rd, nr, hosts[j]);
            double ov = over_rounds(rd, nr, MODE_APF, hosts[j], f_p_over).med;
            printf("  %4s %7.1f%% %8.1f %6.2f", "", 100 * h.med, ov,
                   f->ok ? ov / f->total_us : NAN);
        }
        printf(" %9.2f %9.2f %9.2f\n", over_rounds(rd, nr, MODE_APF, hosts[0], f_wall).med,
               over_rounds(rd, nr, MODE_SYNC, HOST_AUTO, f_wall).med,
               over_rounds(rd, nr, MODE_IDEAL, HOST_AUTO, f_wall).med);
    }
}

/* A small self-contained SVG: latency hidden (top) and overhead per fault (bottom), one
 * curve per host, the floor dashed. */
static int write_svg(const struct pc_opts *o, const struct pc_sweep_point *p, int n,
                     const struct pc_floor *fl, FILE *f)
{
    enum pc_host hosts[2];
    int nh = sweep_hosts(o, hosts);
    const double W = 720, H = 560, L = 80, R = 160, T = 40, PH = 200, GAP = 70;
    double xmin = p[0].x, xmax = p[n - 1].x, ymax = 1;
    bool logx = o->sweep == SWEEP_LATENCY || xmax / (xmin > 0 ? xmin : 1) > 8;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < nh; j++) {
            double ov = over_rounds(p[i].rounds, p[i].nrounds, MODE_APF, hosts[j], f_p_over).med;
            if (!isnan(ov) && ov > ymax)
                ymax = ov;
        }
    if (fl->ok && fl->total_us > ymax)
        ymax = fl->total_us;
    ymax *= 1.2;
#define XPOS(x) (L + (W - L - R) * (logx ? (log(x) - log(xmin)) / (log(xmax) - log(xmin) + 1e-12) \
                                         : ((x)-xmin) / (xmax - xmin + 1e-12)))
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" "
               "height=\"100%%\" fill=\"white\"/>\n",
            W, H);
    char lat[64];
    pc_latency_format(&o->latency, lat, sizeof(lat));
    fprintf(f, "<text x=\"%.0f\" y=\"20\" font-size=\"15\">apf-postcopy: ", L);
    if (o->sweep == SWEEP_LATENCY)
        fprintf(f, "latency sweep (%u vCPU%s, %u tasks/vCPU, compute %.0f us)</text>\n", o->vcpus,
                o->vcpus == 1 ? "" : "s", o->tasks, o->compute_us);
    else
        fprintf(f, "tasks sweep (%u vCPU%s, compute %.0f us, latency %s)</text>\n", o->vcpus,
                o->vcpus == 1 ? "" : "s", o->compute_us, o->source ? "remote" : lat);
    static const char *const colour[] = {"#1b7837", "#b2182b", "#2166ac"};
    for (int panel = 0; panel < 2; panel++) {
        double top = T + panel * (PH + GAP), bottom = top + PH;
        double pmax = panel == 0 ? 100 : ymax;
        fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
                   "stroke=\"#888\"/>\n",
                L, top, W - L - R, PH);
        for (int k = 0; k <= 4; k++) {
            double y = bottom - PH * k / 4.0;
            fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                       "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n",
                    L, y, W - R, y, L - 6, y + 4, pmax * k / 4.0);
        }
        for (int i = 0; i < n; i++)
            fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%g</text>\n",
                    XPOS(p[i].x), bottom + 16, p[i].x);
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n",
                L + (W - L - R) / 2, bottom + 34, sweep_label(o));
        fprintf(f, "<text x=\"16\" y=\"%.0f\" transform=\"rotate(-90 16 %.0f)\" "
                   "text-anchor=\"middle\">%s</text>\n",
                top + PH / 2, top + PH / 2,
                panel == 0 ? "fault latency hidden (%)" : "overhead per fault (us)");
        for (int j = 0; j < nh; j++) {
            fprintf(f, "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"%s\" points=\"",
                    colour[j]);
            for (int i = 0; i < n; i++) {
                double v = panel == 0
                               ? 100 * hidden_over_rounds(p[i].rounds, p[i].nrounds, hosts[j]).med
                               : over_rounds(p[i].rounds, p[i].nrounds, MODE_APF, hosts[j],
                                             f_p_over).med;
                if (isnan(v))
                    continue;
                fprintf(f, "%.1f,%.1f ", XPOS(p[i].x),
                        bottom - PH * fmax(0, fmin(v, pmax)) / pmax);
            }
            fprintf(f, "\"/>\n");
            fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" "
                       "stroke-width=\"3\"/><text x=\"%.0f\" y=\"%.0f\">%s host</text>\n",
                    W - R + 16, top + 16 + 18 * j, W - R + 40, top + 16 + 18 * j, colour[j],
                    W - R + 46, top + 20 + 18 * j, pc_host_name(hosts[j]));
        }
        if (panel == 1 && fl->ok) {
            double y = bottom - PH * fl->total_us / pmax;
            fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#555\" "
                       "stroke-dasharray=\"6 4\"/><text x=\"%.0f\" y=\"%.0f\">floor %.1f us</text>\n",
                    L, y, W - R, y, W - R + 16, top + 20 + 18 * nh, fl->total_us);
        }
    }
#undef XPOS
    fprintf(f, "</svg>\n");
    return ferror(f) ? -EIO : 0;
}

static int write_png(const struct pc_opts *o, const struct pc_sweep_point *p, int n)
{
    if (system("gnuplot --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "apf-postcopy: a PNG plot needs gnuplot (apt-get install gnuplot-nox); "
                        "use FILE.svg otherwise\n");
        return -ENOENT;
    }
    const char *tmp = getenv("TMPDIR");
    char data[4096];
    snprintf(data, sizeof(data), "%s/apf-postcopy-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(data);
    if (fd < 0)
        return -errno;
    FILE *d = fdopen(fd, "w");
    enum pc_host hosts[2];
    sweep_hosts(o, hosts);
    for (int i = 0; i < n; i++) {
        double h = hidden_over_rounds(p[i].rounds, p[i].nrounds, hosts[0]).med;
        fprintf(d, "%g %f %f %f %f\n", p[i].x,
                over_rounds(p[i].rounds, p[i].nrounds, MODE_APF, hosts[0], f_tput).med,
                over_rounds(p[i].rounds, p[i].nrounds, MODE_SYNC, HOST_AUTO, f_tput).med,
                over_rounds(p[i].rounds, p[i].nrounds, MODE_IDEAL, HOST_AUTO, f_tput).med,
                100 * (h > 0 ? h : 0));
    }
    fclose(d);
    FILE *g = popen("gnuplot", "w");
    if (g == NULL) {
        unlink(data);
        return -errno;
    }
    fprintf(g, "set terminal png size 800,640\nset output '%s'\nset multiplot layout 2,1\n"
               "set grid\nset xlabel '%s'\n%s"
               "set ylabel 'guest accesses / s'\nplot '%s' u 1:2 w lp t 'apf', '' u 1:3 w lp t "
               "'sync', '' u 1:4 w lp t 'ideal'\nset ylabel 'fault latency hidden (%%)'\n"
               "set yrange [0:100]\nplot '%s' u 1:5 w lp t 'hidden'\nunset multiplot\n",
            o->plot, sweep_label(o), o->sweep == SWEEP_LATENCY ? "set logscale x\n" : "", data,
            data);
    int rc = pclose(g);
    unlink(data);
    return rc == 0 ? 0 : -EIO;
}

int pc_sweep_plot(const struct pc_opts *o, const struct pc_sweep_point *p, int n,
                  const struct pc_floor *fl)
{
    size_t len = strlen(o->plot);
    if (len > 4 && strcmp(o->plot + len - 4, ".png") == 0)
        return write_png(o, p, n);
    FILE *f = fopen(o->plot, "w");
    if (f == NULL)
        return -errno;
    int err = write_svg(o, p, n, fl, f);
    if (fclose(f) != 0 && err == 0)
        err = -EIO;
    return err;
}
