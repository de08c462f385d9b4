#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build libapf's Debian packages from the tree: a Release build for /usr, then CPack's DEB
# generator (cmake/ApfPackaging.cmake). The .deb files land in BUILD_DIR/packages.
#
#   bash cmake/packaging/build-debs.sh [BUILD_DIR]      (default: build-deb)
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-build-deb}
jobs=$(nproc 2>/dev/null || echo 2)
# Debian's build flags with every hardening feature (as a debian/rules build would use);
# read by CMake when BUILD_DIR is first configured.
if command -v dpkg-buildflags >/dev/null; then
  eval "$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --export=sh)"
  export CFLAGS="$CFLAGS $CPPFLAGS"
fi
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
  -DAPF_BUILD_TESTS=OFF -DAPF_BUILD_DOCS=OFF -DAPF_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build" -j "$jobs" --target apf_proto apf_guest apf_host apf_loopback \
  apf-postcopy apf-trace-check >/dev/null
rm -rf "$build/packages"
(cd "$build" && cpack -G DEB >/dev/null)
ls "$build"/packages/*.deb
