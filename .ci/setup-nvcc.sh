# shellcheck shell=bash
# Sourced by .ci/run: NVIDIA's CUDA compiler for tests/nvcc.rs, from the Python package index
# (NVIDIA's own wheels: nvcc, cicc, ptxas, fatbinary, the headers and libcudart), in its own venv,
# installed once into the cached tools directory. Debian's gcc 12 is the host compiler. No GPU is
# needed to compile. nvcc finds its programs relative to its own file, so its bin/ directory goes on
# PATH (a symlink to nvcc would not work).
CACHEPOT_CI_TOOLS="${CACHEPOT_CI_TOOLS:-$HOME/.cache/cachepot-ci-tools}"
nvcc_venv="$CACHEPOT_CI_TOOLS/nvcc-venv"
nvcc_bin() {
  local d
  for d in "$nvcc_venv"/lib/python3*/site-packages/nvidia/cu13/bin; do
    [ -d "$d" ] && { echo "$d"; return; }
  done
}
if [ -z "$(nvcc_bin)" ] || [ ! -x "$(nvcc_bin)/nvcc" ]; then
  echo "setup-nvcc: installing NVIDIA's CUDA 13 wheels (once) into $nvcc_venv"
  python3 -m venv "$nvcc_venv"
  "$nvcc_venv/bin/pip" install --quiet \
    "nvidia-cuda-nvcc==13.*" "nvidia-cuda-runtime==13.*" "nvidia-cuda-crt==13.*" "nvidia-cuda-cccl==13.*"
fi
[ -x "$(nvcc_bin)/nvcc" ] || { echo "setup-nvcc: nvcc missing after install" >&2; exit 1; }
nvcc_dir="$(nvcc_bin)"
export PATH="$nvcc_dir:$PATH"
