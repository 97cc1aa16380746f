#!/usr/bin/env bash
# Trains the default tiny GPT once per connection, for the same number of steps on the same data and seed,
# and prints a Markdown table: parameters, final validation loss, training throughput.
#
#   bash tools/run.sh compare [steps] [extra tinylm train flags...]     (builds tinylm first)
#   bash tools/compare_connections.sh [steps] [extra tinylm train flags...]
#
# Runs go to runs/compare-<connection>/ (replaced on each call). Throughput is the mean tokens/s of the
# run's evaluation windows (metrics.csv), so build and evaluation time do not count.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps=${1:-600}
shift || true
tinylm=build/examples/tinylm
[ -x "$tinylm" ] || { echo "compare_connections: build tinylm first, or run bash tools/run.sh compare" >&2; exit 1; }

connections=(
  "residual|--connection residual"
  "hc, 4 streams|--connection hc --streams 4"
  "frac, 4 fractions|--connection frac --fracs 4"
  "hc, 2 streams x 2 fractions|--connection hc --streams 2 --fracs 2"
  "mhc, 4 streams|--connection mhc --streams 4"
  "mhc-paper, 4 streams|--connection mhc-paper --streams 4"
)

echo "| connection | parameters | val loss (nats/byte) | tokens/s |"
echo "|---|---|---|---|"
for entry in "${connections[@]}"; do
  label=${entry%%|*}
  flags=${entry#*|}
  name=$(echo "$label" | tr -c 'a-z0-9\n' '-')
  out=runs/compare-$name
  rm -rf "$out"
  # shellcheck disable=SC2086  # flags are words on purpose
  log=$("$tinylm" train --steps "$steps" --eval-every $((steps / 4)) --sample-tokens 0 $flags --out "$out" "$@" 2>&1) ||
    { echo "compare_connections: $label failed:" >&2; echo "$log" | tail -5 >&2; exit 1; }
  params=$(echo "$log" | sed -n 's/.*, \([0-9.]*M\) parameters.*/\1/p' | head -1)
  loss=$(echo "$log" | sed -n 's/^final val_loss=\([0-9.]*\).*/\1/p')
  speed=$(awk -F, 'NR > 1 { sum += $5; n++ } END { if (n) printf "%.0f", sum / n }' "$out/metrics.csv")
  echo "| $label | $params | $loss | $speed |"
done
