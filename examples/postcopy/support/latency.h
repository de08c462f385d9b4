/* SPDX-License-Identifier: MIT */
/*
 * The latency model of the migration source, and a precise sleep to apply it.
 *
 * A sample is a pure function of (model, key), with the page index as the key: page 1234
 * costs the same in every run and in every mode (APF, synchronous, in-process or TCP
 * source), so the modes are compared on identical delays, whatever the thread interleaving.
 *
 * Default: log-normal, median 250 us, sigma 0.5 ("lognormal:250,0.5"). A 4 KiB page over a
 * data-centre network costs a round trip plus the source's lookup, a few hundred
 * microseconds, with a tail: this gives mean ~283 us, p90 ~474 us, p99 ~800 us. A fixed
 * latency ("fixed:300") is the simpler alternative for reasoning about results.
 */
#ifndef PC_LATENCY_H
#define PC_LATENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Which distribution. */
enum pc_latency_kind {
    PC_LATENCY_FIXED = 0,     /* a_us */
    PC_LATENCY_UNIFORM = 1,   /* uniform in [a_us, b_us] */
    PC_LATENCY_LOGNORMAL = 2, /* median a_us, sigma b_us (of the underlying normal) */
};

/** A latency model. */
struct pc_latency {
    enum pc_latency_kind kind;
    double a_us; /* fixed value, lower bound, or median; microseconds */
    double b_us; /* upper bound (uniform) or sigma (log-normal, no unit) */
    uint64_t seed;
};

#define PC_LATENCY_DEFAULT_SPEC "lognormal:250,0.5"
/** Largest accepted latency parameter, microseconds (10 s); samples are capped to it too. */
#define PC_LATENCY_MAX_US 10000000.0

/** Sets `l` to the default model (PC_LATENCY_DEFAULT_SPEC) with seed `seed`. */
void pc_latency_default(struct pc_latency *l, uint64_t seed);

/**
 * Parses "fixed:US", "uniform:LO,HI" or "lognormal:MEDIAN,SIGMA" (microseconds; sigma
 * in [0, 4]). The seed of `l` is kept as it was.
 * @return 0, or -EINVAL (unknown kind, bad number, out of range, HI < LO); `l` is then
 *         unchanged.
 */
int pc_latency_parse(const char *spec, struct pc_latency *l);

/**
 * Writes the model in the syntax pc_latency_parse() reads.
 * @return the length written (as snprintf), or -EINVAL for an unknown kind.
 */
int pc_latency_format(const struct pc_latency *l, char *buf, size_t len);

/**
 * @return the latency of request `key` (the page index), in nanoseconds. Deterministic:
 *         same model, seed and key give the same value on every call and thread.
 * Calling context: any thread.
 */
uint64_t pc_latency_sample_ns(const struct pc_latency *l, uint64_t key);

/**
 * Sleeps `ns` nanoseconds, precisely and without burning a CPU: an absolute CLOCK_MONOTONIC
 * sleep that ends early by this thread's measured timer wake-up delay (a moving average,
 * bounded by PC_SLEEP_SPIN_NS), then a spin on the clock for what is left, usually a few
 * microseconds. The first call on a thread sets its timer slack to 1 ns (prctl
 * PR_SET_TIMERSLACK; the 50 us default would be added to every sleep).
 * Calling context: any thread; meant for the source's worker and server threads.
 */
void pc_sleep_ns(uint64_t ns);

/**
 * Sleeps until CLOCK_MONOTONIC reaches `deadline_ns` (pc_now_ns() units), the same way as
 * pc_sleep_ns(); returns at once if it has passed. Lets a caller count its own work (page
 * generation, I/O) inside the latency.
 */
void pc_sleep_until_ns(uint64_t deadline_ns);

/**
 * For the calling thread: whether the sleeps above finish by spinning (precise, costs up to
 * PC_SLEEP_SPIN_NS of CPU per sleep; the default) or only sleep (no CPU while waiting, as a
 * wait on a remote machine; a late timer wake-up then lengthens the sleep a little).
 */
void pc_sleep_set_spin(bool spin);

/** Upper bound of the early wake-up, hence of the spin after a sleep (ns). */
#define PC_SLEEP_SPIN_NS 30000u

/** @return CLOCK_MONOTONIC in nanoseconds. */
uint64_t pc_now_ns(void);

#endif
