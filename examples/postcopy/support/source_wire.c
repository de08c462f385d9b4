/* SPDX-License-Identifier: MIT */
/* Encoding and validation of the TCP source's messages (layout in source_wire.h). */
#include "source_wire.h"

#include <errno.h>

#include "page.h"

static void pc__put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void pc__put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void pc__put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t pc__get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t pc__get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t pc__get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int pc__check_head(const unsigned char *buf, uint16_t *type)
{
    if (pc__get32(buf) != PC_WIRE_MAGIC || pc__get16(buf + 4) != PC_WIRE_VERSION)
        return -EPROTO;
    *type = pc__get16(buf + 6);
    if (*type != PC_WIRE_HELLO && *type != PC_WIRE_FETCH)
        return -EPROTO;
    return 0;
}

void pc_wire_req_encode(const struct pc_wire_req *r, unsigned char buf[PC_WIRE_REQ_SIZE])
{
    pc__put32(buf, PC_WIRE_MAGIC);
    pc__put16(buf + 4, PC_WIRE_VERSION);
    pc__put16(buf + 6, r->type);
    pc__put32(buf + 8, r->req_id);
    pc__put32(buf + 12, 0);
    pc__put64(buf + 16, r->page);
}

int pc_wire_req_decode(const unsigned char buf[PC_WIRE_REQ_SIZE], struct pc_wire_req *r)
{
    if (pc__check_head(buf, &r->type) != 0 || pc__get32(buf + 12) != 0)
        return -EPROTO;
    r->req_id = pc__get32(buf + 8);
    r->page = pc__get64(buf + 16);
    return 0;
}

void pc_wire_rep_encode(const struct pc_wire_rep *r, unsigned char buf[PC_WIRE_REP_SIZE])
{
    pc__put32(buf, PC_WIRE_MAGIC);
    pc__put16(buf + 4, PC_WIRE_VERSION);
    pc__put16(buf + 6, r->type);
    pc__put32(buf + 8, r->req_id);
    pc__put32(buf + 12, (uint32_t)r->status);
    pc__put64(buf + 16, r->page);
    pc__put32(buf + 24, r->length);
    pc__put32(buf + 28, r->delay_us);
}

int pc_wire_rep_decode(const unsigned char buf[PC_WIRE_REP_SIZE], struct pc_wire_rep *r)
{
    if (pc__check_head(buf, &r->type) != 0)
        return -EPROTO;
    r->req_id = pc__get32(buf + 8);
    uint32_t st = pc__get32(buf + 12);
    r->status = st > 0x7fffffffu ? -(int32_t)(~st) - 1 : (int32_t)st; /* two's complement */
    r->page = pc__get64(buf + 16);
    r->length = pc__get32(buf + 24);
    r->delay_us = pc__get32(buf + 28);
    if (r->status > 0)
        return -EPROTO;
    uint32_t want = r->status < 0              ? 0u
                    : r->type == PC_WIRE_FETCH ? PC_PAGE_SIZE
                                               : PC_WIRE_HELLO_SIZE;
    return r->length == want ? 0 : -EPROTO;
}

void pc_wire_hello_encode(const struct pc_wire_hello *h, unsigned char buf[PC_WIRE_HELLO_SIZE])
{
    pc__put64(buf, h->seed);
    pc__put64(buf + 8, h->npages);
    pc__put32(buf + 16, h->page_size);
    pc__put32(buf + 20, 0);
}

int pc_wire_hello_decode(const unsigned char buf[PC_WIRE_HELLO_SIZE], struct pc_wire_hello *h)
{
    h->seed = pc__get64(buf);
    h->npages = pc__get64(buf + 8);
    h->page_size = pc__get32(buf + 16);
    if (h->page_size != PC_PAGE_SIZE || h->npages == 0 || pc__get32(buf + 20) != 0)
        return -EPROTO;
    return 0;
}
