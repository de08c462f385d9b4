/* SPDX-License-Identifier: MIT */
/*
 * The access patterns of apf-postcopy's guest tasks, deterministic from the seed:
 *  - sequential: each task walks its own contiguous share of guest memory in order
 *    (every access touches a new page until the share wraps: the worst case for post-copy);
 *  - random: uniform over all pages;
 *  - zipf: popularity ~ 1 / rank^s over all pages (a few hot pages, a long cold tail), with
 *    ranks scattered over memory.
 */
#include <math.h>
#include <stdlib.h>

#include "postcopy.h"

struct pc_workload {
    enum pc_pattern pattern;
    uint64_t npages;
    uint64_t seed;
    double *cdf;      /* zipf: cumulative probability by rank */
    uint64_t *page_of; /* zipf: rank -> page */
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

struct pc_workload *pc_workload_create(const struct pc_opts *o, uint64_t npages)
{
    struct pc_workload *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->pattern = o->pattern;
    w->npages = npages;
    w->seed = o->seed;
    if (o->pattern == PATTERN_ZIPF) {
        w->cdf = malloc(npages * sizeof(double));
        w->page_of = malloc(npages * sizeof(uint64_t));
        if (!w->cdf || !w->page_of) {
            pc_workload_destroy(w);
            return NULL;
        }
        double sum = 0;
        for (uint64_t i = 0; i < npages; i++) {
            sum += 1.0 / pow((double)(i + 1), o->zipf_s);
            w->cdf[i] = sum;
        }
        for (uint64_t i = 0; i < npages; i++) {
            w->cdf[i] /= sum;
            w->page_of[i] = i;
        }
        uint64_t x = o->seed ^ 0x5a5a5a5aull;
        for (uint64_t i = npages - 1; i > 0; i--) { /* Fisher-Yates: scatter the ranks */
            uint64_t j = splitmix64(&x) % (i + 1);
            uint64_t t = w->page_of[i];
            w->page_of[i] = w->page_of[j];
            w->page_of[j] = t;
        }
    }
    return w;
}

void pc_workload_destroy(struct pc_workload *w)
{
    if (w == NULL)
        return;
    free(w->cdf);
    free(w->page_of);
    free(w);
}

void pc_workload_task_init(const struct pc_workload *w, uint32_t task, uint32_t ntasks,
                           struct pc_cursor *c)
{
    c->rng = w->seed * 0x100000001b3ull + task + 1;
    c->lo = w->npages * task / ntasks;
    c->hi = w->npages * (task + 1) / ntasks;
    if (c->hi <= c->lo) /* more tasks than pages: share one */
        c->hi = c->lo + 1 <= w->npages ? c->lo + 1 : w->npages;
    c->next = c->lo;
}

uint64_t pc_workload_next(const struct pc_workload *w, struct pc_cursor *c)
{
    switch (w->pattern) {
    case PATTERN_SEQUENTIAL: {
        uint64_t p = c->next;
        c->next = c->next + 1 < c->hi ? c->next + 1 : c->lo;
        return p % w->npages;
    }
    case PATTERN_ZIPF: {
        double u = (double)(splitmix64(&c->rng) >> 11) / 9007199254740992.0;
        uint64_t lo = 0, hi = w->npages - 1;
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2;
            if (w->cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        return w->page_of[lo];
    }
    default:
        return splitmix64(&c->rng) % w->npages;
    }
}
