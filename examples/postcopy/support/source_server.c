/* SPDX-License-Identifier: MIT */
/*
 * The source server: an accept thread and a thread per connection (see source_server.h).
 *
 * Stopping: an eventfd that becomes readable once and stays so; every blocking wait polls
 * it besides its socket. A connection thread never closes its own socket (the number could
 * be reused under a concurrent shutdown()); it shuts it down, marks itself done, and the
 * accept thread or pc_source_server_stop() joins it and closes the fd. Lock order: `lock`
 * is a leaf, guarding the list of connections; no I/O under it.
 */
#define _GNU_SOURCE
#include "source_server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netio.h"
#include "page.h"
#include "source_wire.h"

struct pc__srv_conn {
    struct pc_source_server *srv;
    int fd;
    pthread_t thread;
    atomic_bool done;
    struct pc__srv_conn *next;
};

struct pc_source_server {
    struct pc_source_server_config cfg;
    int listen_fd;
    int stop_fd; /* eventfd: readable once stopping */
    uint16_t port;
    pthread_t accept_thread;
    pthread_mutex_t lock;
    struct pc__srv_conn *conns; /* guarded by lock */
    unsigned nconns;            /* guarded by lock */
    _Atomic uint64_t requests;
};

static bool pc__srv_stopping(const struct pc_source_server *s)
{
    struct pollfd p = {.fd = s->stop_fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

/* Waits until `deadline` unless the server stops first (then returns false). Long waits
 * sleep in poll() on the stop eventfd; the last 2 ms use the precise sleep. */
static bool pc__srv_wait_until(const struct pc_source_server *s, uint64_t deadline)
{
    uint64_t now = pc_now_ns();
    if (deadline > now + 2000000u) {
        struct pollfd p = {.fd = s->stop_fd, .events = POLLIN};
        int ms = (int)((deadline - now) / 1000000u) - 1;
        if (poll(&p, 1, ms) > 0)
            return false;
    }
    pc_sleep_until_ns(deadline);
    return true;
}

static uint64_t pc__io_deadline(void)
{
    return pc_now_ns() + (uint64_t)PC_SERVER_IO_TIMEOUT_MS * 1000000u;
}

/* Serves one connection until it ends. Returns nothing: every failure closes it. */
static void pc__srv_serve_conn(struct pc_source_server *s, int fd)
{
    const struct pc_source_server_config *cfg = &s->cfg;
    unsigned char rq[PC_WIRE_REQ_SIZE];
    unsigned char out[PC_WIRE_REP_SIZE + PC_PAGE_SIZE];
    bool hello_done = false;
    for (;;) {
        /* Idle connections may wait forever for a first byte; the rest is bounded. */
        if (pc_net_recv_all(fd, rq, 1, 0, s->stop_fd) != 0 ||
            pc_net_recv_all(fd, rq + 1, sizeof(rq) - 1, pc__io_deadline(), s->stop_fd) != 0)
            return;
        uint64_t t0 = pc_now_ns();
        struct pc_wire_req req;
        if (pc_wire_req_decode(rq, &req) != 0)
            return;
        if (hello_done != (req.type == PC_WIRE_FETCH))
            return; /* HELLO first and once, then FETCH only */
        struct pc_wire_rep rep = {.type = req.type, .req_id = req.req_id, .page = req.page};
        if (req.type == PC_WIRE_HELLO) {
            struct pc_wire_hello h = {
                .seed = cfg->seed, .npages = cfg->npages, .page_size = PC_PAGE_SIZE};
            rep.length = PC_WIRE_HELLO_SIZE;
            pc_wire_hello_encode(&h, out + PC_WIRE_REP_SIZE);
            hello_done = true;
        } else if (req.page >= cfg->npages) {
            rep.status = -ERANGE;
        } else {
            uint64_t delay = pc_latency_sample_ns(&cfg->latency, req.page);
            rep.length = PC_PAGE_SIZE;
            rep.delay_us = (uint32_t)(delay / 1000u);
            pc_page_fill(cfg->seed, req.page, out + PC_WIRE_REP_SIZE);
            if (!pc__srv_wait_until(s, t0 + delay))
                return;
        }
        pc_wire_rep_encode(&rep, out);
        /* Counted before the reply leaves, so a client that has its reply sees the count. */
        atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
        if (pc_net_send_all(fd, out, PC_WIRE_REP_SIZE + rep.length, pc__io_deadline()) != 0)
            return;
    }
}

static void *pc__srv_conn_thread(void *arg)
{
    struct pc__srv_conn *c = arg;
    pc__srv_serve_conn(c->srv, c->fd);
    shutdown(c->fd, SHUT_RDWR); /* the client sees the end now; the fd is closed on join */
    atomic_store(&c->done, true);
    return NULL;
}

/* Joins and frees finished connections (all of them when `all`). Accept thread or stop. */
static void pc__srv_reap(struct pc_source_server *s, bool all)
{
    pthread_mutex_lock(&s->lock);
    struct pc__srv_conn **pp = &s->conns, *gone = NULL;
    while (*pp != NULL) {
        struct pc__srv_conn *c = *pp;
        if (all || atomic_load(&c->done)) {
            *pp = c->next;
            c->next = gone;
            gone = c;
            s->nconns--;
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&s->lock);
    while (gone != NULL) {
        struct pc__srv_conn *c = gone;
        gone = c->next;
        if (all)
            shutdown(c->fd, SHUT_RDWR); /* wakes a thread blocked in send */
        pthread_join(c->thread, NULL);
        close(c->fd);
        free(c);
    }
}

static void *pc__srv_accept_thread(void *arg)
{
    struct pc_source_server *s = arg;
    unsigned max = s->cfg.max_conns != 0 ? s->cfg.max_conns : 64u;
    for (;;) {
        struct pollfd p[2] = {{.fd = s->listen_fd, .events = POLLIN},
                              {.fd = s->stop_fd, .events = POLLIN}};
        int n = poll(p, 2, 1000); /* the timeout only paces reaping */
        if (pc__srv_stopping(s))
            return NULL;
        pc__srv_reap(s, false);
        if (n <= 0 || !(p[0].revents & POLLIN))
            continue;
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            continue; /* EAGAIN, ECONNABORTED, EMFILE...: keep serving the others */
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct pc__srv_conn *c = calloc(1, sizeof(*c));
        pthread_mutex_lock(&s->lock);
        bool full = s->nconns >= max;
        pthread_mutex_unlock(&s->lock);
        if (c == NULL || full) {
            free(c);
            close(fd);
            continue;
        }
        c->srv = s;
        c->fd = fd;
        atomic_init(&c->done, false);
        if (pthread_create(&c->thread, NULL, pc__srv_conn_thread, c) != 0) {
            free(c);
            close(fd);
            continue;
        }
        pthread_mutex_lock(&s->lock);
        c->next = s->conns;
        s->conns = c;
        s->nconns++;
        pthread_mutex_unlock(&s->lock);
    }
}

static int pc__srv_listen(const struct pc_source_server_config *cfg, uint16_t *port_out)
{
    char service[8];
    snprintf(service, sizeof(service), "%u", (unsigned)cfg->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(cfg->addr != NULL ? cfg->addr : "127.0.0.1", service, &hints, &res);
    if (gai != 0)
        return gai == EAI_SYSTEM ? -errno : -EINVAL;
    int err = -EADDRNOTAVAIL;
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = -errno;
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0)
            break;
        err = -errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return err;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        err = -errno;
        close(fd);
        return err;
    }
    *port_out = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int pc_source_server_start(struct pc_source_server **out, const struct pc_source_server_config *cfg)
{
    if (out == NULL || cfg == NULL || cfg->npages == 0)
        return -EINVAL;
    struct pc_source_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->cfg = *cfg;
    s->cfg.addr = NULL; /* not kept: the caller's string may go away */
    s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->stop_fd < 0) {
        int err = -errno;
        free(s);
        return err;
    }
    int fd = pc__srv_listen(cfg, &s->port);
    if (fd < 0) {
        close(s->stop_fd);
        free(s);
        return fd;
    }
    s->listen_fd = fd;
    pthread_mutex_init(&s->lock, NULL);
    atomic_init(&s->requests, 0);
    int rc = pthread_create(&s->accept_thread, NULL, pc__srv_accept_thread, s);
    if (rc != 0) {
        pthread_mutex_destroy(&s->lock);
        close(fd);
        close(s->stop_fd);
        free(s);
        return -rc;
    }
    *out = s;
    return 0;
}

uint16_t pc_source_server_port(const struct pc_source_server *s)
{
    return s->port;
}

uint64_t pc_source_server_requests(const struct pc_source_server *s)
{
    return atomic_load_explicit(&s->requests, memory_order_relaxed);
}

void pc_source_server_stop(struct pc_source_server *s)
{
    if (s == NULL)
        return;
    uint64_t one = 1;
    ssize_t w = write(s->stop_fd, &one, sizeof(one));
    (void)w; /* an eventfd write of 1 cannot fail short of overflow */
    pthread_join(s->accept_thread, NULL);
    close(s->listen_fd);
    pc__srv_reap(s, true);
    pthread_mutex_destroy(&s->lock);
    close(s->stop_fd);
    free(s);
}

int pc_source_serve(const struct pc_source_server_config *cfg, void (*ready)(uint16_t port))
{
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    struct pc_source_server *s;
    int err = pc_source_server_start(&s, cfg);
    if (err != 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return err;
    }
    if (ready != NULL)
        ready(s->port);
    int sig;
    while (sigwait(&set, &sig) != 0)
        ;
    pc_source_server_stop(s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
}
