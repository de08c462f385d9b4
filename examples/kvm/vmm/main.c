/* SPDX-License-Identifier: MIT */
/*
 * apf-kvm-vmm: a minimal KVM VMM that boots the example guest kernel (examples/kvm/guest)
 * and gives it the asynchronous page fault protocol from one of two hosts:
 *
 *  - --host libapf (default): libapf-host embedded in this VMM (apfhost.c, the part to
 *    copy): KVM's MSR filter sends the guest's APF MSR accesses here; the engine decides
 *    "not present" for the remote pages the guest announces; a completion thread fills them
 *    through userfaultfd and completes; "page ready" goes in as an MSI;
 *  - --host kvm: Linux KVM's own, in-kernel APF (the VMM only provides memory).
 *
 *   apf-kvm-vmm --kernel apf-kvm-guest.bin [--host libapf|kvm] [--delay-ms N] [--pages N]
 *               [--trace FILE] [--timeout S]
 *
 * The guest's remote pages (a userfaultfd slot, remote.c) arrive after --delay-ms. The
 * checks of a run are tests/kvm (apf-kvm-test). Exit status: the guest's (0 all steps ran);
 * 1 a failure; 77 KVM or what the chosen host needs of it is unusable here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "apfhost.h"
#include "guest_abi.h"
#include "remote.h"
#include "vm.h"

#define EXIT_SKIP 77

static void *watchdog(void *arg) /* a vCPU stuck on a userfaultfd page ignores signals */
{
    sleep(*(const unsigned *)arg);
    fprintf(stderr, "watchdog: the guest did not finish in time\n");
    _exit(1);
    return NULL;
}

static int run(struct vmm_vm *vm, struct vmm_apfhost *lib, uint32_t *status)
{
    struct kvm_run *r = vm->run;
    for (;;) {
        if (lib)
            vmm_apfhost_before_entry(lib); /* may raise the next "page ready" */
        if (ioctl(vm->vcpu_fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) { /* a kick: a completion is waiting */
                if (lib)
                    (void)vmm_apfhost_kicked(lib);
                continue;
            }
            perror("KVM_RUN");
            return -1;
        }
        switch (r->exit_reason) {
        case KVM_EXIT_X86_RDMSR: /* the APF MSRs, behind the filter */
        case KVM_EXIT_X86_WRMSR:
            if (!lib || vmm_apfhost_on_msr_exit(lib, r) < 0)
                return -1;
            break;
        case KVM_EXIT_IO: {
            uint32_t v = 0;
            if (r->io.direction == KVM_EXIT_IO_OUT && r->io.size == 4)
                memcpy(&v, (const uint8_t *)r + r->io.data_offset, 4);
            if (r->io.port == GABI_PORT_ANNOUNCE && lib) { /* a remote page is next */
                int64_t token = vmm_apfhost_on_announce(lib, v);
                if (token < 0)
                    return -1;
            } else if (r->io.port == GABI_PORT_EXIT) {
                *status = v;
                return 0;
            } else if (r->io.port == GABI_PORT_REPORT) {
                const struct gabi_report *rep = vmm_vm_low_ptr(vm, v, sizeof(*rep));
                if (rep && rep->event == GABI_EV_LOG)
                    printf("guest: %.*s\n", GABI_REPORT_TEXT, rep->text);
            }
            break;
        }
        default:
            fprintf(stderr, "unexpected exit reason %u\n", r->exit_reason);
            return -1;
        }
    }
}

static uint8_t *load(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    size_t cap = GABI_LOW_SIZE - GABI_KERNEL_BASE;
    uint8_t *buf = fp ? malloc(cap + 1) : NULL;
    *len = buf ? fread(buf, 1, cap + 1, fp) : 0;
    if (fp)
        fclose(fp);
    if (*len == 0 || *len > cap) {
        free(buf);
        return NULL;
    }
    return buf;
}

int main(int argc, char **argv)
{
    const char *kernel = NULL, *trace_path = NULL;
    int libapf = 1;
    unsigned delay_ms = 10, pages = 8, timeout_s = 25;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--kernel") && v)
            kernel = argv[++i];
        else if (!strcmp(a, "--host") && v && (!strcmp(v, "libapf") || !strcmp(v, "kvm")))
            libapf = !strcmp(argv[++i], "libapf");
        else if (!strcmp(a, "--trace") && v)
            trace_path = argv[++i];
        else if (!strcmp(a, "--delay-ms") && v && (delay_ms = (unsigned)atoi(argv[++i])) <= 10000)
            ;
        else if (!strcmp(a, "--pages") && v && (pages = (unsigned)atoi(argv[++i])) >= 1 &&
                 pages <= GABI_REMOTE_MAX_PAGES / 3)
            ;
        else if (!strcmp(a, "--timeout") && v && (timeout_s = (unsigned)atoi(argv[++i])) >= 1)
            ;
        else {
            fprintf(stderr, "usage: apf-kvm-vmm --kernel FILE [--host libapf|kvm] "
                            "[--delay-ms N] [--pages N] [--trace FILE] [--timeout S]\n");
            return 2;
        }
    }
    size_t klen;
    uint8_t *kimg = kernel ? load(kernel, &klen) : NULL;
    if (!kimg) {
        fprintf(stderr, "cannot load the kernel (--kernel)\n");
        return 1;
    }
    pthread_t wd;
    if (pthread_create(&wd, NULL, watchdog, &timeout_s) != 0)
        return 1;

    /* KVM: a VM with the in-kernel irqchip, KVM's CPUID (with the APF leaves), low memory. */
    char why[256] = "";
    struct vmm_vm vm;
    int rc = vmm_vm_create(&vm, GABI_LOW_SIZE, why, sizeof(why));
    if (rc == 0 && libapf) /* the APF MSRs to user space: the frontend answers them */
        rc = vmm_vm_msr_filter_apf(&vm, why, sizeof(why));
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", rc == VMM_UNUSABLE ? "SKIP: unusable here" : "error", why);
        return rc == VMM_UNUSABLE ? EXIT_SKIP : 1;
    }
    struct vmm_cpuid_info ci;
    if (vmm_vm_setup_cpuid(&vm, 0, &ci) < 0)
        return 1;

    /* The remote slot: missing pages behind userfaultfd, each arriving after the delay. */
    struct vmm_remote remote;
    uint32_t remote_pages = 3 * pages;
    rc = vmm_remote_create(&remote, GABI_REMOTE_BASE, remote_pages, delay_ms * 1000u, why,
                           sizeof(why));
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", rc > 0 ? "SKIP: userfaultfd unusable" : "error", why);
        return rc > 0 ? EXIT_SKIP : 1;
    }
    if (vmm_vm_add_slot(&vm, 1, GABI_REMOTE_BASE, remote.host, remote.size) < 0)
        return 1;

    /* The kernel, its boot information, a vCPU in 64-bit mode. */
    memcpy(vm.low + GABI_KERNEL_BASE, kimg, klen);
    free(kimg);
    struct gabi_boot_info *bi = vmm_vm_low_ptr(&vm, GABI_BOOT_INFO, sizeof(*bi));
    *bi = (struct gabi_boot_info){.magic = GABI_BOOT_MAGIC,
                                  .flags = libapf ? GABI_BOOT_SIM_HOST : 0,
                                  .remote_base = GABI_REMOTE_BASE,
                                  .remote_pages = remote_pages,
                                  .pages_per_phase = pages,
                                  .calib_iters = 20000,
                                  .compute_batch = 64,
                                  .vector = 0xec};
    if (vmm_vm_setup_long_mode(&vm, GABI_KERNEL_BASE, GABI_BOOT_INFO) < 0 ||
        vmm_remote_start(&remote, gettid()) < 0)
        return 1;

    /* The host of the protocol. */
    struct vmm_apfhost *lib = NULL;
    FILE *trace = trace_path ? fopen(trace_path, "w") : NULL;
    if (trace_path && !trace) {
        perror(trace_path);
        return 1;
    }
    if (libapf && (rc = vmm_apfhost_create(&lib, &vm, &remote, delay_ms * 1000u, trace)) != 0) {
        fprintf(stderr, "libapf-host: error %d\n", rc);
        return 1;
    }
    printf("apf-kvm-vmm: APF host %s, %u remote pages per phase, %u ms each\n",
           libapf ? "libapf-host (MSR filter)" : "Linux KVM (in-kernel)", pages, delay_ms);
    uint32_t status = 1;
    rc = run(&vm, lib, &status);
    if (lib) {
        struct vmm_apfhost_stats st;
        vmm_apfhost_get_stats(lib, &st);
        printf("libapf-host: %llu \"not present\", %llu \"page ready\", %llu wake-all, %llu "
               "ACKs\n", (unsigned long long)st.async, (unsigned long long)st.ready,
               (unsigned long long)st.wake_all, (unsigned long long)st.acks);
        vmm_apfhost_destroy(lib);
    }
    if (trace)
        fclose(trace);
    printf("apf-kvm-vmm: guest exit status %u\n", status);
    vmm_remote_destroy(&remote);
    vmm_vm_destroy(&vm);
    return rc == 0 && status == 0 ? 0 : 1;
}
