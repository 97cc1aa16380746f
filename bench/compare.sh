#!/usr/bin/env bash
# hcgrad against PyTorch eager on the canonical tiny LM, per connection, on the same machine and thread
# count: bench/bench_tinylm and tools/torch_peer.py run alternately (hcgrad, torch, hcgrad, torch, ...) so
# that a change in the machine's load hits both, and each side keeps its better round.
#
#   bash bench/compare.sh [threads] [rounds]        (default 2 threads, 2 rounds; needs build/ and tools/.venv)
#
# Prints a Markdown table: tokens/s and peak RSS of each, and the ratio hcgrad / torch.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads=${1:-2}
rounds=${2:-2}
bench=build/bench/bench_tinylm
python=tools/.venv/bin/python
[ -x "$bench" ] || { echo "compare.sh: build bench_tinylm first (bash tools/run.sh test builds it)" >&2; exit 1; }
[ -x "$python" ] || { echo "compare.sh: no tools/.venv; see tools/requirements-fixtures.txt" >&2; exit 1; }

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" | tail -1; }

echo "| connection | hcgrad tokens/s | torch tokens/s | ratio | hcgrad peak RSS MB | torch peak RSS MB |"
echo "|---|---|---|---|---|---|"
for connection in residual hc frac mhc mhc-paper; do
  best_ours=0 best_theirs=0 rss_ours=0 rss_theirs=0
  for _ in $(seq "$rounds"); do
    ours=$("$bench" --connection "$connection" --threads "$threads" --steps 30)
    speed=$(echo "$ours" | field tokens_per_s)
    if awk "BEGIN { exit !($speed > $best_ours) }"; then best_ours=$speed; fi
    rss_ours=$(echo "$ours" | field peak_rss_mb)
    if [ "$connection" = mhc-paper ]; then continue; fi  # the PyPI library has no paper-form mHC
    theirs=$("$python" tools/torch_peer.py --device cpu --threads "$threads" --connection "$connection" --steps 30)
    speed=$(echo "$theirs" | field tokens_per_s)
    if awk "BEGIN { exit !($speed > $best_theirs) }"; then best_theirs=$speed; fi
    rss_theirs=$(echo "$theirs" | field peak_rss_mb)
  done
  if [ "$connection" = mhc-paper ]; then
    echo "| $connection | $best_ours | - | - | $rss_ours | - |"
  else
    ratio=$(awk "BEGIN { printf \"%.2f\", $best_ours / $best_theirs }")
    echo "| $connection | $best_ours | $best_theirs | $ratio | $rss_ours | $rss_theirs |"
  fi
done
