#!/usr/bin/env bash
# cnn_digits end to end: the small CNN (Conv2d, MaxPool2d, its residual blocks joined by channel-first
# hyper-connections, the default) must reach >= 97% test accuracy on the 8x8 digits.
# Skipped (exit 77) when data/digits.csv.gz is missing: bash tools/run.sh test fetches it.
#   bash tests/cnn_digits_accuracy.sh path/to/cnn_digits path/to/digits.csv.gz
set -uo pipefail
cnn=$1
data=$2
if [ ! -s "$data" ]; then
  echo "skipped: $data not found (bash tools/run.sh test fetches it from Debian's python3-sklearn)"
  exit 77
fi
output=$("$cnn" --data "$data" 2>&1) || { echo "FAIL: cnn_digits failed:"; echo "$output" | tail -5; exit 1; }
echo "$output" | tail -3
accuracy=$(echo "$output" | sed -n 's/^cnn_digits: test accuracy \([0-9.]*\)%$/\1/p')
[ -n "$accuracy" ] || { echo "FAIL: no accuracy line"; exit 1; }
if awk -v a="$accuracy" 'BEGIN { exit !(a >= 97) }'; then
  echo "ok: CNN test accuracy $accuracy% >= 97%"
else
  echo "FAIL: CNN test accuracy $accuracy% < 97%"; exit 1
fi
