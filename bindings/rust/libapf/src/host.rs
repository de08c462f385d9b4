// SPDX-License-Identifier: MIT
//! The engine (`apf/host.h`): [`Host`], its [`Vcpu`] handles, the [`Completer`] and the
//! [`Embedder`] trait behind the C callbacks.
use std::os::raw::{c_int, c_void};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use libapf_sys as sys;

use crate::error::{check, Error, Result};
use crate::no_unwind;
use crate::state::VcpuState;

/// Guest state bits (the `guest_state` arguments): `APF_GS_*`.
pub const GS_USER: u32 = sys::APF_GS_USER;
/// Guest interrupts enabled (x86 RFLAGS.IF).
pub const GS_IRQ_ON: u32 = sys::APF_GS_IRQ_ON;
/// Guest paging on (x86 CR0.PG).
pub const GS_PAGING: u32 = sys::APF_GS_PAGING;
/// Guest runs a nested guest.
pub const GS_NESTED: u32 = sys::APF_GS_NESTED;
/// An exception or event is pending injection.
pub const GS_EXC_PENDING: u32 = sys::APF_GS_EXC_PENDING;
/// The interrupt controller can take "page ready" (needed to deliver it).
pub const GS_IRQCHIP_ON: u32 = sys::APF_GS_IRQCHIP_ON;
/// "Not present" masked (arm64: SDEI handler running).
pub const GS_NP_MASKED: u32 = sys::APF_GS_NP_MASKED;

/// Per-vCPU statistics (`struct apf_host_vcpu_stats`, plain data).
pub type HostStats = sys::apf_host_vcpu_stats;

/// The guest-visible wire (`apf_host_config::transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Linux KVM's x86 MSRs: \#PF with CR2 = token, an interrupt, one slot + ACK.
    KvmX86,
    /// The arm64 SMCCC call: SDEI + PPI, one slot + IRQ_ACK, or the ready ring.
    KvmArm64,
}

impl Transport {
    pub(crate) fn ops(self) -> *const sys::apf_host_transport_ops {
        // SAFETY: only the addresses of the library's two constant transport tables are
        // taken; nothing is read or written here. (Rust >= 1.82 needs no `unsafe` for it.)
        #[allow(unused_unsafe)]
        unsafe {
            match self {
                Transport::KvmX86 => ptr::addr_of!(sys::apf_host_transport_kvm_x86),
                Transport::KvmArm64 => ptr::addr_of!(sys::apf_host_transport_kvm_arm64),
            }
        }
    }
}

/// What to do when a fault may go async but "not present" cannot be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Start the work and halt the vCPU until it is done (KVM's behaviour).
    Halt,
    /// Return [`Fault::Sync`] and start nothing.
    Sync,
}

/// The engine's configuration (`struct apf_host_config` without the pointers).
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// vCPUs, 1..4096.
    pub n_vcpus: u32,
    /// Per-vCPU limit of outstanding faults; 0 = 64.
    pub max_outstanding: u32,
    /// Worker threads calling [`Embedder::resolve`]; 0 = the embedder completes
    /// ([`Embedder::submit`] + [`Completer::complete`]) and the library creates no thread.
    pub n_workers: u32,
    /// See [`Fallback`].
    pub fallback: Fallback,
    /// log2 of the deduplication page size; 0 = 12.
    pub page_shift: u32,
    /// Worker poll time before sleeping, in ns (0 = sleep at once).
    pub worker_spin_ns: u32,
    /// The wire.
    pub transport: Transport,
}

impl HostConfig {
    /// `n_vcpus` vCPUs on `transport`, embedder completion (`n_workers = 0`), defaults
    /// elsewhere.
    pub fn new(n_vcpus: u32, transport: Transport) -> HostConfig {
        HostConfig {
            n_vcpus,
            max_outstanding: 0,
            n_workers: 0,
            fallback: Fallback::Halt,
            page_shift: 0,
            worker_spin_ns: 0,
            transport,
        }
    }

    pub(crate) fn to_raw(&self) -> sys::apf_host_config {
        sys::apf_host_config {
            n_vcpus: self.n_vcpus,
            max_outstanding: self.max_outstanding,
            n_workers: self.n_workers,
            fallback: match self.fallback {
                Fallback::Halt => sys::APF_HOST_FALLBACK_HALT,
                Fallback::Sync => sys::APF_HOST_FALLBACK_SYNC,
            },
            page_shift: self.page_shift,
            worker_spin_ns: self.worker_spin_ns,
            transport: self.transport.ops(),
            transport_ctx: ptr::null_mut(),
            ops: ptr::null(),
            ctx: ptr::null_mut(),
            trace: None,
            trace_ctx: ptr::null_mut(),
            alloc: ptr::null(),
            env: ptr::null(),
            reserved: [0; 8],
        }
    }
}

/// The embedder's side of the engine (`struct apf_host_ops`).
///
/// Called from vCPU threads (all but `resolve` and `kick`), worker threads (`resolve`) and
/// any thread (`kick`), hence `Send + Sync`. A panic in a callback aborts the process: it
/// never unwinds into C. Callbacks must not call into the engine for the same vCPU except
/// as the C documentation allows (a guest's ACK from `inject_ready`).
pub trait Embedder: Send + Sync + 'static {
    /// Make the page of `gpa` present (worker thread, may block; `n_workers > 0`). Must be
    /// idempotent. An error makes the vCPU retry the access synchronously.
    fn resolve(&self, _vcpu: u32, _gpa: u64) -> Result<()> {
        Err(Error::NoSys)
    }
    /// Start making `gpa` present without blocking, then call [`Completer::complete`] with
    /// `token` exactly once, from any thread (`n_workers == 0`). vCPU context.
    fn submit(&self, _vcpu: u32, _token: u32, _gpa: u64) {}
    /// Inject "not present" (x86 \#PF with CR2 = `token`; arm64 the SDEI event).
    fn inject_not_present(&self, vcpu: u32, token: u32);
    /// Raise the "page ready" interrupt `vector` (x86 vector, arm64 PPI).
    fn inject_ready(&self, vcpu: u32, vector: u32);
    /// Make the vCPU come back to the engine soon. Any thread; must not block.
    fn kick(&self, vcpu: u32);
    /// Read guest memory; [`Error::Fault`] for an address that is not guest RAM.
    fn read_guest(&self, gpa: u64, buf: &mut [u8]) -> Result<()>;
    /// Write guest memory; [`Error::Fault`] for an address that is not guest RAM.
    fn write_guest(&self, gpa: u64, buf: &[u8]) -> Result<()>;
}

/// The C context of the callbacks: a thin pointer to this (boxed, so its address is stable).
type EmbedderBox = Arc<dyn Embedder>;

unsafe fn embedder<'a>(ctx: *mut c_void) -> &'a dyn Embedder {
    // SAFETY: `ctx` is the `Box<EmbedderBox>` of a live HostInner (the engine is destroyed
    // before the box is freed, and the engine calls back only while it exists).
    unsafe { &**(ctx as *const EmbedderBox) }
}

fn rc(r: Result<()>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}

unsafe extern "C" fn tr_resolve(ctx: *mut c_void, vcpu: u32, gpa: u64) -> c_int {
    // SAFETY: see embedder().
    no_unwind("resolve", || rc(unsafe { embedder(ctx) }.resolve(vcpu, gpa)))
}
unsafe extern "C" fn tr_submit(ctx: *mut c_void, vcpu: u32, token: u32, gpa: u64) {
    // SAFETY: see embedder().
    no_unwind("submit", || unsafe { embedder(ctx) }.submit(vcpu, token, gpa))
}
unsafe extern "C" fn tr_np(ctx: *mut c_void, vcpu: u32, token: u32) {
    // SAFETY: see embedder().
    no_unwind("inject_not_present", || unsafe { embedder(ctx) }.inject_not_present(vcpu, token))
}
unsafe extern "C" fn tr_ready(ctx: *mut c_void, vcpu: u32, vector: u32) {
    // SAFETY: see embedder().
    no_unwind("inject_ready", || unsafe { embedder(ctx) }.inject_ready(vcpu, vector))
}
unsafe extern "C" fn tr_kick(ctx: *mut c_void, vcpu: u32) {
    // SAFETY: see embedder().
    no_unwind("kick", || unsafe { embedder(ctx) }.kick(vcpu))
}
unsafe extern "C" fn tr_read(ctx: *mut c_void, gpa: u64, buf: *mut c_void, len: u32) -> c_int {
    no_unwind("read_guest", || {
        // SAFETY: the engine passes a buffer of `len` writable bytes for the call's duration.
        let b = unsafe { std::slice::from_raw_parts_mut(buf as *mut u8, len as usize) };
        // SAFETY: see embedder().
        rc(unsafe { embedder(ctx) }.read_guest(gpa, b))
    })
}
unsafe extern "C" fn tr_write(ctx: *mut c_void, gpa: u64, buf: *const c_void, len: u32) -> c_int {
    no_unwind("write_guest", || {
        // SAFETY: the engine passes `len` readable bytes for the call's duration.
        let b = unsafe { std::slice::from_raw_parts(buf as *const u8, len as usize) };
        // SAFETY: see embedder().
        rc(unsafe { embedder(ctx) }.write_guest(gpa, b))
    })
}

static OPS: sys::apf_host_ops = sys::apf_host_ops {
    resolve: Some(tr_resolve),
    submit: Some(tr_submit),
    inject_not_present: Some(tr_np),
    inject_ready: Some(tr_ready),
    kick: Some(tr_kick),
    read_guest: Some(tr_read),
    write_guest: Some(tr_write),
};

/// An engine pointer with whatever keeps it alive (a HostInner, a loopback).
#[derive(Clone)]
pub(crate) struct Engine {
    pub(crate) raw: NonNull<sys::apf_host>,
    pub(crate) owner: Arc<dyn Owner>,
}

/// The owner of an engine: frees it when the last handle is gone; tracks claimed vCPUs.
pub(crate) trait Owner: Send + Sync {
    fn claims(&self) -> &[AtomicBool];
}

// SAFETY: the engine's "any thread" functions are thread-safe by contract (apf/host.h);
// Engine exposes its vCPU-context functions only through Vcpu, which is not Sync and is
// unique per vCPU id; the pointer stays valid while `owner` lives.
unsafe impl Send for Engine {}
// SAFETY: as above.
unsafe impl Sync for Engine {}

impl Engine {
    pub(crate) fn vcpu(&self, id: u32) -> Result<Vcpu> {
        let claims = self.owner.claims();
        let c = claims.get(id as usize).ok_or(Error::Inval)?;
        if c.swap(true, Ordering::AcqRel) {
            return Err(Error::Busy);
        }
        Ok(Vcpu { engine: self.clone(), id, _not_sync: std::marker::PhantomData })
    }

    pub(crate) fn stats(&self, vcpu: u32) -> Result<HostStats> {
        // SAFETY: all-zero is a valid apf_host_vcpu_stats (plain integers).
        let mut s: HostStats = unsafe { std::mem::zeroed() };
        // SAFETY: live engine; `s` is a valid out pointer. Any thread.
        check(unsafe { sys::apf_host_vcpu_stats(self.raw.as_ptr(), vcpu, &mut s) })?;
        Ok(s)
    }
}

struct HostInner {
    raw: NonNull<sys::apf_host>,
    claims: Vec<AtomicBool>,
    _embedder: Box<EmbedderBox>,
}

// SAFETY: HostInner is only an owner (frees the engine); see Engine for the calls.
unsafe impl Send for HostInner {}
// SAFETY: as above; `claims` are atomics.
unsafe impl Sync for HostInner {}

impl Owner for HostInner {
    fn claims(&self) -> &[AtomicBool] {
        &self.claims
    }
}

impl Drop for HostInner {
    fn drop(&mut self) {
        // SAFETY: the last handle is gone: no call is running (Vcpu, Completer and the
        // frontends hold the owner); destroy waits for the workers, then the embedder box
        // is freed after it (field drop order runs after this).
        unsafe { sys::apf_host_destroy(self.raw.as_ptr()) }
    }
}

/// The engine of one VM. Cloning gives another handle to the same engine; it is destroyed
/// when the last handle, [`Vcpu`], [`Completer`] or frontend is dropped.
#[derive(Clone)]
pub struct Host {
    pub(crate) engine: Engine,
}

impl Host {
    /// Create the engine (and start `n_workers` threads).
    pub fn new(cfg: &HostConfig, embedder: Arc<dyn Embedder>) -> Result<Host> {
        let boxed: Box<EmbedderBox> = Box::new(embedder);
        let mut raw = cfg.to_raw();
        raw.ops = &OPS;
        raw.ctx = &*boxed as *const EmbedderBox as *mut c_void;
        let mut h = ptr::null_mut();
        // SAFETY: `raw` is a complete configuration whose ops are 'static and whose ctx
        // outlives the engine (HostInner frees it after apf_host_destroy).
        check(unsafe { sys::apf_host_create(&raw, &mut h) })?;
        let raw = NonNull::new(h).ok_or(Error::NoMem)?;
        let claims = (0..cfg.n_vcpus).map(|_| AtomicBool::new(false)).collect();
        let inner = Arc::new(HostInner { raw, claims, _embedder: boxed });
        Ok(Host { engine: Engine { raw, owner: inner } })
    }

    /// The handle of vCPU `id`, for the vCPU-context calls. One at a time per id:
    /// [`Error::Busy`] while another exists, [`Error::Inval`] for an unknown id.
    pub fn vcpu(&self, id: u32) -> Result<Vcpu> {
        self.engine.vcpu(id)
    }

    /// A handle for the calls allowed from any thread (completion, statistics).
    pub fn completer(&self) -> Completer {
        Completer { engine: self.engine.clone() }
    }

    /// vCPUs of this engine.
    pub fn vcpu_count(&self) -> u32 {
        // SAFETY: live engine; a read of a constant field.
        unsafe { sys::apf_host_vcpu_count(self.engine.raw.as_ptr()) }
    }

    /// Bytes the engine allocated.
    pub fn memory(&self) -> usize {
        // SAFETY: live engine; NULL per_vcpu is allowed. Any thread.
        unsafe { sys::apf_host_memory(self.engine.raw.as_ptr(), ptr::null_mut()) as usize }
    }

    /// Statistics of a vCPU (any thread).
    pub fn stats(&self, vcpu: u32) -> Result<HostStats> {
        self.engine.stats(vcpu)
    }

    pub(crate) fn raw(&self) -> *mut sys::apf_host {
        self.engine.raw.as_ptr()
    }
}

/// What [`Vcpu::fault`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// "Not present" injected: re-enter the guest.
    Async,
    /// Handle the fault synchronously.
    Sync,
    /// Halt the vCPU until [`Vcpu::halted`] returns false, then retry.
    Halt,
}

impl Fault {
    pub(crate) fn from_raw(v: u32) -> Result<Fault> {
        match v {
            sys::APF_FAULT_ASYNC => Ok(Fault::Async),
            sys::APF_FAULT_SYNC => Ok(Fault::Sync),
            sys::APF_FAULT_HALT => Ok(Fault::Halt),
            _ => Err(Error::Proto),
        }
    }
}

/// One vCPU of an engine: the calls the C API allows only in "vCPU context" (the vCPU's
/// thread, never two at once for one vCPU). At most one handle per vCPU id exists.
///
/// `Send` (a vCPU may move between threads while not running) but not `Sync`, and every
/// call takes `&mut self`: calls for one vCPU cannot overlap.
pub struct Vcpu {
    pub(crate) engine: Engine,
    pub(crate) id: u32,
    _not_sync: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl Drop for Vcpu {
    fn drop(&mut self) {
        self.engine.owner.claims()[self.id as usize].store(false, Ordering::Release);
    }
}

impl Vcpu {
    /// The vCPU id.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn h(&self) -> *mut sys::apf_host {
        self.engine.raw.as_ptr()
    }

    /// A stage-2 fault on a page that is not present (`apf_host_vcpu_fault`).
    pub fn fault(&mut self, gpa: u64, guest_state: u32) -> Result<Fault> {
        // SAFETY: live engine, vCPU context guaranteed by &mut self on the unique handle.
        Fault::from_raw(check(unsafe { sys::apf_host_vcpu_fault(self.h(), self.id, gpa, guest_state) })?)
    }

    /// Before entering the guest: deliver "page ready"s; returns how many were posted.
    pub fn before_entry(&mut self, guest_state: u32) -> Result<u32> {
        // SAFETY: as in fault().
        check(unsafe { sys::apf_host_vcpu_before_entry(self.h(), self.id, guest_state) })
    }

    /// The guest ACKed; true if a "page ready" was pending.
    pub fn ack(&mut self) -> Result<bool> {
        // SAFETY: as in fault().
        Ok(check(unsafe { sys::apf_host_vcpu_ack(self.h(), self.id) })? == 1)
    }

    /// Whether a vCPU that got [`Fault::Halt`] must stay halted.
    pub fn halted(&mut self) -> Result<bool> {
        // SAFETY: as in fault().
        Ok(check(unsafe { sys::apf_host_vcpu_halted(self.h(), self.id) })? == 1)
    }

    /// Turn APF on (normally done by a frontend on the guest's behalf).
    pub fn enable(&mut self, area_gpa: u64, flags: u32) -> Result<()> {
        // SAFETY: as in fault().
        check(unsafe { sys::apf_host_vcpu_enable(self.h(), self.id, area_gpa, flags) }).map(|_| ())
    }

    /// Set the "page ready" vector or PPI.
    pub fn set_vector(&mut self, vector: u32) -> Result<()> {
        // SAFETY: as in fault().
        check(unsafe { sys::apf_host_vcpu_set_vector(self.h(), self.id, vector) }).map(|_| ())
    }

    /// Turn APF off; returns the outstanding faults dropped.
    pub fn disable(&mut self) -> Result<u32> {
        // SAFETY: as in fault().
        check(unsafe { sys::apf_host_vcpu_disable(self.h(), self.id) })
    }

    /// vCPU reset.
    pub fn reset(&mut self) -> Result<()> {
        // SAFETY: as in fault().
        check(unsafe { sys::apf_host_vcpu_reset(self.h(), self.id) }).map(|_| ())
    }

    /// Whether APF is on.
    pub fn enabled(&mut self) -> Result<bool> {
        // SAFETY: as in fault().
        Ok(check(unsafe { sys::apf_host_vcpu_enabled(self.h(), self.id) })? == 1)
    }

    /// Save the protocol state for migration (work in flight is not part of it).
    pub fn save(&mut self) -> Result<VcpuState> {
        // SAFETY: all-zero is a valid apf_host_vcpu_state (plain integers).
        let mut st: sys::apf_host_vcpu_state = unsafe { std::mem::zeroed() };
        // SAFETY: as in fault(); `st` is a valid out pointer.
        check(unsafe { sys::apf_host_vcpu_save(self.h(), self.id, &mut st) })?;
        Ok(VcpuState::from_raw(&st))
    }

    /// Restore a saved state (migration destination; queues a wake-all if APF is on).
    pub fn restore(&mut self, st: &VcpuState) -> Result<()> {
        let raw = st.to_raw();
        // SAFETY: as in fault(); `raw` is a valid state pointer for the call.
        check(unsafe { sys::apf_host_vcpu_restore(self.h(), self.id, &raw) }).map(|_| ())
    }

    /// Statistics.
    pub fn stats(&self) -> Result<HostStats> {
        self.engine.stats(self.id)
    }

    /// Whether this handle belongs to the engine `raw`.
    pub(crate) fn check_engine(&self, raw: *mut sys::apf_host) -> Result<()> {
        if self.h() == raw {
            Ok(())
        } else {
            Err(Error::Inval)
        }
    }
}

/// The calls allowed from any thread: completion (embedder-completion mode) and
/// statistics. `Clone`, `Send` and `Sync` (apf_host_complete and apf_host_vcpu_stats are
/// "any thread" functions); keeps the engine alive, so completing after the VM's other
/// handles are gone is still defined.
#[derive(Clone)]
pub struct Completer {
    pub(crate) engine: Engine,
}

impl Completer {
    /// Work started by [`Embedder::submit`] is done: `Ok(())` if the page is present, an
    /// error if it could not be made present (the vCPU retries synchronously).
    /// Errors: [`Error::Inval`] (bad token, engine with workers), [`Error::NoEnt`] (token not
    /// outstanding), [`Error::Already`] (completed already).
    pub fn complete(&self, vcpu: u32, token: u32, status: Result<()>) -> Result<()> {
        let st = match status {
            Ok(()) => 0,
            Err(e) => e.code(),
        };
        // SAFETY: live engine; apf_host_complete is an "any thread" function.
        check(unsafe { sys::apf_host_complete(self.engine.raw.as_ptr(), vcpu, token, st) }).map(|_| ())
    }

    /// Statistics of a vCPU.
    pub fn stats(&self, vcpu: u32) -> Result<HostStats> {
        self.engine.stats(vcpu)
    }
}
