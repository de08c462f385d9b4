/* SPDX-License-Identifier: MIT */
#define _POSIX_C_SOURCE 200809L
#include "fake_vmm.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void logit(struct fake_vmm *f, enum fake_ev ev, uint32_t vcpu, uint32_t value, uint64_t gpa)
{
    pthread_mutex_lock(&f->lock);
    if (f->nlog < FAKE_LOG_MAX)
        f->log[f->nlog++] = (struct fake_log_entry){ev, vcpu, value, gpa};
    pthread_mutex_unlock(&f->lock);
}

static int f_read(void *ctx, uint64_t gpa, void *buf, uint32_t len)
{
    struct fake_vmm *f = ctx;
    if (gpa >= f->mem_size || len > f->mem_size - gpa)
        return APF_EFAULT;
    memcpy(buf, f->mem + gpa, len);
    return 0;
}

static int f_write(void *ctx, uint64_t gpa, const void *buf, uint32_t len)
{
    struct fake_vmm *f = ctx;
    if (gpa >= f->mem_size || len > f->mem_size - gpa)
        return APF_EFAULT;
    memcpy(f->mem + gpa, buf, len);
    return 0;
}

static void f_np(void *ctx, uint32_t vcpu, uint32_t token)
{
    logit(ctx, FAKE_NP, vcpu, token, 0);
}

static void f_ready(void *ctx, uint32_t vcpu, uint32_t vector)
{
    logit(ctx, FAKE_READY, vcpu, vector, 0);
}

static void f_kick(void *ctx, uint32_t vcpu)
{
    struct fake_vmm *f = ctx;
    atomic_fetch_add(&f->kicks, 1);
    logit(f, FAKE_KICK, vcpu, 0, 0);
}

static void f_submit(void *ctx, uint32_t vcpu, uint32_t token, uint64_t gpa)
{
    logit(ctx, FAKE_SUBMIT, vcpu, token, gpa);
}

static int f_resolve(void *ctx, uint32_t vcpu, uint64_t gpa)
{
    struct fake_vmm *f = ctx;
    atomic_fetch_add(&f->resolves_started, 1);
    while (atomic_load(&f->gate_closed)) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    unsigned us = atomic_load(&f->resolve_delay_us);
    if (us) {
        struct timespec ts = {0, (long)us * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_add(&f->resolves, 1);
    logit(f, FAKE_RESOLVE, vcpu, 0, gpa);
    return atomic_load(&f->resolve_status);
}

void fake_init(struct fake_vmm *f)
{
    memset(f, 0, sizeof(*f));
    f->mem_size = FAKE_MEM_SIZE;
    f->mem = calloc(1, FAKE_MEM_SIZE);
    pthread_mutex_init(&f->lock, NULL);
    f->ops = (struct apf_host_ops){
        .resolve = f_resolve,
        .submit = f_submit,
        .inject_not_present = f_np,
        .inject_ready = f_ready,
        .kick = f_kick,
        .read_guest = f_read,
        .write_guest = f_write,
    };
}

void fake_fini(struct fake_vmm *f)
{
    free(f->mem);
    pthread_mutex_destroy(&f->lock);
}

struct apf_host_config fake_config(struct fake_vmm *f, uint32_t n_vcpus, uint32_t workers,
                                   const struct apf_host_transport_ops *transport)
{
    struct apf_host_config c = {0};
    c.n_vcpus = n_vcpus;
    c.n_workers = workers;
    c.transport = transport;
    c.ops = &f->ops;
    c.ctx = f;
    return c;
}

uint32_t fake_area_flags(struct fake_vmm *f, uint32_t vcpu)
{
    uint32_t v;
    memcpy(&v, f->mem + FAKE_AREA(vcpu), 4);
    return v;
}

uint32_t fake_area_token(struct fake_vmm *f, uint32_t vcpu)
{
    uint32_t v;
    memcpy(&v, f->mem + FAKE_AREA(vcpu) + 4, 4);
    return v;
}

void fake_area_write(struct fake_vmm *f, uint32_t vcpu, uint32_t flags, uint32_t token)
{
    memcpy(f->mem + FAKE_AREA(vcpu), &flags, 4);
    memcpy(f->mem + FAKE_AREA(vcpu) + 4, &token, 4);
}

struct apf_host *fake_host_ready(struct fake_vmm *f, const struct apf_host_config *cfg,
                                 uint32_t en_flags)
{
    struct apf_host *h = NULL;
    if (apf_host_create(cfg, &h) != 0)
        return NULL;
    uint32_t vector = cfg->transport == &apf_host_transport_kvm_arm64 ? 20 : 0xec;
    for (uint32_t v = 0; v < cfg->n_vcpus; v++) {
        if (apf_host_vcpu_set_vector(h, v, vector) != 0 ||
            apf_host_vcpu_enable(h, v, FAKE_AREA(v), en_flags) != 0 ||
            apf_host_vcpu_before_entry(h, v, GS_USER) != 1 ||
            fake_area_token(f, v) != APF_TOKEN_WAKE_ALL) {
            apf_host_destroy(h);
            return NULL;
        }
        fake_area_write(f, v, 0, 0);
        apf_host_vcpu_ack(h, v);
    }
    fake_log_clear(f);
    atomic_store(&f->kicks, 0);
    return h;
}

size_t fake_count(struct fake_vmm *f, enum fake_ev ev, uint32_t vcpu)
{
    size_t n = 0;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->nlog; i++)
        if (f->log[i].ev == ev && f->log[i].vcpu == vcpu)
            n++;
    pthread_mutex_unlock(&f->lock);
    return n;
}

long fake_index(struct fake_vmm *f, enum fake_ev ev, uint32_t vcpu, size_t n)
{
    long at = -1;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->nlog; i++) {
        if (f->log[i].ev == ev && f->log[i].vcpu == vcpu && n-- == 0) {
            at = (long)i;
            break;
        }
    }
    pthread_mutex_unlock(&f->lock);
    return at;
}

const struct fake_log_entry *fake_nth(struct fake_vmm *f, enum fake_ev ev, uint32_t vcpu, size_t n)
{
    long i = fake_index(f, ev, vcpu, n);
    return i < 0 ? NULL : &f->log[i];
}

void fake_log_clear(struct fake_vmm *f)
{
    pthread_mutex_lock(&f->lock);
    f->nlog = 0;
    pthread_mutex_unlock(&f->lock);
}

static void *c_alloc(void *ctx, size_t size, size_t align)
{
    struct counting_alloc *c = ctx;
    long n = atomic_fetch_add(&c->calls, 1) + 1;
    if (c->fail_at && n == c->fail_at)
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size) != 0)
        return NULL;
    atomic_fetch_add(&c->live_blocks, 1);
    atomic_fetch_add(&c->live_bytes, (long)size);
    return p;
}

static void c_free(void *ctx, void *ptr, size_t size)
{
    struct counting_alloc *c = ctx;
    atomic_fetch_sub(&c->live_blocks, 1);
    atomic_fetch_sub(&c->live_bytes, (long)size);
    free(ptr);
}

void counting_alloc_init(struct counting_alloc *c, long fail_at)
{
    memset(c, 0, sizeof(*c));
    c->fail_at = fail_at;
    c->a = (struct apf_allocator){c_alloc, c_free, c};
}

void fake_engine_snap(struct fake_vmm *f, struct apf_host *h, uint32_t vcpu,
                      struct fake_engine_snap *s)
{
    memset(s, 0, sizeof(*s));
    s->enabled = apf_host_vcpu_enabled(h, vcpu);
    ck_assert_int_eq(apf_host_vcpu_save(h, vcpu, &s->st), 0);
    s->np = fake_count(f, FAKE_NP, vcpu);
    s->ready = fake_count(f, FAKE_READY, vcpu);
    s->submit = fake_count(f, FAKE_SUBMIT, vcpu);
    s->area_flags = fake_area_flags(f, vcpu);
    s->area_token = fake_area_token(f, vcpu);
}

void fake_engine_assert_same(int line, const struct fake_engine_snap *b,
                             const struct fake_engine_snap *a)
{
    ck_assert_msg(a->enabled == b->enabled, "line %d: enabled %d -> %d", line, b->enabled,
                  a->enabled);
    ck_assert_msg(a->st.version == b->st.version, "line %d: state.version changed", line);
    ck_assert_msg(a->st.enabled == b->st.enabled, "line %d: state.enabled %u -> %u", line,
                  b->st.enabled, a->st.enabled);
    ck_assert_msg(a->st.area_gpa == b->st.area_gpa, "line %d: state.area_gpa %#llx -> %#llx",
                  line, (unsigned long long)b->st.area_gpa, (unsigned long long)a->st.area_gpa);
    ck_assert_msg(a->st.flags == b->st.flags, "line %d: state.flags %#x -> %#x", line,
                  b->st.flags, a->st.flags);
    ck_assert_msg(a->st.vector == b->st.vector, "line %d: state.vector %u -> %u", line,
                  b->st.vector, a->st.vector);
    ck_assert_msg(a->st.seq == b->st.seq, "line %d: state.seq %u -> %u", line, b->st.seq,
                  a->st.seq);
    ck_assert_msg(a->st.reserved == b->st.reserved, "line %d: state.reserved changed", line);
    ck_assert_msg(a->np == b->np && a->ready == b->ready && a->submit == b->submit,
                  "line %d: new injection: NP %zu -> %zu, READY %zu -> %zu, SUBMIT %zu -> %zu",
                  line, b->np, a->np, b->ready, a->ready, b->submit, a->submit);
    ck_assert_msg(a->area_flags == b->area_flags && a->area_token == b->area_token,
                  "line %d: shared area changed: (%#x, %#x) -> (%#x, %#x)", line, b->area_flags,
                  b->area_token, a->area_flags, a->area_token);
}

void fake_assert_nothing_queued(struct fake_vmm *f, struct apf_host *h, int line, uint32_t vcpu)
{
    size_t ready = fake_count(f, FAKE_READY, vcpu);
    int r = apf_host_vcpu_before_entry(h, vcpu, GS_USER);
    ck_assert_msg(r == 0, "line %d: before_entry returned %d (a \"page ready\" was queued)",
                  line, r);
    ck_assert_msg(fake_count(f, FAKE_READY, vcpu) == ready, "line %d: FAKE_READY logged", line);
}
