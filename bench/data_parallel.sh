#!/usr/bin/env bash
# Data-parallel training throughput on one machine: tinylm on the canonical tiny LM (its defaults, batch 16) as
# 1 process x N threads against N ranks x 1 thread under mpirun (the same global batch, the same run), with the
# gradients all-reduced during backward and after it (--no-overlap), run alternately so that a change in the
# machine's load hits all of them; each keeps its best round.
#
#   bash bench/data_parallel.sh [ranks] [rounds] [steps]      (default 2 ranks, 3 rounds, 60 steps; needs build/)
#   TINYLM=build-cpu/examples/tinylm CONNECTIONS="residual mhc" bash bench/data_parallel.sh
#
# Prints a Markdown table of training tokens/s (the global batch's tokens per second of training steps).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ranks=${1:-2}
rounds=${2:-3}
steps=${3:-60}
tinylm=${TINYLM:-build/examples/tinylm}
connections=${CONNECTIONS:-residual hc mhc}
[ -x "$tinylm" ] || { echo "data_parallel.sh: build tinylm first (bash tools/run.sh test builds it)" >&2; exit 1; }
command -v mpirun > /dev/null || { echo "data_parallel.sh: no mpirun (apt install openmpi-bin)" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# tokens/s of one run with $1 threads per process, launched by the rest (nothing, or mpirun ...): the final
# line "final val_loss=... tokens_per_s=N"
tokens_per_s() {
  local threads=$1 launcher=("${@:2}")
  rm -rf "$scratch/run"
  "${launcher[@]}" "$tinylm" train --connection "$connection" --threads "$threads" --steps "$steps" \
    --eval-every 1000000 --sample-tokens 0 --out "$scratch/run" ${extra:-} |
    sed -n 's/.*tokens_per_s=\([0-9]*\).*/\1/p'
}
best() { printf '%s\n' "$@" | sort -n | tail -1; }

mpi=(mpirun --allow-run-as-root --oversubscribe -np "$ranks")
echo "| connection | 1 process x $ranks threads | $ranks ranks x 1 thread | the same, --no-overlap | ranks / process |"
echo "|---|---:|---:|---:|---:|"
for connection in $connections; do
  alone=() split=() after=()
  for _ in $(seq "$rounds"); do
    alone+=("$(tokens_per_s "$ranks")")
    split+=("$(tokens_per_s 1 "${mpi[@]}")")
    after+=("$(extra=--no-overlap tokens_per_s 1 "${mpi[@]}")")
  done
  a=$(best "${alone[@]}") s=$(best "${split[@]}") n=$(best "${after[@]}")
  echo "| $connection | $a | $s | $n | $(awk -v a="$a" -v s="$s" 'BEGIN { printf "%.2f", s / a }') |"
done
