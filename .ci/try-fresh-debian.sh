#!/bin/sh
# A manual check, not run by .ci/run: the README's two commands as a new user runs them, on a fresh
# Debian 12 (debootstrap minbase, plus curl and ca-certificates, which installing rustup needed)
# with only rustup's stable toolchain, copied from this machine's ~/.rustup. Prints how long each
# step took; logs go to $OUT (default /var/tmp/cachepot-fresh-logs).
#   sh .ci/try-fresh-debian.sh [--keep]
# Needs root, debootstrap and Debian's mirror.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "try-fresh-debian: needs root (chroot)" >&2; exit 1; }
OUT="${OUT:-/var/tmp/cachepot-fresh-logs}"
toolchain="${RUSTUP_HOME:-$HOME/.rustup}/toolchains/stable-$(uname -m)-unknown-linux-gnu"
[ -d "$toolchain" ] || { echo "try-fresh-debian: no rustup stable toolchain at $toolchain" >&2; exit 1; }
mkdir -p "$OUT"
R=$(mktemp -d /var/tmp/cachepot-fresh.XXXXXX)
chmod 755 "$R"
cleanup() {
  if mountpoint -q "$R/dev/pts"; then umount "$R/dev/pts" || true; fi
  if mountpoint -q "$R/dev/pts" || { mountpoint -q "$R/proc" && ! umount "$R/proc"; }; then
    echo "try-fresh-debian: could not unmount $R/proc or $R/dev/pts; root left in $R" >&2
  elif [ "${1:-}" != --keep ]; then
    rm -rf "$R"
  fi
}
KEEP="${1:-}"
trap 'cleanup "$KEEP"' EXIT
timed() { # timed NAME COMMAND...: run, log, print the seconds it took
  name="$1"; shift
  s=$(date +%s)
  if "$@" >"$OUT/$name.log" 2>&1; then rc=0; else rc=$?; fi
  echo "try-fresh-debian: $name: exit $rc after $(( $(date +%s) - s ))s (log: $OUT/$name.log)"
  return "$rc"
}
timed debootstrap debootstrap --variant=minbase --include=ca-certificates,curl bookworm "$R" http://deb.debian.org/debian
cp /etc/resolv.conf "$R/etc/resolv.conf"
mount -t proc proc "$R/proc"
# A machine has pseudo-terminals (tests run `script`): a devpts instance of the root's own.
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts"
ln -sf pts/ptmx "$R/dev/ptmx"
# A machine whose egress goes through a TLS-inspecting proxy has its CA in
# /usr/local/share/ca-certificates: the fresh root gets it too (as that machine's admin would
# install it), and the variables that point tools at the bundle are passed on below.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  cp /usr/local/share/ca-certificates/*.crt "$R/usr/local/share/ca-certificates/"
  chroot "$R" update-ca-certificates >/dev/null 2>&1
fi
mkdir -p "$R/root/.rustup/toolchains" "$R/root/.cargo/bin"
cp -a "$toolchain" "$R/root/.rustup/toolchains/"
printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "default"\n' "$(basename "$toolchain")" > "$R/root/.rustup/settings.toml"
cp "$(command -v rustup)" "$R/root/.cargo/bin/rustup"
for proxy in cargo rustc rustdoc cargo-clippy clippy-driver rustfmt cargo-fmt; do
  ln "$R/root/.cargo/bin/rustup" "$R/root/.cargo/bin/$proxy"
done
git clone -q "$(pwd)" "$R/root/cachepot"
ca_vars=""
for v in SSL_CERT_FILE NODE_EXTRA_CA_CERTS PIP_CERT REQUESTS_CA_BUNDLE CURL_CA_BUNDLE; do
  eval "val=\${$v:-}"
  # shellcheck disable=SC2154 # val is set by the eval
  [ -n "$val" ] && ca_vars="$ca_vars $v=$val"
done
in_root() {
  # shellcheck disable=SC2086 # ca_vars is a list of NAME=value words without spaces
  chroot "$R" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb $ca_vars \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    sh -c "cd /root/cachepot && $1"
}
if ! timed install-and-demo in_root './install.sh && demo/demo.sh'; then
  tail -n 3 "$OUT/install-and-demo.log"
  # What the README says to do first on a bare machine.
  timed apt-install-gcc-make in_root 'apt-get update -q && apt-get install -y -q gcc make' || true
  timed install-and-demo-again in_root './install.sh && demo/demo.sh' || tail -n 20 "$OUT/install-and-demo-again.log"
fi
timed ci-run in_root 'bash .ci/run' || true
