/* SPDX-License-Identifier: MIT */
/*
 * The source interface (counters, last error) and the in-process source (see source.h).
 *
 * The in-process source starts the latency clock when the fetch starts and generates the
 * page inside it, so a fetch takes the model's latency, not latency plus generation.
 */
#define _GNU_SOURCE
#include "source.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source_impl.h"

void pc__source_init(struct pc_source *s, const struct pc_source_ops *ops, uint64_t seed,
                     uint64_t npages)
{
    s->ops = ops;
    s->seed = seed;
    s->npages = npages;
    atomic_init(&s->n_fetches, 0);
    atomic_init(&s->n_errors, 0);
    atomic_init(&s->fetch_ns, 0);
    pthread_mutex_init(&s->err_lock, NULL);
    s->err_msg[0] = '\0';
}

void pc__source_fini(struct pc_source *s)
{
    pthread_mutex_destroy(&s->err_lock);
}

void pc__source_set_error(struct pc_source *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&s->err_lock);
    vsnprintf(s->err_msg, sizeof(s->err_msg), fmt, ap);
    pthread_mutex_unlock(&s->err_lock);
    va_end(ap);
}

const char *pc_source_last_error(const struct pc_source *s, char *buf, size_t len)
{
    if (len == 0)
        return buf;
    struct pc_source *m = (struct pc_source *)s; /* the lock only, not the source */
    pthread_mutex_lock(&m->err_lock);
    snprintf(buf, len, "%s", m->err_msg);
    pthread_mutex_unlock(&m->err_lock);
    return buf;
}

int pc_source_fetch(struct pc_source *s, uint64_t page, void *dst)
{
    if (page >= s->npages) {
        pc__source_set_error(s, "page %llu is beyond the source's %llu pages",
                             (unsigned long long)page, (unsigned long long)s->npages);
        atomic_fetch_add_explicit(&s->n_errors, 1, memory_order_relaxed);
        return -ERANGE;
    }
    uint64_t t0 = pc_now_ns();
    int err = s->ops->fetch(s, page, dst);
    if (err != 0) {
        atomic_fetch_add_explicit(&s->n_errors, 1, memory_order_relaxed);
        return err;
    }
    atomic_fetch_add_explicit(&s->n_fetches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->fetch_ns, pc_now_ns() - t0, memory_order_relaxed);
    return 0;
}

void pc_source_destroy(struct pc_source *s)
{
    if (s != NULL)
        s->ops->destroy(s);
}

void pc_source_get_stats(const struct pc_source *s, struct pc_source_stats *out)
{
    out->fetches = atomic_load_explicit(&s->n_fetches, memory_order_relaxed);
    out->errors = atomic_load_explicit(&s->n_errors, memory_order_relaxed);
    out->fetch_ns = atomic_load_explicit(&s->fetch_ns, memory_order_relaxed);
}

/* --- the in-process source ---------------------------------------------------------------- */

struct pc__local_source {
    struct pc_source base; /* first: the ops receive &base */
    struct pc_latency lat;
    bool has_lat;
};

static int pc__local_fetch(struct pc_source *s, uint64_t page, void *dst)
{
    struct pc__local_source *l = (struct pc__local_source *)s;
    uint64_t deadline = pc_now_ns();
    if (l->has_lat)
        deadline += pc_latency_sample_ns(&l->lat, page);
    pc_page_fill(s->seed, page, dst);
    pc_sleep_until_ns(deadline);
    return 0;
}

static void pc__local_destroy(struct pc_source *s)
{
    pc__source_fini(s);
    free(s);
}

static const struct pc_source_ops pc__local_ops = {
    .name = "local",
    .fetch = pc__local_fetch,
    .destroy = pc__local_destroy,
};

int pc_source_local_create(struct pc_source **out, uint64_t seed, uint64_t npages,
                           const struct pc_latency *lat)
{
    if (out == NULL || npages == 0)
        return -EINVAL;
    struct pc__local_source *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    pc__source_init(&l->base, &pc__local_ops, seed, npages);
    if (lat != NULL) {
        l->lat = *lat;
        l->has_lat = true;
    }
    *out = &l->base;
    return 0;
}
