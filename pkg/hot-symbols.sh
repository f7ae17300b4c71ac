#!/usr/bin/env bash
# Write pkg/hot-symbols.txt: the functions a hit runs, in the order it first runs them, for the
# linker to lay out together (install.sh passes it to LLD as --symbol-ordering-file). A hit touches
# a few hundred functions spread over 6 MB of code; each first touch of a 64 KiB window is a page
# fault that maps the whole window, so scattered, they made a small C hit's peak RSS ~3.8 MiB of
# which ~3.3 MiB was code it never ran. Together they fit in well under 1 MiB.
# Run it after changes to the hit path (a missing or renamed symbol only loses its place):
#   bash pkg/hot-symbols.sh "$(sh install.sh --build-only)"
# Needs valgrind, gcc, clang and rustc.
set -euo pipefail
BIN=$(realpath "$1")
OUT="$(cd "$(dirname "$0")" && pwd)/hot-symbols.txt"
for t in valgrind gcc clang rustc; do
  command -v "$t" >/dev/null || { echo "hot-symbols: $t is missing" >&2; exit 1; }
done
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir "$W/bin" "$W/out"
cp "$BIN" "$W/bin/cachepot"
CP="$W/bin/cachepot"
export CACHEPOT_DIR="$W/cache"
cd "$W"
printf '#include <stdio.h>\n#include <string.h>\nint f(const char *s) { return printf("%%zu\\n", strlen(s)); }\n' > a.c
printf 'pub fn f(s: &str) -> usize { s.len() }\n' > lib.rs
touch -d '5 seconds ago' a.c lib.rs
n=0
# Each call twice: a miss, then the hit that is recorded.
hit() {
  "$CP" "$@" >/dev/null 2>&1
  n=$((n + 1))
  valgrind --tool=callgrind --demangle=no --compress-strings=no --callgrind-out-file="$W/cg.$n" "$CP" "$@" >/dev/null 2>&1
}
hit gcc -O2 -c a.c -o a.o
hit clang -O2 -c a.c -o b.o
hit gcc -O2 -c a.c -MD -MF a.d -o c.o
hit rustc --crate-name hot --edition=2021 lib.rs --crate-type lib --emit=dep-info,metadata,link -C opt-level=3 \
  -C metadata=0123456789abcdef -C extra-filename=-0123456789abcdef --out-dir "$W/out"
[ "$("$CP" --show-stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["hits"])')" = "$n" ] \
  || { echo "hot-symbols: not every recorded call was a hit" >&2; exit 1; }
for i in $(seq "$n"); do sed -n 's/^fn=//p' "$W/cg.$i"; done | grep -v '^0x' | awk '!seen[$0]++' > "$OUT"
echo "hot-symbols: $(wc -l < "$OUT") functions from $n hits in $OUT"
