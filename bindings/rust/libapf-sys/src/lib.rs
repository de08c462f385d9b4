// SPDX-License-Identifier: MIT
//! Raw bindings to libapf, the asynchronous page fault (APF) protocol library: the host
//! engine and its transports (`apf/host.h`, `apf/host_transport.h`, `apf/host_kvm_x86.h`,
//! `apf/host_kvm_arm64.h`), the guest runtime (`apf/guest.h`, `apf/guest_backend.h`), the
//! wire (`apf/proto.h`), errors, traces and the loopback.
//!
//! `src/bindings.rs` is generated offline from the public headers by `generate.sh` (Debian's
//! `bindgen` 0.60) and checked in; CI regenerates it and fails on any difference. The
//! headers' `static inline` helpers (`apf_token_is_fault`, `apf_ring_need_notify`...) have
//! no symbol and are not bound. `build.rs` only links (pkg-config, or `APF_LIB_DIR` +
//! `APF_STATIC`). The layout of the wire structs is asserted at compile time (`layout`).
//! The safe API is the `libapf` crate.
#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case, dead_code)]
#![allow(clippy::all)]

include!("bindings.rs");

mod layout;
