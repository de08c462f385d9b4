#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Rust VMM example linked statically against libapf, the second way libapf-sys links
# (APF_LIB_DIR + APF_STATIC=1, as a VMM shipping one binary does): build the static
# libraries, build the example against them, check that it needs no libapf shared object,
# run it. (The fully static musl variant of the C side: tests/musl/check.sh.)
#
#   check-static.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
work=$2
mkdir -p "$work"
work=$(cd "$work" && pwd)
cargo=${CARGO:-$(command -v cargo || echo "$HOME/.cargo/bin/cargo")}
cmake -S "$src" -B "$work/build" -DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_TYPE=Release \
  -DAPF_BUILD_TESTS=OFF -DAPF_BUILD_EXAMPLES=OFF -DAPF_BUILD_DOCS=OFF >"$work/cmake.log"
cmake --build "$work/build" -j "$(nproc 2>/dev/null || echo 2)" >>"$work/cmake.log"
cmake --install "$work/build" --prefix "$work/prefix" >>"$work/cmake.log"
libdir=$(dirname "$(find "$work/prefix" -name 'libapf-host.a' | head -n1)")
(cd "$src/bindings/rust" && env -u PKG_CONFIG_PATH APF_LIB_DIR="$libdir" APF_STATIC=1 \
  "$cargo" build --offline -q --target-dir "$work/target" --example vmm)
exe="$work/target/debug/examples/vmm"
needed=$(readelf -d "$exe" | grep NEEDED || true)
if grep -E 'libapf' <<<"$needed"; then
  echo "rust static: the example still needs a libapf shared object" >&2
  exit 1
fi
syms=$(nm "$exe")
grep -q ' T apf_host_create$' <<<"$syms" || { echo "rust static: apf_host_create not linked in" >&2; exit 1; }
"$exe" --transport arm64-ring --vcpus 2 --pages 64
echo "rust static: OK (the example links libapf-*.a, no libapf shared object needed)"
