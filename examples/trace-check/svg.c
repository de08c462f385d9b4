/* SPDX-License-Identifier: MIT */
/*
 * apf-trace-check --svg: a protocol trace as a per-vCPU timeline, one self-contained SVG
 * file (no scripts, no external resources). Each vCPU has a host row and a guest row; the
 * x axis is the order of the events (times are in each event's tooltip and on the axis),
 * so simultaneous events stay apart. Drawn: "not present" (with the token's outstanding
 * time as a bar up to its "page ready" or the wake-all that answered it), sleeps (bar up to
 * the wake-up), completions, "page ready", wake-alls, ACKs (slot ACK or ring consumption),
 * halts, synchronous faults, enable/transport/disable, and the first violation. Only
 * transport-neutral events are used; a host.transport event shows the vCPU's window.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apf/proto.h"
#include "apf/trace.h"
#include "trace_check.h"

#define MAX_LANES 64u
#define MAX_DRAWN 4000u
#define LEFT 150
#define TOP 90
#define BAND 86

static void esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20)
                fputc(*s, f);
        }
    }
}

struct style {
    uint32_t kind;
    const char *cls, *color, *shape, *label; /* shape: v ^ o s d x | */
};

static const struct style styles[] = {
    {APF_TRACE_HOST_NOT_PRESENT, "host-np", "#e67e22", "v", "not present"},
    {APF_TRACE_HOST_SYNC, "host-sync", "#7f8c8d", "s", "synchronous fault"},
    {APF_TRACE_HOST_HALT, "host-halt", "#8e44ad", "s", "halt"},
    {APF_TRACE_HOST_DONE, "host-done", "#27ae60", "o", "completion"},
    {APF_TRACE_HOST_READY, "host-ready", "#2980b9", "^", "page ready"},
    {APF_TRACE_HOST_ACK, "host-ack", "#16a085", "|", "ACK / ring consumed"},
    {APF_TRACE_HOST_ENABLE, "host-enable", "#000000", "d", "enable"},
    {APF_TRACE_HOST_DISABLE, "host-disable", "#000000", "x", "disable"},
    {APF_TRACE_HOST_DROP, "host-drop", "#95a5a6", "x", "completion dropped"},
    {APF_TRACE_HOST_RESET, "host-reset", "#000000", "x", "reset"},
    {APF_TRACE_HOST_RESTORE, "host-restore", "#000000", "x", "restore"},
    {APF_TRACE_HOST_TRANSPORT, "host-transport", "#555555", "d", "transport (window)"},
    {APF_TRACE_GUEST_NOT_PRESENT, "guest-np", "#e67e22", "v", "guest: not present"},
    {APF_TRACE_GUEST_READY, "guest-ready", "#2980b9", "^", "guest: page ready"},
    {APF_TRACE_GUEST_WAKE, "guest-wake", "#27ae60", "o", "guest: wake"},
    {APF_TRACE_GUEST_ACK, "guest-ack", "#16a085", "|", "guest: ACK"},
    {APF_TRACE_GUEST_SLEEP, "guest-sleep", "#d35400", "s", "guest: sleep"},
    {APF_TRACE_GUEST_ENABLE, "guest-enable", "#000000", "d", "guest: enable"},
    {APF_TRACE_GUEST_DISABLE, "guest-disable", "#000000", "x", "guest: disable"},
};
#define N_STYLES (sizeof(styles) / sizeof(styles[0]))
#define WAKE_ALL_COLOR "#c0392b"

static const struct style *style_of(uint32_t kind)
{
    for (size_t i = 0; i < N_STYLES; i++)
        if (styles[i].kind == kind)
            return &styles[i];
    return NULL;
}

static void shape(FILE *f, const char *sh, double x, double y, const char *color, bool hollow)
{
    const char *fill = hollow ? "#ffffff" : color;
    switch (sh[0]) {
    case 'v':
        fprintf(f, "<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" fill=\"%s\" stroke=\"%s\"/>",
                x - 5, y - 5, x + 5, y - 5, x, y + 5, fill, color);
        break;
    case '^':
        fprintf(f, "<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" fill=\"%s\" stroke=\"%s\"/>",
                x - 5, y + 5, x + 5, y + 5, x, y - 5, fill, color);
        break;
    case 'o':
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\" stroke=\"%s\"/>", x, y,
                fill, color);
        break;
    case 's':
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"9\" height=\"9\" fill=\"%s\" "
                "stroke=\"%s\"/>", x - 4.5, y - 4.5, fill, color);
        break;
    case 'd':
        fprintf(f, "<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" fill=\"%s\" "
                "stroke=\"%s\"/>", x, y - 6, x + 5, y, x, y + 6, x - 5, y, fill, color);
        break;
    case 'x':
        fprintf(f, "<path d=\"M%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1f\" stroke=\"%s\" "
                "stroke-width=\"2\"/>", x - 4, y - 4, x + 4, y + 4, x - 4, y + 4, x + 4, y - 4,
                color);
        break;
    default:
        fprintf(f, "<path d=\"M%.1f %.1fL%.1f %.1f\" stroke=\"%s\" stroke-width=\"3\"/>", x,
                y - 7, x, y + 7, color);
    }
}

/* An open interval on a row: a token's outstanding time, or a sleep. */
struct open {
    uint32_t vcpu, token;
    size_t from;
    bool used;
};

static void bar(FILE *f, double x0, double x1, double y, const char *color, const char *what,
                uint32_t token)
{
    if (x1 < x0 + 2)
        x1 = x0 + 2;
    fprintf(f, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"8\" "
            "fill=\"%s\" opacity=\"0.35\"><title>%s 0x%x</title></rect>\n",
            x0, y - 4, x1 - x0, color, what, token);
}

static void close_where(FILE *f, struct open *o, size_t n_open, uint32_t vcpu, bool all,
                        uint32_t token, double (*xof)(size_t, double), double step, size_t to,
                        double y0, double row, const char *color, const char *what)
{
    for (size_t i = 0; i < n_open; i++) {
        if (!o[i].used || o[i].vcpu != vcpu || (!all && o[i].token != token))
            continue;
        bar(f, xof(o[i].from, step), xof(to, step), y0 + vcpu * BAND + row, color, what,
            o[i].token);
        o[i].used = false;
    }
}

static double x_at(size_t i, double step)
{
    return LEFT + 20 + (double)i * step;
}

int tc_svg_write(const char *path, const struct line *lines, size_t n, size_t fail_at,
                 const char *error, const char *title)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t drawn = n > MAX_DRAWN ? MAX_DRAWN : n;
    uint32_t lanes = 1;
    for (size_t i = 0; i < drawn; i++)
        if (lines[i].ev.vcpu + 1 > lanes)
            lanes = lines[i].ev.vcpu + 1 > MAX_LANES ? MAX_LANES : lines[i].ev.vcpu + 1;
    double step = drawn ? 8000.0 / (double)drawn : 16;
    step = step > 22 ? 22 : step < 1.5 ? 1.5 : step;
    double width = LEFT + 60 + (double)drawn * step;
    if (width < 900)
        width = 900;
    double height = TOP + lanes * BAND + 130;
    unsigned long counts[N_STYLES] = {0}, wake_alls = 0;

    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
            width, height, width, height);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n<text x=\"10\" "
               "y=\"20\" font-size=\"15\" font-weight=\"bold\">");
    esc(f, title);
    fprintf(f, ": %zu events%s</text>\n", n,
            drawn < n ? " (the first 4000 drawn)" : "");
    /* lanes */
    for (uint32_t v = 0; v < lanes; v++) {
        double y = TOP + v * BAND;
        fprintf(f, "<rect x=\"0\" y=\"%.0f\" width=\"%.0f\" height=\"%d\" fill=\"%s\"/>\n", y,
                width, BAND, v % 2 ? "#f4f6f7" : "#fbfcfc");
        fprintf(f, "<text x=\"10\" y=\"%.0f\">vCPU %u host</text>\n", y + 28, v);
        fprintf(f, "<text x=\"10\" y=\"%.0f\">vCPU %u guest</text>\n", y + 64, v);
        fprintf(f, "<line x1=\"%d\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#d5d8dc\"/>\n",
                LEFT, y + 24, width, y + 24);
        fprintf(f, "<line x1=\"%d\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#d5d8dc\"/>\n",
                LEFT, y + 60, width, y + 60);
    }
    /* time axis: every ~120 px, the time of the next event that has one (emitters without
     * a clock write 0), relative to the first such event */
    uint64_t t0 = 0;
    for (size_t i = 0; i < drawn && !t0; i++)
        t0 = lines[i].ev.time_ns;
    size_t every = (size_t)(120 / step) + 1;
    for (size_t i = 0; i < drawn; i += every) {
        size_t j = i;
        while (j < drawn && j < i + every && lines[j].ev.time_ns == 0)
            j++;
        if (j >= drawn || j >= i + every || lines[j].ev.time_ns < t0)
            continue;
        double x = x_at(j, step);
        double ms = (double)(lines[j].ev.time_ns - t0) / 1e6;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#eeeeee\"/>"
                   "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" fill=\"#555\">%.3f ms</text>\n",
                x, TOP - 8, x, (double)(TOP + lanes * BAND), x, TOP - 12, ms);
    }
    /* bars first (under the markers) */
    struct open *o = calloc(drawn + 1, sizeof(*o));
    size_t n_open = 0;
    if (!o) {
        fclose(f);
        fprintf(stderr, "apf-trace-check: out of memory\n");
        return -1;
    }
    for (size_t i = 0; i < drawn; i++) {
        const struct apf_trace_event *e = &lines[i].ev;
        if (e->vcpu >= lanes)
            continue;
        switch (e->kind) {
        case APF_TRACE_HOST_NOT_PRESENT:
        case APF_TRACE_GUEST_SLEEP:
            o[n_open++] = (struct open){
                e->vcpu | (e->kind == APF_TRACE_GUEST_SLEEP ? 0x80000000u : 0), e->token, i,
                true};
            break;
        case APF_TRACE_HOST_READY:
            close_where(f, o, n_open, e->vcpu, e->token == APF_TOKEN_WAKE_ALL, e->token, x_at,
                        step, i, TOP, 24, "#e67e22", "outstanding: token");
            break;
        case APF_TRACE_GUEST_WAKE:
        case APF_TRACE_GUEST_READY:
            for (size_t k = 0; k < n_open; k++)
                if (o[k].used && o[k].vcpu == (e->vcpu | 0x80000000u) &&
                    (o[k].token == e->token || e->token == APF_TOKEN_WAKE_ALL)) {
                    bar(f, x_at(o[k].from, step), x_at(i, step), TOP + e->vcpu * BAND + 60,
                        "#d35400", "asleep on token", o[k].token);
                    o[k].used = false;
                }
            break;
        case APF_TRACE_HOST_ENABLE:
        case APF_TRACE_HOST_DISABLE:
        case APF_TRACE_HOST_RESET:
        case APF_TRACE_HOST_RESTORE:
            close_where(f, o, n_open, e->vcpu, true, 0, x_at, step, i, TOP, 24, "#e67e22",
                        "outstanding: token");
            break;
        default:
            break;
        }
    }
    for (size_t k = 0; k < n_open; k++) /* still open at the end */
        if (o[k].used) {
            bool guest = o[k].vcpu & 0x80000000u;
            uint32_t v = o[k].vcpu & 0x7fffffffu;
            bar(f, x_at(o[k].from, step), x_at(drawn, step), TOP + v * BAND + (guest ? 60 : 24),
                guest ? "#d35400" : "#e67e22", guest ? "asleep on token" : "outstanding: token",
                o[k].token);
        }
    free(o);
    /* markers */
    for (size_t i = 0; i < drawn; i++) {
        const struct apf_trace_event *e = &lines[i].ev;
        const struct style *s = style_of(e->kind);
        if (!s || e->vcpu >= lanes)
            continue;
        counts[s - styles]++;
        bool guest = e->kind >= APF_TRACE_GUEST_NOT_PRESENT;
        bool wake_all = (e->kind == APF_TRACE_HOST_READY || e->kind == APF_TRACE_GUEST_READY) &&
                        e->token == APF_TOKEN_WAKE_ALL;
        wake_alls += wake_all && !guest;
        char text[96];
        apf_trace_format(e, text, sizeof(text));
        fprintf(f, "<g class=\"ev %s%s\"><title>line %lu: ", s->cls, wake_all ? " wake-all" : "",
                lines[i].no);
        esc(f, text);
        fprintf(f, "%s</title>", e->kind == APF_TRACE_HOST_TRANSPORT ? " (arg = window)" : "");
        double x = x_at(i, step), y = TOP + e->vcpu * BAND + (guest ? 60 : 24);
        shape(f, wake_all ? "d" : s->shape, x, y, wake_all ? WAKE_ALL_COLOR : s->color, guest);
        if (e->kind == APF_TRACE_HOST_TRANSPORT)
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">w%d</text>", x + 6, y - 6,
                    e->arg);
        fputs("</g>\n", f);
    }
    if (error && *error) {
        fputs("<g class=\"violation\">", f);
        if (fail_at < drawn)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#e74c3c\" "
                       "stroke-width=\"2\" stroke-dasharray=\"4 3\"/>",
                    x_at(fail_at, step), TOP - 4, x_at(fail_at, step),
                    (double)(TOP + lanes * BAND));
        fputs("<text x=\"10\" y=\"42\" fill=\"#e74c3c\" font-weight=\"bold\">first violation", f);
        if (fail_at < n)
            fprintf(f, " (line %lu)", lines[fail_at].no);
        fputs(": ", f);
        esc(f, error);
        fputs("</text></g>\n", f);
    } else {
        fputs("<text x=\"10\" y=\"42\" fill=\"#1e8449\">no violation</text>\n", f);
    }
    /* legend with counts */
    double ly = TOP + lanes * BAND + 24;
    double lx = 10;
    fputs("<g class=\"legend\">", f);
    for (size_t i = 0; i < N_STYLES; i++) {
        if (!counts[i])
            continue;
        bool guest = styles[i].kind >= APF_TRACE_GUEST_NOT_PRESENT;
        shape(f, styles[i].shape, lx + 6, ly, styles[i].color, guest);
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">%s (%s) %lu</text>", lx + 16, ly + 4,
                styles[i].label, apf_trace_kind_name(styles[i].kind), counts[i]);
        lx += 290;
        if (lx + 290 > width) {
            lx = 10;
            ly += 20;
        }
    }
    if (wake_alls) {
        shape(f, "d", lx + 6, ly, WAKE_ALL_COLOR, false);
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">wake-all (host.ready 0xffffffff) %lu</text>",
                lx + 16, ly + 4, wake_alls);
    }
    fprintf(f, "</g>\n<text x=\"10\" y=\"%.0f\" font-size=\"10\" fill=\"#555\">bars: a token "
               "outstanding (host row, not present to its page ready or wake-all) and a task "
               "asleep (guest row); x: event order; hover a mark for its line</text>\n</svg>\n",
            height - 12);
    if (fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

int tc_svg_from_file(const char *trace_path)
{
    FILE *in = fopen(trace_path, "r");
    if (!in)
        return 1; /* no trace written (e.g. the apf mode did not run): nothing to draw */
    struct line *lines = NULL;
    size_t n = 0, cap = 0, fail_at = SIZE_MAX;
    uint32_t max_vcpu = 0;
    char *buf = NULL, *svg = NULL;
    size_t bufcap = 0;
    ssize_t len;
    unsigned long no = 0;
    int rc = -1;
    void *mem = NULL;
    while ((len = getline(&buf, &bufcap, in)) >= 0) {
        no++;
        size_t k = 0;
        while (k < (size_t)len && (buf[k] == ' ' || buf[k] == '\t'))
            k++;
        if (k == (size_t)len || buf[k] == '#' || buf[k] == '\n')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            struct line *g = realloc(lines, cap * sizeof(*g));
            if (!g)
                goto out;
            lines = g;
        }
        if (apf_trace_parse(buf, (size_t)len, &lines[n].ev) != 0) {
            fprintf(stderr, "%s: line %lu: not a trace event\n", trace_path, no);
            goto out;
        }
        lines[n].no = no;
        max_vcpu = lines[n].ev.vcpu > max_vcpu ? lines[n].ev.vcpu : max_vcpu;
        n++;
    }
    if (max_vcpu >= 65536)
        goto out;
    /* the first violation, to mark it (the trace's own windows; ring queues up to 65536) */
    size_t size = apf_trace_checker_size_windowed(max_vcpu + 1, 4096, 65536);
    mem = size ? aligned_alloc(64, (size + 63) & ~(size_t)63) : NULL;
    struct apf_trace_checker *c =
        mem ? apf_trace_checker_init_windowed(mem, size, max_vcpu + 1, 4096, 65536) : NULL;
    if (!c)
        goto out;
    for (size_t i = 0; i < n && fail_at == SIZE_MAX; i++)
        if (apf_trace_checker_feed(c, &lines[i].ev) != 0)
            fail_at = i;
    if (fail_at == SIZE_MAX && apf_trace_checker_finish(c) != 0)
        fail_at = n;
    size_t plen = strlen(trace_path);
    svg = malloc(plen + 5);
    if (!svg)
        goto out;
    memcpy(svg, trace_path, plen);
    memcpy(svg + plen, ".svg", 5);
    rc = tc_svg_write(svg, lines, n, fail_at == SIZE_MAX ? n : fail_at,
                      fail_at == SIZE_MAX ? "" : apf_trace_checker_error(c),
                      "libapf protocol trace");
out:
    if (rc < 0)
        fprintf(stderr, "%s: no timeline written\n", trace_path);
    fclose(in);
    free(buf);
    free(lines);
    free(mem);
    free(svg);
    return rc;
}
