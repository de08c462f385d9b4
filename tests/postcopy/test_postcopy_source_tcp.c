/* SPDX-License-Identifier: MIT */
/*
 * The TCP source over real loopback sockets: wire encoding and validation, end to end
 * against the real server (in a thread and in a separate process), concurrent fetches, a
 * server killed mid-run, and a fake server that misbehaves in every way the client must
 * catch. Waits are bounded: a broken client fails a test by timing out, never by hanging;
 * no assertion depends on how fast anything runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apf_check.h"
#include "netio.h"
#include "page.h"
#include "source.h"
#include "source_server.h"
#include "source_tcp.h"
#include "source_wire.h"

#define SEED 0xfeedull
#define NPAGES 256
#define HANG_BOUND_NS (30ull * 1000000000ull) /* far beyond any timeout used here */

static struct pc_source_server *start_server(const char *latency)
{
    struct pc_source_server_config cfg = {
        .addr = "127.0.0.1", .port = 0, .seed = SEED, .npages = NPAGES};
    ck_assert_int_eq(pc_latency_parse(latency, &cfg.latency), 0);
    struct pc_source_server *srv = NULL;
    ck_assert_int_eq(pc_source_server_start(&srv, &cfg), 0);
    ck_assert_uint_ne(pc_source_server_port(srv), 0);
    return srv;
}

/* --- the wire ----------------------------------------------------------------------------- */

START_TEST(test_wire_round_trip_and_validation)
{
    unsigned char b[64];
    struct pc_wire_req rq = {.type = PC_WIRE_FETCH, .req_id = 0xa1b2c3d4u, .page = 0x1122334455ull};
    pc_wire_req_encode(&rq, b);
    ck_assert_int_eq(memcmp(b, "APFS", 4), 0); /* the magic, as bytes on the wire */
    ck_assert_uint_eq(b[4], 1);
    ck_assert_uint_eq(b[5], 0);
    ck_assert_uint_eq(b[8], 0xd4); /* little-endian */
    struct pc_wire_req rq2;
    ck_assert_int_eq(pc_wire_req_decode(b, &rq2), 0);
    ck_assert_uint_eq(rq2.type, rq.type);
    ck_assert_uint_eq(rq2.req_id, rq.req_id);
    ck_assert_uint_eq(rq2.page, rq.page);
    b[0] ^= 1;
    ck_assert_int_eq(pc_wire_req_decode(b, &rq2), -EPROTO); /* magic */
    b[0] ^= 1;
    b[4] = 2;
    ck_assert_int_eq(pc_wire_req_decode(b, &rq2), -EPROTO); /* version */
    b[4] = 1;
    b[6] = 9;
    ck_assert_int_eq(pc_wire_req_decode(b, &rq2), -EPROTO); /* type */
    b[6] = PC_WIRE_FETCH;
    b[13] = 1;
    ck_assert_int_eq(pc_wire_req_decode(b, &rq2), -EPROTO); /* reserved */

    struct pc_wire_rep rp = {.type = PC_WIRE_FETCH,
                             .req_id = 5,
                             .status = 0,
                             .page = 9,
                             .length = PC_PAGE_SIZE,
                             .delay_us = 300};
    pc_wire_rep_encode(&rp, b);
    struct pc_wire_rep rp2;
    ck_assert_int_eq(pc_wire_rep_decode(b, &rp2), 0);
    ck_assert_uint_eq(rp2.req_id, 5);
    ck_assert_uint_eq(rp2.page, 9);
    ck_assert_uint_eq(rp2.length, PC_PAGE_SIZE);
    ck_assert_uint_eq(rp2.delay_us, 300);
    rp.status = -ERANGE;
    rp.length = 0;
    pc_wire_rep_encode(&rp, b);
    ck_assert_int_eq(pc_wire_rep_decode(b, &rp2), 0);
    ck_assert_int_eq(rp2.status, -ERANGE);
    rp.length = PC_PAGE_SIZE; /* an error with a payload */
    pc_wire_rep_encode(&rp, b);
    ck_assert_int_eq(pc_wire_rep_decode(b, &rp2), -EPROTO);
    rp.status = 0;
    rp.length = 100; /* a page of the wrong size */
    pc_wire_rep_encode(&rp, b);
    ck_assert_int_eq(pc_wire_rep_decode(b, &rp2), -EPROTO);
    rp.status = 5; /* positive status */
    rp.length = 0;
    pc_wire_rep_encode(&rp, b);
    ck_assert_int_eq(pc_wire_rep_decode(b, &rp2), -EPROTO);

    struct pc_wire_hello h = {.seed = SEED, .npages = 77, .page_size = PC_PAGE_SIZE}, h2;
    pc_wire_hello_encode(&h, b);
    ck_assert_int_eq(pc_wire_hello_decode(b, &h2), 0);
    ck_assert_uint_eq(h2.seed, SEED);
    ck_assert_uint_eq(h2.npages, 77);
    h.page_size = 8192;
    pc_wire_hello_encode(&h, b);
    ck_assert_int_eq(pc_wire_hello_decode(b, &h2), -EPROTO);
    h.page_size = PC_PAGE_SIZE;
    h.npages = 0;
    pc_wire_hello_encode(&h, b);
    ck_assert_int_eq(pc_wire_hello_decode(b, &h2), -EPROTO);
}
END_TEST

START_TEST(test_parse_host_and_port)
{
    char host[64];
    uint16_t port = 0;
    ck_assert_int_eq(pc_net_parse_hostport("127.0.0.1:9000", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_uint_eq(port, 9000);
    ck_assert_int_eq(pc_net_parse_hostport("[::1]:80", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "::1");
    ck_assert_uint_eq(port, 80);
    ck_assert_int_eq(pc_net_parse_hostport("src.example:65535", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "src.example");
    static const char *bad[] = {"",       "host",    "host:",   ":80",     "host:0",  "host:65536",
                                "::1:80", "[::1]80", "host:8x", "host:-1", "host: 80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(pc_net_parse_hostport(bad[i], host, sizeof(host), &port) == -EINVAL,
                      "accepted '%s'", bad[i]);
    ck_assert_int_eq(pc_net_parse_hostport("abcdef:1", host, 4, &port), -EINVAL); /* too long */
}
END_TEST

/* --- end to end ----------------------------------------------------------------------------- */

START_TEST(test_tcp_end_to_end_pages_verify)
{
    struct pc_source_server *srv = start_server("fixed:200");
    struct pc_source *src = NULL;
    char msg[256];
    struct pc_source_tcp_opts o = {.nconn = 2, .check_seed = true, .expect_seed = SEED};
    ck_assert_int_eq(
        pc_source_tcp_create(&src, "127.0.0.1", pc_source_server_port(srv), &o, msg, sizeof(msg)),
        0);
    ck_assert_str_eq(msg, "");
    ck_assert_str_eq(src->ops->name, "tcp");
    ck_assert_uint_eq(src->seed, SEED); /* learned from the HELLO */
    ck_assert_uint_eq(src->npages, NPAGES);
    unsigned char page[PC_PAGE_SIZE], want[PC_PAGE_SIZE];
    for (uint64_t i = 0; i < NPAGES; i++) {
        ck_assert_int_eq(pc_source_fetch(src, i, page), 0);
        pc_page_fill(SEED, i, want);
        ck_assert_int_eq(memcmp(page, want, sizeof(page)), 0);
    }
    ck_assert_int_eq(pc_source_fetch(src, NPAGES, page), -ERANGE);
    struct pc_source_stats st;
    pc_source_get_stats(src, &st);
    ck_assert_uint_eq(st.fetches, NPAGES);
    ck_assert_uint_eq(st.errors, 1);
    ck_assert_uint_ge(st.fetch_ns, (uint64_t)NPAGES * 200000u); /* latency was applied */
    printf("tcp source: %d sequential fetches of fixed:200: mean %.1f us per fetch\n", NPAGES,
           (double)st.fetch_ns / (double)st.fetches / 1e3);
    ck_assert_uint_eq(pc_source_server_requests(srv), 2 + NPAGES); /* 2 HELLOs */
    pc_source_destroy(src);
    pc_source_server_stop(srv);
}
END_TEST

#define TCP_THREADS 4
#define TCP_FETCHES 100

struct tcp_arg {
    struct pc_source *src;
    unsigned id;
    int bad;
};

static void *tcp_fetch_thread(void *arg)
{
    struct tcp_arg *a = arg;
    unsigned char page[PC_PAGE_SIZE];
    for (unsigned i = 0; i < TCP_FETCHES; i++) {
        uint64_t idx = (i * 13u + a->id * 61u) % NPAGES;
        int err = pc_source_fetch(a->src, idx, page);
        a->bad += err != 0 || !pc_page_verify(page, SEED, idx);
    }
    return NULL;
}

static void run_concurrent(unsigned nconn)
{
    struct pc_source_server *srv = start_server("fixed:300");
    struct pc_source *src = NULL;
    struct pc_source_tcp_opts o = {.nconn = nconn};
    ck_assert_int_eq(
        pc_source_tcp_create(&src, "127.0.0.1", pc_source_server_port(srv), &o, NULL, 0), 0);
    pthread_t t[TCP_THREADS];
    struct tcp_arg a[TCP_THREADS];
    uint64_t t0 = pc_now_ns();
    for (unsigned i = 0; i < TCP_THREADS; i++) {
        a[i] = (struct tcp_arg){.src = src, .id = i};
        ck_assert_int_eq(pthread_create(&t[i], NULL, tcp_fetch_thread, &a[i]), 0);
    }
    for (unsigned i = 0; i < TCP_THREADS; i++) {
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        ck_assert_int_eq(a[i].bad, 0);
    }
    uint64_t wall = pc_now_ns() - t0;
    struct pc_source_stats st;
    pc_source_get_stats(src, &st);
    ck_assert_uint_eq(st.fetches, TCP_THREADS * TCP_FETCHES);
    ck_assert_uint_eq(st.errors, 0);
    printf("tcp source: %d threads x %d fetches of fixed:300 on %u connections: wall %.1f ms "
           "(%.1f us per fetch per thread)\n",
           TCP_THREADS, TCP_FETCHES, nconn, (double)wall / 1e6, (double)wall / 1e3 / TCP_FETCHES);
    pc_source_destroy(src);
    pc_source_server_stop(srv);
}

START_TEST(test_tcp_concurrent_fetches_from_4_threads)
{
    run_concurrent(4);
}
END_TEST

START_TEST(test_tcp_more_threads_than_connections_share_the_pool)
{
    run_concurrent(2);
}
END_TEST

START_TEST(test_tcp_connect_refused_is_clear_error)
{
    /* A port nobody listens on: bind one, note it, close it. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
    close(s);
    struct pc_source *src = NULL;
    char msg[256];
    int err = pc_source_tcp_create(&src, "127.0.0.1", ntohs(sa.sin_port), NULL, msg, sizeof(msg));
    ck_assert_int_eq(err, -ECONNREFUSED);
    ck_assert_ptr_null(src);
    ck_assert_ptr_nonnull(strstr(msg, "refused"));
    printf("connect to a closed port: %s\n", msg);
}
END_TEST

START_TEST(test_tcp_seed_mismatch_is_rejected)
{
    struct pc_source_server *srv = start_server("fixed:0");
    struct pc_source *src = NULL;
    char msg[256];
    struct pc_source_tcp_opts o = {.nconn = 1, .check_seed = true, .expect_seed = SEED + 1};
    ck_assert_int_eq(
        pc_source_tcp_create(&src, "127.0.0.1", pc_source_server_port(srv), &o, msg, sizeof(msg)),
        -EPROTO);
    ck_assert_ptr_null(src);
    ck_assert_ptr_nonnull(strstr(msg, "seed"));
    pc_source_server_stop(srv);
}
END_TEST

/* The real server closes a connection that sends anything malformed. */
START_TEST(test_server_closes_connection_on_malformed_request)
{
    struct pc_source_server *srv = start_server("fixed:0");
    uint16_t port = pc_source_server_port(srv);
    for (int kind = 0; kind < 3; kind++) {
        uint64_t deadline = pc_now_ns() + 5000000000ull;
        int fd = pc_net_connect("127.0.0.1", port, deadline);
        ck_assert_int_ge(fd, 0);
        unsigned char b[PC_WIRE_REQ_SIZE];
        struct pc_wire_req rq = {.type = PC_WIRE_HELLO, .req_id = 1};
        if (kind == 1)
            rq.type = PC_WIRE_FETCH; /* FETCH before HELLO */
        pc_wire_req_encode(&rq, b);
        if (kind == 0)
            b[1] ^= 0xff; /* bad magic */
        if (kind == 2)
            b[4] = 7; /* unknown version */
        ck_assert_int_eq(pc_net_send_all(fd, b, sizeof(b), deadline), 0);
        unsigned char r[PC_WIRE_REP_SIZE];
        ck_assert_int_eq(pc_net_recv_all(fd, r, sizeof(r), deadline, -1), -ECONNRESET);
        close(fd);
    }
    ck_assert_uint_eq(pc_source_server_requests(srv), 0);
    pc_source_server_stop(srv);
}
END_TEST

/* --- a server in another process, killed ---------------------------------------------------- */

static int g_ready_fd = -1;

static void child_ready(uint16_t port)
{
    ssize_t w = write(g_ready_fd, &port, sizeof(port));
    (void)w;
}

/* Forks a source process running pc_source_serve(); returns its pid and port. */
static pid_t spawn_source_process(const char *latency, uint16_t *port)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[0]);
        g_ready_fd = p[1];
        struct pc_source_server_config cfg = {
            .addr = "127.0.0.1", .port = 0, .seed = SEED, .npages = NPAGES};
        if (pc_latency_parse(latency, &cfg.latency) != 0)
            _exit(2);
        _exit(pc_source_serve(&cfg, child_ready) == 0 ? 0 : 1);
    }
    close(p[1]);
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    ck_assert_int_eq(poll(&pf, 1, 10000), 1);
    ck_assert_int_eq(read(p[0], port, sizeof(*port)), (ssize_t)sizeof(*port));
    close(p[0]);
    return pid;
}

START_TEST(test_source_process_serves_and_stops_on_sigterm)
{
    uint16_t port = 0;
    pid_t pid = spawn_source_process("fixed:100", &port);
    struct pc_source *src = NULL;
    ck_assert_int_eq(pc_source_tcp_create(&src, "127.0.0.1", port, NULL, NULL, 0), 0);
    unsigned char page[PC_PAGE_SIZE];
    for (uint64_t i = 0; i < 20; i++) {
        ck_assert_int_eq(pc_source_fetch(src, i, page), 0);
        ck_assert(pc_page_verify(page, SEED, i));
    }
    pc_source_destroy(src);
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0); /* a clean stop */
}
END_TEST

START_TEST(test_server_killed_between_fetches_gives_error_not_hang)
{
    uint16_t port = 0;
    pid_t pid = spawn_source_process("fixed:200", &port);
    struct pc_source *src = NULL;
    struct pc_source_tcp_opts o = {.nconn = 2, .timeout_ms = 2000};
    ck_assert_int_eq(pc_source_tcp_create(&src, "127.0.0.1", port, &o, NULL, 0), 0);
    unsigned char page[PC_PAGE_SIZE];
    for (uint64_t i = 0; i < 10; i++)
        ck_assert_int_eq(pc_source_fetch(src, i, page), 0);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);

    uint64_t t0 = pc_now_ns();
    int err = pc_source_fetch(src, 11, page);
    uint64_t dt = pc_now_ns() - t0;
    char msg[256];
    printf("fetch after the source died: %d (%s) after %.1f ms: %s\n", err, strerror(-err),
           (double)dt / 1e6, pc_source_last_error(src, msg, sizeof(msg)));
    ck_assert_msg(err == -ECONNRESET || err == -ECONNREFUSED || err == -ETIMEDOUT,
                  "unexpected error %d", err);
    ck_assert_uint_lt(dt, HANG_BOUND_NS);
    ck_assert_ptr_nonnull(strstr(msg, "page 11"));
    /* The pool reconnects on the next fetch and is refused: fails, does not hang. */
    for (uint64_t i = 0; i < 4; i++) {
        err = pc_source_fetch(src, i, page);
        ck_assert_msg(err == -ECONNREFUSED || err == -ECONNRESET, "unexpected error %d", err);
    }
    struct pc_source_stats st;
    pc_source_get_stats(src, &st);
    ck_assert_uint_eq(st.fetches, 10);
    ck_assert_uint_eq(st.errors, 5);
    pc_source_destroy(src);
}
END_TEST

struct slow_arg {
    struct pc_source *src;
    int err;
    uint64_t ns;
};

static void *slow_fetch(void *arg)
{
    struct slow_arg *a = arg;
    unsigned char page[PC_PAGE_SIZE];
    uint64_t t0 = pc_now_ns();
    a->err = pc_source_fetch(a->src, 1, page);
    a->ns = pc_now_ns() - t0;
    return NULL;
}

START_TEST(test_server_killed_during_fetch_gives_econnreset)
{
    uint16_t port = 0;
    pid_t pid = spawn_source_process("fixed:3000000", &port); /* 3 s per page */
    struct pc_source *src = NULL;
    struct pc_source_tcp_opts o = {.nconn = 1, .timeout_ms = 20000};
    ck_assert_int_eq(pc_source_tcp_create(&src, "127.0.0.1", port, &o, NULL, 0), 0);
    struct slow_arg a = {.src = src};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, slow_fetch, &a), 0);
    usleep(200000); /* the request is (almost certainly) in flight; either way it must fail */
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    printf("fetch in flight when the source died: %d after %.1f ms\n", a.err, (double)a.ns / 1e6);
    ck_assert_msg(a.err == -ECONNRESET || a.err == -ECONNREFUSED, "unexpected error %d", a.err);
    ck_assert_uint_lt(a.ns, HANG_BOUND_NS);
    pc_source_destroy(src);
}
END_TEST

/* --- a fake server that misbehaves ---------------------------------------------------------- */

enum fake_mode {
    FAKE_BAD_MAGIC,
    FAKE_BAD_VERSION,
    FAKE_WRONG_REQ_ID,
    FAKE_WRONG_PAGE,
    FAKE_WRONG_LENGTH,
    FAKE_CORRUPT_PAGE,
    FAKE_TRUNCATED_THEN_CLOSE,
    FAKE_SILENT,
    FAKE_NOT_A_SERVER,
    FAKE_MODES
};

static const char *const fake_names[FAKE_MODES] = {
    "bad magic",    "bad version",          "wrong req_id", "wrong page",         "wrong length",
    "corrupt page", "truncated then close", "silent",       "not a source server"};

struct fake {
    int lfd;
    uint16_t port;
    enum fake_mode mode;
    pthread_t thread;
    bool client_closed; /* the client hung up after the bad reply */
};

static void *fake_thread(void *arg)
{
    struct fake *f = arg;
    uint64_t deadline = pc_now_ns() + 10000000000ull;
    struct pollfd p = {.fd = f->lfd, .events = POLLIN};
    if (poll(&p, 1, 10000) != 1)
        return NULL;
    int fd = accept4(f->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return NULL;
    unsigned char rq[PC_WIRE_REQ_SIZE];
    unsigned char out[PC_WIRE_REP_SIZE + PC_PAGE_SIZE];
    struct pc_wire_req req;
    if (pc_net_recv_all(fd, rq, sizeof(rq), deadline, -1) != 0 || pc_wire_req_decode(rq, &req) != 0)
        goto done;
    if (f->mode == FAKE_NOT_A_SERVER) {
        static const char http[] = "HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        pc_net_send_all(fd, http, sizeof(http) - 1, deadline);
        goto wait_close;
    }
    struct pc_wire_rep rep = {
        .type = PC_WIRE_HELLO, .req_id = req.req_id, .length = PC_WIRE_HELLO_SIZE};
    struct pc_wire_hello h = {.seed = SEED, .npages = NPAGES, .page_size = PC_PAGE_SIZE};
    pc_wire_rep_encode(&rep, out);
    pc_wire_hello_encode(&h, out + PC_WIRE_REP_SIZE);
    if (pc_net_send_all(fd, out, PC_WIRE_REP_SIZE + PC_WIRE_HELLO_SIZE, deadline) != 0)
        goto done;
    if (pc_net_recv_all(fd, rq, sizeof(rq), deadline, -1) != 0 || pc_wire_req_decode(rq, &req) != 0)
        goto done;
    rep = (struct pc_wire_rep){
        .type = PC_WIRE_FETCH, .req_id = req.req_id, .page = req.page, .length = PC_PAGE_SIZE};
    if (f->mode == FAKE_WRONG_REQ_ID)
        rep.req_id++;
    if (f->mode == FAKE_WRONG_PAGE)
        rep.page++;
    if (f->mode == FAKE_WRONG_LENGTH)
        rep.length = PC_PAGE_SIZE - 1;
    pc_wire_rep_encode(&rep, out);
    pc_page_fill(SEED, req.page, out + PC_WIRE_REP_SIZE);
    if (f->mode == FAKE_BAD_MAGIC)
        out[3] = 'X';
    if (f->mode == FAKE_BAD_VERSION)
        out[4] = 2;
    if (f->mode == FAKE_CORRUPT_PAGE)
        out[PC_WIRE_REP_SIZE + 1000] ^= 0x40;
    size_t len = PC_WIRE_REP_SIZE + PC_PAGE_SIZE;
    if (f->mode == FAKE_TRUNCATED_THEN_CLOSE) {
        pc_net_send_all(fd, out, 10, deadline);
        goto done;
    }
    if (f->mode != FAKE_SILENT)
        pc_net_send_all(fd, out, len, deadline);
wait_close:
    /* The client must hang up now; read until it does (bounded). */
    for (;;) {
        unsigned char junk[256];
        int err = pc_net_recv_all(fd, junk, 1, deadline, -1);
        if (err == -ECONNRESET) {
            f->client_closed = true;
            break;
        }
        if (err != 0)
            break;
    }
done:
    close(fd);
    return NULL;
}

static void fake_start(struct fake *f, enum fake_mode mode)
{
    memset(f, 0, sizeof(*f));
    f->mode = mode;
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(f->lfd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(f->lfd, 4), 0);
    socklen_t sl = sizeof(sa);
    ck_assert_int_eq(getsockname(f->lfd, (struct sockaddr *)&sa, &sl), 0);
    f->port = ntohs(sa.sin_port);
    ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_thread, f), 0);
}

START_TEST(test_malformed_server_replies_are_errors)
{
    static const int want[FAKE_MODES] = {
        [FAKE_BAD_MAGIC] = -EPROTO,
        [FAKE_BAD_VERSION] = -EPROTO,
        [FAKE_WRONG_REQ_ID] = -EPROTO,
        [FAKE_WRONG_PAGE] = -EPROTO,
        [FAKE_WRONG_LENGTH] = -EPROTO,
        [FAKE_CORRUPT_PAGE] = -EBADMSG,
        [FAKE_TRUNCATED_THEN_CLOSE] = -ECONNRESET,
        [FAKE_SILENT] = -ETIMEDOUT,
    };
    for (int mode = 0; mode < FAKE_MODES; mode++) {
        struct fake f;
        fake_start(&f, (enum fake_mode)mode);
        struct pc_source *src = NULL;
        char msg[256];
        struct pc_source_tcp_opts o = {.nconn = 1, .timeout_ms = 300};
        int err = pc_source_tcp_create(&src, "127.0.0.1", f.port, &o, msg, sizeof(msg));
        if (mode == FAKE_NOT_A_SERVER) {
            ck_assert_int_eq(err, -EPROTO); /* the HELLO reply is not ours */
            ck_assert_ptr_nonnull(strstr(msg, "malformed"));
            ck_assert_ptr_null(src);
        } else {
            ck_assert_int_eq(err, 0);
            unsigned char page[PC_PAGE_SIZE];
            uint64_t t0 = pc_now_ns();
            err = pc_source_fetch(src, 5, page);
            uint64_t dt = pc_now_ns() - t0;
            pc_source_last_error(src, msg, sizeof(msg));
            ck_assert_msg(err == want[mode], "%s: got %d, want %d", fake_names[mode], err,
                          want[mode]);
            ck_assert_uint_lt(dt, HANG_BOUND_NS);
            ck_assert_ptr_nonnull(strstr(msg, "page 5"));
        }
        printf("fake server, %s: %d: %s\n", fake_names[mode], err, msg);
        /* The client hangs up on a broken server at once, not only when destroyed. */
        ck_assert_int_eq(pthread_join(f.thread, NULL), 0);
        if (mode != FAKE_TRUNCATED_THEN_CLOSE)
            ck_assert_msg(f.client_closed, "%s: client kept the connection", fake_names[mode]);
        pc_source_destroy(src);
        close(f.lfd);
    }
}
END_TEST

static Suite *tcp_suite(void)
{
    Suite *s = suite_create("postcopy_source_tcp");
    TCase *tc = tcase_create("wire");
    tcase_add_test(tc, test_wire_round_trip_and_validation);
    tcase_add_test(tc, test_parse_host_and_port);
    suite_add_tcase(s, tc);
    tc = tcase_create("tcp");
    tcase_add_test(tc, test_tcp_end_to_end_pages_verify);
    tcase_add_test(tc, test_tcp_concurrent_fetches_from_4_threads);
    tcase_add_test(tc, test_tcp_more_threads_than_connections_share_the_pool);
    tcase_add_test(tc, test_tcp_connect_refused_is_clear_error);
    tcase_add_test(tc, test_tcp_seed_mismatch_is_rejected);
    tcase_add_test(tc, test_server_closes_connection_on_malformed_request);
    tcase_add_test(tc, test_source_process_serves_and_stops_on_sigterm);
    tcase_add_test(tc, test_server_killed_between_fetches_gives_error_not_hang);
    tcase_add_test(tc, test_server_killed_during_fetch_gives_econnreset);
    tcase_add_test(tc, test_malformed_server_replies_are_errors);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(tcp_suite)
