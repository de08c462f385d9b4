/* SPDX-License-Identifier: MIT */
/*
 * SPIN model of the asynchronous page fault protocol as libapf implements it. How each part
 * maps onto the code, rule by rule: docs/hardening.md "The SPIN model".
 *
 * Processes: per vCPU, NT guest tasks (each makes NF accesses that may fault) and the vCPU
 * (the guest's "page ready" interrupt handler, the engine's delivery point before entry,
 * the guest's CPU offline/online, guest-state toggles, a migration restore); one completer
 * (the host's workers: apf_host_complete + the kick rule). Atomic steps are what the code
 * does under one lock or with interrupts off; everything else interleaves.
 *
 * Configuration (-D): NV vCPUs (1, 2), NT tasks per vCPU, NF faults per task, DELIV
 * (1 slot + ACK, 2 ready ring with notification hold-off, 3 no throttle), RSZ ring entries,
 * NPH placeholders per CPU, DIS offline/online cycles and restores per vCPU, TOG guest-state
 * toggles per vCPU. Mutations (-D, one at a time) re-introduce KVM's historical bugs:
 *   MUT_NO_BARRIER   no barrier between queueing a completion and the kick check (2025)
 *   MUT_PAGING_DROP  completions dropped when the guest toggles paging (CR0.PG / SMM)
 *   MUT_WAKEALL_PH   wake-all (and offline) leave the CPU's placeholders in the table
 *   MUT_IRQCHIP      "page ready" injected while the guest's interrupt controller is off
 * Checked: no lost wake-up and no deadlock (every process ends: a task asleep for ever is
 * an invalid end state), no "page ready" without its "not present", at most one "page
 * ready" in flight on a slot and RSZ on a ring, a placeholder answers only the "not
 * present" it was made for, every "not present" answered once (by its "page ready", or
 * covered by a wake-all or a disable), no placeholder left behind.
 */
#ifndef NV
#define NV 1
#endif
#ifndef NT
#define NT 2
#endif
#ifndef NF
#define NF 1
#endif
#ifndef DELIV
#define DELIV 1
#endif
#ifndef RSZ
#define RSZ 2
#endif
#ifndef NPH
#define NPH 2
#endif
#ifndef DIS
#define DIS 1
#endif
#ifndef TOG
#define TOG 1
#endif

#define SLOT 1
#define RING 2
#define NOTHROTTLE 3
#define WAKEALL 15          /* the wake-all token (0xffffffff on the wire) */
#ifndef MAXTOK
#define MAXTOK 4            /* tokens 1..MAXTOK per vCPU and host generation */
#endif
#define RB 8                /* ring buffer indexing (a ring uses RSZ of it) */
#define TK(v, t) ((v) * 16 + (t))
#define IDX(v, k) ((v) * NT + (k))

/* ---- host engine, per vCPU ---- */
bool en[NV];                /* APF on */
byte hg[NV];                /* host generation: moves on at disable and restore */
byte ntok[NV];              /* tokens issued in this generation (restarts after offline) */
bit np_out[NV * 16];        /* "not present" delivered, not answered */
bit answered[NV * 16];
byte nout[NV];              /* how many: the vCPU ends only when every one is answered */
chan work = [8] of { byte, byte, byte };   /* (vcpu, token, generation) being resolved */
chan cq[NV] = [MAXTOK + 1] of { byte };     /* completions awaiting their "page ready" */
bool pend[NV];              /* slot: a "page ready" awaits its ACK (ready_pending) */
byte slot[NV];              /* slot: the area's token, 0 = free */
byte inflight[NV];          /* "page ready"s posted, not released by the guest */
byte rbuf[NV * RB];
byte prod[NV], cons[NV], evt[NV];
bool irq[NV];               /* "page ready" interrupt pending in the guest */
bool kick[NV];              /* the vCPU was kicked: it leaves the guest */
bool exitp[NV];             /* a VM exit happened (fault, ACK, MSR write) */
bool paging[NV], irqchip[NV];
byte finished[NV];          /* tasks done */
byte asleep[NV];            /* tasks asleep in the sleep table */
bool blk[NV];               /* the vCPU is halted in the host (guest HLT, nothing to do) */

/* ---- guest, per CPU ---- */
byte tok[NV * NT];          /* the token a task waits for */
byte tst[NV * NT];          /* 0 running, 1 in the window, 2 asleep, 3 woken by its ready */
byte ph[NV];                /* placeholders: bit t-1 */
byte phg[NV * 16];          /* the host generation of the "page ready" that made it */
byte pg[NV * 16];           /* the host generation a "page ready" was posted in */
byte nph[NV];
byte epoch;                 /* lost wake-ups (placeholder pool empty), all CPUs */
byte wgen[NV];              /* wake-alls and offlines taken by this CPU */
byte drops;
byte wretries;              /* waiters a wake-all or offline made retry: each may leave
                               a placeholder (its "page ready" can still come) */

/* The guest frees its CPU's placeholders (apf__st_wake_cpu: wake-all and offline). */
inline free_placeholders(v) {
#ifndef MUT_WAKEALL_PH
    ph[v] = 0; nph[v] = 0
#else
    skip
#endif
}

/* apf__st_wake_cpu: every sleeper of the CPU retries; waiters still in their window see
 * the generation move and retry instead of sleeping. */
inline wake_cpu(v) {
    for (k : 0 .. NT - 1) {
        if :: tst[IDX(v, k)] == 2 -> tst[IDX(v, k)] = 0; asleep[v]--; wretries++ :: else -> skip fi
    }
    wgen[v]++;
    free_placeholders(v)
}

/* take_ready: "page ready" t on CPU v. */
inline guest_ready(v, t) {
    if
    :: t == WAKEALL -> wake_cpu(v)
    :: else ->
        found = 0;
        for (k : 0 .. NT - 1) {
            if
            :: !found && tst[IDX(v, k)] == 2 && tok[IDX(v, k)] == t -> tst[IDX(v, k)] = 3; asleep[v]--; found = 1
            :: else -> skip
            fi
        }
        if
        :: !found && (ph[v] & (1 << (t - 1))) -> skip        /* a repeat: keep the one */
        :: !found && !(ph[v] & (1 << (t - 1))) && nph[v] < NPH ->
            ph[v] = ph[v] | (1 << (t - 1)); phg[TK(v, t)] = pg[TK(v, t)]; nph[v]++
        :: !found && !(ph[v] & (1 << (t - 1))) && nph[v] >= NPH -> epoch++; drops++
        :: else -> skip
        fi
    fi
}

/* The engine posts "page ready" t: only for a delivered, unanswered "not present"; a
 * wake-all answers every outstanding one (their completions are dropped, host.drop). */
inline host_answer(v, t) {
    if
    :: t == WAKEALL ->
        for (i : 1 .. MAXTOK) {
            if :: np_out[TK(v, i)] -> np_out[TK(v, i)] = 0; answered[TK(v, i)] = 1; nout[v]-- :: else -> skip fi
        }
    :: else ->
        assert(np_out[TK(v, t)] && !answered[TK(v, t)]);  /* no ready without its not-present */
        pg[TK(v, t)] = hg[v];
        np_out[TK(v, t)] = 0;
        answered[TK(v, t)] = 1;
        nout[v]--
    fi
}

/* The host forgets the vCPU's work (apf__vcpu_drop): queued completions dropped, running
 * work orphaned (generation), outstanding "not present"s covered by the wake-all owed. */
inline host_drop(v) {
    do :: cq[v] ? t -> skip :: len(cq[v]) == 0 -> break od;
    for (i : 1 .. MAXTOK) {
        if :: np_out[TK(v, i)] -> np_out[TK(v, i)] = 0; answered[TK(v, i)] = 1; nout[v]-- :: else -> skip fi
    }
    hg[v]++;
    pend[v] = 0
}

#ifndef MUT_IRQCHIP
#define IRQCHIP_OK(v) (irqchip[v])
#else
#define IRQCHIP_OK(v) (1)
#endif
#define ROOM(v) ((DELIV == SLOT && !pend[v] && slot[v] == 0) || (DELIV == RING && prod[v] - cons[v] < RSZ) || (DELIV == NOTHROTTLE && prod[v] - cons[v] < RB))

/* CPU offline runs in task context on that CPU: not inside another task's window (the
 * exception path up to the sleep table). */
#if NT == 1
#define NO_WINDOW(v) (tst[IDX(v, 0)] != 1)
#else
#define NO_WINDOW(v) (tst[IDX(v, 0)] != 1 && tst[IDX(v, 1)] != 1)
#endif

/* apf_host_vcpu_before_entry: post what the transport has room for, notify once. Needs the
 * guest's interrupt controller on (KVM 2024: no "page ready" to a disabled LAPIC). */
inline deliver(v) {
    posted = 0;
    old = prod[v];
    do
    :: len(cq[v]) > 0 && en[v] && IRQCHIP_OK(v) && ROOM(v) ->
        cq[v] ? t;
        if
        :: t != WAKEALL && answered[TK(v, t)] -> skip   /* covered by a wake-all: dropped */
        :: else ->
            host_answer(v, t);
            if
            :: DELIV == SLOT -> slot[v] = t; pend[v] = 1
            :: else -> rbuf[v * RB + prod[v] % RB] = t; prod[v]++
            fi;
            inflight[v]++;
            assert(DELIV != SLOT || inflight[v] <= 1);   /* one "page ready" on a slot */
            assert(DELIV != RING || inflight[v] <= RSZ); /* no ring overrun */
            posted++
        fi
    :: else -> break
    od;
    if
    :: posted > 0 && irqchip[v] && (DELIV != RING || (old < evt[v] && evt[v] <= prod[v])) ->
        irq[v] = 1
    :: else -> skip   /* nothing; a ring held off; or (MUT_IRQCHIP) the interrupt lost */
    fi
}

/* apf_guest_on_interrupt: drain - wake before release - then finish (slot: the ACK MSR, a
 * VM exit; ring: re-arm the event index and re-check). */
inline handler(v) {
    irq[v] = 0;
    if
    :: DELIV == SLOT ->
        if
        :: slot[v] != 0 ->
            t = slot[v];
            guest_ready(v, t);
            slot[v] = 0;           /* release */
            inflight[v] = 0;
            pend[v] = 0;           /* ACK: clears ready_pending (seq_cst) ... */
            exitp[v] = 1           /* ... in a VM exit: the next entry drains the queue */
        :: else -> skip            /* spurious: no ACK */
        fi
    :: else ->
        do
        :: cons[v] != prod[v] ->
            t = rbuf[v * RB + cons[v] % RB];
            guest_ready(v, t);
            cons[v]++;             /* release = the ACK */
            inflight[v]--
        :: else ->
            evt[v] = cons[v] + 1;  /* re-arm, then re-check prod */
            if :: cons[v] != prod[v] -> skip :: else -> break fi
        od
    fi
}

proctype task(byte v; byte k)
{
    byte left = NF, t, ref, g, h;
    bool async;
    do
    :: left == 0 -> break
    :: left > 0 ->
        /* the access faults: "not present" if APF is on and paging is (the engine starts the
         * work only after delivering it); else the access completes synchronously */
        atomic {
            if
            :: en[v] && paging[v] && ntok[v] < MAXTOK ->
                ntok[v]++;
                t = ntok[v];
                np_out[TK(v, t)] = 1;
                answered[TK(v, t)] = 0;
                nout[v]++;
                work ! v, t, hg[v];
                h = hg[v];
                ref = epoch;           /* the window: reference epoch and wake-all gen */
                g = wgen[v];
                tok[IDX(v, k)] = t;
                tst[IDX(v, k)] = 1;
                exitp[v] = 1;
                async = 1
            :: else -> left--; async = 0
            fi
        }
        if
        :: async ->
            /* apf__st_wait, under the bucket lock */
            atomic {
                if
                :: ph[v] & (1 << (t - 1)) ->        /* its "page ready" came first */
                    assert(phg[TK(v, t)] == h);     /* ... for this "not present" */
                    ph[v] = ph[v] & ~(1 << (t - 1)); nph[v]--;
                    tst[IDX(v, k)] = 0; left--
                :: !(ph[v] & (1 << (t - 1))) && (epoch != ref || wgen[v] != g) ->
                    tst[IDX(v, k)] = 0;              /* a loss or a wake-all: retry */
                    /* A wake-all the host posted before this "not present" but the guest
                     * took after it: the ready for t still comes and finds no waiter (a
                     * placeholder, freed by the next wake-all or offline). */
                    if :: epoch == ref -> wretries++ :: else -> skip fi
                :: else -> tst[IDX(v, k)] = 2; asleep[v]++  /* asleep */
                fi
            }
            (tst[IDX(v, k)] != 2);                   /* until woken */
            atomic { if :: tst[IDX(v, k)] == 3 -> left-- :: else -> skip fi; tst[IDX(v, k)] = 0 }
        :: else -> skip
        fi
    od;
    atomic { finished[v]++ }
}

proctype completer()
{
    byte v, t, g;
    bool r;
    do
    :: work ? v, t, g ->
#ifdef MUT_NO_BARRIER
        /* release/acquire only: the ready_pending load passes the queue store (KVM 2025) */
        r = pend[v] && !blk[v];
        atomic { if :: g == hg[v] -> cq[v] ! t :: else -> skip fi };
#else
        atomic { if :: g == hg[v] -> cq[v] ! t :: else -> skip fi };  /* seq_cst push */
        r = pend[v] && !blk[v];                                     /* seq_cst load */
#endif
        if :: !r -> kick[v] = 1 :: else -> skip fi   /* an ACK outstanding brings it back */
    :: timeout -> break
    od
}

proctype vcpu(byte v)
{
    byte k, i, t, posted, old, dis = DIS, tog = TOG;
    bool found;
    do
    /* the "page ready" interrupt, taken when the interrupt controller is on; a CPU that is
     * offline counts it as spurious (apf_guest_on_interrupt: not enabled) */
    :: atomic { !blk[v] && irq[v] && irqchip[v] && !en[v] -> irq[v] = 0 }
    :: atomic { !blk[v] && irq[v] && irqchip[v] && en[v] -> handler(v) }
    /* VM entry after an exit or a kick: the delivery point */
    :: atomic { !blk[v] && (kick[v] || exitp[v]) -> kick[v] = 0; exitp[v] = 0; deliver(v) }
    /* the guest has nothing to run (every task asleep or done): HLT exits; the host takes
     * what is queued (a delivery point) or, finding nothing, halts the vCPU until a kick -
     * the check and the halt pair with the completer's push and kick (seq_cst) */
    :: atomic { !blk[v] && !irq[v] && asleep[v] + finished[v] == NT ->
        if :: len(cq[v]) > 0 -> deliver(v) :: else -> blk[v] = 1 fi }
    :: atomic { blk[v] && kick[v] -> blk[v] = 0; kick[v] = 0; deliver(v) }
    /* the guest takes the CPU offline (disable with work in flight) ... */
    :: atomic { !blk[v] && dis > 0 && en[v] && NO_WINDOW(v) ->
        dis--; en[v] = 0; host_drop(v);
        wake_cpu(v);                       /* offline wakes the CPU's sleepers */
        slot[v] = 0; inflight[v] = 0; prod[v] = 0; cons[v] = 0; evt[v] = 1; /* channel gone */
        exitp[v] = 1 }
    /* ... and online again: a fresh channel, tokens may restart, a wake-all is owed */
    :: atomic { !blk[v] && !en[v] ->
        en[v] = 1; ntok[v] = 0;
        slot[v] = 0; inflight[v] = 0; irq[v] = 0; prod[v] = 0; cons[v] = 0; evt[v] = 1;
        cq[v] ! WAKEALL;
        exitp[v] = 1 }
    /* a migration restore (slot transports): the host forgets its work and owes a wake-all;
     * the guest's memory (area, table, placeholders) is unchanged */
    :: atomic { DELIV == SLOT && dis > 0 && en[v] ->
        dis--; host_drop(v); blk[v] = 0;   /* the destination runs the vCPU afresh */
        cq[v] ! WAKEALL;
        exitp[v] = 1 }
    /* guest-state toggles: paging (CR0.PG, SMM) and the interrupt controller */
    :: atomic { !blk[v] && tog > 0 -> tog--; paging[v] = !paging[v]; exitp[v] = 1;
#ifdef MUT_PAGING_DROP
        if :: !paging[v] -> do :: cq[v] ? t -> skip :: len(cq[v]) == 0 -> break od :: else -> skip fi
#endif
       }
    :: atomic { !blk[v] && !paging[v] -> paging[v] = 1; exitp[v] = 1 }
    :: atomic { !blk[v] && tog > 0 -> tog--; irqchip[v] = !irqchip[v] }
    :: atomic { !blk[v] && !irqchip[v] -> irqchip[v] = 1; exitp[v] = 1 }
    /* every task done and nothing in flight: the end */
    :: atomic { finished[v] == NT && nout[v] == 0 && len(cq[v]) == 0 && inflight[v] == 0 &&
                !irq[v] -> break }
    od;
    /* every "not present" was answered (by its ready, a wake-all or a drop) */
    for (i : 1 .. MAXTOK) { assert(!np_out[TK(v, i)]) }
    /* no placeholder left behind, except one per waiter that retried (pool empty, or a
     * wake-all in its window): those are freed by the next wake-all or offline */
    assert(nph[v] <= drops + wretries)
}

init {
    byte v, k;
    atomic {
        for (v : 0 .. NV - 1) {
            en[v] = 1; paging[v] = 1; irqchip[v] = 1; evt[v] = 1;
            cq[v] ! WAKEALL;
        }
        run completer();
        for (v : 0 .. NV - 1) {
            run vcpu(v);
            for (k : 0 .. NT - 1) { run task(v, k) }
        }
    }
}
