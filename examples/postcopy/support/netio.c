/* SPDX-License-Identifier: MIT */
/* Bounded socket I/O (see netio.h). */
#define _GNU_SOURCE
#include "netio.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "latency.h"

/* Milliseconds to wait in poll() before `deadline` (rounded up), -1 for none. */
static int pc__poll_ms(uint64_t deadline)
{
    if (deadline == 0)
        return -1;
    uint64_t now = pc_now_ns();
    if (now >= deadline)
        return 0;
    uint64_t ms = (deadline - now + 999999u) / 1000000u;
    return ms > 3600000u ? 3600000 : (int)ms;
}

static int pc__wait(int fd, short events, uint64_t deadline, int wake_fd)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = wake_fd, .events = POLLIN}};
        int n = poll(p, wake_fd >= 0 ? 2 : 1, pc__poll_ms(deadline));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -ETIMEDOUT;
        if (wake_fd >= 0 && (p[1].revents & POLLIN))
            return -ECANCELED;
        return 0; /* ready, or an error/hang-up the next call reports */
    }
}

static int pc__conn_err(int e)
{
    /* One case for the caller: the other side is gone. */
    return (e == EPIPE || e == ECONNABORTED) ? -ECONNRESET : -e;
}

int pc_net_send_all(int fd, const void *buf, size_t len, uint64_t deadline)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return pc__conn_err(errno);
        int err = pc__wait(fd, POLLOUT, deadline, -1);
        if (err != 0)
            return err;
    }
    return 0;
}

int pc_net_recv_all(int fd, void *buf, size_t len, uint64_t deadline, int wake_fd)
{
    char *p = buf;
    while (len > 0) {
        int err = pc__wait(fd, POLLIN, deadline, wake_fd);
        if (err != 0)
            return err;
        ssize_t n = recv(fd, p, len, 0);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0)
            return -ECONNRESET; /* orderly close by the peer */
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            continue;
        return pc__conn_err(errno);
    }
    return 0;
}

static int pc__connect_one(const struct addrinfo *ai, uint64_t deadline)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            int e = -errno;
            close(fd);
            return e;
        }
        int err = pc__wait(fd, POLLOUT, deadline, -1);
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (err == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
            err = -errno;
        if (err == 0 && soerr != 0)
            err = -soerr;
        if (err != 0) {
            close(fd);
            return err;
        }
    }
    return fd;
}

int pc_net_connect(const char *host, uint16_t port, uint64_t deadline)
{
    char service[8];
    snprintf(service, sizeof(service), "%u", (unsigned)port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, service, &hints, &res);
    if (gai != 0)
        return gai == EAI_SYSTEM ? -errno : -ENOENT;
    int fd = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = pc__connect_one(ai, deadline);
        if (fd >= 0 || fd == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    return fd;
}

int pc_net_parse_hostport(const char *spec, char *host, size_t hlen, uint16_t *port)
{
    if (spec == NULL || hlen == 0)
        return -EINVAL;
    const char *h = spec, *colon;
    size_t n;
    if (spec[0] == '[') {
        const char *close_br = strchr(spec, ']');
        if (close_br == NULL || close_br[1] != ':')
            return -EINVAL;
        h = spec + 1;
        n = (size_t)(close_br - h);
        colon = close_br + 1;
    } else {
        colon = strrchr(spec, ':');
        if (colon == NULL || strchr(spec, ':') != colon)
            return -EINVAL; /* none, or an IPv6 address without brackets */
        n = (size_t)(colon - spec);
    }
    if (n == 0 || n >= hlen)
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno != 0 || p == 0 || p > 65535)
        return -EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (uint16_t)p;
    return 0;
}
