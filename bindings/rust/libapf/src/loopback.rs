// SPDX-License-Identifier: MIT
//! Both halves in one process (`apf/loopback.h`): the real engine and frontend on one side,
//! the real guest runtime and backend on the other, under a small guest kernel written
//! here: one task per vCPU, which sleeps by idling its vCPU (taking "page ready"
//! interrupts) until its waiter is woken, optionally after letting "another task" run
//! ([`LbVcpu::fault_with`]). Each vCPU is driven from one thread through its [`LbVcpu`].
use std::cell::Cell;
use std::os::raw::{c_int, c_void};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use libapf_sys as sys;

use crate::error::{check, Error, Result};
use crate::host::{Completer, Engine, Fallback, Fault, HostConfig, HostStats, Owner, Transport, Vcpu};
use crate::no_unwind;

/// Guest runtime statistics of one CPU (`struct apf_guest_stats`, plain data).
pub type GuestStats = sys::apf_guest_stats;

/// Loopback configuration.
#[derive(Debug, Clone)]
pub struct LoopbackConfig {
    /// vCPUs (= guest CPUs).
    pub n_vcpus: u32,
    /// The wire between the halves.
    pub transport: Transport,
    /// Host worker threads calling [`Pager::resolve`]; 0 = [`Pager::submit`] and
    /// [`Completer::complete`] (no library threads).
    pub n_workers: u32,
    /// Per-vCPU outstanding limit (0 = 64).
    pub max_outstanding: u32,
    /// Engine fallback.
    pub fallback: Fallback,
    /// arm64: ready ring entries (power of two, 2..512); 0 = the one-slot area + IRQ_ACK.
    pub ring_entries: u32,
    /// The guest's "page ready" vector (x86: 32..255); 0 = 0xf3.
    pub vector: u32,
    /// Guest state bits the vCPUs run with; 0 = user mode, interrupts and paging on,
    /// interrupt controller on.
    pub guest_state: u32,
}

impl LoopbackConfig {
    /// `n_vcpus` vCPUs over `transport`, embedder completion, slot mode.
    pub fn new(n_vcpus: u32, transport: Transport) -> LoopbackConfig {
        LoopbackConfig {
            n_vcpus,
            transport,
            n_workers: 0,
            max_outstanding: 0,
            fallback: Fallback::Halt,
            ring_entries: 0,
            vector: 0,
            guest_state: 0,
        }
    }
}

/// The host's page work in a loopback (the VMM's userfaultfd handler, say).
pub trait Pager: Send + Sync + 'static {
    /// Make `gpa` present (worker thread, `n_workers > 0`).
    fn resolve(&self, _vcpu: u32, _gpa: u64) -> Result<()> {
        Err(Error::NoSys)
    }
    /// Start making `gpa` present and complete `token` later from any thread
    /// (`n_workers == 0`).
    fn submit(&self, _vcpu: u32, _token: u32, _gpa: u64) {}
}

type PagerBox = Arc<dyn Pager>;

unsafe fn pager<'a>(ctx: *mut c_void) -> &'a dyn Pager {
    // SAFETY: `ctx` is the Box<PagerBox> of a live LbInner, freed after the loopback.
    unsafe { &**(ctx as *const PagerBox) }
}
unsafe extern "C" fn lb_resolve(ctx: *mut c_void, vcpu: u32, gpa: u64) -> c_int {
    // SAFETY: see pager().
    no_unwind("Pager::resolve", || match unsafe { pager(ctx) }.resolve(vcpu, gpa) {
        Ok(()) => 0,
        Err(e) => e.code(),
    })
}
unsafe extern "C" fn lb_submit(ctx: *mut c_void, vcpu: u32, token: u32, gpa: u64) {
    // SAFETY: see pager().
    no_unwind("Pager::submit", || unsafe { pager(ctx) }.submit(vcpu, token, gpa))
}

// ---- the guest kernel: environment hooks ------------------------------------------------

/// The environment's context (env_ctx): the loopback, for kicks and idle loops.
struct Kernel {
    lb: *mut sys::apf_loopback,
}

type OnSleep<'a> = &'a mut dyn for<'b> FnMut(&mut Asleep<'b>);

/// What the vCPU thread is doing now (set for the duration of each LbVcpu call).
struct VcpuCtx<'i, 'f> {
    inner: &'i LbInner,
    id: u32,
    gs: u32,
    can_sleep: bool,
    on_sleep: Cell<Option<OnSleep<'f>>>,
}

thread_local! {
    static CUR: Cell<*const c_void> = const { Cell::new(ptr::null()) };
}

/// The current vCPU context of this thread. Aborts if there is none: the guest runtime
/// calls its environment only from inside the LbVcpu calls that set it.
unsafe fn cur<'a>() -> &'a VcpuCtx<'a, 'a> {
    let p = CUR.with(|c| c.get());
    if p.is_null() {
        eprintln!("libapf loopback: guest environment called outside an LbVcpu call");
        std::process::abort();
    }
    // SAFETY: set by with_ctx() to a VcpuCtx that lives on the stack for the whole call
    // that can reach this hook; only shared references are made (the mutable parts are
    // Cells), so nested hooks may hold it too.
    unsafe { &*(p as *const VcpuCtx<'a, 'a>) }
}

fn with_ctx<R>(ctx: &VcpuCtx<'_, '_>, f: impl FnOnce() -> R) -> R {
    struct Restore(*const c_void);
    impl Drop for Restore {
        fn drop(&mut self) {
            let p = self.0;
            CUR.with(|c| c.set(p));
        }
    }
    let _r = Restore(CUR.with(|c| c.replace(ctx as *const VcpuCtx<'_, '_> as *const c_void)));
    f()
}

fn idle_step(lb: *mut sys::apf_loopback, id: u32, gs: u32) {
    // SAFETY: live loopback; on vCPU `id`'s thread (inside its LbVcpu call).
    unsafe {
        if sys::apf_loopback_deliver(lb, id, gs) == 0 {
            sys::apf_loopback_idle(lb, id, 1_000_000);
        }
    }
}

unsafe extern "C" fn e_current(_ctx: *mut c_void) -> *mut c_void {
    // SAFETY: see cur().
    no_unwind("current_task", || (unsafe { cur() }.id as usize + 1) as *mut c_void)
}
unsafe extern "C" fn e_cpu(_ctx: *mut c_void) -> u32 {
    // SAFETY: see cur().
    no_unwind("cpu_id", || unsafe { cur() }.id)
}
unsafe extern "C" fn e_can_sleep(_ctx: *mut c_void) -> c_int {
    // SAFETY: see cur().
    no_unwind("can_sleep", || unsafe { cur() }.can_sleep as c_int)
}
unsafe extern "C" fn e_sleep(_ctx: *mut c_void, w: *mut sys::apf_guest_waiter) {
    no_unwind("sleep", || {
        // SAFETY: see cur().
        let c = unsafe { cur() };
        if let Some(f) = c.on_sleep.take() {
            // "Another task" runs on this CPU while this one sleeps.
            let mut a = Asleep { inner: c.inner, id: c.id, gs: c.gs };
            f(&mut a);
        }
        // SAFETY: `w` is the runtime's waiter, valid until this hook returns.
        while unsafe { sys::apf_guest_waiter_woken(w) } == 0 {
            idle_step(c.inner.lb.as_ptr(), c.id, c.gs);
        }
    })
}
unsafe extern "C" fn e_wake(ctx: *mut c_void, _task: *mut c_void, cpu: u32, _halted: c_int) {
    no_unwind("wake", || {
        // SAFETY: env_ctx is the LbInner's boxed Kernel; the loopback is live; any thread.
        unsafe { sys::apf_loopback_kick((*(ctx as *const Kernel)).lb, cpu) }
    })
}
unsafe extern "C" fn e_halt(_ctx: *mut c_void) {
    no_unwind("halt", || {
        // SAFETY: see cur().
        let c = unsafe { cur() };
        idle_step(c.inner.lb.as_ptr(), c.id, c.gs)
    })
}
unsafe extern "C" fn e_lock(_ctx: *mut c_void, l: *mut sys::apf_guest_lock) -> usize {
    // SAFETY: `l->word` is a live, 4-byte aligned u32 used only atomically by these hooks;
    // AtomicU32 has the same layout.
    let w = unsafe { &*(ptr::addr_of_mut!((*l).word) as *const AtomicU32) };
    while w.compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::thread::yield_now();
    }
    0
}
unsafe extern "C" fn e_unlock(_ctx: *mut c_void, l: *mut sys::apf_guest_lock, _flags: usize) {
    // SAFETY: as in e_lock().
    let w = unsafe { &*(ptr::addr_of_mut!((*l).word) as *const AtomicU32) };
    w.store(0, Ordering::Release);
}

static ENV: sys::apf_guest_env_ops = sys::apf_guest_env_ops {
    current_task: Some(e_current),
    cpu_id: Some(e_cpu),
    can_sleep: Some(e_can_sleep),
    sleep: Some(e_sleep),
    wake: Some(e_wake),
    halt: Some(e_halt),
    lock: Some(e_lock),
    unlock: Some(e_unlock),
    virt_to_phys: Some(sys::apf_loopback_virt_to_phys),
    log: None,
};

// ---- the loopback -----------------------------------------------------------------------

struct LbInner {
    lb: NonNull<sys::apf_loopback>,
    guest: NonNull<sys::apf_guest>,
    gs: u32,
    claims: Vec<AtomicBool>,
    _mem: Vec<u64>,
    _kernel: Box<Kernel>,
    _pager: Box<PagerBox>,
}

// SAFETY: the guest runtime's per-CPU calls are made only through the unique LbVcpu of
// that CPU (not Sync); what LbInner itself offers from any thread (kicks, statistics, the
// engine's any-thread calls) is thread-safe in C; the pointers live until Drop.
unsafe impl Send for LbInner {}
// SAFETY: as above.
unsafe impl Sync for LbInner {}

impl Owner for LbInner {
    fn claims(&self) -> &[AtomicBool] {
        &self.claims
    }
}

impl Drop for LbInner {
    fn drop(&mut self) {
        // SAFETY: the last handle is gone, no call runs; destroy stops the workers before
        // the guest memory, kernel and pager are freed (fields drop afterwards).
        unsafe { sys::apf_loopback_destroy(self.lb.as_ptr()) }
    }
}

/// A loopback: the engine, its frontend, and the guest runtime with its kernel.
#[derive(Clone)]
pub struct Loopback {
    inner: Arc<LbInner>,
    engine: Engine,
}

impl Loopback {
    /// Create both halves (host workers started if `n_workers > 0`); the guest CPUs are
    /// still offline (see [`LbVcpu::online`]).
    pub fn new(cfg: &LoopbackConfig, pager: Arc<dyn Pager>) -> Result<Loopback> {
        let pager: Box<PagerBox> = Box::new(pager);
        let mut hc = HostConfig::new(cfg.n_vcpus, cfg.transport);
        hc.n_workers = cfg.n_workers;
        hc.max_outstanding = cfg.max_outstanding;
        hc.fallback = cfg.fallback;
        let lc = sys::apf_loopback_config {
            host: hc.to_raw(),
            ppi: 0,
            ring_entries: cfg.ring_entries,
            mmio_np_kind: 0,
            resolve: Some(lb_resolve),
            submit: Some(lb_submit),
            ctx: &*pager as *const PagerBox as *mut c_void,
            reserved: [0; 4],
        };
        let mut lb = ptr::null_mut();
        // SAFETY: complete configuration; the pager box outlives the loopback (LbInner).
        check(unsafe { sys::apf_loopback_create(&lc, &mut lb) })?;
        let lb = NonNull::new(lb).ok_or(Error::NoMem)?;
        let destroy = |e: Error| {
            // SAFETY: created above, not shared yet.
            unsafe { sys::apf_loopback_destroy(lb.as_ptr()) };
            e
        };
        let kernel = Box::new(Kernel { lb: lb.as_ptr() });
        let mut bops = ptr::null();
        let mut bctx = ptr::null_mut();
        // SAFETY: live loopback, valid out pointers.
        unsafe { sys::apf_loopback_guest_backend(lb.as_ptr(), &mut bops, &mut bctx) };
        let gc = sys::apf_guest_config {
            n_cpus: cfg.n_vcpus,
            n_buckets: 0,
            n_placeholders: 0,
            vector: if cfg.vector == 0 { 0xf3 } else { cfg.vector },
            flags: 0,
            env: &ENV,
            env_ctx: &*kernel as *const Kernel as *mut c_void,
            backend: bops,
            backend_ctx: bctx,
            trace: None,
            trace_ctx: ptr::null_mut(),
            reserved: [0; 8],
        };
        // SAFETY: a valid configuration.
        let size = unsafe { sys::apf_guest_mem_size(&gc) } as usize;
        if size == 0 {
            return Err(destroy(Error::Inval));
        }
        let mut mem = vec![0u64; (size + 7) / 8];
        let base = mem.as_mut_ptr() as *mut c_void;
        // SAFETY: `mem` is this process's memory, alive (and never resized) until after the
        // loopback is destroyed.
        check(unsafe { sys::apf_loopback_add_ram(lb.as_ptr(), base, size as sys::size_t) }).map_err(destroy)?;
        let mut g = ptr::null_mut();
        // SAFETY: `mem` holds `size` bytes; `gc`'s env, kernel and backend outlive the
        // runtime (statics, or boxes owned by LbInner).
        check(unsafe { sys::apf_guest_init(base, size as sys::size_t, &gc, &mut g) }).map_err(destroy)?;
        let guest = NonNull::new(g).ok_or(Error::NoMem).map_err(destroy)?;
        // SAFETY: live loopback and runtime.
        unsafe { sys::apf_loopback_attach(lb.as_ptr(), guest.as_ptr()) };
        // SAFETY: live loopback.
        let host = unsafe { sys::apf_loopback_host(lb.as_ptr()) };
        let host = NonNull::new(host).ok_or(Error::Inval).map_err(destroy)?;
        let gs = if cfg.guest_state == 0 {
            sys::APF_GS_USER | sys::APF_GS_IRQ_ON | sys::APF_GS_PAGING | sys::APF_GS_IRQCHIP_ON
        } else {
            cfg.guest_state
        };
        let inner = Arc::new(LbInner {
            lb,
            guest,
            gs,
            claims: (0..cfg.n_vcpus).map(|_| AtomicBool::new(false)).collect(),
            _mem: mem,
            _kernel: kernel,
            _pager: pager,
        });
        let engine = Engine { raw: host, owner: inner.clone() };
        Ok(Loopback { inner, engine })
    }

    /// The handle of vCPU `id` ([`Error::Busy`] while another exists).
    pub fn vcpu(&self, id: u32) -> Result<LbVcpu> {
        let vcpu = self.engine.vcpu(id)?;
        Ok(LbVcpu { inner: self.inner.clone(), vcpu, gs: self.inner.gs })
    }

    /// Completion and statistics from any thread.
    pub fn completer(&self) -> Completer {
        Completer { engine: self.engine.clone() }
    }

    /// Guest statistics of a CPU (any thread).
    pub fn guest_stats(&self, cpu: u32) -> Result<GuestStats> {
        self.inner.guest_stats(cpu)
    }

    /// Wake vCPU `id` from [`LbVcpu::idle`] (any thread).
    pub fn kick(&self, id: u32) {
        // SAFETY: live loopback; any thread.
        unsafe { sys::apf_loopback_kick(self.inner.lb.as_ptr(), id) }
    }
}

impl LbInner {
    fn guest_stats(&self, cpu: u32) -> Result<GuestStats> {
        // SAFETY: all-zero is a valid apf_guest_stats (plain integers).
        let mut s: GuestStats = unsafe { std::mem::zeroed() };
        // SAFETY: live runtime; valid out pointer; counters are read atomically.
        check(unsafe { sys::apf_guest_stats(self.guest.as_ptr(), cpu, &mut s) })?;
        Ok(s)
    }
}

/// One vCPU of a loopback, driven from one thread at a time (`Send`, not `Sync`): the
/// guest's CPU (online, offline, a task's fault) and the engine's vCPU ([`LbVcpu::host`]).
pub struct LbVcpu {
    inner: Arc<LbInner>,
    vcpu: Vcpu,
    gs: u32,
}

impl LbVcpu {
    /// The vCPU id.
    pub fn id(&self) -> u32 {
        self.vcpu.id()
    }

    /// The engine's vCPU (save, restore, statistics... in vCPU context).
    pub fn host(&mut self) -> &mut Vcpu {
        &mut self.vcpu
    }

    /// Set the guest state bits the vCPU runs with.
    pub fn set_guest_state(&mut self, gs: u32) {
        self.gs = gs;
    }

    fn run<R>(&mut self, can_sleep: bool, on_sleep: Option<OnSleep<'_>>, f: impl FnOnce(&LbInner, u32, u32) -> R) -> R {
        let ctx = VcpuCtx {
            inner: &self.inner,
            id: self.vcpu.id(),
            gs: self.gs,
            can_sleep,
            on_sleep: Cell::new(on_sleep),
        };
        with_ctx(&ctx, || f(ctx.inner, ctx.id, ctx.gs))
    }

    /// The guest kernel brings APF up on this CPU (through the frontend, as the guest's
    /// wrmsr / hvc would).
    pub fn online(&mut self) -> Result<()> {
        // SAFETY: live runtime; on this CPU's thread (unique &mut LbVcpu).
        self.run(true, None, |i, id, _| check(unsafe { sys::apf_guest_cpu_online(i.guest.as_ptr(), id) })).map(|_| ())
    }

    /// The guest takes APF down on this CPU; returns the sleepers woken.
    pub fn offline(&mut self) -> Result<u32> {
        // SAFETY: as in online().
        self.run(true, None, |i, id, _| check(unsafe { sys::apf_guest_cpu_offline(i.guest.as_ptr(), id) }))
    }

    /// The current task touched the missing page `gpa` (the stage-2 exit): see
    /// `apf_loopback_fault`. On [`Fault::Async`] the task sleeps (the vCPU idles, taking
    /// "page ready") and this returns once it is woken.
    pub fn fault(&mut self, gpa: u64) -> Result<Fault> {
        self.fault_inner(gpa, true, None)
    }

    /// As [`LbVcpu::fault`], from a context that may (`can_sleep`) or may not sleep (then
    /// the guest halts the CPU instead), running `on_sleep` as "another task" on this CPU
    /// the first time the faulting task sleeps.
    pub fn fault_with(&mut self, gpa: u64, can_sleep: bool, mut on_sleep: impl for<'b> FnMut(&mut Asleep<'b>)) -> Result<Fault> {
        self.fault_inner(gpa, can_sleep, Some(&mut on_sleep))
    }

    fn fault_inner(&mut self, gpa: u64, can_sleep: bool, on_sleep: Option<OnSleep<'_>>) -> Result<Fault> {
        let r = self.run(can_sleep, on_sleep, |i, id, gs| {
            // SAFETY: live loopback; on this vCPU's thread, task context.
            check(unsafe { sys::apf_loopback_fault(i.lb.as_ptr(), id, gpa, gs) })
        })?;
        Fault::from_raw(r)
    }

    /// A delivery point: deliver "page ready" interrupts; returns how many.
    pub fn deliver(&mut self) -> Result<u32> {
        // SAFETY: live loopback; on this vCPU's thread.
        self.run(true, None, |i, id, gs| check(unsafe { sys::apf_loopback_deliver(i.lb.as_ptr(), id, gs) }))
    }

    /// Whether the vCPU was kicked since the last call.
    pub fn pending(&mut self) -> bool {
        // SAFETY: live loopback; on this vCPU's thread.
        self.run(true, None, |i, id, _| unsafe { sys::apf_loopback_pending(i.lb.as_ptr(), id) } == 1)
    }

    /// Nothing to run: wait for a kick, at most `timeout`; true if kicked.
    pub fn idle(&mut self, timeout: Duration) -> bool {
        let ns = timeout.as_nanos().min(u64::MAX as u128) as u64;
        // SAFETY: live loopback; on this vCPU's thread.
        self.run(true, None, |i, id, _| unsafe { sys::apf_loopback_idle(i.lb.as_ptr(), id, ns) } == 1)
    }

    /// Guest statistics of this CPU.
    pub fn guest_stats(&self) -> Result<GuestStats> {
        self.inner.guest_stats(self.vcpu.id())
    }

    /// Host statistics of this vCPU.
    pub fn host_stats(&self) -> Result<HostStats> {
        self.vcpu.stats()
    }
}

/// What "another task" may do on a CPU while the faulting task sleeps
/// ([`LbVcpu::fault_with`]).
pub struct Asleep<'a> {
    inner: &'a LbInner,
    id: u32,
    gs: u32,
}

impl Asleep<'_> {
    /// Take APF down on this CPU (its sleepers, the faulting task included, are woken).
    pub fn offline(&mut self) -> Result<u32> {
        // SAFETY: live runtime; on this CPU's thread, inside its LbVcpu call.
        check(unsafe { sys::apf_guest_cpu_offline(self.inner.guest.as_ptr(), self.id) })
    }

    /// Bring APF up again on this CPU.
    pub fn online(&mut self) -> Result<()> {
        // SAFETY: as in offline().
        check(unsafe { sys::apf_guest_cpu_online(self.inner.guest.as_ptr(), self.id) }).map(|_| ())
    }

    /// A delivery point.
    pub fn deliver(&mut self) -> Result<u32> {
        // SAFETY: as in offline().
        check(unsafe { sys::apf_loopback_deliver(self.inner.lb.as_ptr(), self.id, self.gs) })
    }

    /// Guest statistics of this CPU.
    pub fn guest_stats(&self) -> Result<GuestStats> {
        self.inner.guest_stats(self.id)
    }
}
