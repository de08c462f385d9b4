/* SPDX-License-Identifier: MIT */
/*
 * Wire format between the TCP source client (the simulator) and the source process.
 *
 * Every field is a fixed-width little-endian integer at a fixed offset; messages are encoded
 * and decoded byte by byte, never by casting a struct, so padding and host byte order do not
 * matter. Both sides validate everything they receive; a message that fails validation ends
 * the connection (the receiver closes it and reports -EPROTO).
 *
 * Request, client -> server, PC_WIRE_REQ_SIZE (24) bytes:
 *   off size field     written by the client
 *    0   4   magic     PC_WIRE_MAGIC
 *    4   2   version   PC_WIRE_VERSION
 *    6   2   type      PC_WIRE_HELLO or PC_WIRE_FETCH
 *    8   4   req_id    chosen by the client, echoed in the reply
 *   12   4   reserved  0
 *   16   8   page      FETCH: the page index; HELLO: 0
 *
 * Reply, server -> client, PC_WIRE_REP_SIZE (32) bytes, then `length` bytes of payload:
 *   off size field     written by the server
 *    0   4   magic     PC_WIRE_MAGIC
 *    4   2   version   PC_WIRE_VERSION
 *    6   2   type      the request's type
 *    8   4   req_id    the request's req_id
 *   12   4   status    0, or a negative errno (s32) for this request (-ERANGE: no page)
 *   16   8   page      the request's page
 *   24   4   length    payload bytes: FETCH ok: PC_PAGE_SIZE; HELLO ok: PC_WIRE_HELLO_SIZE;
 *                      status < 0: 0
 *   28   4   delay_us  latency the server applied to this request (informational)
 *
 * HELLO payload, PC_WIRE_HELLO_SIZE (24) bytes:
 *    0   8   seed       the seed of the pages (the client verifies pages against it)
 *    8   8   npages     pages 0 .. npages-1 exist
 *   16   4   page_size  PC_PAGE_SIZE
 *   20   4   reserved   0
 *
 * A connection starts with one HELLO; after it, only FETCH. One request is outstanding per
 * connection (the client waits for the reply), so req_id only proves the two sides agree.
 */
#ifndef PC_SOURCE_WIRE_H
#define PC_SOURCE_WIRE_H

#include <stdint.h>

#define PC_WIRE_MAGIC 0x53465041u /* "APFS" in the byte order it is sent */
#define PC_WIRE_VERSION 1u
#define PC_WIRE_HELLO 1u
#define PC_WIRE_FETCH 2u
#define PC_WIRE_REQ_SIZE 24u
#define PC_WIRE_REP_SIZE 32u
#define PC_WIRE_HELLO_SIZE 24u

/** A request, decoded. */
struct pc_wire_req {
    uint16_t type;
    uint32_t req_id;
    uint64_t page;
};

/** A reply header, decoded. */
struct pc_wire_rep {
    uint16_t type;
    uint32_t req_id;
    int32_t status;
    uint64_t page;
    uint32_t length;
    uint32_t delay_us;
};

/** The HELLO payload, decoded. */
struct pc_wire_hello {
    uint64_t seed;
    uint64_t npages;
    uint32_t page_size;
};

/** Encodes `r` (magic, version and reserved are filled in). */
void pc_wire_req_encode(const struct pc_wire_req *r, unsigned char buf[PC_WIRE_REQ_SIZE]);

/**
 * Decodes and validates a request.
 * @return 0, or -EPROTO (bad magic, version, type or reserved field).
 */
int pc_wire_req_decode(const unsigned char buf[PC_WIRE_REQ_SIZE], struct pc_wire_req *r);

/** Encodes a reply header. */
void pc_wire_rep_encode(const struct pc_wire_rep *r, unsigned char buf[PC_WIRE_REP_SIZE]);

/**
 * Decodes and validates a reply header on its own (not yet against the request): magic,
 * version, type, status <= 0, and `length` as the table above demands.
 * @return 0 or -EPROTO.
 */
int pc_wire_rep_decode(const unsigned char buf[PC_WIRE_REP_SIZE], struct pc_wire_rep *r);

/** Encodes the HELLO payload. */
void pc_wire_hello_encode(const struct pc_wire_hello *h, unsigned char buf[PC_WIRE_HELLO_SIZE]);

/**
 * Decodes and validates the HELLO payload.
 * @return 0, or -EPROTO (page_size is not PC_PAGE_SIZE, npages 0, reserved not 0).
 */
int pc_wire_hello_decode(const unsigned char buf[PC_WIRE_HELLO_SIZE], struct pc_wire_hello *h);

#endif
