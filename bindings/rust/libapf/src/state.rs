// SPDX-License-Identifier: MIT
//! Migration state as plain data, with a fixed little-endian byte encoding (the C structs'
//! layout, versioned) that a VMM can put in its snapshot.
use libapf_sys as sys;

use crate::error::{Error, Result};

fn get32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}
fn get64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// A vCPU's protocol state in the engine (`struct apf_host_vcpu_state`). Work in flight is
/// not part of it: the destination sends a wake-all instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VcpuState {
    /// APF on.
    pub enabled: bool,
    /// Shared area address (when enabled).
    pub area_gpa: u64,
    /// `APF_EN_*` bits in force.
    pub flags: u32,
    /// "Page ready" vector or PPI; 0 = not set.
    pub vector: u32,
    /// Next token sequence number (keeps tokens fresh after a restore).
    pub seq: u32,
}

impl VcpuState {
    /// Size of [`VcpuState::to_bytes`].
    pub const BYTES: usize = 32;

    pub(crate) fn from_raw(s: &sys::apf_host_vcpu_state) -> VcpuState {
        VcpuState {
            enabled: s.enabled != 0,
            area_gpa: s.area_gpa,
            flags: s.flags,
            vector: s.vector,
            seq: s.seq,
        }
    }

    pub(crate) fn to_raw(self) -> sys::apf_host_vcpu_state {
        sys::apf_host_vcpu_state {
            version: sys::APF_HOST_STATE_VERSION,
            enabled: self.enabled as u32,
            area_gpa: self.area_gpa,
            flags: self.flags,
            vector: self.vector,
            seq: self.seq,
            reserved: 0,
        }
    }

    /// The C struct's bytes (little-endian, version `APF_HOST_STATE_VERSION` first).
    pub fn to_bytes(&self) -> [u8; 32] {
        let r = self.to_raw();
        let mut b = [0u8; 32];
        b[0..4].copy_from_slice(&r.version.to_le_bytes());
        b[4..8].copy_from_slice(&r.enabled.to_le_bytes());
        b[8..16].copy_from_slice(&r.area_gpa.to_le_bytes());
        b[16..20].copy_from_slice(&r.flags.to_le_bytes());
        b[20..24].copy_from_slice(&r.vector.to_le_bytes());
        b[24..28].copy_from_slice(&r.seq.to_le_bytes());
        b
    }

    /// Decode [`VcpuState::to_bytes`]: [`Error::Inval`] for a wrong length or version, an
    /// `enabled` other than 0/1, or a non-zero reserved word. (The engine validates the rest
    /// at restore.)
    pub fn from_bytes(b: &[u8]) -> Result<VcpuState> {
        if b.len() != Self::BYTES
            || get32(b, 0) != sys::APF_HOST_STATE_VERSION
            || get32(b, 4) > 1
            || get32(b, 28) != 0
        {
            return Err(Error::Inval);
        }
        Ok(VcpuState {
            enabled: get32(b, 4) == 1,
            area_gpa: get64(b, 8),
            flags: get32(b, 16),
            vector: get32(b, 20),
            seq: get32(b, 24),
        })
    }
}

/// The KVM x86 frontend's part of a vCPU's state: the two MSRs as KVM_GET_MSRS reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KvmX86State {
    /// MSR_KVM_ASYNC_PF_INT.
    pub msr_int: u64,
    /// MSR_KVM_ASYNC_PF_EN.
    pub msr_en: u64,
}

impl KvmX86State {
    /// `msr_int`, then `msr_en`, little-endian.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&self.msr_int.to_le_bytes());
        b[8..16].copy_from_slice(&self.msr_en.to_le_bytes());
        b
    }

    /// Decode [`KvmX86State::to_bytes`] ([`Error::Inval`] for a wrong length).
    pub fn from_bytes(b: &[u8]) -> Result<KvmX86State> {
        if b.len() != 16 {
            return Err(Error::Inval);
        }
        Ok(KvmX86State { msr_int: get64(b, 0), msr_en: get64(b, 8) })
    }
}

/// The arm64 frontend's state of a vCPU (`struct apf_host_kvm_arm64_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KvmArm64State {
    /// Protocol version.
    pub version: u32,
    /// SDEI event of "not present".
    pub sdei_event: u32,
    /// PPI of "page ready", 0 = not set.
    pub irq: u32,
    /// Control value as the guest last enabled it.
    pub control: u64,
    /// Ring registration (page | log2 entries), 0 = none.
    pub ring: u64,
}

impl KvmArm64State {
    pub(crate) fn from_raw(s: &sys::apf_host_kvm_arm64_state) -> KvmArm64State {
        KvmArm64State {
            version: s.version,
            sdei_event: s.sdei_event,
            irq: s.irq,
            control: s.control,
            ring: s.ring,
        }
    }

    pub(crate) fn to_raw(self) -> sys::apf_host_kvm_arm64_state {
        sys::apf_host_kvm_arm64_state {
            version: self.version,
            sdei_event: self.sdei_event,
            irq: self.irq,
            reserved: 0,
            control: self.control,
            ring: self.ring,
        }
    }

    /// The C struct's 32 bytes, little-endian.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..4].copy_from_slice(&self.version.to_le_bytes());
        b[4..8].copy_from_slice(&self.sdei_event.to_le_bytes());
        b[8..12].copy_from_slice(&self.irq.to_le_bytes());
        b[16..24].copy_from_slice(&self.control.to_le_bytes());
        b[24..32].copy_from_slice(&self.ring.to_le_bytes());
        b
    }

    /// Decode [`KvmArm64State::to_bytes`] ([`Error::Inval`] for a wrong length or a
    /// non-zero reserved word).
    pub fn from_bytes(b: &[u8]) -> Result<KvmArm64State> {
        if b.len() != 32 || get32(b, 12) != 0 {
            return Err(Error::Inval);
        }
        Ok(KvmArm64State {
            version: get32(b, 0),
            sdei_event: get32(b, 4),
            irq: get32(b, 8),
            control: get64(b, 16),
            ring: get64(b, 24),
        })
    }
}
