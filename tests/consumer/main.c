/* SPDX-License-Identifier: MIT */
/*
 * A consumer of the *installed* libapf (built outside the tree, with find_package(apf) and
 * with pkg-config): a one-vCPU hypervisor (libapf-host + its KVM x86 frontend) and a guest
 * (libapf-guest + its kvm_x86 backend) whose cpuid/wrmsr go straight to the frontend. The
 * guest enables APF; the wake-all "page ready" must reach it and be ACKed.
 */
#include <stdio.h>
#include <string.h>

#include <apf/error.h>
#include <apf/guest.h>
#include <apf/host.h>
#include <apf/host_kvm_x86.h>
#include <apf/version.h>

static _Alignas(64) unsigned char guest_mem[16384]; /* the guest runtime's memory = "RAM" */
static struct apf_host_kvm_x86 *fe;
static struct apf_guest *g;
static int readies;

/* ---- the hypervisor side ---- */
static int h_read(void *c, uint64_t gpa, void *b, uint32_t n)
{
    (void)c;
    uintptr_t lo = (uintptr_t)guest_mem;
    if (gpa < lo || gpa + n > lo + sizeof(guest_mem))
        return APF_EFAULT;
    memcpy(b, (void *)(uintptr_t)gpa, n);
    return 0;
}
static int h_write(void *c, uint64_t gpa, const void *b, uint32_t n)
{
    (void)c;
    uintptr_t lo = (uintptr_t)guest_mem;
    if (gpa < lo || gpa + n > lo + sizeof(guest_mem))
        return APF_EFAULT;
    memcpy((void *)(uintptr_t)gpa, b, n);
    return 0;
}
static void h_np(void *c, uint32_t v, uint32_t t) { (void)c, (void)v, (void)t; }
static void h_ready(void *c, uint32_t v, uint32_t vec) { (void)c, (void)vec, readies++, apf_guest_on_interrupt(g, v); }
static void h_kick(void *c, uint32_t v) { (void)c, (void)v; }
static void h_submit(void *c, uint32_t v, uint32_t t, uint64_t gpa) { (void)c, (void)v, (void)t, (void)gpa; }

/* ---- the guest's privileged instructions, routed as a VMM routes exits ---- */
static void a_cpuid(void *c, uint32_t cpu, uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    (void)c, (void)cpu, (void)sub;
    memset(r, 0, 16);
    apf_host_kvm_x86_cpuid(fe, leaf, r);
}
static int a_wrmsr(void *c, uint32_t cpu, uint32_t msr, uint64_t v) { (void)c; return apf_host_kvm_x86_wrmsr(fe, cpu, msr, v); }
static int a_rdmsr(void *c, uint32_t cpu, uint32_t msr, uint64_t *v) { (void)c; return apf_host_kvm_x86_rdmsr(fe, cpu, msr, v); }

/* ---- a one-task guest kernel ---- */
static void *e_task(void *c) { (void)c; return guest_mem; }
static uint32_t e_cpu(void *c) { (void)c; return 0; }
static int e_can_sleep(void *c) { (void)c; return 1; }
static void e_sleep(void *c, struct apf_guest_waiter *w) { (void)c, (void)w; }
static void e_wake(void *c, void *t, uint32_t cpu, int h) { (void)c, (void)t, (void)cpu, (void)h; }
static void e_halt(void *c) { (void)c; }
static uintptr_t e_lock(void *c, struct apf_guest_lock *l) { (void)c, (void)l; return 0; }
static void e_unlock(void *c, struct apf_guest_lock *l, uintptr_t f) { (void)c, (void)l, (void)f; }
static uint64_t e_v2p(void *c, const void *va) { (void)c; return (uint64_t)(uintptr_t)va; }

int main(void)
{
    if (apf_version() != (uint32_t)APF_VERSION_HEX) {
        fprintf(stderr, "consumer: header/library version mismatch\n");
        return 1;
    }
    static const struct apf_host_ops hops = {.submit = h_submit, .inject_not_present = h_np,
                                             .inject_ready = h_ready, .kick = h_kick,
                                             .read_guest = h_read, .write_guest = h_write};
    struct apf_host_config hc = {.n_vcpus = 1, .transport = &apf_host_transport_kvm_x86,
                                 .ops = &hops};
    struct apf_host *h;
    if (apf_host_create(&hc, &h) != 0 || apf_host_kvm_x86_create(h, NULL, &fe) != 0)
        return 1;

    static const struct apf_x86_arch_ops arch = {a_cpuid, a_wrmsr, a_rdmsr};
    struct apf_guest_kvm_x86 kvm;
    apf_guest_kvm_x86_init(&kvm, &arch, NULL);
    static const struct apf_guest_env_ops env = {e_task, e_cpu, e_can_sleep, e_sleep, e_wake,
                                                 e_halt, e_lock, e_unlock, e_v2p, NULL};
    struct apf_guest_config gc = {.n_cpus = 1, .vector = 0xf3, .env = &env,
                                  .backend = &apf_guest_backend_kvm_x86, .backend_ctx = &kvm};
    if (apf_guest_mem_size(&gc) > sizeof(guest_mem) ||
        apf_guest_init(guest_mem, sizeof(guest_mem), &gc, &g) != 0 || apf_guest_available(g) != 1)
        return 1;
    int err = apf_guest_cpu_online(g, 0); /* wrmsr INT, then EN, through the frontend */
    if (err) {
        fprintf(stderr, "consumer: online: %s\n", apf_strerror(err));
        return 1;
    }
    uint32_t gs = APF_GS_USER | APF_GS_IRQ_ON | APF_GS_PAGING | APF_GS_IRQCHIP_ON;
    apf_host_vcpu_before_entry(h, 0, gs); /* the wake-all, delivered into the guest */
    struct apf_guest_stats s;
    apf_guest_stats(g, 0, &s);
    struct apf_host_vcpu_stats hs;
    apf_host_vcpu_stats(h, 0, &hs);
    if (readies != 1 || s.wake_all != 1 || s.acks != 1 || hs.acks != 1) {
        fprintf(stderr, "consumer: wake-all not delivered and ACKed\n");
        return 1;
    }
    printf("consumer: libapf %s, protocol %06x: guest enabled APF, took the wake-all, ACKed\n",
           apf_version_string(), APF_PROTO_VERSION);
    apf_host_kvm_x86_destroy(fe);
    apf_host_destroy(h);
    return 0;
}
