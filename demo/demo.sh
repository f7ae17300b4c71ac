#!/bin/sh
# A small demo build through the installed shim directory: built twice from clean, the first build
# misses, the second is all hits. Uses its own cache directory, so your real cache is untouched.
set -eu
PREFIX="${PREFIX:-/usr/local}"
shims="$PREFIX/lib/cachepot"
for tool in make cc; do
  command -v "$tool" >/dev/null 2>&1 || { echo "demo: $tool not found: apt-get install make gcc (Debian)" >&2; exit 1; }
done
[ -x "$PREFIX/bin/cachepot" ] || { echo "demo: $PREFIX/bin/cachepot not found; run ./install.sh first (or set PREFIX)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/cachepot-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CACHEPOT_DIR="$work/cache"
cd "$work"
for i in 1 2 3 4; do
  printf '#include <stdio.h>\nvoid part%d(void) { printf("part %d\\n"); }\n' "$i" "$i" > "part$i.c"
done
printf 'void part1(void); void part2(void); void part3(void); void part4(void);\nint main(void) { part1(); part2(); part3(); part4(); return 0; }\n' > main.c
# shellcheck disable=SC2016 # make's $(OBJS) and $@, not the shell's
printf 'OBJS = main.o part1.o part2.o part3.o part4.o\ndemo: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\nclean:\n\trm -f *.o demo\n' > Makefile
export PATH="$shims:$PATH"
echo "== first build (cold cache: misses) =="
make -s -j2 CC=cc && ./demo
"$PREFIX/bin/cachepot" --show-stats | sed -n '2,6p'
make -s clean
echo "== second build from clean (warm cache: hits) =="
make -s -j2 CC=cc && ./demo
"$PREFIX/bin/cachepot" --show-stats | sed -n '2,6p'
