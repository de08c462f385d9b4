// SPDX-License-Identifier: MIT
//! The arm64 frontend (`apf/host_kvm_arm64.h`): the SMCCC vendor-hypervisor APF call, with
//! the one-slot area (protocol 1.0) or the ready ring (1.1).
use std::ptr::{self, NonNull};

use libapf_sys as sys;

use crate::error::{check, Error, Result};
use crate::host::{Engine, Host, Vcpu};
use crate::state::KvmArm64State;

/// Frontend configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvmArm64Config {
    /// SDEI event of "not present"; 0 = the default.
    pub sdei_event: u32,
    /// Do not offer the ready ring (protocol 1.0 only).
    pub no_ring: bool,
}

/// What [`KvmArm64::hvc`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmcccResult {
    /// The APF call: return these x0..x3 to the guest.
    Handled([u64; 4]),
    /// Not the APF function ID: handle the call elsewhere.
    NotMine,
}

/// The arm64 frontend of one VM, over a [`Host`] created with
/// [`Transport::KvmArm64`](crate::Transport::KvmArm64). Keeps the engine alive.
///
/// `Send + Sync` for the same reason as [`KvmX86`](crate::KvmX86): per-vCPU calls need the
/// vCPU's unique `&mut Vcpu`.
pub struct KvmArm64 {
    raw: NonNull<sys::apf_host_kvm_arm64>,
    engine: Engine,
}

// SAFETY: see the type's documentation.
unsafe impl Send for KvmArm64 {}
// SAFETY: see the type's documentation.
unsafe impl Sync for KvmArm64 {}

impl Drop for KvmArm64 {
    fn drop(&mut self) {
        // SAFETY: no call is running (&mut self); the engine outlives it (self.engine).
        unsafe { sys::apf_host_kvm_arm64_destroy(self.raw.as_ptr()) }
    }
}

impl KvmArm64 {
    /// Create the frontend ([`Error::Inval`] for an engine of another transport).
    pub fn new(host: &Host, cfg: &KvmArm64Config) -> Result<KvmArm64> {
        let c = sys::apf_host_kvm_arm64_config { sdei_event: cfg.sdei_event, no_ring: cfg.no_ring as u32 };
        let mut fe = ptr::null_mut();
        // SAFETY: live engine, valid config and out pointer.
        check(unsafe { sys::apf_host_kvm_arm64_create(host.raw(), &c, &mut fe) })?;
        Ok(KvmArm64 { raw: NonNull::new(fe).ok_or(Error::NoMem)?, engine: host.engine.clone() })
    }

    /// The guest made an SMCCC call with x0..x3 = `regs`.
    pub fn hvc(&self, vcpu: &mut Vcpu, regs: [u64; 4]) -> Result<SmcccResult> {
        vcpu.check_engine(self.engine.raw.as_ptr())?;
        let mut out = [0u64; 4];
        // SAFETY: live frontend; vCPU context proved by the unique &mut Vcpu of this engine;
        // both arrays hold 4 words.
        let r = check(unsafe { sys::apf_host_kvm_arm64_hvc(self.raw.as_ptr(), vcpu.id(), regs.as_ptr(), out.as_mut_ptr()) })?;
        Ok(if r == sys::APF_HOST_KVM_ARM64_NOT_MINE { SmcccResult::NotMine } else { SmcccResult::Handled(out) })
    }

    /// The bits this frontend adds to the vendor-hyp features query.
    pub fn features() -> u64 {
        // SAFETY: a pure function.
        unsafe { sys::apf_host_kvm_arm64_features() }
    }

    /// vCPU reset (the ring registration is forgotten).
    pub fn vcpu_reset(&self, vcpu: &mut Vcpu) -> Result<()> {
        vcpu.check_engine(self.engine.raw.as_ptr())?;
        // SAFETY: as in hvc().
        check(unsafe { sys::apf_host_kvm_arm64_vcpu_reset(self.raw.as_ptr(), vcpu.id()) }).map(|_| ())
    }

    /// VMM command SET_IRQ: the PPI (16..31) of "page ready".
    pub fn set_irq(&self, vcpu: &mut Vcpu, ppi: u32) -> Result<()> {
        vcpu.check_engine(self.engine.raw.as_ptr())?;
        // SAFETY: as in hvc().
        check(unsafe { sys::apf_host_kvm_arm64_set_irq(self.raw.as_ptr(), vcpu.id(), ppi) }).map(|_| ())
    }

    /// The frontend state to migrate.
    pub fn save(&self, vcpu: &mut Vcpu) -> Result<KvmArm64State> {
        vcpu.check_engine(self.engine.raw.as_ptr())?;
        // SAFETY: all-zero is a valid apf_host_kvm_arm64_state (plain integers).
        let mut st: sys::apf_host_kvm_arm64_state = unsafe { std::mem::zeroed() };
        // SAFETY: as in hvc(); `st` is a valid out pointer.
        check(unsafe { sys::apf_host_kvm_arm64_get_state(self.raw.as_ptr(), vcpu.id(), &mut st) })?;
        Ok(KvmArm64State::from_raw(&st))
    }

    /// Migration destination: all or nothing; a wake-all if the control enables APF.
    pub fn restore(&self, vcpu: &mut Vcpu, st: &KvmArm64State) -> Result<()> {
        vcpu.check_engine(self.engine.raw.as_ptr())?;
        let raw = st.to_raw();
        // SAFETY: as in hvc(); `raw` is valid for the call.
        check(unsafe { sys::apf_host_kvm_arm64_set_state(self.raw.as_ptr(), vcpu.id(), &raw) }).map(|_| ())
    }
}
