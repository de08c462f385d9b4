#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ABI check of the shared libraries (BUILD_DIR: a shared build, e.g. the packages' build-deb):
#  1. the symbols each one exports (dynamic symbol table, with their version nodes) must be
#     exactly the checked-in list cmake/abi/libapf-<part>.symbols, and every exported symbol
#     must carry a version node defined in cmake/libapf.map;
#  2. abidiff (abigail-tools) against the checked-in baseline cmake/abi/libapf-<part>.abi
#     (abidw's XML), restricted to the types of the public headers: a changed size, member
#     offset or signature of anything reachable from include/apf fails; internal types do not
#     count.
# A release that changes the ABI appends a node to libapf.map (see its header) and updates
# both baselines with --update; anything else that changes them fails here.
#
#   check.sh BUILD_DIR [--update]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$1
update=${2:-}
nodes=$(grep -oE '^LIBAPF_[0-9.]+' "$here/../libapf.map" | sort -u)
command -v abidiff >/dev/null || { echo "abi: abidiff not found (apt-get install abigail-tools)" >&2; exit 1; }
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
  abi="$here/libapf-$part.abi"
  if [ "$update" = "--update" ]; then
    { echo "# libapf-$part: exported symbols (nm -D --with-symbol-versions; cmake/abi/check.sh)"
      echo "$got"; } >"$list"
    # Source paths relative to the tree (a build with -ffile-prefix-map has them already).
    abidw --no-corpus-path "$lib" | sed "s#$top/#./#g" >"$abi"
    continue
  fi
  if ! abidiff --headers-dir1 "$top/include/apf" --headers-dir2 "$top/include/apf" \
      "$abi" "$lib" >"$build/abidiff-$part.txt" 2>&1; then
    echo "abi: abidiff: libapf-$part differs from cmake/abi/libapf-$part.abi:" >&2
    cat "$build/abidiff-$part.txt" >&2
    status=1
  fi
  if ! diff -u <(grep -v '^#' "$list") <(echo "$got") >"$build/abi-$part.diff"; then
    echo "abi: libapf-$part exports differ from cmake/abi/libapf-$part.symbols:" >&2
    cat "$build/abi-$part.diff" >&2
    status=1
  else
    echo "abi: libapf-$part: $(grep -vc '^#' "$list") symbols as listed, all versioned; abidiff: no change"
  fi
done
exit $status
