/* SPDX-License-Identifier: MIT */
/*
 * The TCP source client: a pool of connections, one request in flight on each (see
 * source_tcp.h for the design, source_wire.h for the bytes).
 *
 * Lock order: `lock` is a leaf and is never held across I/O; it guards only which slots are
 * busy. A slot's fd belongs to the thread that marked the slot busy, until it gives it back.
 */
#define _GNU_SOURCE
#include "source_tcp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "netio.h"
#include "source_impl.h"
#include "source_wire.h"

struct pc__tcp_conn {
    int fd; /* -1: not connected; (re)connected by the next user */
    bool busy;
};

struct pc__tcp_source {
    struct pc_source base; /* first: the ops receive &base */
    char host[256];
    uint16_t port;
    int timeout_ms;
    pthread_mutex_t lock;
    pthread_cond_t cv; /* a slot was given back */
    unsigned nconn;
    struct pc__tcp_conn *conns;
    _Atomic uint32_t next_id;
};

static const char *pc__tcp_what(int err)
{
    switch (err) {
    case -ECONNRESET:
        return "the source closed the connection (did it exit?)";
    case -ECONNREFUSED:
        return "connection refused (is the source running?)";
    case -ETIMEDOUT:
        return "no answer within the timeout";
    case -EPROTO:
        return "malformed or unexpected reply (not a source server, or another version?)";
    case -EBADMSG:
        return "the page's contents failed verification";
    case -ENOENT:
        return "host name not resolved";
    default:
        return strerror(-err);
    }
}

/* Connects and does the HELLO. Returns the fd, or -errno with *hello untouched. */
static int pc__tcp_open(struct pc__tcp_source *t, uint64_t deadline, struct pc_wire_hello *hello)
{
    int fd = pc_net_connect(t->host, t->port, deadline);
    if (fd < 0)
        return fd;
    struct pc_wire_req req = {
        .type = PC_WIRE_HELLO, .req_id = atomic_fetch_add(&t->next_id, 1), .page = 0};
    unsigned char rq[PC_WIRE_REQ_SIZE], rp[PC_WIRE_REP_SIZE], pl[PC_WIRE_HELLO_SIZE];
    pc_wire_req_encode(&req, rq);
    struct pc_wire_rep rep;
    int err = pc_net_send_all(fd, rq, sizeof(rq), deadline);
    if (err == 0)
        err = pc_net_recv_all(fd, rp, sizeof(rp), deadline, -1);
    if (err == 0)
        err = pc_wire_rep_decode(rp, &rep);
    if (err == 0 && (rep.type != PC_WIRE_HELLO || rep.req_id != req.req_id || rep.status != 0))
        err = -EPROTO;
    if (err == 0)
        err = pc_net_recv_all(fd, pl, sizeof(pl), deadline, -1);
    if (err == 0)
        err = pc_wire_hello_decode(pl, hello);
    if (err != 0) {
        close(fd);
        return err;
    }
    return fd;
}

static int pc__tcp_acquire(struct pc__tcp_source *t, uint64_t deadline, unsigned *slot)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000ull),
                          .tv_nsec = (long)(deadline % 1000000000ull)};
    pthread_mutex_lock(&t->lock);
    for (;;) {
        for (unsigned i = 0; i < t->nconn; i++) {
            if (!t->conns[i].busy) {
                t->conns[i].busy = true;
                pthread_mutex_unlock(&t->lock);
                *slot = i;
                return 0;
            }
        }
        int rc = pthread_cond_timedwait(&t->cv, &t->lock, &ts);
        if (rc == ETIMEDOUT) {
            pthread_mutex_unlock(&t->lock);
            return -ETIMEDOUT;
        }
    }
}

static void pc__tcp_release(struct pc__tcp_source *t, unsigned slot)
{
    pthread_mutex_lock(&t->lock);
    t->conns[slot].busy = false;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->lock);
}

/* One request on a connected slot. Transport and protocol errors and a page that fails
 * verification leave the connection unusable (the caller closes it); an error status from
 * the server (-ERANGE) does not. */
static int pc__tcp_request(struct pc__tcp_source *t, int fd, uint64_t page, void *dst,
                           uint64_t deadline, bool *conn_ok)
{
    struct pc_wire_req req = {
        .type = PC_WIRE_FETCH, .req_id = atomic_fetch_add(&t->next_id, 1), .page = page};
    unsigned char rq[PC_WIRE_REQ_SIZE], rp[PC_WIRE_REP_SIZE];
    pc_wire_req_encode(&req, rq);
    *conn_ok = false;
    int err = pc_net_send_all(fd, rq, sizeof(rq), deadline);
    if (err != 0)
        return err;
    err = pc_net_recv_all(fd, rp, sizeof(rp), deadline, -1);
    if (err != 0)
        return err;
    struct pc_wire_rep rep;
    if (pc_wire_rep_decode(rp, &rep) != 0 || rep.type != PC_WIRE_FETCH ||
        rep.req_id != req.req_id || rep.page != page)
        return -EPROTO;
    if (rep.status < 0) {
        *conn_ok = true;
        return rep.status;
    }
    err = pc_net_recv_all(fd, dst, PC_PAGE_SIZE, deadline, -1);
    if (err != 0)
        return err;
    /* A server that sends wrong contents is not trusted with the next request either. */
    if (!pc_page_verify(dst, t->base.seed, page))
        return -EBADMSG;
    *conn_ok = true;
    return 0;
}

static int pc__tcp_fetch(struct pc_source *s, uint64_t page, void *dst)
{
    struct pc__tcp_source *t = (struct pc__tcp_source *)s;
    uint64_t deadline = pc_now_ns() + (uint64_t)t->timeout_ms * 1000000u;
    unsigned slot;
    int err = pc__tcp_acquire(t, deadline, &slot);
    if (err != 0) {
        pc__source_set_error(s, "source %s:%u: page %llu: no free connection within %d ms", t->host,
                             (unsigned)t->port, (unsigned long long)page, t->timeout_ms);
        return err;
    }
    struct pc__tcp_conn *c = &t->conns[slot];
    if (c->fd < 0) {
        struct pc_wire_hello h;
        int fd = pc__tcp_open(t, deadline, &h);
        if (fd >= 0 && (h.seed != s->seed || h.npages != s->npages)) {
            close(fd);
            fd = -EPROTO; /* the source restarted with other contents */
        }
        if (fd < 0) {
            pc__source_set_error(s, "source %s:%u: page %llu: reconnect failed: %s", t->host,
                                 (unsigned)t->port, (unsigned long long)page, pc__tcp_what(fd));
            pc__tcp_release(t, slot);
            return fd;
        }
        c->fd = fd;
    }
    bool conn_ok;
    err = pc__tcp_request(t, c->fd, page, dst, deadline, &conn_ok);
    if (!conn_ok) {
        close(c->fd);
        c->fd = -1;
    }
    if (err != 0)
        pc__source_set_error(s, "source %s:%u: page %llu: %s", t->host, (unsigned)t->port,
                             (unsigned long long)page, pc__tcp_what(err));
    pc__tcp_release(t, slot);
    return err;
}

static void pc__tcp_destroy(struct pc_source *s)
{
    struct pc__tcp_source *t = (struct pc__tcp_source *)s;
    if (t->conns != NULL) {
        for (unsigned i = 0; i < t->nconn; i++)
            if (t->conns[i].fd >= 0)
                close(t->conns[i].fd);
    }
    free(t->conns);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->lock);
    pc__source_fini(s);
    free(t);
}

static const struct pc_source_ops pc__tcp_ops = {
    .name = "tcp",
    .fetch = pc__tcp_fetch,
    .destroy = pc__tcp_destroy,
};

int pc_source_tcp_create(struct pc_source **out, const char *host, uint16_t port,
                         const struct pc_source_tcp_opts *opts, char *msg, size_t len)
{
    struct pc_source_tcp_opts o = {0};
    if (opts != NULL)
        o = *opts;
    if (o.nconn == 0)
        o.nconn = 4;
    if (o.timeout_ms == 0)
        o.timeout_ms = 5000;
    if (msg != NULL && len > 0)
        msg[0] = '\0';
    if (out == NULL || host == NULL || port == 0 || o.nconn > 256 || o.timeout_ms < 0 ||
        strlen(host) >= sizeof(((struct pc__tcp_source *)0)->host)) {
        if (msg != NULL)
            snprintf(msg, len, "source: invalid address or options");
        return -EINVAL;
    }
    struct pc__tcp_source *t = calloc(1, sizeof(*t));
    struct pc__tcp_conn *conns = calloc(o.nconn, sizeof(*conns));
    if (t == NULL || conns == NULL) {
        free(t);
        free(conns);
        return -ENOMEM;
    }
    pc__source_init(&t->base, &pc__tcp_ops, 0, 0);
    snprintf(t->host, sizeof(t->host), "%s", host);
    t->port = port;
    t->timeout_ms = o.timeout_ms;
    t->nconn = o.nconn;
    t->conns = conns;
    atomic_init(&t->next_id, 1);
    pthread_mutex_init(&t->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* deadlines are pc_now_ns() */
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    for (unsigned i = 0; i < o.nconn; i++)
        conns[i].fd = -1;

    int err = 0;
    for (unsigned i = 0; i < o.nconn && err == 0; i++) {
        struct pc_wire_hello h;
        uint64_t deadline = pc_now_ns() + (uint64_t)o.timeout_ms * 1000000u;
        int fd = pc__tcp_open(t, deadline, &h);
        if (fd < 0) {
            err = fd;
            if (msg != NULL)
                snprintf(msg, len, "source %s:%u: %s", host, (unsigned)port, pc__tcp_what(err));
            break;
        }
        conns[i].fd = fd;
        if (i == 0) {
            t->base.seed = h.seed;
            t->base.npages = h.npages;
            if (o.check_seed && h.seed != o.expect_seed) {
                err = -EPROTO;
                if (msg != NULL)
                    snprintf(msg, len, "source %s:%u: seed %llu, expected %llu", host,
                             (unsigned)port, (unsigned long long)h.seed,
                             (unsigned long long)o.expect_seed);
            }
        } else if (h.seed != t->base.seed || h.npages != t->base.npages) {
            err = -EPROTO;
            if (msg != NULL)
                snprintf(msg, len, "source %s:%u: connections disagree on seed or size", host,
                         (unsigned)port);
        }
    }
    if (err != 0) {
        pc__tcp_destroy(&t->base);
        return err;
    }
    *out = &t->base;
    return 0;
}
