#!/usr/bin/env bash
# A quick shell-loop comparison on this machine: a cachepot hit against ccache's and against `cp` of
# the object, for gcc and clang, then misses against the plain compiler. Each timing includes the
# fork of `date` (about 1 ms); compare the columns, not the absolute figures.
#   bash bench/hit_loop.sh target/release/cachepot [N]
set -euo pipefail
CP=$(readlink -f "$1")
N=${2:-100}
command -v ccache >/dev/null || { echo "hit_loop: ccache is missing (apt-get install ccache)" >&2; exit 1; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
ms() { echo "$(( $1 / N / 1000 )) us"; }
printf '#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\nint f(int x){char b[16]; snprintf(b, sizeof b, "%%d", x); return (int)strlen(b) + atoi(b);}\n' > a.c
touch -d '5 seconds ago' a.c
for cc in gcc clang; do
  export CACHEPOT_DIR="$W/cp-$cc" CCACHE_DIR="$W/cc-$cc"
  "$cc" -O2 -c a.c -o plain.o
  "$CP" "$cc" -O2 -c a.c -o a.o
  ccache "$cc" -O2 -c a.c -o c.o
  a=0; b=0; c=0
  for _ in $(seq "$N"); do
    s=$(date +%s%N); "$CP" "$cc" -O2 -c a.c -o a.o; e=$(date +%s%N); a=$((a + e - s))
    s=$(date +%s%N); ccache "$cc" -O2 -c a.c -o c.o; e=$(date +%s%N); b=$((b + e - s))
    s=$(date +%s%N); cp plain.o d.o; e=$(date +%s%N); c=$((c + e - s))
  done
  echo "$cc hit, mean of $N: cachepot $(ms $a), ccache $(ms $b), cp $(ms $c)"
  p=0; m=0
  for i in $(seq 10); do
    printf '#include <stdio.h>\nint f(int x){return printf("%%d",x+%d);}\n' "$i$RANDOM" > m.c
    s=$(date +%s%N); "$cc" -O2 -c m.c -o p.o; e=$(date +%s%N); p=$((p + e - s))
    s=$(date +%s%N); "$CP" "$cc" -O2 -c m.c -o m.o; e=$(date +%s%N); m=$((m + e - s))
  done
  echo "$cc miss, mean of 10: plain $((p / 10000000)) ms, cachepot $((m / 10000000)) ms"
done
