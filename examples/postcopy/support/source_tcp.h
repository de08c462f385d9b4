/* SPDX-License-Identifier: MIT */
/*
 * The TCP source client: a struct pc_source whose pages come from a source process
 * (source_server.h) over real sockets (wire format in source_wire.h).
 *
 * Concurrency: a pool of `nconn` connections, each carrying one request at a time. A fetch
 * takes a free connection (waiting, within the timeout, if all are busy), sends its request,
 * reads the reply and gives the connection back. With nconn at least the number of fetching
 * threads no fetch ever waits for another: as many requests are in flight as there are
 * workers, as in one connection per worker. One request per connection keeps framing
 * trivial (a reply always belongs to the request just sent; req_id and page are checked
 * anyway) and a broken connection affects one fetch only.
 *
 * Failure: every connect, send and receive has a deadline (the timeout, counted from the
 * start of the fetch). A connection that fails in any way (closed, reset, timed out,
 * malformed reply) is closed; the fetch returns the error and the next fetch that takes
 * the slot reconnects (and fails fast with -ECONNREFUSED if the source is gone).
 *
 * Handshake: each connection begins with HELLO; the server answers with its seed and page
 * count, which become the source's `seed` and `npages` (the client verifies pages against
 * them). Every connection must report the same values, and the first one must match
 * `expect_seed` when the caller gives one.
 */
#ifndef PC_SOURCE_TCP_H
#define PC_SOURCE_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "source.h"

/** Options of pc_source_tcp_create(); zero-fill for the defaults. */
struct pc_source_tcp_opts {
    unsigned nconn;  /* connections in the pool; 0: 4. At most 256. */
    int timeout_ms;  /* bound of a whole fetch or connect; 0: 5000 */
    bool check_seed; /* fail with -EPROTO unless the server's seed is expect_seed */
    uint64_t expect_seed;
};

/**
 * Connects the pool to a source process and does the HELLO on every connection.
 * @param out   receives the source; its seed and npages come from the server.
 * @param host  numeric address or name ("127.0.0.1", "::1", "src.example").
 * @param port  TCP port.
 * @param opts  NULL for the defaults.
 * @param msg   if not NULL, receives a sentence describing a failure ("" on success).
 * @param len   size of `msg`.
 * @return 0; -EINVAL (bad options); -ENOMEM; -ECONNREFUSED, -ETIMEDOUT, -ECONNRESET,
 *         -ENOENT (name not resolved) when no server answers; -EPROTO (not a source server,
 *         another protocol version, or a seed mismatch). On failure `*out` is untouched.
 * Calling context: any thread.
 */
int pc_source_tcp_create(struct pc_source **out, const char *host, uint16_t port,
                         const struct pc_source_tcp_opts *opts, char *msg, size_t len);

#endif
