#!/usr/bin/env bash
# For a machine with an NVIDIA GPU (issue 14.4), run by hand or through the `device` tool: no Rust
# toolchain is needed there. Build here and carry the files:
#   cargo build --release && mkdir -p gpu-carry && cp target/release/cachepot gpu-carry/ &&
#   cp "$(command -v ccache)" gpu-carry/ && ldd "$(command -v ccache)" | awk '/=> \//{print $3}' |
#   xargs -I{} cp {} gpu-carry/     # Debian's ccache and the libraries it loads
# then on the GPU machine: bash tests/gpu/nvcc.sh gpu-carry
# It compiles two .cu files twice through an `nvcc` shim (a symlink to cachepot named nvcc, first
# on PATH), checks that the second round hits with byte-identical objects, links and runs the
# program (the right answer on the GPU), and times our hit against ccache's hit and our miss
# against plain nvcc. Targets: our hit <= 0.8 x ccache's, our miss <= 1.10 x plain nvcc.
# nvcc: the one on PATH, else CUDA's /usr/local/cuda/bin, else the CUDA 13 wheels in a venv.
set -euo pipefail
carry="$(cd "${1:?usage: tests/gpu/nvcc.sh CARRY_DIR}" && pwd)"
N="${N:-10}"
nvcc_path="$(command -v nvcc || true)"
[ -n "$nvcc_path" ] || { [ -x /usr/local/cuda/bin/nvcc ] && nvcc_path=/usr/local/cuda/bin/nvcc; }
if [ -z "$nvcc_path" ]; then
  v="$(mktemp -d)/venv"; python3 -m venv "$v"
  "$v/bin/pip" install --quiet "nvidia-cuda-nvcc==13.*" "nvidia-cuda-runtime==13.*" "nvidia-cuda-crt==13.*" "nvidia-cuda-cccl==13.*"
  nvcc_path="$(ls "$v"/lib/python3*/site-packages/nvidia/cu13/bin/nvcc)"
fi
nvidia-smi -L || { echo "FAIL: no GPU visible (nvidia-smi)" >&2; exit 1; }
arch="sm_$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
mkdir -p "$work/shims"; ln -s "$carry/cachepot" "$work/shims/nvcc"
export CACHEPOT_DIR="$work/cp" CCACHE_DIR="$work/ccache" LD_LIBRARY_PATH="$carry:${LD_LIBRARY_PATH:-}"
export PATH="$work/shims:$(dirname "$nvcc_path"):$PATH"
cd "$work"
cat > scale.cu <<'CU'
__global__ void scale(int *a, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) a[i] *= 3; }
void launch_scale(int *d, int n) { scale<<<(n + 255) / 256, 256>>>(d, n); }
CU
cat > main.cu <<'CU'
#include <cstdio>
#include <cuda_runtime.h>
void launch_scale(int *d, int n);
int main() {
  const int n = 1 << 20; int *h = new int[n]; long want = 0;
  for (int i = 0; i < n; i++) { h[i] = i % 7; want += 3L * (i % 7); }
  int *d; if (cudaMalloc(&d, n * sizeof(int)) != cudaSuccess) { printf("no device\n"); return 2; }
  cudaMemcpy(d, h, n * sizeof(int), cudaMemcpyHostToDevice);
  launch_scale(d, n);
  cudaMemcpy(h, d, n * sizeof(int), cudaMemcpyDeviceToHost);
  long got = 0; for (int i = 0; i < n; i++) got += h[i];
  printf("%s %ld\n", got == want ? "ok" : "WRONG", got); return got == want ? 0 : 1;
}
CU
G=(-gencode "arch=compute_${arch#sm_},code=$arch" -gencode arch=compute_75,code=sm_75)
compile_both() { nvcc -c scale.cu -o "scale$1.o" "${G[@]}" && nvcc -c main.cu -o "main$1.o" "${G[@]}"; }
compile_both 1
compile_both 2
cmp scale1.o scale2.o && cmp main1.o main2.o || { echo "FAIL: hit objects differ" >&2; exit 1; }
"$carry/cachepot" --show-stats --json | tee stats.json
grep -q '"hits":2' stats.json || { echo "FAIL: expected 2 hits" >&2; exit 1; }
nvcc scale2.o main2.o -o prog
./prog | tee run.txt
grep -q '^ok ' run.txt || { echo "FAIL: wrong answer from the GPU" >&2; exit 1; }
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
series() { for _ in $(seq "$N"); do ms "$@"; done | median; }
plain=$(series "$nvcc_path" -c scale.cu -o p.o "${G[@]}")
miss=$(CACHEPOT_RECACHE=1 series nvcc -c scale.cu -o m.o "${G[@]}")
hit=$(series nvcc -c scale.cu -o h.o "${G[@]}")
"$carry/ccache" "$nvcc_path" -c scale.cu -o c.o "${G[@]}" >/dev/null
ccache_hit=$(series "$carry/ccache" "$nvcc_path" -c scale.cu -o c.o "${G[@]}")
echo "GPU $arch, N=$N (median ms): plain nvcc $plain, cachepot miss $miss, cachepot hit $hit, ccache hit $ccache_hit"
awk -v m="$miss" -v p="$plain" -v h="$hit" -v c="$ccache_hit" 'BEGIN {
  printf "miss/plain = %.2f (target <= 1.10), hit/ccache = %.2f (target <= 0.80)\n", m / p, h / c
  exit !(m / p <= 1.10 && h / c <= 0.80) }'
