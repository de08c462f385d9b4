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
//!
//! Embedding in a VMM (the same code as in README.md; compiled and run by `cargo test`):
//!
//! ```
//! use std::sync::Arc;
//! use libapf::{Embedder, Fault, Host, HostConfig, KvmX86, KvmX86Config, MsrWrite, Transport};
//!
//! struct Vm; // your VMM: guest memory, vCPU handles, the I/O thread's queue
//! impl Embedder for Vm {
//!     fn submit(&self, _vcpu: u32, _token: u32, _gpa: u64) {} // queue for the I/O thread
//!     fn inject_not_present(&self, _vcpu: u32, _token: u32) {} // #PF, CR2 = token
//!     fn inject_ready(&self, _vcpu: u32, _vector: u32) {}      // the interrupt
//!     fn kick(&self, _vcpu: u32) {}                            // leave KVM_RUN / halt
//!     fn read_guest(&self, _gpa: u64, _buf: &mut [u8]) -> libapf::Result<()> {
//!         Err(libapf::Error::Fault) // copy from guest RAM, Fault outside it
//!     }
//!     fn write_guest(&self, _gpa: u64, _buf: &[u8]) -> libapf::Result<()> {
//!         Err(libapf::Error::Fault)
//!     }
//! }
//!
//! fn main() -> libapf::Result<()> {
//!     // n_workers = 0: no library threads; the I/O thread completes.
//!     let host = Host::new(&HostConfig::new(1, Transport::KvmX86), Arc::new(Vm))?;
//!     let msr = KvmX86::new(&host, &KvmX86Config::default())?;
//!     let completer = host.completer(); // Send + Sync: completer.complete(vcpu, token, Ok(()))
//!     let mut vcpu = host.vcpu(0)?;     // Send, not Sync: moves to the vCPU thread
//!     // An MSR exit:
//!     match msr.wrmsr(&mut vcpu, 0x4b56_4d06, 0xec) {
//!         Ok(MsrWrite::NotMine) => { /* not APF's: handle it elsewhere */ }
//!         Ok(MsrWrite::Handled) => {}
//!         Err(_) => { /* inject #GP */ }
//!     }
//!     // A stage-2 fault on a page that is not present:
//!     let gs = libapf::GS_USER | libapf::GS_IRQ_ON | libapf::GS_PAGING | libapf::GS_IRQCHIP_ON;
//!     match vcpu.fault(0x1_0000_0000, gs)? {
//!         Fault::Async => { /* "not present" injected: re-enter the guest */ }
//!         Fault::Halt => { /* while vcpu.halted()? { wait for a kick } */ }
//!         Fault::Sync => { /* fetch the page now, as without APF */ }
//!     }
//!     vcpu.before_entry(gs)?; // before every entry: may inject "page ready"
//!     let _ = completer.stats(0)?;
//!     Ok(())
//! }
//! ```
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
