/* SPDX-License-Identifier: MIT */
/*
 * apf-postcopy: post-copy live migration with and without asynchronous page faults.
 * See postcopy.h for the design and `apf-postcopy --help` for the options.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apf/proto.h"
#include "apf/version.h"
#include "postcopy.h"
#include "support/page.h"
#include "support/source_server.h"
#include "trace_check.h" /* examples/trace-check: the --trace timeline */

static const char usage[] =
    "usage: apf-postcopy [options]\n"
    "\n"
    "Runs one workload three ways (APF, synchronous faults, all pages present) on a guest whose\n"
    "memory arrives by post-copy live migration, and reports how much fault latency APF hid.\n"
    "\n"
    "workload:\n"
    "  --vcpus N            vCPU threads (1-64; default: CPUs - 1, at least 1)\n"
    "  --tasks N            guest tasks per vCPU (1-1024; default 8)\n"
    "  --memory-size SIZE   guest memory, e.g. 64M, 1G (default 64M)\n"
    "  --pattern P          sequential | random | zipf (default random)\n"
    "  --zipf-s S           zipf exponent (default 0.99)\n"
    "  --compute US         work per access in microseconds (default 50)\n"
    "  --accesses N         accesses in total, per run (default 12000)\n"
    "  --seed N             seed of page contents and accesses (default 1)\n"
    "migration source:\n"
    "  --latency MODEL      fixed:US | uniform:LO,HI | lognormal:MEDIAN,SIGMA\n"
    "                       (default lognormal:250,0.5: ~283 us mean per 4 KiB page)\n"
    "  --source ADDR:PORT   fetch pages from a source process over TCP\n"
    "  --source-listen PORT be the source process (port 0: any); runs until SIGINT/SIGTERM\n"
    "run:\n"
    "  --modes LIST         any of apf,sync,ideal (default all three)\n"
    "  --transport T        kvm-x86 | kvm-arm64 | xen | mmio: the APF wire (default kvm-x86)\n"
    "  --rounds N           interleaved rounds of the modes (apf, sync, ideal, apf, ...);\n"
    "                       medians over rounds are reported (default 5; sweeps 3)\n"
    "  --host H             loop | pool | both | auto: the host side of the apf runs: an event\n"
    "                       loop (one I/O thread, libapf's embedder completion) or libapf's\n"
    "                       worker pool; both: each in every round (default auto: loop)\n"
    "  --spin on|off|auto   host thread spins to fetch deadlines, idle vCPUs poll (default\n"
    "                       auto: where a CPU no vCPU uses runs the host, and is not busy)\n"
    "  --memory M           uffd | map | auto: userfaultfd, or a software presence map\n"
    "                       (default auto: userfaultfd when available)\n"
    "  --workers N          libapf-host worker threads (default: one per task, max 256)\n"
    "  --max-outstanding N  libapf-host per-vCPU limit (default 64)\n"
    "  --host-cpu own|vcpu|auto  with pinning: host threads on the spare CPUs, or on the\n"
    "                       vCPUs' (default auto: the spare ones unless they are busy)\n"
    "  --pin on|off|auto    vCPU i on CPU i, host threads on the other CPUs (default auto:\n"
    "                       on when there are more CPUs than vCPUs)\n"
    "  --sweep latency|tasks  run a series and report throughput and latency hidden\n"
    "  --plot FILE          with --sweep: FILE.svg, or FILE.png (needs gnuplot)\n"
    "  --trace FILE         write the APF protocol trace (apf mode) and check it;\n"
    "                       FILE.svg: its per-vCPU timeline\n"
    "  --transport T        kvm-x86 | kvm-arm64 | xen | mmio | s390: the guest-visible APF\n"
    "                       wire (default kvm-x86)\n"
    "  --json               print JSON instead of the table\n"
    "  --progress | --no-progress  progress line on stderr (default: on a terminal)\n"
    "  --help, --version\n"
    "\n"
    "Exit status: 0 success, 1 a run failed (e.g. source lost, page mismatch), 2 bad usage.\n";

__attribute__((format(printf, 1, 2))) static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "apf-postcopy: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see apf-postcopy --help)\n");
    va_end(ap);
    return 2;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s == '-' || *s == '\0')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s == '-' || *s == '\0')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10, end++;
    else if (*end == 'M' || *end == 'm')
        shift = 20, end++;
    else if (*end == 'G' || *end == 'g')
        shift = 30, end++;
    if (*end == 'i' || *end == 'B')
        end++;
    if (*end || v == 0 || v > (ULLONG_MAX >> shift))
        return -1;
    *out = v << shift;
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&pc_interrupted, 1);
}

static void source_ready(uint16_t port)
{
    printf("apf-postcopy: source listening on 127.0.0.1:%u\n", port);
    fflush(stdout);
}

/* The runs of one round: apf (with each host asked for), sync, ideal. */
static int round_specs(const struct pc_opts *o, enum pc_mode *mode, enum pc_host *host)
{
    int n = 0;
    if (o->modes[MODE_APF]) {
        if (o->both_hosts) {
            mode[n] = MODE_APF, host[n++] = HOST_LOOP;
            mode[n] = MODE_APF, host[n++] = HOST_POOL;
        } else {
            mode[n] = MODE_APF, host[n++] = o->layout.host;
        }
    }
    for (int m = MODE_SYNC; m < MODE_COUNT; m++)
        if (o->modes[m])
            mode[n] = (enum pc_mode)m, host[n++] = HOST_AUTO;
    return n;
}

static int run_rounds(const struct pc_opts *o, struct pc_round *rd, int nrounds, int *done)
{
    enum pc_mode mode[PC_MAX_RUNS];
    enum pc_host host[PC_MAX_RUNS];
    int n = round_specs(o, mode, host);
    bool show = o->progress == 1 || (o->progress == -1 && isatty(STDERR_FILENO));
    *done = 0;
    for (int k = 0; k < nrounds && !atomic_load(&pc_interrupted); k++) {
        rd[k].n = 0;
        for (int i = 0; i < n; i++) {
            struct pc_opts x = *o;
            x.run_host = host[i];
            x.progress = 0;
            struct pc_result *r = &rd[k].r[rd[k].n++];
            if (pc_run(&x, mode[i], r) != 0) {
                r->ok = false;
                fprintf(stderr, "apf-postcopy: round %d: %s mode failed: %s\n", k + 1,
                        pc_mode_name(mode[i]), r->error);
                *done = k + 1;
                return 1;
            }
        }
        *done = k + 1;
        if (show) {
            double h = pc_hidden(&rd[k], o->layout.host);
            fprintf(stderr, "  round %d/%d: hidden %s%.1f%%\n", k + 1, nrounds,
                    isnan(h) ? "-" : "", isnan(h) ? 0.0 : 100 * h);
        }
    }
    return 0;
}

static int run_sweep(struct pc_opts *o, const struct pc_floor *f)
{
    static const double lat[] = {50, 100, 200, 400, 800};
    static const double tasks[] = {1, 2, 4, 8, 16, 32};
    const double *xs = o->sweep == SWEEP_LATENCY ? lat : tasks;
    int n = o->sweep == SWEEP_LATENCY ? 5 : 6;
    struct pc_sweep_point *p = calloc((size_t)n, sizeof(*p));
    if (p == NULL)
        return 1;
    struct pc_opts base = *o;
    int failed = 0;
    for (int i = 0; i < n && !failed && !atomic_load(&pc_interrupted); i++) {
        struct pc_opts x = base;
        p[i].x = xs[i];
        if (o->sweep == SWEEP_TASKS) {
            x.tasks = (uint32_t)xs[i];
        } else if (x.latency.kind == PC_LATENCY_UNIFORM) {
            x.latency.a_us = xs[i] / 2;
            x.latency.b_us = xs[i] * 1.5;
        } else {
            x.latency.a_us = xs[i]; /* fixed value or log-normal median */
        }
        if (!o->json)
            fprintf(stderr, "apf-postcopy: sweep %s = %g\n",
                    o->sweep == SWEEP_LATENCY ? "latency" : "tasks", xs[i]);
        p[i].rounds = calloc(o->rounds, sizeof(struct pc_round));
        if (p[i].rounds == NULL) {
            failed = 1;
            break;
        }
        failed = run_rounds(&x, p[i].rounds, (int)o->rounds, &p[i].nrounds);
    }
    if (!failed) {
        pc_sweep_report(o, p, n, f);
        if (o->plot) {
            int err = pc_sweep_plot(o, p, n, f);
            if (err) {
                fprintf(stderr, "apf-postcopy: cannot write the plot %s: %s\n", o->plot,
                        strerror(-err));
                failed = 1;
            } else if (!o->json) {
                printf("plot written to %s\n", o->plot);
            }
        }
    }
    for (int i = 0; i < n; i++)
        free(p[i].rounds);
    free(p);
    return failed;
}

int main(int argc, char **argv)
{
    long ncpu = pc_ncpus(); /* its affinity mask: taskset and cpusets count */
    struct pc_opts o = {
        /* one CPU left to the host side (its workers), as production hypervisors keep
         * their I/O threads off the vCPUs' cores */
        .vcpus = ncpu > 2 ? (uint32_t)(ncpu - 1 < 64 ? ncpu - 1 : 64) : 1,
        .tasks = 8,
        .mem_bytes = 64ull << 20,
        .pattern = PATTERN_RANDOM,
        .zipf_s = 0.99,
        .compute_us = 50,
        .accesses = 12000,
        .seed = 1,
        .modes = {true, true, true},
        .memory = MEMORY_AUTO,
        .source_listen = -1,
        .progress = -1,
        .pin = -1,
        .spin = -1,
    };
    pc_latency_default(&o.latency, o.seed);
    enum {
        O_VCPUS = 256, O_TASKS, O_MEMSIZE, O_PATTERN, O_ZIPF, O_COMPUTE, O_ACCESSES, O_SEED,
        O_LATENCY, O_SOURCE, O_LISTEN, O_MODES, O_MEMORY, O_WORKERS, O_MAXOUT, O_SWEEP, O_PLOT,
        O_TRACE, O_JSON, O_PROGRESS, O_NOPROGRESS, O_HELP, O_VERSION, O_PIN, O_TRANSPORT,
        O_ROUNDS, O_HOST, O_SPIN, O_HOSTCPU
    };
    static const struct option longopts[] = {
        {"vcpus", 1, 0, O_VCPUS},        {"tasks", 1, 0, O_TASKS},
        {"memory-size", 1, 0, O_MEMSIZE}, {"pattern", 1, 0, O_PATTERN},
        {"zipf-s", 1, 0, O_ZIPF},        {"compute", 1, 0, O_COMPUTE},
        {"accesses", 1, 0, O_ACCESSES},  {"seed", 1, 0, O_SEED},
        {"latency", 1, 0, O_LATENCY},    {"source", 1, 0, O_SOURCE},
        {"source-listen", 1, 0, O_LISTEN}, {"modes", 1, 0, O_MODES},
        {"memory", 1, 0, O_MEMORY},      {"workers", 1, 0, O_WORKERS},
        {"max-outstanding", 1, 0, O_MAXOUT}, {"sweep", 1, 0, O_SWEEP},
        {"plot", 1, 0, O_PLOT},          {"trace", 1, 0, O_TRACE},
        {"transport", 1, 0, O_TRANSPORT},
        {"json", 0, 0, O_JSON},          {"progress", 0, 0, O_PROGRESS},
        {"no-progress", 0, 0, O_NOPROGRESS}, {"help", 0, 0, O_HELP},
        {"version", 0, 0, O_VERSION},    {"pin", 1, 0, O_PIN},
        {"transport", 1, 0, O_TRANSPORT},
        {"rounds", 1, 0, O_ROUNDS},      {"host", 1, 0, O_HOST},
        {"spin", 1, 0, O_SPIN},          {"host-cpu", 1, 0, O_HOSTCPU},
        {0, 0, 0, 0}};
    const char *latency_spec = NULL;
    opterr = 0;
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_VCPUS:
            if (parse_u64(optarg, 1, 64, &v))
                return bad("--vcpus must be 1..64, not '%s'", optarg);
            o.vcpus = (uint32_t)v;
            break;
        case O_TASKS:
            if (parse_u64(optarg, 1, 1024, &v))
                return bad("--tasks must be 1..1024, not '%s'", optarg);
            o.tasks = (uint32_t)v;
            break;
        case O_MEMSIZE:
            if (parse_size(optarg, &o.mem_bytes) || o.mem_bytes < PC_PAGE_SIZE ||
                o.mem_bytes > (64ull << 30) || o.mem_bytes % PC_PAGE_SIZE)
                return bad("--memory-size must be a multiple of 4 KiB up to 64G, not '%s'",
                           optarg);
            break;
        case O_PATTERN:
            if (strcmp(optarg, "sequential") == 0)
                o.pattern = PATTERN_SEQUENTIAL;
            else if (strcmp(optarg, "random") == 0)
                o.pattern = PATTERN_RANDOM;
            else if (strcmp(optarg, "zipf") == 0)
                o.pattern = PATTERN_ZIPF;
            else
                return bad("--pattern must be sequential, random or zipf, not '%s'", optarg);
            break;
        case O_ZIPF:
            if (parse_double(optarg, 0.0, 5.0, &o.zipf_s))
                return bad("--zipf-s must be 0..5, not '%s'", optarg);
            break;
        case O_COMPUTE:
            if (parse_double(optarg, 0.0, 1e6, &o.compute_us))
                return bad("--compute must be 0..1000000 microseconds, not '%s'", optarg);
            break;
        case O_ACCESSES:
            if (parse_u64(optarg, 1, 1000000000, &o.accesses))
                return bad("--accesses must be 1..1000000000, not '%s'", optarg);
            break;
        case O_SEED:
            if (parse_u64(optarg, 0, UINT64_MAX, &o.seed))
                return bad("--seed must be a non-negative integer, not '%s'", optarg);
            break;
        case O_LATENCY:
            latency_spec = optarg;
            break;
        case O_SOURCE:
            o.source = optarg;
            break;
        case O_LISTEN:
            if (parse_u64(optarg, 0, 65535, &v))
                return bad("--source-listen must be a port 0..65535, not '%s'", optarg);
            o.source_listen = (int)v;
            break;
        case O_MODES: {
            bool m[MODE_COUNT] = {false, false, false};
            char buf[64];
            if (strlen(optarg) >= sizeof(buf))
                return bad("--modes: '%s' is too long", optarg);
            strcpy(buf, optarg);
            for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (strcmp(t, "apf") == 0)
                    m[MODE_APF] = true;
                else if (strcmp(t, "sync") == 0)
                    m[MODE_SYNC] = true;
                else if (strcmp(t, "ideal") == 0)
                    m[MODE_IDEAL] = true;
                else
                    return bad("--modes takes apf, sync and ideal, not '%s'", t);
            }
            if (!m[0] && !m[1] && !m[2])
                return bad("--modes: no mode in '%s'", optarg);
            memcpy(o.modes, m, sizeof(m));
            break;
        }
        case O_TRANSPORT: {
            bool found = false;
            for (int t = TRANSPORT_KVM_X86; t <= TRANSPORT_S390; t++)
                if (strcmp(optarg, pc_transport_name((enum pc_transport)t)) == 0) {
                    o.transport = (enum pc_transport)t;
                    found = true;
                }
            if (!found)
                return bad("--transport must be kvm-x86, kvm-arm64, xen, mmio or s390, not '%s'",
                           optarg);
            break;
        }
        case O_MEMORY:
            if (strcmp(optarg, "uffd") == 0)
                o.memory = MEMORY_UFFD;
            else if (strcmp(optarg, "map") == 0)
                o.memory = MEMORY_MAP;
            else if (strcmp(optarg, "auto") == 0)
                o.memory = MEMORY_AUTO;
            else
                return bad("--memory must be uffd, map or auto, not '%s'", optarg);
            break;
        case O_WORKERS:
            if (parse_u64(optarg, 1, 256, &v))
                return bad("--workers must be 1..256, not '%s'", optarg);
            o.workers = (uint32_t)v;
            break;
        case O_MAXOUT:
            if (parse_u64(optarg, 1, 4096, &v))
                return bad("--max-outstanding must be 1..4096, not '%s'", optarg);
            o.max_outstanding = (uint32_t)v;
            break;
        case O_SWEEP:
            if (strcmp(optarg, "latency") == 0)
                o.sweep = SWEEP_LATENCY;
            else if (strcmp(optarg, "tasks") == 0)
                o.sweep = SWEEP_TASKS;
            else
                return bad("--sweep must be latency or tasks, not '%s'", optarg);
            break;
        case O_PLOT:
            o.plot = optarg;
            break;
        case O_TRACE:
            o.trace = optarg;
            break;
        case O_JSON:
            o.json = true;
            break;
        case O_PROGRESS:
            o.progress = 1;
            break;
        case O_PIN:
            if (strcmp(optarg, "on") == 0)
                o.pin = 1;
            else if (strcmp(optarg, "off") == 0)
                o.pin = 0;
            else if (strcmp(optarg, "auto") == 0)
                o.pin = -1;
            else
                return bad("--pin must be on, off or auto, not '%s'", optarg);
            break;
        case O_ROUNDS:
            if (parse_u64(optarg, 1, 1000, &v))
                return bad("--rounds must be 1..1000, not '%s'", optarg);
            o.rounds = (uint32_t)v;
            break;
        case O_HOST:
            o.both_hosts = false;
            if (strcmp(optarg, "loop") == 0)
                o.host = HOST_LOOP;
            else if (strcmp(optarg, "pool") == 0)
                o.host = HOST_POOL;
            else if (strcmp(optarg, "auto") == 0)
                o.host = HOST_AUTO;
            else if (strcmp(optarg, "both") == 0)
                o.host = HOST_AUTO, o.both_hosts = true;
            else
                return bad("--host must be loop, pool, both or auto, not '%s'", optarg);
            break;
        case O_SPIN:
            if (strcmp(optarg, "on") == 0)
                o.spin = 1;
            else if (strcmp(optarg, "off") == 0)
                o.spin = 0;
            else if (strcmp(optarg, "auto") == 0)
                o.spin = -1;
            else
                return bad("--spin must be on, off or auto, not '%s'", optarg);
            break;
        case O_HOSTCPU:
            if (strcmp(optarg, "own") == 0)
                o.host_cpu = 1;
            else if (strcmp(optarg, "vcpu") == 0)
                o.host_cpu = 2;
            else if (strcmp(optarg, "auto") == 0)
                o.host_cpu = 0;
            else
                return bad("--host-cpu must be own, vcpu or auto, not '%s'", optarg);
            break;
        case O_NOPROGRESS:
            o.progress = 0;
            break;
        case 'h':
        case O_HELP:
            fputs(usage, stdout);
            return 0;
        case O_VERSION:
            printf("apf-postcopy (libapf %s, protocol %06x)\n", apf_version_string(),
                   APF_PROTO_VERSION);
            return 0;
        default:
            return bad("unknown option or missing value: '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad("unexpected argument '%s'", argv[optind]);
    if (latency_spec && pc_latency_parse(latency_spec, &o.latency) != 0)
        return bad("--latency must be fixed:US, uniform:LO,HI or lognormal:MEDIAN,SIGMA, not '%s'",
                   latency_spec);
    o.latency.seed = o.seed;
    if (o.plot && o.sweep == SWEEP_NONE)
        return bad("--plot %s needs --sweep", o.plot);
    if (o.plot) {
        size_t n = strlen(o.plot);
        if (n < 5 || (strcmp(o.plot + n - 4, ".svg") && strcmp(o.plot + n - 4, ".png")))
            return bad("--plot must name a .svg or .png file, not '%s'", o.plot);
    }
    if (o.source && o.source_listen >= 0)
        return bad("%s", "--source and --source-listen exclude each other");
    if (o.trace && o.sweep != SWEEP_NONE)
        return bad("%s", "--trace cannot be combined with --sweep");

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a vanished source must give an error, not kill us */

    if (o.source_listen >= 0) {
        struct pc_source_server_config sc = {
            .port = (uint16_t)o.source_listen,
            .seed = o.seed,
            .npages = o.mem_bytes / PC_PAGE_SIZE,
            .latency = o.latency,
        };
        int err = pc_source_serve(&sc, source_ready);
        if (err) {
            fprintf(stderr, "apf-postcopy: source: %s\n", strerror(-err));
            return 1;
        }
        return 0;
    }
    if (o.rounds == 0)
        o.rounds = o.sweep != SWEEP_NONE ? 3 : 5;
    if (o.source && o.host == HOST_LOOP)
        return bad("%s", "--host loop needs the in-process source (the TCP source is the pool's)");
    if (o.source) {
        o.host = HOST_POOL; /* the TCP source client blocks: a worker's job */
        o.both_hosts = false;
    }
    pc_layout_decide(&o);
    struct pc_floor floor;
    if (o.modes[MODE_APF] && o.memory != MEMORY_MAP && o.source == NULL &&
        pc_floor_probe(&o, &floor) != 0)
        floor.ok = false;
    else if (!o.modes[MODE_APF] || o.memory == MEMORY_MAP || o.source != NULL)
        floor.ok = false;
    if (o.sweep != SWEEP_NONE)
        return run_sweep(&o, &floor);

    struct pc_round *rd = calloc(o.rounds, sizeof(*rd));
    if (rd == NULL)
        return 1;
    int done;
    int failed = run_rounds(&o, rd, (int)o.rounds, &done);
    if (o.trace && tc_svg_from_file(o.trace) < 0) /* FILE.svg: the trace's timeline */
        failed = 1;
    if (o.json)
        pc_report_json(&o, rd, done, &floor);
    else
        pc_report_table(&o, rd, done, &floor);
    free(rd);
    return failed ? 1 : 0;
}
