/* SPDX-License-Identifier: MIT */
/*
 * apf-kvm-test: the example VMM's parts (examples/kvm/vmm) with the checks of a run: boots
 * the example guest kernel (examples/kvm/guest) and runs libapf-guest's kvm_x86 backend
 * against one of two hosts of the APF protocol, recording every report (facts.c) and
 * checking them (check.c):
 *
 *  - --host kvm (default): Linux KVM's own, in-kernel APF;
 *  - --host libapf: libapf-host embedded here (apfhost.c): KVM's MSR filter sends the APF
 *    MSRs to user space, the engine decides "not present" for the pages the guest announces,
 *    the VMM's completion thread fills them through userfaultfd and completes.
 *
 *   apf-kvm-test --kernel apf-kvm-guest.bin [--host kvm|libapf] [--check] [--trace FILE] ...
 *
 * Exit status: 0 the guest ran (and, with --check, every check passed); 1 failure;
 * 77 KVM, the in-kernel irqchip, APF or userfaultfd is missing or unusable here (a skip).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "apf/proto.h"
#include "apfhost.h"
#include "facts.h"
#include "guest_abi.h"
#include "remote.h"
#include "vm.h"

#define EXIT_SKIP 77

struct options {
    const char *kernel;
    int check;
    int verbose;
    uint32_t delay_us;
    uint32_t pages;
    uint32_t vector;
    uint32_t timeout_s;
    uint32_t calib_iters;
    uint32_t batch;
    int hide_apf_cpuid;
    int no_apf;
    int libapf_host; /* --host libapf */
    const char *trace;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: apf-kvm-test --kernel FILE [options]\n"
            "  --kernel FILE       flat guest kernel image (apf-kvm-guest.bin)\n"
            "  --check             check the facts of the run; exit 1 if one fails, 77 if\n"
            "                      KVM (or what the test needs of it) is unusable here\n"
            "  --delay-ms N        userfaultfd resolution delay per remote page (default 10)\n"
            "  --pages N           remote pages per phase (default 8, at most %u)\n"
            "  --vector N          \"page ready\" vector, 32..254 (default 0xec)\n"
            "  --timeout S         watchdog: give up after S seconds (default 25)\n"
            "  --calib N           timing-loop iterations (default 20000)\n"
            "  --batch N           compute task iterations between yields (default 64)\n"
            "  --hide-apf-cpuid    clear ASYNC_PF* in the guest's CPUID (probe must fail)\n"
            "  --no-apf            boot the guest with APF off (APF_GUEST_NO_APF)\n"
            "  --host kvm|libapf   the APF host: Linux KVM's in-kernel one (default), or\n"
            "                      libapf-host in this VMM behind KVM's MSR filter\n"
            "  --trace FILE        with --host libapf: the engine's protocol trace\n"
            "  -v, --verbose       print every userfaultfd fault\n",
            GABI_REMOTE_MAX_PAGES / 3);
}

static int parse_u32(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (errno != 0 || end == s || *end != '\0' || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longs[] = {
        {"kernel", required_argument, NULL, 'k'},   {"check", no_argument, NULL, 'c'},
        {"delay-ms", required_argument, NULL, 'd'}, {"pages", required_argument, NULL, 'p'},
        {"vector", required_argument, NULL, 'V'},   {"timeout", required_argument, NULL, 't'},
        {"calib", required_argument, NULL, 'C'},    {"batch", required_argument, NULL, 'b'},
        {"hide-apf-cpuid", no_argument, NULL, 'H'}, {"no-apf", no_argument, NULL, 'N'},
        {"verbose", no_argument, NULL, 'v'},        {"help", no_argument, NULL, 'h'},
        {"host", required_argument, NULL, 'S'},     {"trace", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0}};
    *o = (struct options){.delay_us = 10000,
                          .pages = 8,
                          .vector = 0xec,
                          .timeout_s = 25,
                          .calib_iters = 20000,
                          .batch = 64};
    int c;
    uint32_t v;
    while ((c = getopt_long(argc, argv, "vh", longs, NULL)) != -1) {
        switch (c) {
        case 'k':
            o->kernel = optarg;
            break;
        case 'c':
            o->check = 1;
            break;
        case 'd':
            if (parse_u32(optarg, &v) || v > 10000)
                return -1;
            o->delay_us = v * 1000u;
            break;
        case 'p':
            if (parse_u32(optarg, &o->pages) || o->pages == 0 ||
                o->pages > GABI_REMOTE_MAX_PAGES / 3)
                return -1;
            break;
        case 'V':
            if (parse_u32(optarg, &o->vector) || o->vector < 32 || o->vector > 254)
                return -1;
            break;
        case 't':
            if (parse_u32(optarg, &o->timeout_s) || o->timeout_s == 0)
                return -1;
            break;
        case 'C':
            if (parse_u32(optarg, &o->calib_iters) || o->calib_iters == 0)
                return -1;
            break;
        case 'b':
            if (parse_u32(optarg, &o->batch) || o->batch == 0)
                return -1;
            break;
        case 'H':
            o->hide_apf_cpuid = 1;
            break;
        case 'N':
            o->no_apf = 1;
            break;
        case 'S':
            if (strcmp(optarg, "kvm") != 0 && strcmp(optarg, "libapf") != 0)
                return -1;
            o->libapf_host = strcmp(optarg, "libapf") == 0;
            break;
        case 'T':
            o->trace = optarg;
            break;
        case 'v':
            o->verbose = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    return o->kernel != NULL && optind == argc && (!o->trace || o->libapf_host) ? 0 : -1;
}

/* ---- watchdog: a thread, because a signal cannot pull a vCPU out of KVM_RUN while it
 * waits on a userfaultfd page; _exit() ends the whole process, blocked vCPU included. ---- */
static void *watchdog_main(void *arg)
{
    uint32_t s = *(const uint32_t *)arg;
    struct timespec ts = {.tv_sec = s, .tv_nsec = 0};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    static const char msg[] = "\nwatchdog: the guest did not finish in time; giving up\n";
    fflush(stdout);
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
        /* nothing more to do */
    }
    _exit(1);
    return NULL;
}

static uint8_t *load_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    size_t cap = GABI_LOW_SIZE - GABI_KERNEL_BASE;
    uint8_t *buf = malloc(cap + 1);
    size_t n = buf ? fread(buf, 1, cap + 1, fp) : 0;
    fclose(fp);
    if (buf == NULL || n == 0 || n > cap) {
        free(buf);
        errno = n > cap ? EFBIG : EIO;
        return NULL;
    }
    *len = n;
    return buf;
}

static void dump_regs(struct vmm_vm *vm)
{
    struct kvm_regs r;
    struct kvm_sregs s;
    if (ioctl(vm->vcpu_fd, KVM_GET_REGS, &r) == 0)
        fprintf(stderr, "  rip 0x%llx rsp 0x%llx rflags 0x%llx rax 0x%llx\n", r.rip, r.rsp,
                r.rflags, r.rax);
    if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &s) == 0)
        fprintf(stderr, "  cr0 0x%llx cr2 0x%llx cr3 0x%llx cr4 0x%llx efer 0x%llx cs 0x%x\n",
                s.cr0, s.cr2, s.cr3, s.cr4, s.efer, s.cs.selector);
}

/* Run the vCPU until the guest writes its exit port. 0, or -1 on an unexpected exit. */
static int run_guest(struct vmm_vm *vm, struct vmm_facts *f, struct vmm_apfhost *lib)
{
    struct kvm_run *run = vm->run;
    uint32_t stray = 0;
    for (;;) {
        if (lib != NULL)
            vmm_apfhost_before_entry(lib); /* may raise the next "page ready" */
        if (ioctl(vm->vcpu_fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                if (lib != NULL)
                    (void)vmm_apfhost_kicked(lib);
                continue;
            }
            fprintf(stderr, "KVM_RUN: %s\n", strerror(errno));
            return -1;
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO: {
            const uint8_t *data = (const uint8_t *)run + run->io.data_offset;
            uint32_t v = 0;
            if (run->io.direction == KVM_EXIT_IO_OUT && run->io.size == 4)
                memcpy(&v, data, 4);
            if (run->io.port == GABI_PORT_REPORT && run->io.size == 4) {
                struct gabi_report rep;
                const void *p = vmm_vm_low_ptr(vm, v, sizeof(rep));
                if (p == NULL) {
                    fprintf(stderr, "report at 0x%x is outside guest memory\n", v);
                    return -1;
                }
                memcpy(&rep, p, sizeof(rep)); /* one snapshot: the guest cannot change it */
                facts_on_report(f, vm, &rep, stdout);
            } else if (run->io.port == GABI_PORT_ANNOUNCE && lib != NULL) {
                facts_on_announce(f, v, vmm_apfhost_on_announce(lib, v), stdout);
            } else if (run->io.port == GABI_PORT_EXIT) {
                f->exited = 1;
                f->exit_status = v;
                printf("[%9.3f ms] guest exit, status %u\n",
                       (double)(vmm_now_ns() - f->t0_ns) / 1e6, v);
                return 0;
            } else if (++stray > 16) {
                fprintf(stderr, "too many stray port accesses (last 0x%x)\n", run->io.port);
                return -1;
            }
            break;
        }
        case KVM_EXIT_X86_RDMSR:
        case KVM_EXIT_X86_WRMSR:
            if (lib == NULL || vmm_apfhost_on_msr_exit(lib, run) < 0) {
                fprintf(stderr, "unexpected MSR exit (0x%x)\n", run->msr.index);
                return -1;
            }
            break;
        case KVM_EXIT_HLT:
            fprintf(stderr, "unexpected HLT exit (the in-kernel irqchip should keep it)\n");
            return -1;
        case KVM_EXIT_SHUTDOWN:
            fprintf(stderr, "guest shutdown (triple fault)\n");
            dump_regs(vm);
            return -1;
        case KVM_EXIT_FAIL_ENTRY:
            fprintf(stderr, "entry failed: reason 0x%llx\n",
                    (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
            dump_regs(vm);
            return -1;
        case KVM_EXIT_INTERNAL_ERROR:
            fprintf(stderr, "KVM internal error, suberror %u\n", run->internal.suberror);
            dump_regs(vm);
            return -1;
        case KVM_EXIT_MMIO:
            fprintf(stderr, "unexpected MMIO %s at 0x%llx\n", run->mmio.is_write ? "write" : "read",
                    run->mmio.phys_addr);
            dump_regs(vm);
            return -1;
        default:
            fprintf(stderr, "unexpected exit reason %u\n", run->exit_reason);
            dump_regs(vm);
            return -1;
        }
    }
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_options(argc, argv, &o) < 0) {
        usage(stderr);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    size_t klen = 0;
    uint8_t *kimg = load_file(o.kernel, &klen);
    if (kimg == NULL) {
        fprintf(stderr, "cannot load kernel %s: %s\n", o.kernel, strerror(errno));
        return 1;
    }

    /* Everything below may block in the kernel: arm the watchdog first. */
    pthread_t wd;
    if (pthread_create(&wd, NULL, watchdog_main, &o.timeout_s) != 0) {
        fprintf(stderr, "cannot start the watchdog\n");
        return 1;
    }
    pthread_detach(wd);

    char why[256] = "";
    struct vmm_vm vm;
    int rc = vmm_vm_create(&vm, GABI_LOW_SIZE, why, sizeof(why));
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", rc == VMM_UNUSABLE ? "SKIP: KVM unusable" : "error", why);
        return rc == VMM_UNUSABLE ? EXIT_SKIP : 1;
    }

    struct vmm_facts *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return 1;
    f->vector = o.vector;
    f->pages_per_phase = o.pages;
    f->delay_us = o.delay_us;
    f->calib_iters = o.calib_iters;
    f->cap_async_pf = vm.cap_async_pf;
    f->host_name = o.libapf_host ? "libapf-host" : "KVM";
    printf("APF host: %s\n", o.libapf_host ? "libapf-host in this VMM (kvm_x86 frontend, "
                                             "embedder-completion mode)"
                                           : "Linux KVM (in-kernel)");
    if (o.libapf_host) {
        /* Probe at run time: without the MSR filter the APF MSRs stay KVM's: skip. */
        rc = vmm_vm_msr_filter_apf(&vm, why, sizeof(why));
        if (rc != 0) {
            fprintf(stderr, "SKIP: KVM's MSR filter is unusable here: %s\n", why);
            return EXIT_SKIP;
        }
        printf("KVM: MSR filter on: the guest's rdmsr/wrmsr of 0x4b564d02/06/07 exit to user "
               "space (KVM_EXIT_X86_RDMSR/WRMSR)\n");
    }

    rc = vmm_vm_setup_cpuid(&vm, o.hide_apf_cpuid, &f->cpuid);
    if (rc < 0) {
        fprintf(stderr, "CPUID setup: %s\n", strerror(-rc));
        return 1;
    }
    printf("KVM: KVM_CAP_ASYNC_PF %d; paravirtual CPUID at 0x%08x \"%s\": features 0x%x "
           "(ASYNC_PF %u, ASYNC_PF_VMEXIT %u, ASYNC_PF_INT %u), given to the guest 0x%x; "
           "x2APIC %u\n",
           vm.cap_async_pf, f->cpuid.base, f->cpuid.signature, f->cpuid.offered,
           (f->cpuid.offered >> APF_KVM_FEATURE_ASYNC_PF) & 1u,
           (f->cpuid.offered >> APF_KVM_FEATURE_ASYNC_PF_VMEXIT) & 1u,
           (f->cpuid.offered >> APF_KVM_FEATURE_ASYNC_PF_INT) & 1u, f->cpuid.given,
           f->cpuid.x2apic);
    uint32_t need = (1u << APF_KVM_FEATURE_ASYNC_PF) | (1u << APF_KVM_FEATURE_ASYNC_PF_INT);
    if (o.check && !o.hide_apf_cpuid && (f->cpuid.base == 0 || (f->cpuid.offered & need) != need)) {
        fprintf(stderr, "SKIP: this KVM does not offer ASYNC_PF and ASYNC_PF_INT\n");
        return EXIT_SKIP;
    }

    struct vmm_remote remote;
    uint32_t remote_pages = (o.libapf_host ? 3u : 2u) * o.pages;
    rc = vmm_remote_create(&remote, GABI_REMOTE_BASE, remote_pages, o.delay_us, why, sizeof(why));
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", rc > 0 ? "SKIP: userfaultfd unusable" : "error", why);
        return rc > 0 ? EXIT_SKIP : 1;
    }
    rc = vmm_vm_add_slot(&vm, 1, GABI_REMOTE_BASE, remote.host, remote.size);
    if (rc < 0) {
        fprintf(stderr, "KVM_SET_USER_MEMORY_REGION (remote): %s\n", strerror(-rc));
        return 1;
    }

    memcpy(vm.low + GABI_KERNEL_BASE, kimg, klen);
    free(kimg);
    struct gabi_boot_info *bi = vmm_vm_low_ptr(&vm, GABI_BOOT_INFO, sizeof(*bi));
    *bi = (struct gabi_boot_info){
        .magic = GABI_BOOT_MAGIC,
        .flags = (o.no_apf ? GABI_BOOT_NO_APF : 0) | (o.libapf_host ? GABI_BOOT_SIM_HOST : 0),
        .remote_base = GABI_REMOTE_BASE,
        .remote_pages = remote_pages,
        .pages_per_phase = o.pages,
        .calib_iters = o.calib_iters,
        .compute_batch = o.batch,
        .vector = o.vector,
    };
    rc = vmm_vm_setup_long_mode(&vm, GABI_KERNEL_BASE, GABI_BOOT_INFO);
    if (rc < 0) {
        fprintf(stderr, "vCPU setup: %s\n", strerror(-rc));
        return 1;
    }
    printf("guest: kernel %zu bytes at 0x%x; remote slot %u pages at 0x%x, %.1f ms per page; "
           "vector 0x%x\n",
           klen, GABI_KERNEL_BASE, remote_pages, GABI_REMOTE_BASE, o.delay_us / 1e3, o.vector);

    rc = vmm_remote_start(&remote, gettid());
    if (rc < 0) {
        fprintf(stderr, "userfaultfd thread: %s\n", strerror(-rc));
        return 1;
    }
    struct vmm_apfhost *lib = NULL;
    FILE *trace = NULL;
    if (o.libapf_host) {
        if (o.trace && (trace = fopen(o.trace, "w")) == NULL) {
            fprintf(stderr, "%s: %s\n", o.trace, strerror(errno));
            return 1;
        }
        if (trace)
            fprintf(trace, "# apf-kvm-test --host libapf: libapf-host's protocol trace\n");
        rc = vmm_apfhost_create(&lib, &vm, &remote, o.delay_us, trace);
        if (rc != 0) {
            fprintf(stderr, "libapf-host: error %d\n", rc);
            return 1;
        }
        f->get_msrs = vmm_apfhost_get_msrs;
        f->get_msrs_ctx = lib;
        f->sim_enabled = 1;
    }
    f->t0_ns = vmm_now_ns();
    int run_rc = run_guest(&vm, f, lib);

    const uint32_t idx[2] = {APF_KVM_MSR_ASYNC_PF_EN, APF_KVM_MSR_ASYNC_PF_INT};
    uint64_t val[2] = {0, 0};
    f->end_msrs_ok = (lib ? vmm_apfhost_get_msrs(lib, idx, val, 2)
                          : vmm_vm_get_msrs(&vm, idx, val, 2)) == 2;
    f->end_en = val[0];
    f->end_int = val[1];

    if (lib != NULL) {
        struct vmm_apfhost_stats ss;
        vmm_apfhost_get_stats(lib, &ss);
        vmm_apfhost_destroy(lib);
        if (trace && fclose(trace) != 0)
            run_rc = -1;
        printf("libapf-host: %" PRIu64 " announces: %" PRIu64 " \"not present\" injected, %" PRIu64
               " synchronous, %" PRIu64 " halts; %" PRIu64 " pages completed, %" PRIu64
               " \"page ready\" raised, %" PRIu64 " wake-alls, %" PRIu64 " ACKs; %" PRIu64
               " MSR exits, %" PRIu64 " kicks\n",
               ss.announced, ss.async, ss.sync, ss.halt, ss.resolved, ss.ready, ss.wake_all,
               ss.acks, ss.msr_exits, ss.kicks);
    }
    vmm_remote_stop(&remote);
    struct vmm_remote_stats rs;
    vmm_remote_get_stats(&remote, &rs);
    if (o.verbose)
        for (uint32_t i = 0; i < remote.log_len; i++) {
            const struct vmm_remote_fault *x = &remote.log[i];
            printf("uffd fault: gpa 0x%" PRIx64 " at %.3f ms, resolved %.3f ms later, thread %d"
                   " (%s)\n",
                   x->gpa, x->t_msg_ns / 1e6, (x->t_done_ns - x->t_msg_ns) / 1e6, x->tid,
                   x->from_vcpu ? "vCPU" : "other");
        }
    facts_print_summary(f, &remote, &rs, stdout);

    int status = run_rc == 0 && f->exited && f->exit_status == 0 ? 0 : 1;
    if (o.check) {
        int failures = facts_check(f, &rs, stdout);
        status = failures == 0 && run_rc == 0 ? 0 : 1;
    }
    vmm_remote_destroy(&remote);
    vmm_vm_destroy(&vm);
    free(f);
    return status;
}
