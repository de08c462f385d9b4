/* SPDX-License-Identifier: MIT */
/*
 * Bounded socket I/O for the TCP source: connect, send and receive that never wait past a
 * deadline, and "host:port" parsing.
 *
 * Every function takes an absolute deadline (pc_now_ns() units, 0 = none). A peer that dies
 * shows up as -ECONNRESET (closed, reset or broken pipe, all one case for the caller), a peer
 * that stops answering as -ETIMEDOUT; nothing raises SIGPIPE (MSG_NOSIGNAL). Sockets are
 * non-blocking and waited on with poll(), so a deadline is exact to the millisecond.
 */
#ifndef PC_NETIO_H
#define PC_NETIO_H

#include <stddef.h>
#include <stdint.h>

/**
 * Connects to `host`:`port` (numeric or resolvable names, IPv4 or IPv6; each address in
 * turn), with TCP_NODELAY, non-blocking and close-on-exec.
 * @return the socket, or -errno: -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -ENOENT (name
 *         not resolved), ...
 */
int pc_net_connect(const char *host, uint16_t port, uint64_t deadline_ns);

/**
 * Sends all `len` bytes.
 * @return 0, -ECONNRESET, -ETIMEDOUT or other -errno.
 */
int pc_net_send_all(int fd, const void *buf, size_t len, uint64_t deadline_ns);

/**
 * Receives exactly `len` bytes.
 * @param wake_fd  if >= 0, also polled: readable means "give up" (-ECANCELED).
 * @return 0, -ECONNRESET (closed, also mid-message), -ETIMEDOUT, -ECANCELED or -errno.
 */
int pc_net_recv_all(int fd, void *buf, size_t len, uint64_t deadline_ns, int wake_fd);

/**
 * Splits "HOST:PORT" or "[V6ADDR]:PORT" into its parts.
 * @param spec  the text.
 * @param host  receives the host, NUL-terminated.
 * @param hlen  size of `host`.
 * @param port  receives the port (1..65535).
 * @return 0 or -EINVAL.
 */
int pc_net_parse_hostport(const char *spec, char *host, size_t hlen, uint16_t *port);

#endif
