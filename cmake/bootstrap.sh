#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One command for a newcomer on a fresh Debian/Ubuntu machine:
#
#   bash cmake/bootstrap.sh run [apf-postcopy options]   set up, build, run the main program
#   bash cmake/bootstrap.sh test [ctest options]         set up, build, run every test suite
#
# "Set up" installs the missing build dependencies with apt-get when run as root (or prints
# the command to run when not), then configures and builds in ./build (APF_BUILD_DIR to
# change it).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=${1:-}
[ $# -gt 0 ] && shift
build=${APF_BUILD_DIR:-$top/build}

case "$mode" in
  run|test) ;;
  *) echo "usage: bash cmake/bootstrap.sh run|test [args...]" >&2; exit 2 ;;
esac

# Debian package names of what the build and the tests need.
packages=(build-essential cmake pkg-config check linux-libc-dev doxygen)
missing=()
command -v cc >/dev/null || missing+=(build-essential)
command -v cmake >/dev/null || missing+=(cmake)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v doxygen >/dev/null || missing+=(doxygen)
if command -v pkg-config >/dev/null && ! pkg-config --exists check; then missing+=(check); fi
if ! command -v pkg-config >/dev/null; then missing+=(check); fi
[ -e /usr/include/x86_64-linux-gnu/asm/kvm_para.h ] || [ -e /usr/include/asm/kvm_para.h ] ||
  [ "$(uname -m)" != x86_64 ] || missing+=(linux-libc-dev)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || echo "bootstrap: apt-get update failed; using the package lists at hand" >&2
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  else
    echo "bootstrap: missing ${missing[*]}; install them first, e.g.:" >&2
    echo "  sudo apt-get install -y ${packages[*]}" >&2
    exit 1
  fi
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$jobs"

case "$mode" in
  run)
    prog="$build/examples/postcopy/apf-postcopy"
    [ -x "$prog" ] || { echo "bootstrap: $prog was not built" >&2; exit 1; }
    exec "$prog" "$@"
    ;;
  test)
    cd "$build"
    exec ctest --output-on-failure -j "$jobs" "$@"
    ;;
esac
