/* SPDX-License-Identifier: MIT */
/*
 * Deterministic, self-verifying page contents (see page.h).
 *
 * splitmix64 is used both as the generator and as the finaliser: it is tiny, has no state
 * beyond one word, and its output passes the usual statistical batteries, which is more
 * than a checksum test needs. The checksum runs four independent lanes so that the four
 * multiplies of a 32-byte block overlap in the pipeline (about 1 byte per cycle or better).
 */
#include "page.h"

#include <string.h>

#define PC__K1 0x9e3779b97f4a7c15ull /* 2^64 / golden ratio */
#define PC__K2 0xbf58476d1ce4e5b9ull /* splitmix64 finaliser constants */
#define PC__K3 0x94d049bb133111ebull
#define PC__K4 0xd6e8feb86659fd93ull /* odd, high bit set: a lane multiplier */

static inline uint64_t pc__rotl(uint64_t x, unsigned r)
{
    return (x << r) | (x >> ((64u - r) & 63u));
}

static inline uint64_t pc__mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * PC__K2;
    z = (z ^ (z >> 27)) * PC__K3;
    return z ^ (z >> 31);
}

static inline uint64_t pc__load_le64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline void pc__store_le64(unsigned char *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, sizeof(v));
}

uint64_t pc_page_checksum64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t a = PC__K1, b = PC__K2, c = PC__K3, d = PC__K4;
    size_t i = 0;
    for (; i + 32 <= len; i += 32) {
        a = pc__rotl(a + pc__load_le64(p + i) * PC__K4, 31) * PC__K1;
        b = pc__rotl(b + pc__load_le64(p + i + 8) * PC__K4, 31) * PC__K1;
        c = pc__rotl(c + pc__load_le64(p + i + 16) * PC__K4, 31) * PC__K1;
        d = pc__rotl(d + pc__load_le64(p + i + 24) * PC__K4, 31) * PC__K1;
    }
    uint64_t h = pc__rotl(a, 1) + pc__rotl(b, 7) + pc__rotl(c, 12) + pc__rotl(d, 18);
    for (; i + 8 <= len; i += 8)
        h = pc__rotl(h ^ (pc__load_le64(p + i) * PC__K4), 27) * PC__K1;
    for (; i < len; i++)
        h = pc__rotl(h ^ ((uint64_t)p[i] * PC__K1), 11) * PC__K4;
    return pc__mix64(h ^ (uint64_t)len);
}

uint64_t pc_page_checksum(const void *page)
{
    return pc_page_checksum64(page, PC_PAGE_SIZE);
}

void pc_page_fill(uint64_t seed, uint64_t index, void *dst)
{
    unsigned char *p = dst;
    uint64_t state = pc__mix64(seed ^ pc__mix64(index + PC__K1));
    pc__store_le64(p, index);
    pc__store_le64(p + 8, seed);
    for (size_t w = 2; w < PC_PAGE_SIZE / 8 - 1; w++) {
        state += PC__K1;
        pc__store_le64(p + w * 8, pc__mix64(state));
    }
    pc__store_le64(p + PC_PAGE_SIZE - 8, pc_page_checksum64(p, PC_PAGE_SIZE - 8));
}

uint64_t pc_page_expected_checksum(uint64_t seed, uint64_t index)
{
    unsigned char buf[PC_PAGE_SIZE];
    pc_page_fill(seed, index, buf);
    return pc_page_checksum(buf);
}

bool pc_page_verify(const void *page, uint64_t seed, uint64_t index)
{
    const unsigned char *p = page;
    return pc__load_le64(p) == index && pc__load_le64(p + 8) == seed &&
           pc__load_le64(p + PC_PAGE_SIZE - 8) == pc_page_checksum64(p, PC_PAGE_SIZE - 8);
}
