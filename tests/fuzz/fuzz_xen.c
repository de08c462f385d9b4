/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the xen-hvm frontend - vcpu_op(REGISTER_APF) with an input-made argument in
 * guest RAM (any area, ring, entries, version and flags; ~0 to unregister; another vCPU's
 * id; an argument the host cannot read or write back), every other hypercall and vcpu_op
 * sub-op (event channels, the upcall vector, xen_version: not the frontend's), the
 * features answer, the p2m types (gpa_type), the VMM's get_state / set_state / reset -
 * interleaved with the engine's entry points and with the guest consuming (or corrupting)
 * its area and ready ring. Invariants: a refused call changes nothing (frontend, engine,
 * the argument in guest RAM); an accepted registration obeys the wire rules and writes its
 * OUT fields, one that obeys them is accepted; get_state agrees with the engine after
 * every step; an accepted set_state reads back; the trace checker accepts every host event
 * (ring window, consumer index); no leak in either destroy order.
 */
#include "apf/host_xen.h"
#include "host_env.h"

#define ARG_GPA 0x3000u /* the guest's vcpu_op arguments, 32 bytes per vCPU */

static const uint64_t areas[] = {0x1000, 0x1040, 0x1080, 0x1001,  0x1020, 0x8000,
                                 0x8fc0, 0x7fc0, 0xffc0, 0x10000, 0,      APF_XEN_UNREGISTER,
                                 0x5000};
static const uint64_t rings[] = {0x8000, 0x9000, 0x1000,  0x8001, 0x8800,
                                 0,      0xf000, 0x10000, 0x5000, 0xfffffffffffff000ull};
static const uint64_t entries[] = {2, 4, 8, 16, 256, 512, 1024, 0, 3, 1u << 31};
static const uint64_t versions[] = {APF_PROTO_VERSION,
                                    APF_PROTO_VERSION_PACK(1, 0, 0),
                                    APF_PROTO_VERSION_PACK(1, 9, 9),
                                    APF_PROTO_VERSION_PACK(2, 1, 0),
                                    0,
                                    0x1010100};
static const uint64_t xflags[] = {0, APF_XEN_APF_SEND_ALWAYS, 2, 0x80000001u};
static const uint64_t hcalls[] = {APF_XEN_HC_VCPU_OP,
                                  APF_XEN_HC_VCPU_OP,
                                  APF_XEN_HC_EVENT_CHANNEL_OP,
                                  APF_XEN_HC_HVM_OP,
                                  APF_XEN_HC_XEN_VERSION,
                                  0,
                                  1ull << 32 | APF_XEN_HC_VCPU_OP};
static const uint64_t subops[] = {APF_XEN_VCPUOP_REGISTER_APF,
                                  1ull << 32 | APF_XEN_VCPUOP_REGISTER_APF,
                                  10,
                                  14,
                                  15,
                                  17,
                                  APF_XEN_EVTCHNOP_BIND_VIRQ,
                                  APF_XEN_EVTCHNOP_UNMASK,
                                  APF_XEN_HVMOP_SET_EVTCHN_UPCALL_VECTOR,
                                  APF_XEN_XENVER_GET_FEATURES};

/* The p2m type of each guest page, as the embedder's gpa_type reports it. */
static uint8_t p2m[FZ_RAM >> 12];

static int gpa_type(void *ctx, uint64_t gpa)
{
    (void)ctx;
    return gpa < FZ_RAM ? p2m[gpa >> 12] : APF_HOST_XEN_GPA_NONE;
}

static struct apf_host_xen_state get(struct apf_host_xen *fe, uint32_t v)
{
    struct apf_host_xen_state st;
    FZ_ASSERT(apf_host_xen_get_state(fe, v, &st) == 0);
    return st;
}

static void same(const struct apf_host_xen_state *a, const struct apf_host_xen_state *b,
                 const char *what)
{
    FZ_ASSERT(a->registered == b->registered && a->area_gpa == b->area_gpa &&
                  a->ring_gpa == b->ring_gpa && a->ring_entries == b->ring_entries &&
                  a->flags == b->flags && a->prod == b->prod && a->cons == b->cons &&
                  a->seq == b->seq,
              "%s changed the frontend state", what);
}

/* The frontend's and the engine's states of every vCPU, to compare around a call. */
struct snap {
    struct apf_host_xen_state fe[FZ_VCPUS];
    struct apf_host_vcpu_state h[FZ_VCPUS];
};

static void take(struct snap *s, struct fz_host *e, struct apf_host_xen *fe)
{
    for (uint32_t w = 0; w < FZ_VCPUS; w++) {
        s->fe[w] = get(fe, w);
        s->h[w] = fz_save(e, w);
    }
}

static void unchanged(const struct snap *a, struct fz_host *e, struct apf_host_xen *fe,
                      const char *what)
{
    struct snap b;
    take(&b, e, fe);
    for (uint32_t w = 0; w < FZ_VCPUS; w++) {
        same(&a->fe[w], &b.fe[w], what);
        fz_assert_same_state(&a->h[w], &b.h[w], what);
    }
}

static int in_ram(uint64_t gpa, uint64_t len)
{
    return gpa <= FZ_RAM && len <= FZ_RAM - gpa;
}

static int overlaps_ro(const struct fz_host *e, uint64_t gpa, uint64_t len)
{
    return e->ro_page && gpa >> 12 <= e->ro_page && (gpa + len - 1) >> 12 >= e->ro_page;
}

/* The wire's rules for a registration (proto_xen.h, host_xen.h), written from the
 * documentation, not from the code: 1 if the host must accept it (the argument aside). */
static int reg_ok(int typed, uint64_t area, uint64_t ring, uint32_t n, uint32_t version,
                  uint32_t flags)
{
    if ((version >> 16) != APF_PROTO_VERSION_MAJOR || (flags & ~APF_XEN_APF_FLAGS_VALID))
        return 0;
    if ((area & (APF_AREA_ALIGN - 1)) || ring == 0 || (ring & (APF_RING_PAGE_SIZE - 1)))
        return 0;
    if (n < APF_RING_MIN_ENTRIES || n > APF_RING_MAX_ENTRIES || (n & (n - 1)))
        return 0;
    if (!in_ram(area, APF_AREA_SIZE) || !in_ram(ring, APF_RING_PAGE_SIZE))
        return 0;
    if (area + APF_AREA_SIZE > ring && area < ring + APF_RING_PAGE_SIZE)
        return 0; /* the area inside the ring page */
    if (typed &&
        (p2m[area >> 12] != APF_HOST_XEN_GPA_RAM || p2m[ring >> 12] != APF_HOST_XEN_GPA_RAM))
        return 0;
    return 1;
}

/* get_state and the engine tell the same story. */
static void agrees(struct fz_host *e, struct apf_host_xen *fe, uint32_t v)
{
    struct apf_host_xen_state st = get(fe, v);
    struct apf_host_vcpu_state hs = fz_save(e, v);
    FZ_ASSERT(st.version == APF_PROTO_VERSION && st.reserved == 0 && st.seq == hs.seq);
    FZ_ASSERT(st.registered == hs.enabled, "get_state registered %u, engine %s", st.registered,
              hs.enabled ? "on" : "off");
    if (!hs.enabled) {
        FZ_ASSERT(st.area_gpa == 0 && st.ring_gpa == 0 && st.ring_entries == 0 && st.flags == 0 &&
                      st.prod == 0 && st.cons == 0,
                  "not registered, but get_state has values");
        return;
    }
    FZ_ASSERT(st.area_gpa == hs.area_gpa, "area %#llx, engine %#llx",
              (unsigned long long)st.area_gpa, (unsigned long long)hs.area_gpa);
    FZ_ASSERT(st.flags == ((hs.flags & APF_EN_SEND_ALWAYS) ? APF_XEN_APF_SEND_ALWAYS : 0u),
              "flags %#x, engine %#x", st.flags, hs.flags);
    FZ_ASSERT(reg_ok(0, st.area_gpa, st.ring_gpa, st.ring_entries, APF_PROTO_VERSION, st.flags),
              "registered state breaks the wire rules");
    /* A ring page the host cannot write (outside apf_host_ops' contract, ro_page) never
     * started: its indices are whatever the last ring left. */
    FZ_ASSERT(st.prod - st.cons <= st.ring_entries || overlaps_ro(e, st.ring_gpa, 8),
              "prod %u cons %u of %u", st.prod, st.cons, st.ring_entries);
}

/* The guest's side: consume up to k ring entries (read prod, advance cons), maybe re-arm
 * the event index; maybe take the "not present" out of its area. */
static void guest_consume(struct fz_host *e, struct apf_host_xen *fe, uint32_t v, struct fz *f)
{
    struct apf_host_xen_state st = get(fe, v);
    uint8_t k = fz_u8(f);
    if (st.registered && in_ram(st.ring_gpa, APF_RING_PAGE_SIZE)) {
        uint8_t *ring = e->ram + st.ring_gpa;
        uint32_t prod, cons;
        memcpy(&prod, ring + APF_RING_PROD_OFFSET, 4);
        memcpy(&cons, ring + APF_RING_CONS_OFFSET, 4);
        uint32_t avail = prod - cons, n = k % 8;
        cons += n < avail ? n : avail;
        memcpy(ring + APF_RING_CONS_OFFSET, &cons, 4);
        if (k & 8) {
            uint32_t event = cons + 1;
            memcpy(ring + APF_RING_EVENT_OFFSET, &event, 4);
        }
    }
    if ((k & 16) && st.registered && in_ram(st.area_gpa, 8))
        memset(e->ram + st.area_gpa, 0, 8);
}

/* The guest writes its argument (whatever of it lies in RAM). */
static void put_arg(struct fz_host *e, uint64_t gpa, const struct apf_xen_vcpu_apf *a)
{
    for (uint32_t i = 0; i < sizeof(*a); i++)
        if (gpa + i < FZ_RAM)
            e->ram[gpa + i] = ((const uint8_t *)a)[i];
}

/* vcpu_op(REGISTER_APF, target, arg) by vCPU v < FZ_VCPUS, checked against the wire. */
static void do_register(struct fz_host *e, struct apf_host_xen *fe, int typed, uint32_t v,
                        struct fz *f)
{
    struct apf_xen_vcpu_apf a = {
        .area_gpa = fz_val(f, areas, sizeof(areas) / 8),
        .ring_gpa = fz_val(f, rings, sizeof(rings) / 8),
        .version = (uint32_t)fz_val(f, versions, sizeof(versions) / 8),
        .flags = (uint32_t)fz_val(f, xflags, sizeof(xflags) / 8),
        .ring_entries = (uint32_t)fz_val(f, entries, sizeof(entries) / 8),
        .slots = fz_u8(f),
    };
    uint8_t k = fz_u8(f);
    uint64_t arg = k < 192 ? ARG_GPA + 32u * v : k < 224 ? fz_gpa(f) : FZ_RAM - 16u;
    uint64_t target = (k & 7) == 7 ? fz_val(f, (const uint64_t[]){1, 2, ~0ull}, 3) ^ v : v;
    put_arg(e, arg, &a);
    uint8_t before_arg[sizeof(a)];
    int readable = in_ram(arg, sizeof(a));
    int writable = readable && !overlaps_ro(e, arg, sizeof(a));
    if (readable)
        memcpy(before_arg, e->ram + arg, sizeof(a));
    struct snap before;
    take(&before, e, fe);
    uint32_t vector = before.h[v].vector;

    uint64_t args[5] = {APF_XEN_VCPUOP_REGISTER_APF, target, arg, fz_u8(f), fz_u8(f)};
    int64_t ret = 12345;
    FZ_ASSERT(apf_host_xen_hypercall(fe, v, APF_XEN_HC_VCPU_OP, args, &ret) == 0);
    FZ_ASSERT(ret == 0 || ret == -(int64_t)APF_XEN_EPERM || ret == -(int64_t)APF_XEN_ENOENT ||
                  ret == -(int64_t)APF_XEN_EAGAIN || ret == -(int64_t)APF_XEN_EFAULT ||
                  ret == -(int64_t)APF_XEN_EBUSY || ret == -(int64_t)APF_XEN_EINVAL,
              "register returned %lld", (long long)ret);
    if (target >= FZ_VCPUS)
        FZ_ASSERT(ret == -(int64_t)APF_XEN_ENOENT, "unknown target vCPU: %lld", (long long)ret);
    else if (target != v)
        FZ_ASSERT(ret == -(int64_t)APF_XEN_EINVAL, "another vCPU's registration: %lld",
                  (long long)ret);
    else if (!readable)
        FZ_ASSERT(ret == -(int64_t)APF_XEN_EFAULT, "unreadable argument: %lld", (long long)ret);
    if (ret != 0) {
        unchanged(&before, e, fe, "a refused registration");
        if (readable)
            FZ_ASSERT(memcmp(before_arg, e->ram + arg, sizeof(a)) == 0,
                      "a refused registration wrote the argument");
        FZ_ASSERT(ret != -(int64_t)APF_XEN_EPERM || typed, "-EPERM without p2m types");
        FZ_ASSERT(ret != -(int64_t)APF_XEN_EAGAIN || typed, "-EAGAIN without p2m types");
        /* one that obeys every rule is accepted */
        FZ_ASSERT(!(target == v && writable && a.area_gpa != APF_XEN_UNREGISTER &&
                    !before.fe[v].registered && vector >= 1 && vector < APF_XEN_NR_VIRQS &&
                    reg_ok(typed, a.area_gpa, a.ring_gpa, a.ring_entries, a.version, a.flags)),
                  "a valid registration refused with %lld", (long long)ret);
        return;
    }
    struct apf_host_xen_state st = get(fe, v);
    struct apf_host_vcpu_state hs = fz_save(e, v);
    if (a.area_gpa == APF_XEN_UNREGISTER) {
        FZ_ASSERT(!st.registered && !hs.enabled, "unregistered, still on");
    } else {
        FZ_ASSERT(!before.fe[v].registered, "registered twice");
        FZ_ASSERT(writable, "the OUT fields cannot have been written");
        FZ_ASSERT(reg_ok(typed, a.area_gpa, a.ring_gpa, a.ring_entries, a.version, a.flags),
                  "accepted a registration that breaks the wire rules (area %#llx ring %#llx "
                  "entries %u version %#x flags %#x)",
                  (unsigned long long)a.area_gpa, (unsigned long long)a.ring_gpa, a.ring_entries,
                  a.version, a.flags);
        FZ_ASSERT(st.registered && hs.enabled && st.area_gpa == a.area_gpa &&
                      st.ring_gpa == a.ring_gpa && st.ring_entries == a.ring_entries &&
                      st.flags == a.flags,
                  "accepted, but get_state says otherwise");
        struct apf_xen_vcpu_apf o;
        memcpy(&o, e->ram + arg, sizeof(o));
        /* (unless the argument lies in the ring page: the ring's start wrote over it) */
        int in_ring = arg + sizeof(o) > a.ring_gpa && arg < a.ring_gpa + APF_RING_PAGE_SIZE;
        FZ_ASSERT(in_ring || (o.version == APF_PROTO_VERSION &&
                              o.slots == apf_host_max_outstanding(e->h) &&
                              o.area_gpa == a.area_gpa && o.ring_gpa == a.ring_gpa &&
                              o.flags == a.flags && o.ring_entries == a.ring_entries),
                  "OUT fields");
    }
    /* a vCPU registers its own area only: the other one is untouched */
    uint32_t w = (v + 1) % FZ_VCPUS;
    struct apf_host_xen_state other = get(fe, w);
    struct apf_host_vcpu_state hother = fz_save(e, w);
    same(&before.fe[w], &other, "another vCPU's registration");
    fz_assert_same_state(&before.h[w], &hother, "another vCPU's registration");
}

/* Any other hypercall or vcpu_op sub-op (event channels, the upcall vector, xen_version
 * ...): not the frontend's, nothing touched. */
static void other_hypercall(struct fz_host *e, struct apf_host_xen *fe, uint32_t v, struct fz *f)
{
    uint64_t nr = fz_val(f, hcalls, sizeof(hcalls) / 8);
    uint64_t args[5] = {fz_val(f, subops, sizeof(subops) / 8), v, fz_gpa(f), fz_u8(f), fz_u8(f)};
    int mine = nr == APF_XEN_HC_VCPU_OP && (uint32_t)args[0] == APF_XEN_VCPUOP_REGISTER_APF;
    if (mine)
        args[0] = 17; /* do_register() drives our sub-op */
    struct snap before;
    take(&before, e, fe);
    int64_t ret = 12345;
    uint8_t k = fz_u8(f);
    int r =
        apf_host_xen_hypercall(fe, v, nr, (k & 15) == 0 ? NULL : args, (k & 15) == 1 ? NULL : &ret);
    if ((k & 15) <= 1)
        FZ_ASSERT(r == APF_EINVAL, "NULL args or ret: %d", r);
    else
        FZ_ASSERT(r == APF_HOST_XEN_NOT_MINE && ret == 12345, "hypercall %llu sub-op %llu: %d",
                  (unsigned long long)nr, (unsigned long long)args[0], r);
    unchanged(&before, e, fe, "another hypercall");
    uint32_t idx = (uint32_t)fz_val(f, (const uint64_t[]){0, 1, ~0u}, 3);
    FZ_ASSERT(apf_host_xen_features(idx) == (idx == 0 ? 1u << APF_XEN_FEAT_APF : 0u));
}

/* Migration destination: set_state from get_state (of this or the other vCPU) or made by
 * the input. */
static void set_state(struct fz_host *e, struct apf_host_xen *fe, uint32_t v, struct fz *f)
{
    struct apf_host_xen_state st = get(fe, (v + fz_u8(f)) % FZ_VCPUS);
    uint8_t k = fz_u8(f);
    if (k & 1) {
        st.version = (k & 6) ? APF_PROTO_VERSION : (uint32_t)fz_val(f, versions, 6);
        st.registered = fz_u8(f) % 3;
        st.area_gpa = fz_val(f, areas, sizeof(areas) / 8);
        st.ring_gpa = fz_val(f, rings, sizeof(rings) / 8);
        st.ring_entries = (uint32_t)fz_val(f, entries, sizeof(entries) / 8);
        st.flags = (uint32_t)fz_val(f, xflags, sizeof(xflags) / 8);
        st.cons = fz_u8(f) & 1 ? fz_u32(f) : fz_u8(f);
        st.prod = st.cons + fz_u8(f) % 20;
        st.seq = fz_u8(f) & 1 ? fz_u32(f) : fz_u8(f);
        st.reserved = (k & 24) ? 0 : 1;
    } else if (k & 2) { /* the same state, its ring indices moved */
        st.prod += fz_u8(f) % 4;
        st.cons += fz_u8(f) % 4;
    }
    struct snap before;
    take(&before, e, fe);
    int r = apf_host_xen_set_state(fe, v, &st);
    if (r != 0) {
        FZ_ASSERT(r == APF_EINVAL || r == APF_EFAULT || r == APF_EPERM || r == APF_EAGAIN,
                  "set_state returned %d", r);
        unchanged(&before, e, fe, "a refused set_state");
        return;
    }
    struct apf_host_xen_state after = get(fe, v);
    same(&st, &after, "set_state accepted but reads back differently:");
    if (st.registered)
        FZ_ASSERT(
            reg_ok(0, st.area_gpa, st.ring_gpa, st.ring_entries, APF_PROTO_VERSION, st.flags) &&
                st.prod - st.cons <= st.ring_entries,
            "set_state accepted a state that breaks the wire rules");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    static struct fz_host e;
    fz_host_init(&e, &apf_host_transport_xen, &f);
    struct apf_host_xen_config xc = {0};
    uint8_t cfg = fz_u8(&f);
    int typed = cfg & 1; /* the embedder reports p2m types */
    if (typed) {
        xc.gpa_type = gpa_type;
        uint16_t other = fz_u16(&f);
        uint32_t kinds = fz_u32(&f);
        for (uint32_t p = 0; p < FZ_RAM >> 12; p++)
            p2m[p] =
                (other >> p & 1) ? (uint8_t)(1 + ((kinds >> 2 * p) & 3) % 3) : APF_HOST_XEN_GPA_RAM;
    }
    if (cfg & 2) /* a page the host cannot write: the argument's, or any */
        e.ro_page = (cfg & 4) ? ARG_GPA >> 12 : 1u + fz_u8(&f) % 15u;
    struct apf_host_xen *fe = NULL;
    FZ_ASSERT(apf_host_xen_create(NULL, &xc, &fe) == APF_EINVAL && fe == NULL);
    FZ_ASSERT(apf_host_xen_create(e.h, &xc, NULL) == APF_EINVAL);
    apf_host_xen_destroy(NULL);
    FZ_ASSERT(apf_host_xen_create(e.h, &xc, &fe) == 0);
    uint8_t boot = fz_u8(&f);
    for (uint32_t v = 0; v < FZ_VCPUS; v++) /* mostly: the guest registers, as Linux would */
        if (boot & (1u << v)) {
            struct apf_xen_vcpu_apf a = {
                .area_gpa = 0x1000u + 64u * v,
                .ring_gpa = 0x8000u + 0x1000u * v,
                .version = APF_PROTO_VERSION,
                .flags = (boot & 4) ? APF_XEN_APF_SEND_ALWAYS : 0,
                .ring_entries = 2u << ((boot >> 4) & 3),
            };
            put_arg(&e, ARG_GPA + 32u * v, &a);
            uint64_t args[5] = {APF_XEN_VCPUOP_REGISTER_APF, v, ARG_GPA + 32u * v, 0, 0};
            int64_t ret;
            FZ_ASSERT(apf_host_xen_hypercall(fe, v, APF_XEN_HC_VCPU_OP, args, &ret) == 0);
        }
    for (int steps = 0; f.n > 0 && steps < 4096; steps++) {
        uint32_t v = fz_u8(&f) % (FZ_VCPUS + 1); /* FZ_VCPUS: an unknown vCPU */
        switch (fz_u8(&f) % 9) {
        case 0:
        case 1:
        case 2: /* the guest's vcpu_op(REGISTER_APF) */
            if (v < FZ_VCPUS) {
                do_register(&e, fe, typed, v, &f);
            } else {
                uint64_t args[5] = {APF_XEN_VCPUOP_REGISTER_APF, v, ARG_GPA, 0, 0};
                int64_t ret = 12345;
                FZ_ASSERT(apf_host_xen_hypercall(fe, v, APF_XEN_HC_VCPU_OP, args, &ret) ==
                              APF_ENODEV &&
                          ret == 12345);
            }
            break;
        case 3:
            if (v < FZ_VCPUS)
                other_hypercall(&e, fe, v, &f);
            break;
        case 4:
            if (v < FZ_VCPUS) {
                set_state(&e, fe, v, &f);
            } else {
                struct apf_host_xen_state st = {.version = APF_PROTO_VERSION};
                FZ_ASSERT(apf_host_xen_set_state(fe, v, &st) == APF_ENODEV);
                FZ_ASSERT(apf_host_xen_get_state(fe, v, &st) == APF_ENODEV);
                FZ_ASSERT(apf_host_xen_get_state(fe, 0, NULL) == APF_EINVAL);
                FZ_ASSERT(apf_host_xen_set_state(fe, 0, NULL) == APF_EINVAL);
            }
            break;
        case 5: /* VCPUOP_initialise, domain reset */
            FZ_ASSERT(apf_host_xen_vcpu_reset(fe, v) == (v < FZ_VCPUS ? 0 : APF_ENODEV));
            if (v < FZ_VCPUS) {
                struct apf_host_xen_state st = get(fe, v);
                struct apf_host_vcpu_state hs = fz_save(&e, v);
                FZ_ASSERT(!st.registered && !hs.enabled && hs.vector == APF_XEN_VIRQ_APF,
                          "reset left state");
            }
            break;
        case 6:
            if (v < FZ_VCPUS)
                guest_consume(&e, fe, v, &f);
            break;
        default:
            fz_host_engine_step(&e, &f);
            break;
        }
        for (uint32_t w = 0; w < FZ_VCPUS; w++)
            agrees(&e, fe, w);
    }
    if (fz_u8(&f) & 1) {
        apf_host_xen_destroy(fe);
        fz_host_fini(&e, 0);
    } else { /* the engine first: the frontend frees itself without it */
        fz_host_fini(&e, 1);
        apf_host_xen_destroy(fe);
    }
    FZ_ASSERT(e.live_blocks == 0, "%ld blocks leaked", e.live_blocks);
    return 0;
}
