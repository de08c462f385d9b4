/* SPDX-License-Identifier: MIT */
/*
 * The source process's side of the TCP source: serves pages (page.h) over the wire format
 * of source_wire.h, applying the latency model (latency.h) to every request.
 *
 * One thread accepts; one thread per connection serves it (at most `max_conns`, further
 * connections are closed at once). Requests on different connections are served
 * concurrently, each with its own latency, as a real source with parallel transfers. The
 * latency runs from the moment a request has been received to the moment its reply starts,
 * page generation included. Anything malformed from a client closes that connection; an
 * idle client may keep its connection open forever, but a message once begun must finish
 * within PC_SERVER_IO_TIMEOUT_MS, and a client that stops reading is dropped after that too.
 */
#ifndef PC_SOURCE_SERVER_H
#define PC_SOURCE_SERVER_H

#include <stdint.h>

#include "latency.h"

#define PC_SERVER_IO_TIMEOUT_MS 5000

/** A running server (opaque). */
struct pc_source_server;

/** What to serve. */
struct pc_source_server_config {
    const char *addr; /* address to bind; NULL: loopback only ("127.0.0.1"). Pass
                         "0.0.0.0" or "::" to serve other machines. */
    uint16_t port;    /* 0: an ephemeral port (see pc_source_server_port()) */
    uint64_t seed;    /* the pages' seed */
    uint64_t npages;  /* pages served: 0 .. npages-1; not 0 */
    struct pc_latency latency;
    unsigned max_conns; /* 0: 64 */
};

/**
 * Binds, listens and starts serving in background threads.
 * @param out  receives the server.
 * @param cfg  the configuration (copied).
 * @return 0; -EINVAL; -EADDRINUSE; -ENOMEM; other -errno from socket calls.
 * Calling context: any thread.
 */
int pc_source_server_start(struct pc_source_server **out,
                           const struct pc_source_server_config *cfg);

/** @return the port the server listens on (the chosen one when cfg->port was 0). */
uint16_t pc_source_server_port(const struct pc_source_server *s);

/** @return requests answered so far (HELLO and FETCH; counted as the reply is sent). */
uint64_t pc_source_server_requests(const struct pc_source_server *s);

/**
 * Stops accepting, closes every connection, joins every thread and frees the server.
 * Clients see their connections closed. Not from a server thread.
 */
void pc_source_server_stop(struct pc_source_server *s);

/**
 * Runs a server in the calling process until SIGINT or SIGTERM: for `--source-listen`.
 * Blocks those two signals in the calling thread (the server's threads inherit the mask) and
 * waits for one with sigwait(); then stops the server and restores the mask.
 * @param cfg     as for pc_source_server_start().
 * @param ready   if not NULL, called once listening, with the port (to print it).
 * @return 0 after a clean stop, or the error of pc_source_server_start().
 */
int pc_source_serve(const struct pc_source_server_config *cfg, void (*ready)(uint16_t port));

#endif
