// SPDX-License-Identifier: MIT
//! Links libapf; compiles nothing (the bindings are checked in: generate.sh).
//!
//! Two ways, as the Rust VMMs link C libraries:
//!  - `APF_LIB_DIR=DIR`: the libraries in DIR, linked statically with `APF_STATIC=1`
//!    (`libapf-*.a`, e.g. a musl or a static build), dynamically otherwise;
//!  - otherwise `pkg-config` (the binary, honouring `PKG_CONFIG` and `PKG_CONFIG_PATH`) on
//!    `libapf-host`, `libapf-guest` and, with the `loopback` feature, `libapf-loopback`;
//!    `APF_STATIC=1` passes `--static`.
use std::env;
use std::process::Command;

fn main() {
    for v in ["APF_LIB_DIR", "APF_STATIC", "PKG_CONFIG", "PKG_CONFIG_PATH"] {
        println!("cargo:rerun-if-env-changed={}", v);
    }
    println!("cargo:rerun-if-changed=build.rs");
    let stat = env::var("APF_STATIC").map(|v| v == "1").unwrap_or(false);
    let loopback = env::var_os("CARGO_FEATURE_LOOPBACK").is_some();
    let kind = if stat { "static" } else { "dylib" };

    if let Some(dir) = env::var_os("APF_LIB_DIR") {
        println!("cargo:rustc-link-search=native={}", dir.to_string_lossy());
        // Dependents first (static archives are searched in order).
        if loopback {
            println!("cargo:rustc-link-lib={}=apf-loopback", kind);
        }
        for lib in ["apf-guest", "apf-host", "apf-proto"] {
            println!("cargo:rustc-link-lib={}={}", kind, lib);
        }
        if stat {
            println!("cargo:rustc-link-lib=dylib=pthread");
        }
        return;
    }

    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let mut cmd = Command::new(&pkg_config);
    cmd.arg("--libs");
    if stat {
        cmd.arg("--static");
    }
    // The ABI of these bindings: libapf 0.2.x (while the major version is 0, each minor
    // release may change it, and the SONAME carries it).
    let mut modules = vec!["libapf-host", "libapf-guest"];
    if loopback {
        modules.insert(0, "libapf-loopback");
    }
    for m in modules {
        cmd.arg(format!("{} >= 0.2.0", m)).arg(format!("{} < 0.3", m));
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!(
            "libapf-sys: cannot run {}: {} (install pkg-config, or set APF_LIB_DIR)",
            pkg_config, e
        ),
    };
    if !out.status.success() {
        panic!(
            "libapf-sys: {} found no libapf ({}); install libapf-dev, set PKG_CONFIG_PATH, \
             or set APF_LIB_DIR (and APF_STATIC=1) to a directory with the libraries",
            pkg_config,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let libs = String::from_utf8_lossy(&out.stdout);
    for tok in libs.split_whitespace() {
        if let Some(dir) = tok.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={}", dir);
        } else if let Some(lib) = tok.strip_prefix("-l") {
            let k = if stat && lib.starts_with("apf-") { "static" } else { "dylib" };
            println!("cargo:rustc-link-lib={}={}", k, lib);
        } else if tok == "-pthread" {
            println!("cargo:rustc-link-lib=dylib=pthread");
        }
    }
}
