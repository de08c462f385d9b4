/* SPDX-License-Identifier: MIT */
/*
 * The migration source: where a missing guest page comes from in post-copy migration.
 *
 * One interface, two kinds:
 *  - in-process (pc_source_local_create): generates the page (page.h) and sleeps the
 *    latency model's delay for that page (latency.h); every fetch is independent, so any
 *    number of worker threads fetch concurrently;
 *  - TCP (source_tcp.h): a client of a source process (source_server.h) over real sockets.
 * Pages are PC_PAGE_SIZE (4 KiB) bytes, deterministic from (seed, index); `seed` and
 * `npages` of a source say what a reader must verify pages against (pc_page_verify()).
 *
 * Return values: 0 on success, a negative errno on failure. After a failure,
 * pc_source_last_error() gives a sentence for the user.
 */
#ifndef PC_SOURCE_H
#define PC_SOURCE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "latency.h"
#include "page.h"

struct pc_source;

/** Fetches page `page` into `dst` (PC_PAGE_SIZE bytes): 0 or -errno. Any thread. */
typedef int (*pc_source_fetch_fn)(struct pc_source *src, uint64_t page, void *dst);
/** Releases the source and everything it owns. */
typedef void (*pc_source_destroy_fn)(struct pc_source *src);

/** What a source kind implements (see source_impl.h). */
struct pc_source_ops {
    const char *name; /* "local", "tcp" */
    pc_source_fetch_fn fetch;
    pc_source_destroy_fn destroy;
};

/** Counters, for the simulator's report. */
struct pc_source_stats {
    uint64_t fetches;  /* successful fetches */
    uint64_t errors;   /* failed fetches */
    uint64_t fetch_ns; /* wall time spent in successful fetches, summed over threads */
};

/** A source. The public fields are read-only for users. */
struct pc_source {
    const struct pc_source_ops *ops;
    uint64_t seed;   /* the pages' seed: verify with pc_page_verify(page, seed, index) */
    uint64_t npages; /* pages 0 .. npages-1 exist */
    /* Private: counters and the last error message. */
    _Atomic uint64_t n_fetches, n_errors, fetch_ns;
    pthread_mutex_t err_lock;
    char err_msg[256];
};

/**
 * Fetches page `page` into `dst`.
 * @param s     the source.
 * @param page  page index, < s->npages.
 * @param dst   PC_PAGE_SIZE bytes.
 * @return 0; -ERANGE (no such page); for TCP also -ECONNRESET (the source closed or reset
 *         the connection), -ECONNREFUSED (it is not listening any more), -ETIMEDOUT (no
 *         answer in time), -EPROTO (a malformed or mismatched reply), other -errno.
 * Calling context: any thread, concurrently; blocks for the latency.
 */
int pc_source_fetch(struct pc_source *s, uint64_t page, void *dst);

/** Destroys a source (NULL is fine). No fetch may be running. */
void pc_source_destroy(struct pc_source *s);

/** Copies the counters. Any thread. */
void pc_source_get_stats(const struct pc_source *s, struct pc_source_stats *out);

/**
 * Copies the message of the last failure ("" if none) into `buf`.
 * @return `buf`. Any thread.
 */
const char *pc_source_last_error(const struct pc_source *s, char *buf, size_t len);

/**
 * Creates the in-process source.
 * @param out     receives the source.
 * @param seed    the pages' seed.
 * @param npages  number of pages; not 0.
 * @param lat     the latency model (copied); NULL for no latency.
 * @return 0, -EINVAL, or -ENOMEM.
 */
int pc_source_local_create(struct pc_source **out, uint64_t seed, uint64_t npages,
                           const struct pc_latency *lat);

#endif
