#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install libapf from BUILD_DIR into a temporary prefix and build the consumer in this
# folder against it twice: with find_package(apf) and with pkg-config.
#
#   run.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
work=$3
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
prefix="$work/prefix"
here="$src/tests/consumer"

cmake --install "$build" --prefix "$prefix" >"$work/install.log"
shared=$(grep -E '^BUILD_SHARED_LIBS:' "$build/CMakeCache.txt" | cut -d= -f2)
libdir=$(dirname "$(find "$prefix" -name 'libapf-host.*' | head -n1)")
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# 1. CMake package
cmake -S "$here" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" >"$work/cmake.log" \
  || { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/cmake-build" >>"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
"$work/cmake-build/consumer"

# 2. pkg-config (the .pc files locate the prefix relative to themselves)
export PKG_CONFIG_PATH="$libdir/pkgconfig"
static=()
case "$shared" in OFF|FALSE|0|NO) static=(--static) ;; esac
pkg-config --exists libapf-host libapf-guest
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror -o "$work/consumer-pc" "$here/main.c" \
  $(pkg-config "${static[@]}" --cflags --libs libapf-host libapf-guest)
"$work/consumer-pc"
echo "install_consume: OK (find_package and pkg-config, BUILD_SHARED_LIBS=$shared)"
