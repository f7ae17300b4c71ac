#!/usr/bin/env bash
# The CI case: a warm cache, a fresh build dir. libgit2 (its C sources as bundled in the crates.io
# crate libgit2-sys), configured Debug with CMake + Ninja, each cache as CMAKE_C_COMPILER_LAUNCHER:
# build once to fill the cache, wipe the build dir, configure again, rebuild. Reports the rebuild's
# wall time (mean of RUNS, cachepot and ccache interleaved) and, from one more rebuild under
# `strace -f -c`, its stat-family system calls, for cachepot and ccache in one run, with ratios.
#   bash bench/fresh_build_dir.sh target/release/cachepot [RUNS]
# Needs cmake, ninja, ccache, strace, gcc, and cargo (to fetch libgit2-sys from crates.io once).
set -euo pipefail
shopt -s inherit_errexit
RUNS=${2:-3}
for t in cmake ninja ccache strace gcc cargo; do
  command -v "$t" >/dev/null || { echo "fresh_build_dir: $t is missing" >&2; exit 1; }
done
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
find_sources() { ls -d "$CARGO_HOME"/registry/src/*/libgit2-sys-*/libgit2 2>/dev/null | sort -V | tail -1; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
# Named cachepot whatever the file is called: any other name is taken for a compiler to masquerade as.
mkdir "$W/bin"
cp "$1" "$W/bin/cachepot"
CP="$W/bin/cachepot"
SRC=$(find_sources || true)
if [ -z "$SRC" ]; then
  mkdir -p "$W/fetch/src" && touch "$W/fetch/src/lib.rs"
  printf '[package]\nname = "fetch-libgit2"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nlibgit2-sys = "0.18"\n' \
    > "$W/fetch/Cargo.toml"
  (cd "$W/fetch" && cargo fetch -q)
  SRC=$(find_sources)
fi
# The sources and every build dir live under $W/p: the base directory both caches key relative to.
P="$W/p"
mkdir -p "$P"
cp -r "$SRC" "$P/src"
find "$P/src" -exec touch -d '10 seconds ago' {} +
export CACHEPOT_DIR="$W/cachepot-cache" CACHEPOT_BASEDIRS="$P"
export CCACHE_DIR="$W/ccache-cache" CCACHE_BASEDIR="$P" CCACHE_NOHASHDIR=1
configure() { # launcher
  rm -rf "$P/build"
  cmake -S "$P/src" -B "$P/build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=gcc \
    -DCMAKE_C_COMPILER_LAUNCHER="$1" -DBUILD_TESTS=OFF -DBUILD_CLI=OFF -DUSE_HTTPS=OFF -DUSE_SSH=OFF \
    -DUSE_BUNDLED_ZLIB=ON -DREGEX_BACKEND=builtin -DUSE_HTTP_PARSER=builtin >/dev/null
}
# Seconds (3 decimals) that `ninja` takes in a freshly configured build dir.
build() { # launcher
  configure "$1"
  local s e
  s=$(date +%s%N); ninja -C "$P/build" >"$W/ninja.log" || { tail "$W/ninja.log" >&2; exit 1; }; e=$(date +%s%N)
  echo "scale=3; ($e - $s) / 1000000000" | bc
}
stats_calls() { # launcher -> "total failing" stat-family calls of one fresh-dir build
  configure "$1"
  strace -f -c -o "$W/strace.txt" -e trace=statx,stat,newfstatat,lstat,fstatat64 ninja -C "$P/build" >"$W/ninja.log" \
    || { tail "$W/ninja.log" >&2; exit 1; }
  # strace -c columns: % time, seconds, usecs/call, calls, [errors,] syscall.
  awk '$NF ~ /^(statx|stat|newfstatat|lstat|fstatat64)$/ { t += $4; if (NF == 6) f += $5 }
       END { printf "%d %d\n", t, f }' "$W/strace.txt"
}
configure env
objects=$(ninja -C "$P/build" -t commands | grep -c ' -c ')
echo "libgit2 $(basename "$(dirname "$SRC")"), $objects compiles; $(gcc --version | head -1); $(ccache --version | head -1); cachepot $("$CP" --version 2>/dev/null | head -1)"
ccache -M 5G >/dev/null
cold_cp=$(build "$CP"); cold_cc=$(build ccache)
echo "cold build (fills the cache): cachepot ${cold_cp}s, ccache ${cold_cc}s"
a=0; b=0
for i in $(seq "$RUNS"); do
  t=$(build "$CP"); a=$(echo "$a + $t" | bc); ta[$i]=$t
  t=$(build ccache); b=$(echo "$b + $t" | bc); tb[$i]=$t
done
ma=$(echo "scale=3; $a / $RUNS" | bc); mb=$(echo "scale=3; $b / $RUNS" | bc)
echo "warm build in a fresh build dir, ninja, mean of $RUNS (${ta[*]} / ${tb[*]}):" \
  "cachepot ${ma}s, ccache ${mb}s, ratio $(echo "scale=2; $ma / $mb" | bc)"
read -r sa fa <<<"$(stats_calls "$CP")"
read -r sb fb <<<"$(stats_calls ccache)"
echo "stat-family calls (strace -f -c -e trace=statx,stat,newfstatat,lstat) of that build, total (failing):" \
  "cachepot $sa ($fa), ccache $sb ($fb); per compile cachepot $((sa / objects)), ccache $((sb / objects));" \
  "ratio $(echo "scale=2; $sa / $sb" | bc)"
echo "cachepot stats: $(CACHEPOT_DIR="$CACHEPOT_DIR" "$CP" --show-stats --json | tr -d '\n ' | head -c 400)"
