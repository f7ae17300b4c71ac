#!/bin/sh
# Install cachepot: the binary into $PREFIX/bin and a shim directory into $PREFIX/lib/cachepot
# (symlinks named like the compilers installed on this machine, as Debian's /usr/lib/ccache).
#   PREFIX   install prefix (default /usr/local)
#   DESTDIR  staging root for packagers (links still point at $PREFIX/bin/cachepot)
#   CACHEPOT_BIN  the binary to install (default target/release/cachepot)
# Options: --prefix DIR, --destdir DIR, --no-build (install the binary as it is, without cargo build).
set -eu
PREFIX="${PREFIX:-/usr/local}"
DESTDIR="${DESTDIR:-}"
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="$2"; shift 2 ;;
    --prefix=*) PREFIX="${1#--prefix=}"; shift ;;
    --destdir) DESTDIR="$2"; shift 2 ;;
    --destdir=*) DESTDIR="${1#--destdir=}"; shift ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (accepted: --prefix DIR, --destdir DIR, --no-build)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")"
if [ "$BUILD" = 1 ]; then
  cargo build --release --locked
fi
bin="${CACHEPOT_BIN:-target/release/cachepot}"
[ -x "$bin" ] || { echo "install.sh: $bin is missing; run cargo build --release first" >&2; exit 1; }
install -d "$DESTDIR$PREFIX/bin" "$DESTDIR$PREFIX/lib/cachepot"
install -m 0755 "$bin" "$DESTDIR$PREFIX/bin/cachepot"
"$bin" --install-shims "$DESTDIR$PREFIX/lib/cachepot" --shim-target "$PREFIX/bin/cachepot"
if [ -d man ]; then
  install -d "$DESTDIR$PREFIX/share/man/man1"
  for m in man/*.1; do [ -f "$m" ] && install -m 0644 "$m" "$DESTDIR$PREFIX/share/man/man1/"; done
fi
echo "installed $PREFIX/bin/cachepot; put $PREFIX/lib/cachepot first on PATH to cache every compile"
