#!/bin/sh
# Install cachepot: the binary into $PREFIX/bin, the man page, the README as documentation, and a
# shim directory $PREFIX/lib/cachepot (relative symlinks ../../bin/cachepot, named like the
# compilers installed on this machine, as Debian's /usr/lib/ccache).
#   PREFIX        install prefix (default /usr/local)
#   DESTDIR       staging root for packagers (the links are relative, so they stay right)
#   CACHEPOT_BIN  the binary to install (default: the one built; with --no-build target/release/cachepot)
# Options: --prefix DIR, --destdir DIR, --no-build (install the binary as it is, without cargo
# build), --build-only (build the release binary, statically linked where glibc allows, print
# its path, install nothing: the benches use it), --no-shims (leave the shim directory empty: a
# package makes the links on the user's machine), --only c|rust (link only C compilers or only rustc/clippy-driver), --uninstall (remove
# exactly what an earlier install into the same PREFIX and DESTDIR put there, listed in
# $PREFIX/share/cachepot/install-manifest, and the shim links).
set -eu
PREFIX="${PREFIX:-/usr/local}"
DESTDIR="${DESTDIR:-}"
BUILD=1
BUILD_ONLY=0
SHIMS=1
ONLY=""
UNINSTALL=0
usage_error() {
  echo "install.sh: $1 (accepted: --prefix DIR, --destdir DIR, --no-build, --build-only, --no-shims, --only c|rust, --uninstall)" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || usage_error "--prefix needs a directory"; PREFIX="$2"; shift 2 ;;
    --prefix=*) PREFIX="${1#--prefix=}"; shift ;;
    --destdir) [ $# -ge 2 ] || usage_error "--destdir needs a directory"; DESTDIR="$2"; shift 2 ;;
    --destdir=*) DESTDIR="${1#--destdir=}"; shift ;;
    --no-build) BUILD=0; shift ;;
    --build-only) BUILD_ONLY=1; shift ;;
    --no-shims) SHIMS=0; shift ;;
    --only) [ $# -ge 2 ] || usage_error "--only needs c or rust"; ONLY="$2"; shift 2 ;;
    --only=*) ONLY="${1#--only=}"; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) usage_error "unknown option $1" ;;
  esac
done
case "$PREFIX" in
  /*) ;;
  *) usage_error "--prefix $PREFIX is not an absolute path" ;;
esac

root="$DESTDIR$PREFIX"
manifest="$root/share/cachepot/install-manifest"
shimdir="$root/lib/cachepot"

# Remove a shim link only when it is ours: it points at cachepot.
remove_our_links() {
  [ -d "$shimdir" ] || return 0
  for l in "$shimdir"/* "$shimdir"/.[!.]*; do
    [ -L "$l" ] || continue
    case "$(readlink "$l")" in
      cachepot|*/cachepot) rm -f "$l" ;;
    esac
  done
}

if [ "$UNINSTALL" = 1 ]; then
  [ -f "$manifest" ] || { echo "install.sh: $manifest not found: nothing was installed into $root by install.sh" >&2; exit 1; }
  remove_our_links
  # Files first, then the directories install.sh created (deepest first), each only when empty.
  while IFS= read -r line; do
    case "$line" in
      "f "*) rm -f "$root/${line#f }" ;;
    esac
  done < "$manifest"
  dirs=$(sed -n 's/^d //p' "$manifest" | sort -r)
  rm -f "$manifest"
  for d in $dirs; do
    rmdir "$root/$d" 2>/dev/null || true
  done
  echo "removed cachepot from $root"
  exit 0
fi

cd "$(dirname "$0")"
if [ "$BUILD" = 1 ]; then
  command -v cargo >/dev/null 2>&1 || { echo "install.sh: cargo not found: install Rust with rustup (https://rustup.rs) and open a new shell, or pass --no-build with CACHEPOT_BIN" >&2; exit 1; }
  command -v cc >/dev/null 2>&1 || { echo "install.sh: no C compiler (cc) to link with: apt-get install gcc (Debian), then run install.sh again" >&2; exit 1; }
  # A statically linked binary where the C library allows it (glibc's libc.a, on Debian in
  # libc6-dev, which gcc brings): a hit is a few milliseconds, and the dynamic loader's work
  # (loading libc and libgcc_s, relocating, resolving symbols) was a fifth of them. crt-static
  # needs an explicit --target so that build scripts and proc-macros stay dynamic.
  host=$(rustc -vV | sed -n 's/^host: //p')
  case "$host" in
    *-linux-gnu) [ -f "$(cc -print-file-name=libc.a)" ] && static=1 || static=0 ;;
    *) static=0 ;;
  esac
  if [ "$static" = 1 ]; then
    flags_var="CARGO_TARGET_$(printf '%s' "$host" | tr 'a-z.-' 'A-Z__')_RUSTFLAGS"
    flags="-C target-feature=+crt-static -C relocation-model=static"
    # The functions a hit runs, laid out together by LLD (rustc's linker on x86-64 Linux since
    # 1.90; pkg/hot-symbols.sh): a small C hit maps 1.8 MiB instead of 3.8. Another linker
    # refuses the option: then the build goes on without it.
    order="-C link-arg=-Wl,--symbol-ordering-file=pkg/hot-symbols.txt -C link-arg=-Wl,--no-warn-symbol-ordering"
    if ! env "$flags_var=$flags $order" cargo build --release --locked --target "$host"; then
      echo "install.sh: building again without the symbol order (pkg/hot-symbols.txt)" >&2
      env "$flags_var=$flags" cargo build --release --locked --target "$host"
    fi
    built="target/$host/release/cachepot"
  else
    cargo build --release --locked
    built=target/release/cachepot
  fi
  CACHEPOT_BIN="${CACHEPOT_BIN:-$built}"
  if [ "$BUILD_ONLY" = 1 ]; then
    echo "$CACHEPOT_BIN"
    exit 0
  fi
fi
bin="${CACHEPOT_BIN:-target/release/cachepot}"
[ -x "$bin" ] || { echo "install.sh: $bin is missing; run cargo build --release first" >&2; exit 1; }

# Record what we create: the directories that did not exist, and every file we put down.
created=""
make_dir() {
  rel="$1"
  missing=""
  d="$rel"
  while [ ! -d "$root/$d" ] && [ "$d" != "." ]; do
    missing="$d
$missing"
    d=$(dirname "$d")
  done
  mkdir -p "$root/$rel"
  created="$created$missing"
}
files=""
put() { # put MODE SOURCE RELATIVE-DESTINATION
  install -m "$1" "$2" "$root/$3"
  files="${files}f $3
"
}

[ -d "$root" ] || { mkdir -p "$root"; }
make_dir bin
make_dir lib/cachepot
make_dir share/man/man1
make_dir share/doc/cachepot
make_dir share/cachepot
put 0755 "$bin" bin/cachepot
for m in man/*.1; do
  [ -f "$m" ] && put 0644 "$m" "share/man/man1/$(basename "$m")"
done
put 0644 README.md share/doc/cachepot/README.md
{
  printf '%s' "$created" | sed -n 's/^./d &/p'
  printf '%s' "$files"
} > "$manifest"

if [ "$SHIMS" = 1 ]; then
  # The staged binary as target: the link comes out relative (../../bin/cachepot).
  if [ -n "$ONLY" ]; then
    "$root/bin/cachepot" --install-shims "$shimdir" --shim-target "$root/bin/cachepot" --only "$ONLY"
  else
    "$root/bin/cachepot" --install-shims "$shimdir" --shim-target "$root/bin/cachepot"
  fi
fi
echo "installed $PREFIX/bin/cachepot; put $PREFIX/lib/cachepot first on PATH to cache every compile (uninstall: $0 --uninstall --prefix $PREFIX)"
