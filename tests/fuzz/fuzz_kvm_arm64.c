/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the arm64 frontend - every SMCCC sub-function (VERSION, SLOTS, SDEI, IRQ,
 * ENABLE, IRQ_ACK, FEATURES, RING and unknown ones) with input-chosen x1..x3, the VMM's
 * set_irq / get_state / set_state / reset - interleaved with the engine's entry points and
 * with the guest consuming (or corrupting) its area and ready ring. Invariants: a refused
 * call changes nothing; get_state agrees with the engine; an accepted set_state reads back;
 * the trace checker accepts every host event (ring window and ACKs included); no leak.
 */
#include "apf/host_kvm_arm64.h"
#include "host_env.h"

static const uint64_t subs[] = {APF_ARM64_FUNC_VERSION,
                                APF_ARM64_FUNC_SLOTS,
                                APF_ARM64_FUNC_SDEI,
                                APF_ARM64_FUNC_IRQ,
                                APF_ARM64_FUNC_ENABLE,
                                APF_ARM64_FUNC_IRQ_ACK,
                                APF_ARM64_FUNC_FEATURES,
                                APF_ARM64_FUNC_RING,
                                8,
                                0xffffffffu};
static const uint64_t controls[] = {0,      0x1001, 0x1003, 0x1005,        0x1041,          0x1000,
                                    0x1081, 0x1004, 0x1007, 0x10000001ull, 0x1ull << 40 | 1};
static const uint64_t rings[] = {0,           0x8000 | 3,  0x8000 | 1, 0x8000 | 9,
                                 0x8000 | 10, 0x9000 | 6,  0x8000,     0x8800 | 2,
                                 0xf000 | 5,  0x10000 | 2, 0x1000 | 31};

static struct apf_host_kvm_arm64_state get(struct apf_host_kvm_arm64 *fe, uint32_t v)
{
    struct apf_host_kvm_arm64_state st;
    FZ_ASSERT(apf_host_kvm_arm64_get_state(fe, v, &st) == 0);
    return st;
}

static void same(const struct apf_host_kvm_arm64_state *a, const struct apf_host_kvm_arm64_state *b,
                 const char *what)
{
    FZ_ASSERT(a->control == b->control && a->ring == b->ring && a->irq == b->irq &&
                  a->sdei_event == b->sdei_event,
              "%s changed the frontend state", what);
}

/* get_state and the engine tell the same story. */
static void agrees(struct fz_host *e, struct apf_host_kvm_arm64 *fe, uint32_t v)
{
    struct apf_host_kvm_arm64_state st = get(fe, v);
    struct apf_host_vcpu_state hs = fz_save(e, v);
    FZ_ASSERT(st.irq == hs.vector);
    if (hs.enabled)
        FZ_ASSERT(st.control == (hs.area_gpa | hs.flags), "control %#llx, engine on",
                  (unsigned long long)st.control);
    else
        FZ_ASSERT(!(st.control & APF_EN_ENABLED), "control %#llx says on, engine off",
                  (unsigned long long)st.control);
}

/* The guest's side of the ring: consume up to k entries (as the runtime does: read prod,
 * advance cons), maybe set the event index. */
static void guest_ring_consume(struct fz_host *e, struct apf_host_kvm_arm64 *fe, uint32_t v,
                               struct fz *f)
{
    struct apf_host_kvm_arm64_state st = get(fe, v);
    uint64_t gpa = st.ring & ~APF_RING_LOG2_MASK;
    if (st.ring == 0 || gpa + APF_RING_PAGE_SIZE > FZ_RAM)
        return;
    uint32_t prod, cons;
    memcpy(&prod, e->ram + gpa + APF_RING_PROD_OFFSET, 4);
    memcpy(&cons, e->ram + gpa + APF_RING_CONS_OFFSET, 4);
    uint32_t k = fz_u8(f) % 8;
    uint32_t avail = prod - cons;
    cons += k < avail ? k : avail;
    memcpy(e->ram + gpa + APF_RING_CONS_OFFSET, &cons, 4);
    if (fz_u8(f) & 1) {
        uint32_t event = cons + 1;
        memcpy(e->ram + gpa + APF_RING_EVENT_OFFSET, &event, 4);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    static struct fz_host e;
    fz_host_init(&e, &apf_host_transport_kvm_arm64, &f);
    struct apf_host_kvm_arm64_config ac = {0};
    ac.no_ring = (fz_u8(&f) & 7) == 0;
    if (fz_u8(&f) & 1)
        ac.sdei_event = fz_u32(&f);
    struct apf_host_kvm_arm64 *fe;
    FZ_ASSERT(apf_host_kvm_arm64_create(e.h, &ac, &fe) == 0);
    uint8_t boot = fz_u8(&f);
    for (uint32_t v = 0; v < FZ_VCPUS; v++) /* mostly: the VMM sets the PPI, the guest enables */
        if (boot & (1u << v)) {
            uint64_t out[4];
            uint32_t ring_flag = 0;
            apf_host_kvm_arm64_set_irq(fe, v, 20);
            if (boot & (4u << v)) { /* a ready ring of 2..16 entries */
                uint64_t ring = (0x8000u + 0x1000u * v) | (1u + ((boot >> 4) & 3));
                uint64_t in[4] = {APF_ARM64_FUNC_ID, APF_ARM64_FUNC_RING, ring, 0};
                apf_host_kvm_arm64_hvc(fe, v, in, out);
                ring_flag = APF_ARM64_EN_RING;
            }
            uint64_t in[4] = {APF_ARM64_FUNC_ID, APF_ARM64_FUNC_ENABLE,
                              (0x1000u + 64u * v) | APF_EN_ENABLED | ring_flag |
                                  ((boot & 64) ? APF_EN_SEND_ALWAYS : 0),
                              0};
            apf_host_kvm_arm64_hvc(fe, v, in, out);
        }
    for (int steps = 0; f.n > 0 && steps < 4096; steps++) {
        uint32_t v = fz_u8(&f) % (FZ_VCPUS + 1); /* FZ_VCPUS: an unknown vCPU */
        switch (fz_u8(&f) % 9) {
        case 0:
        case 1:
        case 2: { /* the guest's SMCCC call */
            uint64_t sub = fz_val(&f, subs, 10);
            uint64_t value =
                sub == APF_ARM64_FUNC_RING ? fz_val(&f, rings, 11) : fz_val(&f, controls, 11);
            /* upper halves the SMC32 convention ignores (input-chosen, read in order) */
            uint64_t hi0 = (uint64_t)fz_u8(&f) << 32;
            uint64_t hi2 = (uint64_t)fz_u8(&f) << 32;
            uint64_t in[4] = {APF_ARM64_FUNC_ID | hi0, sub, (value & 0xffffffffu) | hi2,
                              value >> 32};
            uint64_t out[4] = {1, 2, 3, 4};
            if (fz_u8(&f) == 0)
                in[0] = fz_u32(&f); /* another function */
            if (v >= FZ_VCPUS) {
                int r = apf_host_kvm_arm64_hvc(fe, v, in, out);
                FZ_ASSERT(r == ((uint32_t)in[0] == APF_ARM64_FUNC_ID
                                    ? APF_ENODEV
                                    : APF_HOST_KVM_ARM64_NOT_MINE));
                break;
            }
            struct apf_host_kvm_arm64_state before = get(fe, v);
            struct apf_host_vcpu_state hbefore = fz_save(&e, v);
            int r = apf_host_kvm_arm64_hvc(fe, v, in, out);
            if ((uint32_t)in[0] != APF_ARM64_FUNC_ID) {
                FZ_ASSERT(r == APF_HOST_KVM_ARM64_NOT_MINE && out[0] == 1, "not mine, touched");
                break;
            }
            FZ_ASSERT(r == 0 && out[1] == 0 && out[2] == 0 && out[3] == 0);
            if ((int64_t)out[0] < 0) { /* refused: nothing changed */
                struct apf_host_kvm_arm64_state after = get(fe, v);
                struct apf_host_vcpu_state hafter = fz_save(&e, v);
                same(&before, &after, "a refused call");
                fz_assert_same_state(&hbefore, &hafter, "a refused call");
            }
            agrees(&e, fe, v);
            break;
        }
        case 3: { /* the VMM sets the PPI */
            uint32_t ppi = (uint32_t)fz_val(&f, (const uint64_t[]){20, 16, 31, 15, 32, 0}, 6);
            int r = apf_host_kvm_arm64_set_irq(fe, v, ppi);
            if (v >= FZ_VCPUS)
                FZ_ASSERT(r == APF_ENODEV);
            else
                FZ_ASSERT((r == 0) == (ppi >= 16 && ppi <= 31), "set_irq %u -> %d", ppi, r);
            break;
        }
        case 4: { /* migration destination: set_state from the input or from get_state */
            if (v >= FZ_VCPUS) {
                FZ_ASSERT(apf_host_kvm_arm64_set_state(fe, v, NULL) == APF_ENODEV);
                break;
            }
            struct apf_host_kvm_arm64_state st = get(fe, (v + fz_u8(&f)) % FZ_VCPUS);
            if (fz_u8(&f) & 1) {
                st.version = (fz_u8(&f) & 3) ? APF_PROTO_VERSION : fz_u32(&f);
                st.sdei_event = fz_u32(&f);
                st.irq = (uint32_t)fz_val(&f, (const uint64_t[]){20, 16, 31, 0, 32}, 5);
                st.reserved = (fz_u8(&f) & 7) ? 0 : 1;
                st.control = fz_val(&f, controls, 11);
                st.ring = fz_val(&f, rings, 11);
            }
            struct apf_host_kvm_arm64_state before = get(fe, v);
            struct apf_host_vcpu_state hbefore = fz_save(&e, v);
            int r = apf_host_kvm_arm64_set_state(fe, v, &st);
            struct apf_host_kvm_arm64_state after = get(fe, v);
            if (r != 0) {
                struct apf_host_vcpu_state hafter = fz_save(&e, v);
                same(&before, &after, "a refused set_state");
                fz_assert_same_state(&hbefore, &hafter, "a refused set_state");
            } else {
                FZ_ASSERT(after.control == st.control && after.ring == st.ring &&
                              after.irq == st.irq && after.sdei_event == st.sdei_event,
                          "set_state accepted but reads back differently (control %#llx -> "
                          "%#llx, ring %#llx -> %#llx)",
                          (unsigned long long)st.control, (unsigned long long)after.control,
                          (unsigned long long)st.ring, (unsigned long long)after.ring);
            }
            agrees(&e, fe, v);
            break;
        }
        case 5:
            FZ_ASSERT(apf_host_kvm_arm64_vcpu_reset(fe, v) == (v < FZ_VCPUS ? 0 : APF_ENODEV));
            if (v < FZ_VCPUS) {
                struct apf_host_kvm_arm64_state st = get(fe, v);
                FZ_ASSERT(st.control == 0 && st.ring == 0 && st.irq == 0, "reset left state");
            }
            break;
        case 6: /* the guest consumes its ring, or its slot (then IRQ_ACK) */
            if (v < FZ_VCPUS) {
                guest_ring_consume(&e, fe, v, &f);
                if (fz_u8(&f) & 1) {
                    struct apf_host_vcpu_state hs = fz_save(&e, v);
                    if (hs.enabled && hs.area_gpa + 8 <= FZ_RAM)
                        memset(e.ram + hs.area_gpa, 0, 8);
                }
            }
            break;
        default:
            fz_host_engine_step(&e, &f);
            break;
        }
    }
    if (fz_u8(&f) & 1) {
        apf_host_kvm_arm64_destroy(fe);
        fz_host_fini(&e, 0);
    } else { /* the engine first: the frontend frees itself without it */
        fz_host_fini(&e, 1);
        apf_host_kvm_arm64_destroy(fe);
    }
    FZ_ASSERT(e.live_blocks == 0, "%ld blocks leaked", e.live_blocks);
    return 0;
}
