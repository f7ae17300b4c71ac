#!/usr/bin/env bash
# nvcc on CPU (issue 14.4): our hit against ccache's hit, and our miss against plain nvcc, for one
# .cu with two -gencode targets, compiled N times each (median wall time, milliseconds). Also
# nvcc's own per-stage times (--time), which decided whole-call over per-stage caching.
#   bash bench/nvcc.sh [N]     (needs nvcc on PATH, e.g. after `source .ci/setup-nvcc.sh`,
#                               ccache, and target/release/cachepot)
set -euo pipefail
N="${1:-15}"
here="$(cd "$(dirname "$0")/.." && pwd)"
CP="${CACHEPOT_BIN:-$here/target/release/cachepot}"
NVCC="$(command -v nvcc)"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cd "$work"
cat > k.cu <<'CU'
#include <cstdio>
#include <vector>
template <typename T> __global__ void saxpy(T a, const T *x, T *y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
template __global__ void saxpy<float>(float, const float *, float *, int);
template __global__ void saxpy<double>(double, const double *, double *, int);
int run(int n) { std::vector<float> v(n); printf("%zu\n", v.size()); return 0; }
CU
G=(-gencode arch=compute_75,code=sm_75 -gencode arch=compute_90,code=sm_90)
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

export CACHEPOT_DIR="$work/cp" CCACHE_DIR="$work/ccache"
"$CP" "$NVCC" -c k.cu -o warm.o "${G[@]}"           # identity digests memoized once
ccache "$NVCC" -c k.cu -o c.o "${G[@]}" >/dev/null 2>&1
# Interleaved, so that background load falls on every tool alike.
for _ in $(seq "$N"); do
  ms "$NVCC" -c k.cu -o p.o "${G[@]}" >>plain.ms
  CACHEPOT_RECACHE=1 ms "$CP" "$NVCC" -c k.cu -o m.o "${G[@]}" >>miss.ms
  ms "$CP" "$NVCC" -c k.cu -o h.o "${G[@]}" >>hit.ms
  ms ccache "$NVCC" -c k.cu -o c.o "${G[@]}" >>ccache.ms
done
plain=$(median <plain.ms) miss=$(median <miss.ms) hit=$(median <hit.ms) ccache_hit=$(median <ccache.ms)
echo "N=$N (median ms)  plain nvcc: $plain  cachepot miss: $miss  cachepot hit: $hit  ccache hit: $ccache_hit"
awk -v m="$miss" -v p="$plain" -v h="$hit" -v c="$ccache_hit" \
  'BEGIN { printf "miss/plain = %.2f (target <= 1.10)   hit/ccache hit = %.2f (target <= 0.80)\n", m / p, h / c }'
"$NVCC" -c k.cu -o t.o "${G[@]}" --time stages.csv >/dev/null
echo "nvcc --time, per stage (ms):"
awk -F' , ' 'NR > 1 { s[$2] += $7; t += $7 } END { for (k in s) printf "  %-24s %8.1f\n", k, s[k]; printf "  %-24s %8.1f\n", "total", t }' stages.csv
