/* SPDX-License-Identifier: MIT */
/*
 * Page contents of the migration source: deterministic from (seed, page index), and
 * self-verifying, so that a guest task can check every page it reads without asking the
 * source (a wrong, stale, zero or torn page is caught).
 *
 * Layout of a 4 KiB page, 512 little-endian 64-bit words:
 *   word 0        the page index
 *   word 1        the seed
 *   words 2..510  a splitmix64 stream seeded from (seed, index)
 *   word 511      pc_page_checksum64() of words 0..510
 * The bytes are the same on every host (explicit little-endian), so a source process and
 * the simulator agree on contents across the wire.
 */
#ifndef PC_PAGE_H
#define PC_PAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** The source's page size: the unit of fetch and of the wire protocol. */
#define PC_PAGE_SIZE 4096u

/**
 * Writes the contents of page `index` for `seed`.
 * @param seed   the source's seed.
 * @param index  the page index.
 * @param dst    PC_PAGE_SIZE bytes, any alignment.
 * Calling context: any thread (pure function).
 */
void pc_page_fill(uint64_t seed, uint64_t index, void *dst);

/**
 * 64-bit checksum of `len` bytes (an xxhash-like four-lane multiply-rotate mix with a
 * splitmix64 finaliser; not cryptographic). Any length; fast for whole pages.
 * @return the checksum; equal inputs give equal results on every host.
 */
uint64_t pc_page_checksum64(const void *data, size_t len);

/** @return pc_page_checksum64() of a whole PC_PAGE_SIZE page. */
uint64_t pc_page_checksum(const void *page);

/**
 * @return the checksum (pc_page_checksum()) that page `index` of `seed` has; generates it.
 */
uint64_t pc_page_expected_checksum(uint64_t seed, uint64_t index);

/**
 * Checks a page read from guest memory without regenerating it: the embedded index and seed
 * must match and the trailing checksum must be right.
 * @param page   PC_PAGE_SIZE bytes.
 * @param seed   the source's seed.
 * @param index  the page index the reader expects.
 * @return true if the page is intact and the expected one. An all-zero page fails.
 * Calling context: any thread, including a guest task (no locks, no allocation).
 */
bool pc_page_verify(const void *page, uint64_t seed, uint64_t index);

#endif
