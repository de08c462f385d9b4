#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Static musl build, as Firecracker ships: libapf's static libraries built with musl-gcc
# (musl-tools), installed to a prefix, and the install-and-consume program (host + guest)
# linked against them fully statically with musl-gcc -static; the binary must have no
# dynamic section and must run.
#
#   check.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
work=$2
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
command -v musl-gcc >/dev/null || { echo "musl: musl-gcc not found (apt-get install musl-tools)" >&2; exit 1; }
CC=musl-gcc cmake -S "$src" -B "$work/build" -DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_TYPE=Release \
  -DAPF_BUILD_TESTS=OFF -DAPF_BUILD_EXAMPLES=OFF -DAPF_BUILD_DOCS=OFF >"$work/cmake.log"
cmake --build "$work/build" -j "$(nproc 2>/dev/null || echo 2)" >>"$work/cmake.log"
cmake --install "$work/build" --prefix "$work/prefix" >>"$work/cmake.log"
libdir=$(dirname "$(find "$work/prefix" -name 'libapf-host.a' | head -n1)")
# The archive's objects are musl objects (no glibc versioned references).
syms=$(nm "$libdir/libapf-host.a" 2>/dev/null)
if grep -q '@GLIBC' <<<"$syms"; then
  echo "musl: libapf-host.a references glibc symbols" >&2
  exit 1
fi
export PKG_CONFIG_PATH="$libdir/pkgconfig"
# shellcheck disable=SC2046
musl-gcc -static -std=c11 -Wall -Werror -o "$work/consumer-musl" "$src/tests/consumer/main.c" \
  $(pkg-config --static --cflags --libs libapf-host libapf-guest)
dyn=$(readelf -d "$work/consumer-musl" 2>/dev/null || true)
if grep -q 'NEEDED' <<<"$dyn"; then
  echo "musl: the consumer is not static" >&2
  exit 1
fi
"$work/consumer-musl"
echo "musl: OK (libapf-host.a and libapf-guest.a built with musl-gcc; a fully static consumer runs)"
