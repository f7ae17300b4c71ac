#!/usr/bin/env bash
# A rustc hit of a large crate, regex-automata (a multi-MB rlib), against `cp` of its outputs and
# against sccache's hit of the same command, on this machine in one run.
#   bash bench/rust_hit.sh target/release/cachepot [N]
# The exact rustc command cargo runs for regex-automata (arguments, environment, working directory)
# is recorded once by a RUSTC_WRAPPER during `cargo build --release` of a one-line crate (the
# workspace lock of tests/rust_cargo.rs, so the crates come from ~/.cargo/registry offline). Then
# N hits of that command through cachepot and through sccache, interleaved with `cp` of the three
# outputs (rlib, rmeta, .d) into a scratch dir. Wall time per call (with the fork of `date`, ~1 ms;
# compare columns), wall medians with no shell in the measurement (bench/interleave.c), then CPU and
# page faults per call (`perf stat -r N`, cachepot and cp; sccache's work is in its server), system
# calls (`strace -f -c`) and peak RSS (`/usr/bin/time`).
# sccache: SCCACHE names one, else ~/.cache/peers/sccache/bin/sccache, else `sccache` on PATH.
set -euo pipefail
N=${2:-50}
CACHEPOT=$(realpath "$1")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCCACHE=${SCCACHE:-$(command -v "$HOME/.cache/peers/sccache/bin/sccache" || command -v sccache || true)}
[ -n "$SCCACHE" ] || { echo "rust_hit: no sccache (set SCCACHE, or cargo install sccache --locked)" >&2; exit 1; }
for t in perf strace /usr/bin/time cargo; do
  command -v "$t" >/dev/null || { echo "rust_hit: $t is missing" >&2; exit 1; }
done
W=$(mktemp -d)
# A sccache server of its own (one on the default port would keep its own cache dir).
PORT=$((20000 + $$ % 20000))
cleanup() { SCCACHE_SERVER_PORT=$PORT "$SCCACHE" --stop-server >/dev/null 2>&1 || true; rm -rf "$W"; }
trap cleanup EXIT
# KEEP=1: leave the work dir (and the sccache server) for profiling.
[ -z "${KEEP:-}" ] || { trap - EXIT; echo "work dir: $W"; }
mkdir -p "$W/bin" "$W/crate/src" "$W/rec" "$W/copy"
# Named cachepot whatever the file is called (any other name is taken for a compiler's).
cp "$CACHEPOT" "$W/bin/cachepot"
CP="$W/bin/cachepot"
gcc -O2 -o "$W/interleave" "$ROOT/bench/interleave.c"

# 1. Record the command. The wrapper runs every rustc call; it keeps regex-automata's.
cat > "$W/rec/wrap.sh" <<'EOF'
#!/usr/bin/env bash
for a in "$@"; do
  if [ "$a" = regex_automata ]; then
    printf '%s\0' "$@" > "$REC/args"
    env -0 > "$REC/env"
    pwd > "$REC/cwd"
  fi
done
exec "$@"
EOF
chmod +x "$W/rec/wrap.sh"
cat > "$W/crate/Cargo.toml" <<'EOF'
[package]
name = "rust-hit-bench"
version = "0.1.0"
edition = "2021"
[dependencies]
regex = "1"
EOF
echo 'pub fn f(s: &str) -> bool { regex::Regex::new("a+b").unwrap().is_match(s) }' > "$W/crate/src/lib.rs"
cp "$ROOT/tests/data/rust-workspace.lock" "$W/crate/Cargo.lock"
(cd "$W/crate" && REC="$W/rec" RUSTC_WRAPPER="$W/rec/wrap.sh" CARGO_INCREMENTAL=0 \
  cargo build --release --offline -q 2>/dev/null || REC="$W/rec" RUSTC_WRAPPER="$W/rec/wrap.sh" \
  CARGO_INCREMENTAL=0 cargo build --release -q)
[ -s "$W/rec/args" ] || { echo "rust_hit: cargo ran no rustc for regex_automata" >&2; exit 1; }
mapfile -d '' ARGS < "$W/rec/args"
# The outputs: --out-dir, and the -C extra-filename suffix.
out=""; extra=""
for ((i = 0; i < ${#ARGS[@]}; i++)); do
  case "${ARGS[i]}" in
    --out-dir) out=${ARGS[i+1]} ;;
    extra-filename=*) extra=${ARGS[i]#extra-filename=} ;;
  esac
done
OUTS=("$out/libregex_automata$extra.rlib" "$out/libregex_automata$extra.rmeta" "$out/regex_automata$extra.d")
ls -l "${OUTS[@]}" | awk '{ printf "output %s: %d bytes\n", $NF, $5 }'

# 2. Replay it: the recorded environment, the recorded working directory.
cd "$(cat "$W/rec/cwd")"
while IFS= read -r -d '' kv; do
  # Not the jobserver: its fds are gone here (rustc would warn, and the warning would be stored).
  case "$kv" in
    PWD=* | OLDPWD=* | SHLVL=* | _=* | CACHEPOT_* | SCCACHE_* | RUSTC_WRAPPER=* | CARGO_MAKEFLAGS=* | MAKEFLAGS=* | MFLAGS=*) ;;
    *) export "${kv?}" ;;
  esac
done < "$W/rec/env"
export CACHEPOT_DIR="$W/cp" SCCACHE_DIR="$W/sc" SCCACHE_IDLE_TIMEOUT=0 SCCACHE_CACHE_SIZE=10G SCCACHE_SERVER_PORT=$PORT
unset RUSTC_WRAPPER
"$SCCACHE" --start-server >/dev/null 2>&1 || true
for _ in 1 2; do
  "$CP" "${ARGS[@]}" 2>/dev/null
  "$SCCACHE" "${ARGS[@]}" 2>/dev/null
done
"$CP" --show-stats --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print("cachepot after 2 calls: hits", s["hits"], "misses", s["misses"])'
"$SCCACHE" --show-stats | grep -E "^Cache (hits|misses) " | tr -s ' ' | paste -sd, | sed 's/^/sccache after 2 calls: /'

a=0; b=0; c=0
for _ in $(seq "$N"); do
  s=$(date +%s%N); "$CP" "${ARGS[@]}" 2>/dev/null; e=$(date +%s%N); a=$((a + e - s))
  s=$(date +%s%N); "$SCCACHE" "${ARGS[@]}" 2>/dev/null; e=$(date +%s%N); b=$((b + e - s))
  s=$(date +%s%N); cp "${OUTS[@]}" "$W/copy/"; e=$(date +%s%N); c=$((c + e - s))
done
us() { echo $(($1 / N / 1000)); }
echo "regex-automata hit, wall mean of $N: cachepot $(us $a) us, sccache $(us $b) us, cp $(us $c) us;" \
  "cachepot/cp $(python3 -c "print(f'{$a/$c:.2f}')"), cachepot/sccache $(python3 -c "print(f'{$a/$b:.2f}')")"
echo "interleaved, no shell (bench/interleave.c):" $("$W/interleave" "$N" "$CP" "${ARGS[@]}" -- "$SCCACHE" "${ARGS[@]}" \
  -- cp "${OUTS[@]}" "$W/copy/" | sed 's|^[^:]*/||' | tr '\n' ';')
perf_hit() {
  perf stat -r "$N" -e task-clock,page-faults -x, "$@" 2>&1 >/dev/null \
    | awk -F, '$3 == "task-clock" { t = $1 } $3 == "page-faults" { f = $1 } END { printf "%.2f ms CPU, %d faults", t, f }'
}
echo "perf stat -r $N: cachepot $(perf_hit "$CP" "${ARGS[@]}"); cp $(perf_hit cp "${OUTS[@]}" "$W/copy/")"
calls() { strace -f -c -o "$W/strace.txt" "$@" >/dev/null 2>&1; awk '$NF == "total" { print $(NF-2) }' "$W/strace.txt"; }
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
echo "system calls (strace -f -c): cachepot $(calls "$CP" "${ARGS[@]}"), cp $(calls cp "${OUTS[@]}" "$W/copy/");" \
  "peak RSS: cachepot $(rss "$CP" "${ARGS[@]}") KiB, cp $(rss cp "${OUTS[@]}" "$W/copy/") KiB"
