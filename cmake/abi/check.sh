#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ABI check of the shared libraries: the symbols each one exports (dynamic symbol table,
# with their version nodes) must be exactly the checked-in list cmake/abi/libapf-<part>.symbols,
# and every exported symbol must carry a version node defined in cmake/libapf.map.
# A release that adds symbols appends a node to libapf.map and updates the lists with
# --update; a symbol that disappears or changes node fails here.
#
#   check.sh BUILD_DIR [--update]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=$1
update=${2:-}
nodes=$(grep -oE '^LIBAPF_[0-9.]+' "$here/../libapf.map" | sort -u)
status=0
for part in proto guest host loopback; do
  lib=$(find "$build/src/$part" -maxdepth 1 -name "libapf-$part.so.*.*.*" | head -n1)
  [ -n "$lib" ] || { echo "abi: no shared libapf-$part in $build (BUILD_SHARED_LIBS=ON?)" >&2; exit 1; }
  list="$here/libapf-$part.symbols"
  got=$(nm -D --defined-only --with-symbol-versions "$lib" | awk '{print $3, $2}' | sort)
  # Every symbol versioned, with a node of libapf.map.
  while read -r sym type; do
    if [ "$type" = A ]; then # a version node's own definition
      grep -qx "$sym" <<<"$nodes" || { echo "abi: libapf-$part defines node $sym not in cmake/libapf.map" >&2; status=1; }
      continue
    fi
    ver=${sym#*@@}
    if [ "$ver" = "$sym" ] || ! grep -qx "$ver" <<<"$nodes"; then
      echo "abi: libapf-$part exports $sym: not under a version node of cmake/libapf.map" >&2
      status=1
    fi
  done <<<"$got"
  if [ "$update" = "--update" ]; then
    { echo "# libapf-$part: exported symbols (nm -D --with-symbol-versions; cmake/abi/check.sh)"
      echo "$got"; } >"$list"
    continue
  fi
  if ! diff -u <(grep -v '^#' "$list") <(echo "$got") >"$build/abi-$part.diff"; then
    echo "abi: libapf-$part exports differ from cmake/abi/libapf-$part.symbols:" >&2
    cat "$build/abi-$part.diff" >&2
    status=1
  else
    echo "abi: libapf-$part: $(grep -vc '^#' "$list") symbols as listed, all versioned"
  fi
done
exit $status
