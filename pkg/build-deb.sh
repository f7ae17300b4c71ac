#!/bin/sh
# Build the Debian package of cachepot with dpkg-deb from a root staged by install.sh.
#   pkg/build-deb.sh [--bin PATH] [--out DIR]
# --bin: the binary to package (default: the one `install.sh --build-only` builds).
# --out: where the .deb goes (default target/deb). Prints the path of the .deb.
#
# Why dpkg-deb from a staged DESTDIR rather than cargo-deb: install.sh is then the one description
# of the installed layout (binary, man page, README, shim directory) for `./install.sh`, for the
# package and for its test; dpkg-deb is part of dpkg, on every Debian machine, where cargo-deb is
# one more tool to build from crates.io. The shim links are not in the package: the build machine's
# compilers are not the user's, so postinst and a dpkg trigger make them on the user's machine.
set -eu
cd "$(dirname "$0")/.."
BIN=""
OUT="target/deb"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) [ $# -ge 2 ] || { echo "build-deb.sh: --bin needs a path" >&2; exit 2; }; BIN="$2"; shift 2 ;;
    --out) [ $# -ge 2 ] || { echo "build-deb.sh: --out needs a directory" >&2; exit 2; }; OUT="$2"; shift 2 ;;
    *) echo "build-deb.sh: unknown option $1 (accepted: --bin PATH, --out DIR)" >&2; exit 2 ;;
  esac
done
for tool in dpkg-deb dpkg objcopy gzip; do
  command -v "$tool" >/dev/null 2>&1 || { echo "build-deb.sh: $tool is missing (Debian: apt-get install dpkg-dev binutils gzip)" >&2; exit 1; }
done
if [ -z "$BIN" ]; then
  BIN=$(sh ./install.sh --build-only)
fi
[ -x "$BIN" ] || { echo "build-deb.sh: $BIN is not an executable" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
arch=$(dpkg --print-architecture)
stage="$OUT/stage"
rm -rf "$stage"
mkdir -p "$stage"
stage=$(cd "$stage" && pwd)

# The layout of install.sh, without links and without its uninstall manifest (dpkg keeps the list).
CACHEPOT_BIN="$BIN" sh ./install.sh --no-build --no-shims --prefix /usr --destdir "$stage" >/dev/null
rm -r "$stage/usr/share/cachepot"
objcopy --strip-debug --strip-unneeded "$stage/usr/bin/cachepot"
gzip -9n "$stage/usr/share/man/man1/cachepot.1" "$stage/usr/share/doc/cachepot/README.md"

# Depends: the newest glibc symbol version the binary uses (libgcc-s1 when it links it). A static
# binary (install.sh's build) has no dynamic symbols; glibc may still load its NSS modules.
glibc=$(objdump -T "$stage/usr/bin/cachepot" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1 || true)
if [ -n "$glibc" ]; then
  depends="libc6 (>= $glibc)"
else
  depends="libc6"
fi
if objdump -p "$stage/usr/bin/cachepot" | grep -q 'NEEDED *libgcc_s'; then
  depends="$depends, libgcc-s1"
fi
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)

mkdir -p "$stage/DEBIAN"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$depends/" \
  pkg/deb/control.in > "$stage/DEBIAN/control"
for f in postinst prerm postrm; do
  install -m 0755 "pkg/deb/$f" "$stage/DEBIAN/$f"
done
install -m 0644 pkg/deb/triggers "$stage/DEBIAN/triggers"

deb="$OUT/cachepot_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
