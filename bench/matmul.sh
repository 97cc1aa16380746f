#!/usr/bin/env bash
# GEMM: hcgrad's matmul against plain Eigen, same shape and thread count, run alternately so that both
# see the same machine load. Prints each side's median-of-rounds GFLOP/s (each round itself a median of 30 calls) and the ratio.
#
#   bash bench/matmul.sh [BUILD_DIR] [n k m threads]      (default: build 2048 512 512 2)
set -euo pipefail
build=${1:-build}
shape=("${@:2}")
[ ${#shape[@]} -eq 4 ] || shape=(2048 512 512 2)
rounds=${ROUNDS:-9}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ours=() theirs=()
for ((i = 0; i < rounds; i++)); do
  ours+=("$("$build/bench/bench_matmul" "${shape[@]}" | sed -n 's/^gflops=//p')")
  theirs+=("$("$build/bench/bench_eigen_gemm" "${shape[@]}" | sed -n 's/^gflops=//p')")
done
h=$(printf '%s\n' "${ours[@]}" | median)
e=$(printf '%s\n' "${theirs[@]}" | median)
echo "matmul f32 [${shape[0]},${shape[1]}] @ [${shape[1]},${shape[2]}], ${shape[3]} threads, median of $rounds rounds"
echo "  hcgrad matmul: ${h} GFLOP/s   (rounds: ${ours[*]})"
echo "  plain Eigen:   ${e} GFLOP/s   (rounds: ${theirs[*]})"
awk -v h="$h" -v e="$e" 'BEGIN { printf "gflops_hcgrad=%s gflops_eigen=%s ratio=%.2f\n", h, e, h / e }'
