/* SPDX-License-Identifier: MIT */
/*
 * The SIGBUS dispatcher: one process-wide handler, one callback per thread (see sigbus.h).
 *
 * The per-thread callback is a thread-local pair read from inside the signal handler; the
 * initial-exec TLS model keeps that read free of lazy allocation (the library is linked into
 * the program, not dlopen'ed). The previous disposition is saved once, before ours is
 * installed, and only read afterwards.
 */
#define _GNU_SOURCE
#include "sigbus.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

struct pc__sigbus_tls {
    pc_sigbus_fn fn;
    void *ctx;
};

static __attribute__((tls_model("initial-exec"))) _Thread_local struct pc__sigbus_tls pc__tls;

static struct sigaction pc__prev; /* written once under pthread_once, before installing */
static pthread_once_t pc__once = PTHREAD_ONCE_INIT;
static int pc__install_err;

/* write(2) is async-signal-safe; snprintf is not. */
static void pc__say_unhandled(const void *addr, int code)
{
    char buf[128];
    static const char head[] = "SIGBUS not handled: addr 0x";
    size_t n = 0;
    memcpy(buf, head, sizeof(head) - 1);
    n = sizeof(head) - 1;
    uintptr_t a = (uintptr_t)addr;
    for (int shift = (int)sizeof(a) * 8 - 4; shift >= 0; shift -= 4)
        buf[n++] = "0123456789abcdef"[(a >> shift) & 0xfu];
    static const char mid[] = " si_code ";
    memcpy(buf + n, mid, sizeof(mid) - 1);
    n += sizeof(mid) - 1;
    unsigned c = (unsigned)(code < 0 ? -code : code);
    if (code < 0)
        buf[n++] = '-';
    char digits[12];
    int d = 0;
    do {
        digits[d++] = (char)('0' + c % 10u);
        c /= 10u;
    } while (c != 0 && d < 12);
    while (d > 0)
        buf[n++] = digits[--d];
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, n);
    (void)w;
}

static void pc__sigbus_handler(int sig, siginfo_t *si, void *uc)
{
    int saved_errno = errno;
    struct pc__sigbus_tls t = pc__tls;
    if (si != NULL && si->si_code == BUS_ADRERR && t.fn != NULL && t.fn(t.ctx, si->si_addr)) {
        errno = saved_errno;
        return; /* retry the access */
    }
    /* Not ours: whoever was there before, else the default action. */
    if ((pc__prev.sa_flags & SA_SIGINFO) && pc__prev.sa_sigaction != NULL) {
        pc__prev.sa_sigaction(sig, si, uc);
        errno = saved_errno;
        return;
    }
    if (!(pc__prev.sa_flags & SA_SIGINFO) && pc__prev.sa_handler != SIG_DFL &&
        pc__prev.sa_handler != SIG_IGN) {
        pc__prev.sa_handler(sig);
        errno = saved_errno;
        return;
    }
    pc__say_unhandled(si != NULL ? si->si_addr : NULL, si != NULL ? si->si_code : 0);
    /* Die of SIGBUS as without us. SA_NODEFER: the raise is delivered at once. */
    signal(SIGBUS, SIG_DFL);
    raise(SIGBUS);
}

static void pc__install_once(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = pc__sigbus_handler;
    sigemptyset(&sa.sa_mask);
    /* SA_NODEFER and no SA_ONSTACK: see sigbus.h. */
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    if (sigaction(SIGBUS, NULL, &pc__prev) != 0 || sigaction(SIGBUS, &sa, NULL) != 0)
        pc__install_err = -errno;
}

int pc_sigbus_install(void)
{
    pthread_once(&pc__once, pc__install_once);
    return pc__install_err;
}

void pc_sigbus_set_handler(pc_sigbus_fn fn, void *ctx)
{
    /* The handler reads both fields; a SIGBUS on this thread can only come from this
     * thread's own accesses, so keeping the compiler from reordering the stores suffices. */
    pc__tls.fn = NULL;
    atomic_signal_fence(memory_order_seq_cst);
    pc__tls.ctx = ctx;
    atomic_signal_fence(memory_order_seq_cst);
    pc__tls.fn = fn;
}
