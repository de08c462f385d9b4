/* SPDX-License-Identifier: MIT */
/* A tiny freestanding string builder (no snprintf): text, decimal, hex. Truncates safely
 * and records the overflow. Header-only so each library keeps a private copy. */
#ifndef APF_SRC_PROTO_STRBUF_H
#define APF_SRC_PROTO_STRBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct apf__sb {
    char *buf;
    size_t len, cap;
    bool overflow;
};

static inline struct apf__sb apf__sb_make(char *buf, size_t cap)
{
    struct apf__sb b = {buf, 0, cap, false};
    if (cap)
        buf[0] = '\0';
    return b;
}

static inline void apf__sb_char(struct apf__sb *b, char c)
{
    if (b->len + 1 < b->cap) {
        b->buf[b->len++] = c;
        b->buf[b->len] = '\0';
    } else {
        b->overflow = true;
    }
}

static inline void apf__sb_str(struct apf__sb *b, const char *s)
{
    while (*s)
        apf__sb_char(b, *s++);
}

static inline void apf__sb_u64(struct apf__sb *b, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        apf__sb_char(b, tmp[--n]);
}

static inline void apf__sb_i64(struct apf__sb *b, int64_t v)
{
    if (v < 0) {
        apf__sb_char(b, '-');
        apf__sb_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        apf__sb_u64(b, (uint64_t)v);
    }
}

static inline void apf__sb_hex(struct apf__sb *b, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = digits[v & 0xf];
        v >>= 4;
    } while (v);
    apf__sb_str(b, "0x");
    while (n)
        apf__sb_char(b, tmp[--n]);
}

#endif
