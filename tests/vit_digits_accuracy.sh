#!/usr/bin/env bash
# vit_digits end to end: the ViT with mHC must reach >= 95% test accuracy on the 8x8 digits (README's bar), and
# bad arguments must be refused. Skipped (exit 77) when data/digits.csv.gz is missing: bash tools/run.sh test
# fetches it, as does bash tools/run.sh vit.
#   bash tests/vit_digits_accuracy.sh path/to/vit_digits path/to/digits.csv.gz
set -uo pipefail
vit=$1
data=$2
if "$vit" --data /nonexistent/digits.csv.gz >/dev/null 2>&1; then
  echo "FAIL: a missing data file was accepted"; exit 1
fi
if [ ! -s "$data" ]; then
  echo "skipped: $data not found (bash tools/run.sh vit fetches it from Debian's python3-sklearn)"
  exit 77
fi
output=$("$vit" --data "$data" --connections mhc 2>&1) || { echo "FAIL: vit_digits failed:"; echo "$output" | tail -5; exit 1; }
echo "$output" | tail -3
accuracy=$(echo "$output" | sed -n 's/^| mhc | [0-9]* | \([0-9.]*\)% .*/\1/p')
[ -n "$accuracy" ] || { echo "FAIL: no accuracy line"; exit 1; }
if awk -v a="$accuracy" 'BEGIN { exit !(a >= 95) }'; then
  echo "ok: mHC ViT test accuracy $accuracy% >= 95%"
else
  echo "FAIL: mHC ViT test accuracy $accuracy% < 95%"; exit 1
fi
