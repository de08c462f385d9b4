// SPDX-License-Identifier: MIT
//! The KVM x86 frontend (`apf/host_kvm_x86.h`): the three APF MSRs and the KVM CPUID leaves.
use std::ptr::{self, NonNull};

use libapf_sys as sys;

use crate::error::{check, Error, Result};
use crate::host::{Engine, Host, Vcpu};
use crate::state::KvmX86State;

/// Frontend configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvmX86Config {
    /// EAX of CPUID 0x40000001 as the VMM exposes it; 0 = ASYNC_PF | ASYNC_PF_INT.
    pub cpuid_features: u32,
    /// The VMM has no in-kernel local APIC (then only EN = 0 is accepted).
    pub no_lapic_in_kernel: bool,
}

/// What [`KvmX86::wrmsr`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsrWrite {
    /// One of the APF MSRs, accepted.
    Handled,
    /// Not an APF MSR: handle it elsewhere.
    NotMine,
}

/// The KVM x86 frontend of one VM, over a [`Host`] created with
/// [`Transport::KvmX86`](crate::Transport::KvmX86). Keeps the engine alive.
///
/// `Send + Sync`: the per-vCPU calls take the vCPU's unique `&mut Vcpu` (so calls for one
/// vCPU never overlap, as the C API requires) and calls for different vCPUs may run in
/// parallel; `cpuid` only reads the configuration.
pub struct KvmX86 {
    raw: NonNull<sys::apf_host_kvm_x86>,
    engine: Engine,
}

// SAFETY: see the type's documentation.
unsafe impl Send for KvmX86 {}
// SAFETY: see the type's documentation.
unsafe impl Sync for KvmX86 {}

impl Drop for KvmX86 {
    fn drop(&mut self) {
        // SAFETY: no call is running (&mut self); the engine outlives it (self.engine).
        unsafe { sys::apf_host_kvm_x86_destroy(self.raw.as_ptr()) }
    }
}

impl KvmX86 {
    /// Create the frontend ([`Error::Inval`] for an engine of another transport).
    pub fn new(host: &Host, cfg: &KvmX86Config) -> Result<KvmX86> {
        let c = sys::apf_host_kvm_x86_config {
            cpuid_features: cfg.cpuid_features,
            no_lapic_in_kernel: cfg.no_lapic_in_kernel as u32,
        };
        let mut fe = ptr::null_mut();
        // SAFETY: live engine, valid config and out pointer.
        check(unsafe { sys::apf_host_kvm_x86_create(host.raw(), &c, &mut fe) })?;
        Ok(KvmX86 { raw: NonNull::new(fe).ok_or(Error::NoMem)?, engine: host.engine.clone() })
    }

    /// The guest wrote an MSR. An error means: inject \#GP (nothing changed).
    pub fn wrmsr(&self, vcpu: &mut Vcpu, msr: u32, value: u64) -> Result<MsrWrite> {
        vcpu.check_engine(self.engine.raw.as_ptr())?;
        // SAFETY: live frontend; vCPU context proved by the unique &mut Vcpu of this engine.
        let r = check(unsafe { sys::apf_host_kvm_x86_wrmsr(self.raw.as_ptr(), vcpu.id(), msr, value) })?;
        Ok(if r == sys::APF_HOST_KVM_X86_NOT_MINE { MsrWrite::NotMine } else { MsrWrite::Handled })
    }

    /// The guest or the VMM reads an MSR: `None` if it is not an APF MSR.
    pub fn rdmsr(&self, vcpu: &mut Vcpu, msr: u32) -> Result<Option<u64>> {
        vcpu.check_engine(self.engine.raw.as_ptr())?;
        let mut v = 0u64;
        // SAFETY: as in wrmsr(); `v` is a valid out pointer.
        let r = check(unsafe { sys::apf_host_kvm_x86_rdmsr(self.raw.as_ptr(), vcpu.id(), msr, &mut v) })?;
        Ok(if r == sys::APF_HOST_KVM_X86_NOT_MINE { None } else { Some(v) })
    }

    /// Answer a KVM CPUID leaf (0x40000000, 0x40000001): EAX, EBX, ECX, EDX, or `None`.
    pub fn cpuid(&self, leaf: u32) -> Option<[u32; 4]> {
        let mut regs = [0u32; 4];
        // SAFETY: live frontend (read-only call); `regs` holds 4 words.
        let r = unsafe { sys::apf_host_kvm_x86_cpuid(self.raw.as_ptr(), leaf, regs.as_mut_ptr()) };
        if r == 1 {
            Some(regs)
        } else {
            None
        }
    }

    /// vCPU reset (INIT/RESET).
    pub fn vcpu_reset(&self, vcpu: &mut Vcpu) -> Result<()> {
        vcpu.check_engine(self.engine.raw.as_ptr())?;
        // SAFETY: as in wrmsr().
        check(unsafe { sys::apf_host_kvm_x86_vcpu_reset(self.raw.as_ptr(), vcpu.id()) }).map(|_| ())
    }

    /// The MSRs to migrate (KVM_GET_MSRS).
    pub fn save(&self, vcpu: &mut Vcpu) -> Result<KvmX86State> {
        let msr_int = self.rdmsr(vcpu, sys::APF_KVM_MSR_ASYNC_PF_INT)?.unwrap_or(0);
        let msr_en = self.rdmsr(vcpu, sys::APF_KVM_MSR_ASYNC_PF_EN)?.unwrap_or(0);
        Ok(KvmX86State { msr_int, msr_en })
    }

    /// Migration destination (KVM_SET_MSRS): INT, then EN, validated as guest writes.
    pub fn restore(&self, vcpu: &mut Vcpu, st: &KvmX86State) -> Result<()> {
        vcpu.check_engine(self.engine.raw.as_ptr())?;
        // SAFETY: as in wrmsr().
        check(unsafe { sys::apf_host_kvm_x86_restore(self.raw.as_ptr(), vcpu.id(), st.msr_int, st.msr_en) })
            .map(|_| ())
    }
}
