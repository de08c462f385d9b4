/* SPDX-License-Identifier: MIT */
/*
 * For source kinds only (source.c, source_tcp.c): how to set up the common part of a
 * struct pc_source and report an error. Users include source.h.
 */
#ifndef PC_SOURCE_IMPL_H
#define PC_SOURCE_IMPL_H

#include "source.h"

/** Initialises the common part; the kind's struct embeds `struct pc_source` first. */
void pc__source_init(struct pc_source *s, const struct pc_source_ops *ops, uint64_t seed,
                     uint64_t npages);

/** Releases the common part (not `s` itself). */
void pc__source_fini(struct pc_source *s);

/** Records the message returned by pc_source_last_error(). Any thread. */
__attribute__((format(printf, 2, 3))) void pc__source_set_error(struct pc_source *s,
                                                                const char *fmt, ...);

#endif
