#!/bin/sh
# The Debian package, installed as a user would: build the .deb, install it with apt into a clean
# Debian 12 root (debootstrap, then a chroot), and check what a user sees:
#   - /usr/bin/cachepot, the man page, the README; /usr/lib/cachepot holds relative links
#     (../../bin/cachepot) for the installed compilers only;
#   - a small make project built through /usr/lib/cachepot: all misses, then from clean all hits;
#   - installing clang adds its links (the dpkg trigger), removing it takes them away;
#   - purging the package leaves no file behind.
# Needs root (chroot), debootstrap and Debian's package mirror. Run by .ci/run after the tests.
#   CACHEPOT_BIN    binary to package (default target/debug/cachepot, the tests' build; .ci/run
#                   passes the release binary install.sh builds, which users get)
#   CACHEPOT_CI_TOOLS  where the debootstrapped base root is kept as a tarball between runs
#   CACHEPOT_KEEP_TEST_DIRS=1  keep the root afterwards
# Commands run inside the root, and make's variables, are in single quotes on purpose:
# shellcheck disable=SC2016
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test-deb: needs root (chroot); run it as .ci/run does" >&2; exit 1; }
command -v debootstrap >/dev/null 2>&1 || { echo "test-deb: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
MIRROR="${CACHEPOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
TOOLS="${CACHEPOT_CI_TOOLS:-$HOME/.cache/cachepot-ci-tools}"
BIN="${CACHEPOT_BIN:-target/debug/cachepot}"
[ -x "$BIN" ] || cargo build --locked

t0=$(date +%s)
step() { echo "test-deb: [$(( $(date +%s) - t0 ))s] $*"; }
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }

step "building the package from $BIN"
deb=$(sh pkg/build-deb.sh --bin "$BIN" --out target/deb-test)

# The base root: Debian 12 minbase with a C compiler and make, made once and kept as a tarball;
# every run unpacks a fresh copy.
base="$TOOLS/debian12-minbase-gcc.tar"
if [ ! -f "$base" ]; then
  step "debootstrap of Debian 12 (once; kept in $base)"
  tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/cachepot-debootstrap.XXXXXX")
  debootstrap --variant=minbase --include=gcc,libc6-dev,make bookworm "$tmp" "$MIRROR" >"$tmp.log" 2>&1 \
    || { tail -n 20 "$tmp.log" >&2; fail "debootstrap failed (log: $tmp.log)"; }
  mkdir -p "$TOOLS"
  tar -C "$tmp" -cf "$base.part" . && mv "$base.part" "$base"
  rm -rf "$tmp" "$tmp.log"
fi
R=$(mktemp -d "${TMPDIR:-/var/tmp}/cachepot-deb-root.XXXXXX")
cleanup() {
  # Never remove the root while /proc is mounted in it.
  if mountpoint -q "$R/proc" && ! umount "$R/proc"; then
    echo "test-deb: could not unmount $R/proc; root left in $R" >&2
  elif [ "${CACHEPOT_KEEP_TEST_DIRS:-}" = 1 ]; then
    echo "test-deb: root kept in $R"
  else
    rm -rf "$R" "$R.before" "$R.after" "$R.diff" "$R.log"
  fi
}
trap cleanup EXIT
tar -C "$R" -xf "$base"
chmod 755 "$R" # apt's downloads run as _apt, which must reach / of the root
cp /etc/resolv.conf "$R/etc/resolv.conf"
# A chroot as users make one: with /proc (cachepot finds itself through /proc/self/exe).
mount -t proc proc "$R/proc"
step "clean root in $R"

in_root() {
  chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"
}
# Every path of the root but the package manager's own state, logs, caches and the user's cache dir
# (~/.cache/cachepot is the user's data, kept on purge as ccache keeps ~/.ccache).
snapshot() {
  in_root find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /tmp -o -path /var/tmp \
    -o -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/cache -o -path /var/log -o -path /root \) \
    -prune -o -print | sort
}
# apt and dpkg talk a lot in a chroot (no /dev/pts, no apt-utils): their output only on failure.
quiet() { "$@" >"$R.log" 2>&1 || { cat "$R.log" >&2; return 1; }; }
shims() { in_root find /usr/lib/cachepot -mindepth 1 -printf '%f\n' | sort; }
# Every entry of the shim dir is our relative link, and names a compiler that exists in /usr/bin.
check_shims() {
  for name in $(shims); do
    l="$R/usr/lib/cachepot/$name"
    [ -L "$l" ] || fail "/usr/lib/cachepot/$name is not a link"
    [ "$(readlink "$l")" = ../../bin/cachepot ] || fail "/usr/lib/cachepot/$name -> $(readlink "$l"), not ../../bin/cachepot"
    [ -e "$R/usr/bin/$name" ] || fail "/usr/lib/cachepot/$name links a compiler that is not installed"
  done
}
has_shim() { [ -L "$R/usr/lib/cachepot/$1" ]; }
stat_of() { # stat_of NAME: a number from --show-stats --json
  in_root cachepot --show-stats --json | grep -o "\"$1\":[0-9]*" | head -n1 | cut -d: -f2
}

snapshot > "$R.before"
grep -qx /usr/bin/gcc "$R.before" || fail "the root's file list is missing /usr/bin/gcc: $(wc -l < "$R.before") entries"

step "apt-get install ./$(basename "$deb")"
cp "$deb" "$R/tmp/"
quiet in_root apt-get install -y -q "/tmp/$(basename "$deb")"
[ -x "$R/usr/bin/cachepot" ] || fail "/usr/bin/cachepot missing"
[ -f "$R/usr/share/man/man1/cachepot.1.gz" ] || fail "man page missing"
[ -f "$R/usr/share/doc/cachepot/README.md.gz" ] || fail "README missing"
check_shims
for name in cc gcc gcc-12 x86_64-linux-gnu-gcc; do has_shim "$name" || fail "no shim $name: $(shims | tr '\n' ' ')"; done
for name in clang clang-14 rustc; do has_shim "$name" && fail "a shim $name for a compiler that is not installed"; done
echo "test-deb: shims after install: $(shims | tr '\n' ' ')"

step "a make project through /usr/lib/cachepot, twice"
mkdir -p "$R/root/proj"
for i in 1 2 3; do
  printf 'int f%d(void) { return %d; }\n' "$i" "$i" > "$R/root/proj/f$i.c"
done
printf 'int f1(void); int f2(void); int f3(void);\nint main(void) { return f1() + f2() + f3() - 6; }\n' > "$R/root/proj/main.c"
printf 'prog: main.o f1.o f2.o f3.o\n\t$(CC) -o $@ $^\nclean:\n\trm -f *.o prog\n' > "$R/root/proj/Makefile"
build() { in_root sh -c 'cd /root/proj && PATH=/usr/lib/cachepot:$PATH make -s CC=cc && ./prog'; }
build || fail "first build"
[ "$(stat_of misses)" = 4 ] || fail "first build: misses $(stat_of misses), wanted 4"
in_root make -s -C /root/proj clean
build || fail "second build"
[ "$(stat_of hits)" = 4 ] || fail "second build: hits $(stat_of hits), wanted 4"
echo "test-deb: first build 4 misses, second build 4 hits"

step "apt-get install clang (the trigger adds its links)"
quiet in_root apt-get update -q
quiet in_root apt-get install -y -q --no-install-recommends clang
check_shims
for name in clang clang++ clang-14; do has_shim "$name" || fail "no shim $name after installing clang: $(shims | tr '\n' ' ')"; done
in_root sh -c 'cd /root/proj && PATH=/usr/lib/cachepot:$PATH clang -c f1.c -o c1.o' || fail "clang through the shim"
[ "$(stat_of misses)" = 5 ] || fail "clang through the shim was not a cache miss: $(stat_of misses) misses"

step "apt-get purge clang (the trigger removes its links)"
quiet in_root apt-get purge -y -q --autoremove clang 'clang-14'
check_shims
for name in clang clang++ clang-14 clang++-14; do has_shim "$name" && fail "shim $name left after removing clang"; done
has_shim gcc || fail "gcc's shim went with clang"

step "dpkg --purge cachepot"
quiet in_root dpkg --purge cachepot
snapshot > "$R.after"
if ! diff -u "$R.before" "$R.after" > "$R.diff"; then
  cat "$R.diff" >&2
  fail "purge left files behind (or removed some)"
fi
step "passed"
