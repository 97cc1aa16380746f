#!/usr/bin/env bash
# tinylm's command line on bad input: each case must exit non-zero with a message that says what is
# wrong — never crash (a signal gives exit code >= 128) and never succeed.
#   bash tests/tinylm_cli.sh path/to/tinylm
set -uo pipefail
tinylm=$1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failures=0

# expect_error "what the message must contain" args...
expect_error() {
  local want=$1
  shift
  local output status
  output=$("$tinylm" "$@" 2>&1)
  status=$?
  if [ "$status" -eq 0 ] || [ "$status" -ge 128 ] || ! grep -qF -- "$want" <<<"$output"; then
    echo "FAIL: tinylm $* -> exit $status, expected a message containing '$want'; got:"
    echo "$output" | tail -5
    failures=$((failures + 1))
  else
    echo "ok: tinylm $* -> exit $status: $(grep -F -- "$want" <<<"$output" | head -1)"
  fi
}

printf 'a short text\n' >"$scratch/short.txt"
: >"$scratch/empty.txt"
head -c 20000 /dev/urandom | base64 >"$scratch/text.txt"
printf 'this is not a checkpoint' >"$scratch/garbage.safetensors"

expect_error "no such file" train --data "$scratch/missing.txt" --out "$scratch/r1"
expect_error "empty" train --data "$scratch/empty.txt" --out "$scratch/r2"
expect_error "corpus too short" train --data "$scratch/short.txt" --out "$scratch/r3"
expect_error "heads (3) must divide dim (128)" train --data "$scratch/text.txt" --heads 3 --out "$scratch/r4"
expect_error "must be positive" train --data "$scratch/text.txt" --layers 0 --out "$scratch/r5"
expect_error "must be positive" train --data "$scratch/text.txt" --batch -2 --out "$scratch/r6"
expect_error "must be positive" train --data "$scratch/text.txt" --ctx 0 --out "$scratch/r7"
expect_error "--lr must be positive" train --data "$scratch/text.txt" --lr -1 --out "$scratch/r8"
expect_error "connection must be residual, hc, frac, mhc or mhc-paper" train --data "$scratch/text.txt" --connection bogus --out "$scratch/r9"
expect_error "streams = 2 and fracs = 1 need a connection other than residual" train --data "$scratch/text.txt" --streams 2 --out "$scratch/r10"
expect_error "--bogus" train --bogus
expect_error "did you mean 'train'?" trian --steps 1
expect_error "did you mean '--steps'?" train --stpes 5
expect_error "did you mean '--connections'?" compare --connection hc
expect_error "Could not convert" train --steps many
expect_error "required" sample
expect_error "missing.safetensors" sample --checkpoint "$scratch/missing.safetensors"
expect_error "garbage.safetensors" sample --checkpoint "$scratch/garbage.safetensors"
expect_error "garbage.safetensors" train --resume "$scratch/garbage.safetensors"

# A tiny real run, then sampling from it: both succeed. --connection hc without --streams has 4 streams.
if ! "$tinylm" train --data "$scratch/text.txt" --steps 4 --layers 1 --dim 16 --heads 2 --ctx 16 --batch 2 \
  --eval-every 2 --sample-tokens 8 --connection hc --out "$scratch/run" >"$scratch/train.log" 2>&1; then
  echo "FAIL: a tiny training run failed:"; tail -5 "$scratch/train.log"; failures=$((failures + 1))
elif ! grep -q "^final val_loss=" "$scratch/train.log"; then
  echo "FAIL: no 'final val_loss=' line"; failures=$((failures + 1))
elif ! grep -q "hc with 4 streams" "$scratch/train.log"; then
  echo "FAIL: --connection hc without --streams did not use 4 streams:"; head -1 "$scratch/train.log"
  failures=$((failures + 1))
elif ! "$tinylm" sample --checkpoint "$scratch/run" --tokens 8 >/dev/null; then
  echo "FAIL: sampling from the run failed"; failures=$((failures + 1))
else
  echo "ok: tiny train + sample"
fi
expect_error "already holds a checkpoint" train --data "$scratch/text.txt" --out "$scratch/run"

# compare: bad arguments, a directory that already holds files (never overwritten), then a tiny comparison.
expect_error "unknown connection 'bogus'" compare --connections residual,bogus --out "$scratch/c0"
expect_error "must be positive" compare --seeds 0 --out "$scratch/c0"
mkdir -p "$scratch/c1" && echo "a user's file" >"$scratch/c1/keep.txt"
expect_error "already holds files" compare --out "$scratch/c1"
grep -q "a user's file" "$scratch/c1/keep.txt" || { echo "FAIL: compare touched a user's file"; failures=$((failures + 1)); }
if ! "$tinylm" compare --data "$scratch/text.txt" --connections residual,mhc --seeds 2 --steps 2 --diagnostics \
  --layers 1 --dim 16 --heads 2 --ctx 16 --batch 2 --out "$scratch/cmp" >"$scratch/compare.log" 2>&1; then
  echo "FAIL: a tiny comparison failed:"; tail -5 "$scratch/compare.log"; failures=$((failures + 1))
elif [ "$(wc -l <"$scratch/cmp/summary.csv")" -ne 5 ] || ! grep -q "^| mhc | " "$scratch/cmp/summary.md" ||
  [ ! -f "$scratch/cmp/mhc-seed2/diagnostics/gain.csv" ]; then
  echo "FAIL: compare's summary.csv / summary.md / diagnostics are incomplete:"; cat "$scratch/cmp/summary.csv"
  failures=$((failures + 1))
elif ! grep -q "1 layers, dim 16, 2 heads, context 16" "$scratch/cmp/mhc-seed1/log.txt"; then
  echo "FAIL: compare did not pass the model size to its runs:"; head -1 "$scratch/cmp/mhc-seed1/log.txt"
  failures=$((failures + 1))
else
  echo "ok: tiny compare (2 connections x 2 seeds, the model size passed on)"
fi

# Without gnuplot: compare says how to make the plots and claims no PNG.
mkdir -p "$scratch/no-gnuplot"
if ! PATH="$scratch/no-gnuplot" "$tinylm" compare --data "$scratch/text.txt" --connections residual --seeds 1 \
  --steps 2 --layers 1 --dim 16 --heads 2 --ctx 16 --batch 2 --out "$scratch/cmp-plain" >"$scratch/plain.log" 2>&1; then
  echo "FAIL: compare without gnuplot failed:"; tail -5 "$scratch/plain.log"; failures=$((failures + 1))
elif ! grep -q "apt-get install gnuplot-nox" "$scratch/plain.log" || ! grep -q "no PNGs" "$scratch/plain.log" ||
  ls "$scratch/cmp-plain"/*.png >/dev/null 2>&1; then
  echo "FAIL: without gnuplot, compare should say how to get the plots and make no PNG:"; tail -3 "$scratch/plain.log"
  failures=$((failures + 1))
else
  echo "ok: compare without gnuplot says how to render the plots"
fi

[ "$failures" -eq 0 ] && echo "all tinylm command-line checks passed" || echo "$failures failed"
exit $((failures > 0))
