#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build and test the Rust bindings against a libapf build tree (shared libraries): install
# it into BUILD_DIR/rust-prefix, point pkg-config there, run cargo test --offline and the
# VMM example.
#
#   bash bindings/rust/test.sh [BUILD_DIR]      (default: build)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=$(cd "${1:-build}" && pwd)
cargo=${CARGO:-$(command -v cargo || echo "$HOME/.cargo/bin/cargo")}
cmake --install "$build" --prefix "$build/rust-prefix" >/dev/null
pc=$(dirname "$(find "$build/rust-prefix" -name libapf-loopback.pc | head -n1)")
export PKG_CONFIG_PATH="$pc" LD_LIBRARY_PATH="$(dirname "$pc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cd "$here"
"$cargo" test --offline --target-dir "$build/rust-target"
"$cargo" run --offline -q --target-dir "$build/rust-target" --example vmm
