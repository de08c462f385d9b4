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

static const struct pc_result *find(const struct pc_result *r, int n, enum pc_mode m)
{
    for (int i = 0; i < n; i++)
        if (r[i].mode == m && r[i].ok)
            return &r[i];
    return NULL;
}

double pc_hidden(const struct pc_result *r, int n)
{
    const struct pc_result *a = find(r, n, MODE_APF), *s = find(r, n, MODE_SYNC),
                           *i = find(r, n, MODE_IDEAL);
    if (!a || !s || !i || s->wall_s <= i->wall_s)
        return -1;
    return (s->wall_s - a->wall_s) / (s->wall_s - i->wall_s);
}

static const char *pattern_name(enum pc_pattern p)
{
    return p == PATTERN_SEQUENTIAL ? "sequential" : p == PATTERN_ZIPF ? "zipf" : "random";
}

static void config_line(const struct pc_opts *o, const char *memory)
{
    char lat[64];
    pc_latency_format(&o->latency, lat, sizeof(lat));
    printf("apf-postcopy: %u vCPU%s x %u tasks, %llu MiB guest memory (%s), %s access, "
           "%llu accesses, compute %.0f us/access,\n  source %s, latency %s, seed %llu\n\n",
           o->vcpus, o->vcpus == 1 ? "" : "s", o->tasks, (unsigned long long)(o->mem_bytes >> 20), memory,
           pattern_name(o->pattern), (unsigned long long)o->accesses, o->compute_us,
           o->source ? o->source : "in-process", o->source ? "(the source process's)" : lat,
           (unsigned long long)o->seed);
}

static void cell_us(double v)
{
    if (isnan(v))
        printf(" %9s", "-");
    else
        printf(" %9.1f", v);
}

void pc_report_table(const struct pc_opts *o, const struct pc_result *r, int n)
{
    const char *memory = "userfaultfd";
    for (int i = 0; i < n; i++)
        if (r[i].memory)
            memory = r[i].memory;
    config_line(o, memory);
    printf("%-6s %8s %11s %7s %7s %6s %9s %9s %6s %6s %6s\n", "mode", "wall s", "accesses/s",
           "async", "sync", "halt", "ready p50", "p99 us", "idle", "stall", "steal");
    for (int i = 0; i < n; i++) {
        const struct pc_result *x = &r[i];
        if (!x->ok) {
            printf("%-6s  failed: %s\n", pc_mode_name(x->mode), x->error);
            continue;
        }
        printf("%-6s %8.2f %11.0f %7llu %7llu %6llu", pc_mode_name(x->mode), x->wall_s,
               x->throughput, (unsigned long long)x->faults_async,
               (unsigned long long)x->faults_sync, (unsigned long long)x->faults_halt);
        cell_us(x->ready_samples ? x->ready_p50_us : NAN);
        cell_us(x->ready_samples ? x->ready_p99_us : NAN);
        printf(" %5.1f%% %5.1f%%", 100 * x->idle_share, 100 * x->stall_share);
        if (x->steal_share >= 0)
            printf(" %5.1f%%\n", 100 * x->steal_share);
        else
            printf(" %6s\n", "-");
    }
    double h = pc_hidden(r, n);
    if (h >= -0.5)
        printf("\nfault latency hidden by APF: %.1f%%   (T_sync - T_apf) / (T_sync - T_ideal)\n",
               100 * h);
    for (int i = 0; i < n; i++)
        if (r[i].ok && r[i].steal_share > 0.05) {
            printf("note: this machine's hypervisor took %.0f%% of the CPU during the %s run: "
                   "its numbers are disturbed; run again\n",
                   100 * r[i].steal_share, pc_mode_name(r[i].mode));
            break;
        }
    const struct pc_result *a = find(r, n, MODE_APF);
    if (a && a->ready_samples)
        printf("APF overhead per fault: %.1f us median (ready latency %.1f us minus the page's "
               "fetch time, median %.1f us)\n",
               a->overhead_p50_us, a->ready_p50_us, a->fetch_p50_us);
    if (a && a->ack_exits_per_ready >= 0)
        printf("transport %s: %.2f ACK exits and %.2f notifications per page ready\n",
               pc_transport_name(o->transport), a->ack_exits_per_ready,
               a->notifications_per_ready);
    if (a && a->trace_events)
        printf("protocol trace: %llu events, conformance checker: OK\n",
               (unsigned long long)a->trace_events);
}

static void json_num(const char *k, double v, int last)
{
    if (isnan(v) || isinf(v))
        printf("\"%s\": null%s", k, last ? "" : ", ");
    else
        printf("\"%s\": %.3f%s", k, v, last ? "" : ", ");
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
    json_num("overhead_p50_us", x->ready_samples ? x->overhead_p50_us : NAN, 0);
    json_num("fetch_p50_us", x->fetch_p50_us, 0);
    json_num("idle_share", x->idle_share, 0);
    json_num("stall_share", x->stall_share, 0);
    json_num("steal_share", x->steal_share >= 0 ? x->steal_share : NAN, 0);
    json_num("ack_exits_per_ready", x->ack_exits_per_ready >= 0 ? x->ack_exits_per_ready : NAN, 0);
    json_num("notifications_per_ready",
             x->notifications_per_ready >= 0 ? x->notifications_per_ready : NAN, 0);
    printf("\"memory\": \"%s\", \"trace_events\": %llu, \"ack_exits\": %llu}",
           x->memory ? x->memory : "", (unsigned long long)x->trace_events,
           (unsigned long long)x->ack_exits);
}

static void json_config(const struct pc_opts *o)
{
    char lat[64];
    pc_latency_format(&o->latency, lat, sizeof(lat));
    printf("\"config\": {\"vcpus\": %u, \"tasks_per_vcpu\": %u, \"memory_bytes\": %llu, "
           "\"pattern\": \"%s\", \"compute_us\": %.1f, \"accesses\": %llu, \"seed\": %llu, "
           "\"latency\": \"%s\", \"source\": \"%s\", \"transport\": \"%s\"}",
           o->vcpus, o->tasks, (unsigned long long)o->mem_bytes, pattern_name(o->pattern),
           o->compute_us, (unsigned long long)o->accesses, (unsigned long long)o->seed,
           o->source ? "remote" : lat, o->source ? o->source : "in-process",
           pc_transport_name(o->transport));
}

void pc_report_json(const struct pc_opts *o, const struct pc_result *r, int n)
{
    printf("{");
    json_config(o);
    printf(", \"modes\": [");
    for (int i = 0; i < n; i++) {
        json_result(&r[i]);
        printf(i + 1 < n ? ", " : "");
    }
    printf("], ");
    double h = pc_hidden(r, n);
    json_num("latency_hidden", h >= -0.5 ? h : NAN, 0);
    const struct pc_result *a = find(r, n, MODE_APF);
    json_num("apf_overhead_p50_us", a && a->ready_samples ? a->overhead_p50_us : NAN, 1);
    printf("}\n");
}

/* ---- sweeps ------------------------------------------------------------------------------- */

static const char *sweep_label(const struct pc_opts *o)
{
    return o->sweep == SWEEP_LATENCY ? "source latency (us)" : "tasks per vCPU";
}

void pc_sweep_report(const struct pc_opts *o, const struct pc_sweep_point *p, int n)
{
    if (o->json) {
        printf("{\"sweep\": \"%s\", ", o->sweep == SWEEP_LATENCY ? "latency" : "tasks");
        json_config(o);
        printf(", \"points\": [");
        for (int i = 0; i < n; i++) {
            printf("{\"x\": %g, ", p[i].x);
            double h = pc_hidden(p[i].r, MODE_COUNT);
            json_num("latency_hidden", h >= -0.5 ? h : NAN, 0);
            printf("\"modes\": [");
            for (int m = 0; m < MODE_COUNT; m++) {
                json_result(&p[i].r[m]);
                printf(m + 1 < MODE_COUNT ? ", " : "");
            }
            printf("]}%s", i + 1 < n ? ", " : "");
        }
        printf("]}\n");
        return;
    }
    printf("\nsweep over %s (accesses/s; wall s):\n", sweep_label(o));
    printf("%10s %11s %11s %11s %9s %9s %9s %8s\n", "x", "apf", "sync", "ideal", "T_apf",
           "T_sync", "T_ideal", "hidden");
    for (int i = 0; i < n; i++) {
        const struct pc_result *r = p[i].r;
        double h = pc_hidden(r, MODE_COUNT);
        printf("%10g %11.0f %11.0f %11.0f %9.2f %9.2f %9.2f", p[i].x, r[MODE_APF].throughput,
               r[MODE_SYNC].throughput, r[MODE_IDEAL].throughput, r[MODE_APF].wall_s,
               r[MODE_SYNC].wall_s, r[MODE_IDEAL].wall_s);
        if (h >= -0.5)
            printf(" %7.1f%%\n", 100 * h);
        else
            printf(" %8s\n", "-");
    }
}

/* A small self-contained SVG: throughput of the three modes (top), latency hidden (bottom). */
static int write_svg(const struct pc_opts *o, const struct pc_sweep_point *p, int n, FILE *f)
{
    const double W = 720, H = 560, L = 80, R = 160, T = 40, PH = 200, GAP = 70;
    double xmin = p[0].x, xmax = p[n - 1].x, ymax = 1;
    bool logx = o->sweep == SWEEP_LATENCY || xmax / (xmin > 0 ? xmin : 1) > 8;
    for (int i = 0; i < n; i++)
        for (int m = 0; m < MODE_COUNT; m++)
            if (p[i].r[m].throughput > ymax)
                ymax = p[i].r[m].throughput;
    ymax *= 1.1;
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
        double pmax = panel == 0 ? ymax : 100;
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
                panel == 0 ? "guest accesses / s" : "fault latency hidden (%)");
        int series = panel == 0 ? MODE_COUNT : 1;
        for (int m = 0; m < series; m++) {
            fprintf(f, "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"%s\" points=\"",
                    panel == 0 ? colour[m] : colour[0]);
            for (int i = 0; i < n; i++) {
                double v = panel == 0 ? p[i].r[m].throughput
                                      : 100 * fmax(0, pc_hidden(p[i].r, MODE_COUNT));
                fprintf(f, "%.1f,%.1f ", XPOS(p[i].x), bottom - PH * fmin(v, pmax) / pmax);
            }
            fprintf(f, "\"/>\n");
            const char *name = panel == 0 ? pc_mode_name((enum pc_mode)m) : "hidden";
            fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" "
                       "stroke-width=\"3\"/><text x=\"%.0f\" y=\"%.0f\">%s</text>\n",
                    W - R + 16, top + 16 + 18 * m, W - R + 40, top + 16 + 18 * m,
                    panel == 0 ? colour[m] : colour[0], W - R + 46, top + 20 + 18 * m, name);
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
    for (int i = 0; i < n; i++) {
        double h = pc_hidden(p[i].r, MODE_COUNT);
        fprintf(d, "%g %f %f %f %f\n", p[i].x, p[i].r[MODE_APF].throughput,
                p[i].r[MODE_SYNC].throughput, p[i].r[MODE_IDEAL].throughput,
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

int pc_sweep_plot(const struct pc_opts *o, const struct pc_sweep_point *p, int n)
{
    size_t len = strlen(o->plot);
    if (len > 4 && strcmp(o->plot + len - 4, ".png") == 0)
        return write_png(o, p, n);
    FILE *f = fopen(o->plot, "w");
    if (f == NULL)
        return -errno;
    int err = write_svg(o, p, n, f);
    if (fclose(f) != 0 && err == 0)
        err = -EIO;
    return err;
}
