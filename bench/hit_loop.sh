#!/usr/bin/env bash
# A quick shell-loop comparison on this machine: a cachepot hit against ccache's and against `cp` of
# the object, for gcc and clang, then misses against the plain compiler. Each timing of the shell loop
# includes the fork of `date` (about 1 ms); compare the columns, not the absolute figures. The
# "interleaved" line has no shell or `date` in the measurement (bench/interleave.c: medians). Then,
# per hit, figures that other work on the machine does not blur: CPU time and page faults (`perf stat -r N -e
# task-clock,page-faults`), system calls (`strace -c`) and peak RSS (`/usr/bin/time -v`).
#   bash bench/hit_loop.sh target/release/cachepot [N]
set -euo pipefail
N=${2:-100}
for t in ccache perf strace /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "hit_loop: $t is missing (apt-get install ccache linux-perf strace time)" >&2; exit 1; }
done
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
# Named cachepot whatever the file is called: any other name is taken for a compiler to masquerade as.
mkdir "$W/bin"
cp "$1" "$W/bin/cachepot"
CP="$W/bin/cachepot"
gcc -O2 -o "$W/interleave" "$(dirname "$0")/interleave.c"
cd "$W"
ms() { echo "$(( $1 / N / 1000 )) us"; }
# "<task-clock ms> <page faults>" of one command, as the mean of N runs.
perf_hit() {
  perf stat -r "$N" -e task-clock,page-faults -x, "$@" 2>&1 >/dev/null \
    | awk -F, '$3 == "task-clock" { t = $1 } $3 == "page-faults" { f = $1 } END { printf "%.2f ms CPU, %d faults", t, f }'
}
# System calls of one run (strace -c total) and its peak RSS in KiB.
calls() { strace -c -o "$W/strace.txt" "$@" >/dev/null 2>&1; awk '$NF == "total" { print $(NF-2) }' "$W/strace.txt"; }
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
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
  echo "$cc hit, interleaved, no shell (bench/interleave.c):" \
    $("$W/interleave" "$N" "$CP" "$cc" -O2 -c a.c -o a.o -- ccache "$cc" -O2 -c a.c -o c.o -- cp plain.o d.o \
      | sed 's|^[^:]*/||' | tr '\n' ';')
  echo "$cc hit, perf stat -r $N: cachepot $(perf_hit "$CP" "$cc" -O2 -c a.c -o a.o);" \
    "ccache $(perf_hit ccache "$cc" -O2 -c a.c -o c.o); cp $(perf_hit cp plain.o d.o)"
  echo "$cc hit, system calls (strace -c): cachepot $(calls "$CP" "$cc" -O2 -c a.c -o a.o)," \
    "ccache $(calls ccache "$cc" -O2 -c a.c -o c.o), cp $(calls cp plain.o d.o);" \
    "peak RSS: cachepot $(rss "$CP" "$cc" -O2 -c a.c -o a.o) KiB, ccache $(rss ccache "$cc" -O2 -c a.c -o c.o) KiB"
  p=0; m=0
  for i in $(seq 10); do
    printf '#include <stdio.h>\nint f(int x){return printf("%%d",x+%d);}\n' "$i$RANDOM" > m.c
    s=$(date +%s%N); "$cc" -O2 -c m.c -o p.o; e=$(date +%s%N); p=$((p + e - s))
    s=$(date +%s%N); "$CP" "$cc" -O2 -c m.c -o m.o; e=$(date +%s%N); m=$((m + e - s))
  done
  echo "$cc miss, mean of 10: plain $((p / 10000000)) ms, cachepot $((m / 10000000)) ms"
done
