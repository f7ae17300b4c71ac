# shellcheck shell=bash
# Sourced by .ci/run: servers for the remote-store tests that Debian does not package. Each is
# installed once into a cached tools directory and only when missing; the tests start the server
# processes themselves on free loopback ports. redis-server and memcached come from
# .ci/packages-remote.txt.
CACHEPOT_CI_TOOLS="${CACHEPOT_CI_TOOLS:-$HOME/.cache/cachepot-ci-tools}"
export PATH="$CACHEPOT_CI_TOOLS/bin:$PATH"

# S3: s3s-fs checks SigV4 signatures, so wrong credentials are a real failure.
if ! command -v s3s-fs >/dev/null 2>&1; then
  echo "setup-remote: installing s3s-fs (once) into $CACHEPOT_CI_TOOLS"
  # Pinned to an exact version so every CI run tests against the same server: 0.14.1 is the newest
  # that builds with the stable toolchain here (0.17 needs rustc 1.96). If that version is yanked or
  # its locked dependencies no longer resolve, fall back to the newest 0.14.x with fresh
  # dependencies, then to whatever version cargo picks; the S3 tests only need SigV4 checking.
  cargo install --locked --root "$CACHEPOT_CI_TOOLS" s3s-fs@0.14.1 --features binary \
    || cargo install --root "$CACHEPOT_CI_TOOLS" s3s-fs@^0.14 --features binary \
    || cargo install --root "$CACHEPOT_CI_TOOLS" s3s-fs --features binary
fi

# Azure: Azurite's blob service, from the npm registry.
if ! command -v azurite-blob >/dev/null 2>&1; then
  echo "setup-remote: installing azurite (once) into $CACHEPOT_CI_TOOLS/npm"
  # Debian's nodejs comes without npm; other builds of nodejs (NodeSource's) bundle it and conflict
  # with Debian's npm package, so install it only when the command is missing.
  if ! command -v npm >/dev/null 2>&1; then
    ${SUDO:-} apt-get install -y -qq npm >/dev/null
  fi
  command -v npm >/dev/null 2>&1 || { echo "setup-remote: npm is missing (Debian: apt-get install npm)" >&2; exit 1; }
  npm install --silent --prefix "$CACHEPOT_CI_TOOLS/npm" azurite@3
  mkdir -p "$CACHEPOT_CI_TOOLS/bin"
  ln -sf "$CACHEPOT_CI_TOOLS/npm/node_modules/.bin/azurite-blob" "$CACHEPOT_CI_TOOLS/bin/azurite-blob"
fi

# Google Cloud Storage: gcp-storage-emulator from the Python package index, in its own venv.
if ! command -v gcp-storage-emulator >/dev/null 2>&1; then
  echo "setup-remote: installing gcp-storage-emulator (once) into $CACHEPOT_CI_TOOLS/gcs-venv"
  python3 -m venv "$CACHEPOT_CI_TOOLS/gcs-venv"
  "$CACHEPOT_CI_TOOLS/gcs-venv/bin/pip" install --quiet gcp-storage-emulator
  mkdir -p "$CACHEPOT_CI_TOOLS/bin"
  ln -sf "$CACHEPOT_CI_TOOLS/gcs-venv/bin/gcp-storage-emulator" "$CACHEPOT_CI_TOOLS/bin/gcp-storage-emulator"
fi

# The Bazel Remote Execution API (tests/remote_reapi.rs, tests/remote_exec.rs): BuildGrid from the
# Python package index, in its own venv, pinned so every run tests against the same server (CAS,
# Action Cache, ByteStream, TLS and JWT checks in memory; Execution and Bots with its scheduler on a
# private PostgreSQL cluster the tests start, hence the [database] extra: psycopg2).
bgd_venv="$CACHEPOT_CI_TOOLS/buildgrid-venv"
if ! "$bgd_venv/bin/python3" -c 'import buildgrid, psycopg2' >/dev/null 2>&1; then
  echo "setup-remote: installing buildgrid (once) into $bgd_venv"
  python3 -m venv "$bgd_venv"
  "$bgd_venv/bin/pip" install --quiet 'buildgrid[database]==0.4.4'
fi
mkdir -p "$CACHEPOT_CI_TOOLS/bin"
ln -sf "$bgd_venv/bin/bgd" "$CACHEPOT_CI_TOOLS/bin/bgd"
