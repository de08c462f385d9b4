/* SPDX-License-Identifier: MIT */
/*
 * In-tree fuzz targets (docs/hardening.md). Each target is one file defining
 * LLVMFuzzerTestOneInput(); built with clang -fsanitize=fuzzer,address,undefined it is a
 * libFuzzer binary (fuzz_<name>), built with any compiler and replay.c it is a regression
 * program (fuzz_replay_<name>) that runs the checked-in corpus (corpus/<name>/). Adding a
 * target (a new transport) = one file + one line in CMakeLists.txt + a seed directory.
 *
 * Harnesses check protocol invariants while they run and abort() on a violation
 * (FZ_ASSERT), so libFuzzer records the input as a crash.
 */
#ifndef APF_TESTS_FUZZ_H
#define APF_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input, consumed front to back; 0 once exhausted. */
struct fz {
    const uint8_t *p;
    size_t n;
};

static inline uint8_t fz_u8(struct fz *f)
{
    if (f->n == 0)
        return 0;
    f->n--;
    return *f->p++;
}

static inline uint16_t fz_u16(struct fz *f)
{
    uint16_t lo = fz_u8(f);
    return (uint16_t)(lo | (uint16_t)fz_u8(f) << 8);
}

static inline uint32_t fz_u32(struct fz *f)
{
    uint32_t lo = fz_u16(f);
    return lo | (uint32_t)fz_u16(f) << 16;
}

static inline uint64_t fz_u64(struct fz *f)
{
    uint64_t lo = fz_u32(f);
    return lo | (uint64_t)fz_u32(f) << 32;
}

/* A value the protocol cares about more often than a random one: 0, ~0, small, the
 * interesting constants, or raw bits. */
static inline uint64_t fz_val(struct fz *f, const uint64_t *special, size_t n_special)
{
    uint8_t k = fz_u8(f);
    if (n_special && k < 128)
        return special[k % n_special];
    if (k < 160)
        return fz_u8(f);
    if (k < 192)
        return fz_u32(f);
    return fz_u64(f);
}

#define FZ_ASSERT(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz invariant violated: %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, " " __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
