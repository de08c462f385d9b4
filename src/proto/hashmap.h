/* SPDX-License-Identifier: MIT */
/*
 * A fixed-capacity hash map u64 -> u32 in caller-provided memory: open addressing, linear
 * probing, backward-shift deletion (no tombstones, so it never degrades however many keys
 * come and go). Used by the host's dedup table and the trace checker. Freestanding,
 * header-only (static inline) so that each library gets its own private copy.
 *
 * Keep it at most half full for O(1) expected probes; it refuses an insert only when
 * completely full. Every probe loop is bounded by the capacity, so no operation can loop
 * for ever, not even on a completely full map (which has no empty entry to stop at).
 */
#ifndef APF_SRC_PROTO_HASHMAP_H
#define APF_SRC_PROTO_HASHMAP_H

#include <stdint.h>

#include "apf/error.h"

struct apf__map_entry {
    uint64_t key;
    uint32_t value;
    uint32_t used;
};

struct apf__map {
    struct apf__map_entry *e;
    uint32_t mask;  /* capacity - 1 */
    uint32_t shift; /* 64 - log2(capacity) */
    uint32_t count;
};

static inline uint32_t apf__map_home(const struct apf__map *m, uint64_t key)
{
    /* Fibonacci hashing: keys are often consecutive (frames, tokens); spread them. */
    return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> m->shift) & m->mask;
}

/* `entries`: `capacity` (a power of two, 2..2^31) zeroed entries. */
static inline void apf__map_init(struct apf__map *m, struct apf__map_entry *entries,
                                 uint32_t capacity)
{
    uint32_t bits = 0;
    while (bits < 31 && (1u << bits) < capacity)
        bits++;
    m->e = entries;
    m->mask = capacity - 1;
    m->shift = 64 - bits;
    m->count = 0;
}

/* 0; APF_EEXIST if the key is present; APF_ENOSPC if the map is full. */
static inline int apf__map_insert(struct apf__map *m, uint64_t key, uint32_t value)
{
    if (m->count >= m->mask + 1)
        return APF_ENOSPC;
    uint32_t i = apf__map_home(m, key);
    for (uint32_t n = 0; n <= m->mask; i = (i + 1) & m->mask, n++) {
        struct apf__map_entry *e = &m->e[i];
        if (!e->used) {
            e->key = key;
            e->value = value;
            e->used = 1;
            m->count++;
            return 0;
        }
        if (e->key == key)
            return APF_EEXIST;
    }
    return APF_ENOSPC; /* no empty entry although count said so: never loop */
}

/* The slot index of `key`, or -1. */
static inline int64_t apf__map_slot(const struct apf__map *m, uint64_t key)
{
    uint32_t i = apf__map_home(m, key);
    for (uint32_t n = 0; n <= m->mask; i = (i + 1) & m->mask, n++) {
        if (!m->e[i].used)
            return -1;
        if (m->e[i].key == key)
            return i;
    }
    return -1;
}

/* 1 and *value if present, else 0. */
static inline int apf__map_find(const struct apf__map *m, uint64_t key, uint32_t *value)
{
    int64_t i = apf__map_slot(m, key);
    if (i < 0)
        return 0;
    *value = m->e[i].value;
    return 1;
}

/* 0, or APF_ENOENT if absent. */
static inline int apf__map_remove(struct apf__map *m, uint64_t key)
{
    int64_t at = apf__map_slot(m, key);
    if (at < 0)
        return APF_ENOENT;
    /* Backward shift: move back every later member of the chain whose home is not in
     * (hole, j] cyclically, so that no lookup ever stops early at the new hole. The chain
     * ends at the first empty entry or, in a completely full map (no empty entry), after
     * every other entry has been looked at once: capacity - 1 steps at most. */
    uint32_t hole = (uint32_t)at;
    uint32_t j = hole;
    for (uint32_t n = 0; n < m->mask; n++) {
        j = (j + 1) & m->mask;
        if (!m->e[j].used)
            break;
        uint32_t h = apf__map_home(m, m->e[j].key);
        int stays = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
        if (!stays) {
            m->e[hole] = m->e[j];
            hole = j;
        }
    }
    m->e[hole].used = 0;
    m->count--;
    return 0;
}

static inline void apf__map_clear(struct apf__map *m)
{
    /* Stops once the last used entry is cleared (an empty map costs nothing: the trace
     * checker clears a vCPU's map at every enable, disable and reset). */
    for (uint32_t i = 0, left = m->count; i <= m->mask && left; i++)
        if (m->e[i].used) {
            m->e[i].used = 0;
            left--;
        }
    m->count = 0;
}

#endif
