#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every `unsafe` block and `unsafe impl` in the Rust crates carries a `// SAFETY:` comment
# on one of the comment lines right above it (or on its own line).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bad=0
n=0
while IFS= read -r f; do
  out=$(awk -v F="${f#"$here"/}" '
    { line[NR] = $0 }
    /unsafe[ ]*\{/ || /unsafe impl/ {
      n++
      ok = (line[NR] ~ /SAFETY:/)
      for (i = NR - 1; i > 0 && line[i] ~ /^[ \t]*(\/\/|#\[)/; i--)
        if (line[i] ~ /\/\/ SAFETY:/) ok = 1
      if (!ok) print F ":" NR ": unsafe without a SAFETY comment: " $0
    }
    END { print "#count " n+0 }' "$f")
  n=$((n + $(grep '^#count' <<<"$out" | cut -d' ' -f2)))
  if grep -v '^#count' <<<"$out" | grep -q .; then
    grep -v '^#count' <<<"$out" >&2
    bad=1
  fi
done < <(find "$here/libapf/src" "$here/libapf/tests" "$here/libapf/examples" "$here/libapf-sys/src/layout.rs" -name '*.rs' | sort)
[ "$bad" = 0 ] && echo "rust: $n unsafe blocks/impls, each with a SAFETY comment"
exit "$bad"
