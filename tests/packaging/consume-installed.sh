#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install-and-consume against the installed Debian packages: dpkg -i every .deb of PKG_DIR
# (none of them may be installed before), then build against the system's /usr only
#   1. C with pkg-config (libapf-host, libapf-guest),
#   2. C with find_package(apf),
#   3. Rust: the bindings' cargo test (libapf-sys's build.rs finds libapf-loopback,
#      libapf-host and libapf-guest with pkg-config) and the VMM example,
#   4. the tools apf-trace-check and apf-postcopy,
# and remove (purge) the packages again (also on failure). Root only.
#
#   consume-installed.sh SOURCE_DIR PKG_DIR WORK_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
pkgs=$(cd "$2" && pwd)
work=$3
[ "$(id -u)" = 0 ] || { echo "consume-installed: needs root (dpkg -i)" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
cargo=${CARGO:-$(command -v cargo || echo "$HOME/.cargo/bin/cargo")}

debs=("$pkgs"/*.deb)
names=()
for d in "${debs[@]}"; do
  n=$(dpkg-deb -f "$d" Package)
  if [ -n "$(dpkg-query -W -f='${db:Status-Status}' "$n" 2>/dev/null)" ] &&
     [ "$(dpkg-query -W -f='${db:Status-Status}' "$n")" != not-installed ]; then
    echo "consume-installed: $n is installed already: not a clean system" >&2
    exit 1
  fi
  names+=("$n")
done
cleanup() { dpkg -P "${names[@]}" >"$work/dpkg-remove.log" 2>&1 || cat "$work/dpkg-remove.log" >&2; }
trap cleanup EXIT
dpkg -i "${debs[@]}" >"$work/dpkg-install.log"
echo "installed: ${names[*]}"

# Nothing but the packages' paths from here on (not even /usr/local, where a hand-made
# `cmake --install` may have put another libapf).
unset PKG_CONFIG_PATH APF_LIB_DIR APF_STATIC LD_LIBRARY_PATH CMAKE_PREFIX_PATH
multiarch=$(gcc -print-multiarch 2>/dev/null || true)
export PKG_CONFIG_LIBDIR="/usr/lib/${multiarch:+$multiarch/}pkgconfig:/usr/lib/pkgconfig:/usr/share/pkgconfig"

# 1. C, pkg-config
[ "$(realpath "$(pkg-config --variable=prefix libapf-host)")" = /usr ] ||
  { echo "pkg-config: libapf-host is not the one in /usr" >&2; exit 1; }
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror -o "$work/consumer-pc" "$src/tests/consumer/main.c" \
  $(pkg-config --cflags --libs libapf-host libapf-guest)
"$work/consumer-pc"

# 2. C, find_package(apf)
cmake -S "$src/tests/consumer" -B "$work/cmake" -DCMAKE_IGNORE_PREFIX_PATH=/usr/local >"$work/cmake.log"
cmake --build "$work/cmake" >>"$work/cmake.log"
grep -Eq '^apf_DIR:PATH=/usr/lib/([^/]+/)?cmake/apf$' "$work/cmake/CMakeCache.txt" ||
  { echo "find_package: apf not found in /usr" >&2; exit 1; }
"$work/cmake/consumer"

# 3. Rust via libapf-sys (pkg-config on the installed .pc files)
(cd "$src/bindings/rust" && "$cargo" test --offline --target-dir "$work/target" 2>&1) | tee "$work/cargo.log" |
  grep -E '^test |test result|warning|error'
grep -q 'test result: FAILED' "$work/cargo.log" && exit 1
(cd "$src/bindings/rust" && "$cargo" run --offline -q --target-dir "$work/target" --example vmm)
deps=$(ldd "$work/target/debug/examples/vmm")
if ! grep -Eq 'libapf-host\.so\.0\.2 => /(usr/)?lib/' <<<"$deps"; then
  echo "rust: the example does not use the installed libapf-host" >&2
  exit 1
fi

# 4. The tools
apf-trace-check "$src/tests/proto/traces/good.txt"
apf-postcopy --help >/dev/null
man -w apf-trace-check >/dev/null 2>&1 || [ -f /usr/share/man/man1/apf-trace-check.1.gz ]
echo "consume-installed: OK (C pkg-config, C find_package, Rust libapf-sys, tools; packages removed next)"
