/* SPDX-License-Identifier: MIT */
/*
 * Latency models and the precise sleep (see latency.h).
 *
 * Samples: two uniforms from a hash of (seed, key); a normal deviate from them by
 * Box-Muller; exp() of it for the log-normal. Only libm math, so deterministic on a host.
 */
#define _GNU_SOURCE
#include "latency.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

static inline uint64_t pc__mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A uniform in (0, 1]: 53 random bits, never 0 (Box-Muller takes its log). */
static inline double pc__unit(uint64_t x)
{
    return (double)((x >> 11) + 1) * 0x1.0p-53;
}

void pc_latency_default(struct pc_latency *l, uint64_t seed)
{
    l->kind = PC_LATENCY_LOGNORMAL;
    l->a_us = 250.0;
    l->b_us = 0.5;
    l->seed = seed;
}

static bool pc__parse_num(const char *s, char **end, double *out)
{
    errno = 0;
    double v = strtod(s, end);
    if (*end == s || errno != 0 || !isfinite(v))
        return false;
    *out = v;
    return true;
}

int pc_latency_parse(const char *spec, struct pc_latency *l)
{
    if (spec == NULL || l == NULL)
        return -EINVAL;
    struct pc_latency r = *l;
    const char *colon = strchr(spec, ':');
    if (colon == NULL)
        return -EINVAL;
    size_t klen = (size_t)(colon - spec);
    bool two;
    if (klen == 5 && strncmp(spec, "fixed", 5) == 0) {
        r.kind = PC_LATENCY_FIXED;
        two = false;
    } else if (klen == 7 && strncmp(spec, "uniform", 7) == 0) {
        r.kind = PC_LATENCY_UNIFORM;
        two = true;
    } else if (klen == 9 && strncmp(spec, "lognormal", 9) == 0) {
        r.kind = PC_LATENCY_LOGNORMAL;
        two = true;
    } else {
        return -EINVAL;
    }
    char *end;
    if (!pc__parse_num(colon + 1, &end, &r.a_us))
        return -EINVAL;
    r.b_us = 0.0;
    if (two) {
        if (*end != ',' || !pc__parse_num(end + 1, &end, &r.b_us))
            return -EINVAL;
    }
    if (*end != '\0' || r.a_us < 0.0 || r.a_us > PC_LATENCY_MAX_US)
        return -EINVAL;
    if (r.kind == PC_LATENCY_UNIFORM && (r.b_us < r.a_us || r.b_us > PC_LATENCY_MAX_US))
        return -EINVAL;
    if (r.kind == PC_LATENCY_LOGNORMAL && (r.a_us <= 0.0 || r.b_us < 0.0 || r.b_us > 4.0))
        return -EINVAL;
    *l = r;
    return 0;
}

int pc_latency_format(const struct pc_latency *l, char *buf, size_t len)
{
    switch (l->kind) {
    case PC_LATENCY_FIXED:
        return snprintf(buf, len, "fixed:%g", l->a_us);
    case PC_LATENCY_UNIFORM:
        return snprintf(buf, len, "uniform:%g,%g", l->a_us, l->b_us);
    case PC_LATENCY_LOGNORMAL:
        return snprintf(buf, len, "lognormal:%g,%g", l->a_us, l->b_us);
    }
    return -EINVAL;
}

uint64_t pc_latency_sample_ns(const struct pc_latency *l, uint64_t key)
{
    uint64_t h1 = pc__mix64(l->seed ^ pc__mix64(key ^ 0x6c61746e63790001ull));
    uint64_t h2 = pc__mix64(h1 ^ 0x9e3779b97f4a7c15ull);
    double us;
    switch (l->kind) {
    case PC_LATENCY_FIXED:
        us = l->a_us;
        break;
    case PC_LATENCY_UNIFORM:
        us = l->a_us + (l->b_us - l->a_us) * (pc__unit(h1) - 0x1.0p-53);
        break;
    case PC_LATENCY_LOGNORMAL: {
        /* Box-Muller: sqrt(-2 ln u1) cos(2 pi u2) is a standard normal deviate. */
        double z = sqrt(-2.0 * log(pc__unit(h1))) * cos(2.0 * M_PI * pc__unit(h2));
        us = l->a_us * exp(l->b_us * z);
        break;
    }
    default:
        us = 0.0;
        break;
    }
    if (!(us > 0.0))
        return 0;
    if (us > PC_LATENCY_MAX_US)
        us = PC_LATENCY_MAX_US;
    return (uint64_t)llround(us * 1000.0);
}

uint64_t pc_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static inline void pc__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/*
 * The precise sleep. Per thread: the timer slack is set to 1 ns once (the default 50 us
 * would be added to every sleep), and `early` estimates how late this thread's timer
 * wake-ups are (a moving average, 1/8 weight per sample). The sleep ends that much before
 * the deadline and the rest is spun, so a sleep costs a few microseconds of CPU instead of a
 * fixed spin window, and still ends within a microsecond or so of its deadline.
 */
struct pc__sleep_state {
    bool init;
    uint64_t early; /* ns */
};

static _Thread_local struct pc__sleep_state pc__sleep;
static _Thread_local bool pc__sleep_nospin;

void pc_sleep_set_spin(bool spin)
{
    pc__sleep_nospin = !spin;
}

void pc_sleep_until_ns(uint64_t deadline)
{
    struct pc__sleep_state *st = &pc__sleep;
    if (!st->init) {
        (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
        st->early = PC_SLEEP_SPIN_NS / 3;
        st->init = true;
    }
    uint64_t now = pc_now_ns();
    if (now >= deadline)
        return;
    if (pc__sleep_nospin) {
        struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000ull),
                              .tv_nsec = (long)(deadline % 1000000000ull)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
        return;
    }
    if (deadline - now > st->early) {
        uint64_t wake = deadline - st->early;
        struct timespec ts = {.tv_sec = (time_t)(wake / 1000000000ull),
                              .tv_nsec = (long)(wake % 1000000000ull)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
        uint64_t late = pc_now_ns() - wake;
        if (late > PC_SLEEP_SPIN_NS)
            late = PC_SLEEP_SPIN_NS; /* a preemption, not the timer: bounded influence */
        st->early = st->early - st->early / 8 + late / 8;
    }
    while (pc_now_ns() < deadline)
        pc__cpu_relax();
}

void pc_sleep_ns(uint64_t ns)
{
    if (ns != 0)
        pc_sleep_until_ns(pc_now_ns() + ns);
}
