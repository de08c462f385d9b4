// SPDX-License-Identifier: MIT
//! Compile-time layout assertions (bindgen's runtime layout tests are off): the sizes and
//! field offsets of the wire structs, which both halves and other implementations read
//! byte for byte, and the sizes of the structs passed across the C ABI. A wrong value
//! fails the build. The numbers are the C compiler's (x86-64 and arm64 Linux alike).
//!
//! `offset_of!` needs Rust 1.77 and Debian 12 ships 1.63, so a field's offset is proved
//! through a union with a byte array, in a constant: with 0xff exactly at bytes
//! [offset, offset + size) the field reads all ones, and with those bytes 0 and all others
//! 0xff it reads 0, so the field occupies exactly those bytes.
use crate::*;
use core::mem::{align_of, size_of, ManuallyDrop};

macro_rules! assert_size {
    ($t:ty, $size:expr, $align:expr) => {
        const _: () = assert!(size_of::<$t>() == $size && align_of::<$t>() == $align);
    };
}

macro_rules! assert_field {
    ($t:ident . $f:ident : $ft:ty, $off:expr) => {
        const _: () = {
            const N: usize = size_of::<$t>();
            const W: usize = size_of::<$ft>();
            #[repr(C)]
            union Bytes {
                b: [u8; N],
                t: ManuallyDrop<$t>,
            }
            const fn read(inside: u8, outside: u8) -> $ft {
                let mut b = [outside; N];
                let mut i = 0;
                while i < W {
                    b[$off + i] = inside;
                    i += 1;
                }
                // SAFETY: every byte of the union is initialised through `b`, and every bit
                // pattern is a valid value of these plain integer-and-array structs.
                let t = ManuallyDrop::into_inner(unsafe { Bytes { b }.t });
                t.$f
            }
            assert!(read(0xff, 0) == !0 && read(0, 0xff) == 0);
        };
    };
}

// ---- the wire: the shared area, the ready ring, trace events ---------------------------
assert_size!(apf_shared_area, APF_AREA_SIZE as usize, 4);
assert_field!(apf_shared_area.flags: u32, APF_AREA_FLAGS_OFFSET as usize);
assert_field!(apf_shared_area.token: u32, APF_AREA_TOKEN_OFFSET as usize);

assert_size!(apf_ring, APF_RING_HEADER_SIZE as usize, 4);
assert_field!(apf_ring.prod: u32, APF_RING_PROD_OFFSET as usize);
assert_field!(apf_ring.size: u32, APF_RING_SIZE_OFFSET as usize);
assert_field!(apf_ring.cons: u32, APF_RING_CONS_OFFSET as usize);
assert_field!(apf_ring.event: u32, APF_RING_EVENT_OFFSET as usize);
// `entries` is the flexible array after the 128-byte header (the size above).

assert_size!(apf_trace_event, 32, 8);
assert_field!(apf_trace_event.time_ns: u64, 0);
assert_field!(apf_trace_event.gpa: u64, 8);
assert_field!(apf_trace_event.vcpu: u32, 16);
assert_field!(apf_trace_event.token: u32, 20);
assert_field!(apf_trace_event.kind: u32, 24);
assert_field!(apf_trace_event.arg: i32, 28);

// ---- migration state (the VMM stores it in its snapshot) -------------------------------
assert_size!(apf_host_vcpu_state, 32, 8);
assert_field!(apf_host_vcpu_state.version: u32, 0);
assert_field!(apf_host_vcpu_state.enabled: u32, 4);
assert_field!(apf_host_vcpu_state.area_gpa: u64, 8);
assert_field!(apf_host_vcpu_state.flags: u32, 16);
assert_field!(apf_host_vcpu_state.vector: u32, 20);
assert_field!(apf_host_vcpu_state.seq: u32, 24);
assert_field!(apf_host_vcpu_state.reserved: u32, 28);

assert_size!(apf_host_kvm_arm64_state, 32, 8);
assert_field!(apf_host_kvm_arm64_state.version: u32, 0);
assert_field!(apf_host_kvm_arm64_state.sdei_event: u32, 4);
assert_field!(apf_host_kvm_arm64_state.irq: u32, 8);
assert_field!(apf_host_kvm_arm64_state.reserved: u32, 12);
assert_field!(apf_host_kvm_arm64_state.control: u64, 16);
assert_field!(apf_host_kvm_arm64_state.ring: u64, 24);

// ---- structs passed across the ABI (sizes, and the fields that move when they grow) ----
assert_size!(apf_host_config, 152, 8);
assert_field!(apf_host_config.n_vcpus: u32, 0);
assert_field!(apf_host_config.n_workers: u32, 8);
assert_size!(apf_host_ops, 56, 8);
assert_size!(apf_host_vcpu_stats, 176, 8);
assert_field!(apf_host_vcpu_stats.outstanding: u32, 96);
assert_field!(apf_host_vcpu_stats.notifications: u64, 112);
assert_size!(apf_host_kvm_x86_config, 8, 4);
assert_size!(apf_host_kvm_arm64_config, 8, 4);
assert_size!(apf_guest_config, 104, 8);
assert_size!(apf_guest_env_ops, 80, 8);
assert_size!(apf_guest_stats, 184, 8);
assert_field!(apf_guest_stats.placeholders_in_use: u32, 104);
assert_field!(apf_guest_stats.ring_entries: u64, 120);
assert_size!(apf_guest_waiter, 40, 8);
assert_size!(apf_guest_lock, 4, 4);
assert_size!(apf_loopback_config, 224, 8);
assert_field!(apf_loopback_config.ppi: u32, 152);
assert_field!(apf_loopback_config.ring_entries: u32, 156);
assert_field!(apf_loopback_config.mmio_np_kind: u32, 160);
