// SPDX-License-Identifier: MIT
//! Safe Rust API of libapf, the asynchronous page fault (APF) protocol library.
//!
//! - [`Host`]: the engine of one VM, with the embedder's callbacks as the [`Embedder`]
//!   trait; per-vCPU calls through a [`Vcpu`] handle (one per vCPU id, so calls for one vCPU
//!   never overlap); completion from any thread through a [`Completer`].
//! - The transport frontends: [`KvmX86`] (Linux KVM's MSRs and CPUID leaves) and
//!   [`KvmArm64`] (the SMCCC call, with the ready ring of protocol 1.1).
//! - Migration: [`VcpuState`], [`KvmX86State`], [`KvmArm64State`] as plain data with a
//!   fixed byte encoding for a VMM's snapshot.
//! - [`Loopback`] (feature `loopback`, default): both halves in one process, the real guest
//!   runtime under a small one-task-per-vCPU guest kernel written here.
//!
//! Errors are [`Error`], one variant per `APF_E*` code. The raw bindings are
//! [`libapf_sys`] (re-exported as [`sys`]).
#![deny(unsafe_op_in_unsafe_fn)]

pub use libapf_sys as sys;

mod error;
mod host;
mod kvm_arm64;
mod kvm_x86;
#[cfg(feature = "loopback")]
mod loopback;
mod state;

pub use error::{Error, Result};
pub use host::{
    Completer, Embedder, Fallback, Fault, Host, HostConfig, HostStats, Transport, Vcpu,
    GS_EXC_PENDING, GS_IRQCHIP_ON, GS_IRQ_ON, GS_NESTED, GS_NP_MASKED, GS_PAGING, GS_USER,
};
pub use kvm_arm64::{KvmArm64, KvmArm64Config, SmcccResult};
pub use kvm_x86::{KvmX86, KvmX86Config, MsrWrite};
#[cfg(feature = "loopback")]
pub use loopback::{Asleep, GuestStats, LbVcpu, Loopback, LoopbackConfig, Pager};
pub use state::{KvmArm64State, KvmX86State, VcpuState};

/// libapf's version string (`apf_version_string()`), e.g. "0.2.0".
pub fn version() -> &'static str {
    // SAFETY: apf_version_string() returns a static NUL-terminated string.
    let s = unsafe { std::ffi::CStr::from_ptr(sys::apf_version_string()) };
    s.to_str().unwrap_or("?")
}

/// Abort the process if `f` panics: callbacks called by C must never unwind into it.
pub(crate) fn no_unwind<R>(what: &str, f: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            eprintln!("libapf: a Rust callback ({}) panicked: aborting (it must not unwind into C)", what);
            std::process::abort()
        }
    }
}
