#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Freestanding proof for apf_guest, apf_proto and the apf_host core (engine + transports).
#
#   check.sh SOURCE_DIR WORK_DIR [CC]
#
# 1. Builds the three libraries with APF_FREESTANDING=ON (-ffreestanding -nostdinc: only the
#    compiler's own headers are reachable, so a libc include fails the build).
# 2. Lists the symbols the archives leave undefined and fails on any not in
#    allowed-symbols.txt.
# 3. Links every object (--whole-archive) into a -nostdlib stub that defines only the
#    allow-listed symbols: the link itself must succeed.
set -euo pipefail
src=$(cd "$1" && pwd)
work=$2
cc=${3:-cc}
here="$src/tests/freestanding"
mkdir -p "$work"
work=$(cd "$work" && pwd)

case "$cc" in
  *-gcc) tool_prefix=${cc%gcc} ;;
  *) tool_prefix= ;;
esac
nm_tool=${tool_prefix}nm
ld_tool=${tool_prefix}ld
command -v "$nm_tool" >/dev/null || nm_tool=nm
command -v "$ld_tool" >/dev/null || ld_tool=ld

cmake -S "$src" -B "$work/build" -DAPF_FREESTANDING=ON -DBUILD_SHARED_LIBS=OFF \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release -DAPF_BUILD_DOCS=OFF >"$work/configure.log" \
  || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" -j 2 >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }

archives=("$work/build/src/host/libapf-host.a" "$work/build/src/guest/libapf-guest.a"
  "$work/build/src/proto/libapf-proto.a")
for a in "${archives[@]}"; do
  [ -f "$a" ] || { echo "freestanding: missing $a"; exit 1; }
done

# One relocatable object of everything, then its undefined symbols.
"$ld_tool" -r -o "$work/all.o" --whole-archive "${archives[@]}"
"$nm_tool" -u "$work/all.o" | awk '{print $NF}' | sort -u >"$work/undefined.txt"
grep -v '^#' "$here/allowed-symbols.txt" | sed '/^$/d' | sort -u >"$work/allowed.txt"
extra=$(comm -23 "$work/undefined.txt" "$work/allowed.txt")
echo "freestanding: undefined symbols: $(tr '\n' ' ' <"$work/undefined.txt")"
if [ -n "$extra" ]; then
  echo "freestanding: FAIL: symbols outside the allow-list: $extra"
  exit 1
fi

"$cc" -ffreestanding -nostdlib -static -fno-stack-protector -o "$work/stub" \
  "$here/stub.c" -Wl,--whole-archive "${archives[@]}" -Wl,--no-whole-archive
echo "freestanding: OK ($cc): apf_host core + apf_guest + apf_proto link into a -nostdlib stub"
