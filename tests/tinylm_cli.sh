#!/usr/bin/env bash
# tinylm's command line on bad and hostile input: each case must exit non-zero with a message that says what
# is wrong — never crash (a signal gives exit code >= 128), never succeed, never lose what the user had. The
# second half replays hostile cases (absurd sizes, a diverging run, devices as data, a file-size limit as a
# full disk, a memory limit, two runs on one directory, a resume from elsewhere, leftovers of a killed save).
#   bash tests/tinylm_cli.sh path/to/tinylm
set -uo pipefail
tinylm=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")  # absolute: some cases run from other directories
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
expect_error "connection must be residual, hc, frac, frac-paper, mhc, mhc-identity, mhc-paper, mhc-paper-identity, hc-fused, frac-fused, frac-paper-fused, mhc-fused or mhc-paper-fused" train --data "$scratch/text.txt" --connection bogus --out "$scratch/r9"
expect_error "streams = 2 and fracs = 1 need a connection other than residual" train --data "$scratch/text.txt" --streams 2 --out "$scratch/r10"
expect_error "--bogus" train --bogus
expect_error "did you mean 'train'?" trian --steps 1
expect_error "did you mean '--steps'?" train --stpes 5
expect_error "did you mean '--connections'?" compare --connection hc
expect_error "'many' is not a whole number" train --steps many
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

# ---- Hostile input: each of these once crashed, hung, lost data or passed garbage as good ----
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
tiny=(--layers 1 --dim 16 --heads 2 --ctx 16 --batch 2 --threads 1)
expect_error "is too large: its byte count overflows" train --data "$scratch/text.txt" --layers 1 \
  --dim 4611686018427387904 --heads 1 --ctx 32 --steps 20 --out "$scratch/h1"
# A learning rate of 1e39 (Inf in float32) makes every weight NaN at the first step: nothing is saved.
expect_error "no checkpoint had been written yet" train --data "$scratch/text.txt" --steps 20 "${tiny[@]}" --lr 1e39 \
  --warmup 0 --eval-every 1 --out "$scratch/h2"
[ ! -e "$scratch/h2/checkpoint.safetensors" ] || fail "a diverged run saved a checkpoint"
expect_error "'/dev/zero' is not a regular file" train --data /dev/zero "${tiny[@]}" --out "$scratch/h3"
head -c 1048577 /dev/zero | tr '\0' 'a' >"$scratch/big.txt"
expect_error "more than --max-data-mb 1 allows" train --data "$scratch/big.txt" --max-data-mb 1 --out "$scratch/h3"
expect_error "'99999999999999999999' is out of range" train --steps 99999999999999999999 --out "$scratch/h4"
expect_error "'-1' is out of range (0 to" train --seed -1 --out "$scratch/h4"
expect_error "'12x' is not a whole number" sample --checkpoint "$scratch/run" --tokens 12x
expect_error "expected cpu, cuda or cuda:N, got 'cuda:x'" train --data "$scratch/text.txt" --device cuda:x --out "$scratch/h5"
expect_error "--threads must be >= 0, got -1" train --data "$scratch/text.txt" --threads -1 --out "$scratch/h6"
expect_error "--stop-at must be >= 0, got -5" train --data "$scratch/text.txt" --stop-at -5 --out "$scratch/h6"
expect_error "--sample-tokens must be >= 0, got -1" train --data "$scratch/text.txt" --sample-tokens -1 --out "$scratch/h6"
expect_error "--data is empty" train --data "" --out "$scratch/h6"
expect_error "--out is empty" train --data "$scratch/text.txt" --out ""
expect_error "--resume is empty" train --resume ""
expect_error "more than 1000 runs per connection" compare --seeds 1001 --out "$scratch/h6"
expect_error "--temperature must be >= 0" sample --checkpoint "$scratch/run" --temperature -1
expect_error "cannot create the run directory '/proc/hcgrad-test'" train --data "$scratch/text.txt" "${tiny[@]}" \
  --out /proc/hcgrad-test
[ ! -e "$scratch/h6" ] || fail "a refused run left a directory behind"

# An edited value in a checkpoint's header (same length, so only the checksum can tell) is refused.
perl -0777 -pe 's/"train.lr":"0.003"/"train.lr":"0.004"/' "$scratch/run/checkpoint.safetensors" >"$scratch/edited.safetensors"
cmp -s "$scratch/run/checkpoint.safetensors" "$scratch/edited.safetensors" && fail "the edit did not happen"
expect_error "checksum mismatch: the file was edited or is corrupt" sample --checkpoint "$scratch/edited.safetensors"

# Under a memory limit, running out of memory is a one-line error with the size (a tensor's, or any other
# allocation's: hc with 100000 streams asks for an 80 GB matrix outside tensors). Not with AddressSanitizer,
# which reserves terabytes of address space and cannot start under ulimit -v.
if [ -n "${ASAN_OPTIONS:-}" ]; then
  echo "skipped: the memory-limit case (ulimit -v) under AddressSanitizer"
else
  output=$( (ulimit -v 2000000; "$tinylm" train --data "$scratch/text.txt" --layers 100000 --dim 32 --heads 2 \
    --ctx 16 --batch 2 --threads 1 --out "$scratch/h7") 2>&1)
  status=$?
  if [ "$status" -ne 1 ] || ! grep -qE "cannot allocate [0-9.]+ ([KMGTPE]?i?B|bytes) .* out of memory|out of memory: an allocation of [0-9]+ bytes failed" <<<"$output"; then
    fail "out of memory under ulimit -v -> exit $status:"; echo "$output" | tail -3
  else
    echo "ok: out of memory under ulimit -v -> exit 1: $(tail -1 <<<"$output")"
  fi
  output=$( (ulimit -v 4000000; "$tinylm" train --data "$scratch/text.txt" --layers 1 --dim 32 --heads 2 --ctx 16 \
    --batch 2 --connection hc --streams 100000 --out "$scratch/h8") 2>&1)
  status=$?
  if [ "$status" -ne 1 ] || ! grep -q "out of memory: an allocation of [0-9]* bytes failed" <<<"$output"; then
    fail "an allocation outside tensors under ulimit -v -> exit $status:"; echo "$output" | tail -3
  else
    echo "ok: an allocation outside tensors under ulimit -v -> exit 1: $(tail -1 <<<"$output")"
  fi
fi

# A save that fails (here: a file-size limit, as a full disk would) stops the run, says which step's checkpoint
# is kept, and leaves it byte for byte, with no temporary file behind.
"$tinylm" train --data "$scratch/text.txt" "${tiny[@]}" --steps 8 --eval-every 2 --stop-at 2 --out "$scratch/full" \
  >/dev/null 2>&1 || fail "the run before the full-disk case failed"
cp "$scratch/full/checkpoint.safetensors" "$scratch/full-before.safetensors"
output=$( (trap '' XFSZ; ulimit -f 64; "$tinylm" train --resume "$scratch/full") 2>&1)
status=$?
if [ "$status" -ne 1 ] || ! grep -q "the last good checkpoint (step 2) is kept" <<<"$output"; then
  fail "a failed save -> exit $status:"; echo "$output" | tail -3
elif ! cmp -s "$scratch/full/checkpoint.safetensors" "$scratch/full-before.safetensors" ||
  ls "$scratch/full" | grep -q "\.tmp-"; then
  fail "a failed save changed the checkpoint or left a temporary file"
else
  echo "ok: a failed save -> exit 1: $(tail -1 <<<"$output")"
fi

# Two runs on one directory: the second is refused with the first one's PID, and the first goes on.
"$tinylm" train --data "$scratch/text.txt" "${tiny[@]}" --steps 1000000 --eval-every 1000000 --out "$scratch/busy" \
  >"$scratch/busy.log" 2>&1 &
first=$!
for _ in $(seq 600); do
  [ -s "$scratch/busy/.tinylm.lock" ] && break
  sleep 0.1
done
expect_error "'$scratch/busy' is in use by another tinylm run (pid $first)" train --data "$scratch/text.txt" \
  "${tiny[@]}" --out "$scratch/busy"
kill -0 "$first" 2>/dev/null || fail "the first run stopped when a second one was refused"
kill -9 "$first" 2>/dev/null
wait "$first" 2>/dev/null

# A seed past INT64_MAX survives a resume (it is read back as the unsigned number it is).
"$tinylm" train --data "$scratch/text.txt" "${tiny[@]}" --steps 4 --eval-every 2 --stop-at 2 --seed 18446744073709551615 \
  --out "$scratch/seed" >/dev/null 2>&1 || fail "a run with the largest seed failed"
"$tinylm" train --resume "$scratch/seed" --sample-tokens 0 >"$scratch/seed.log" 2>&1 ||
  { fail "resuming a run with the largest seed failed:"; tail -2 "$scratch/seed.log"; }

# A resume from another working directory, with the same text at another (relative) path; then a stale
# temporary file of a killed save is cleaned up.
mkdir -p "$scratch/rel/sub"
cp "$scratch/text.txt" "$scratch/rel/data.txt"
touch "$scratch/rel/sub/checkpoint.safetensors.tmp-4194305-0"
if ! (cd "$scratch/rel" && "$tinylm" train --data data.txt "${tiny[@]}" --steps 6 --eval-every 2 --stop-at 2 \
  --out sub/x >/dev/null 2>&1); then
  fail "a run with a relative --data path failed"
fi
mv "$scratch/rel/sub/checkpoint.safetensors.tmp-4194305-0" "$scratch/rel/sub/x/"
cp "$scratch/text.txt" "$scratch/rel/sub/copy.txt"
if ! (cd "$scratch/rel/sub" && "$tinylm" train --resume x --data copy.txt --stop-at 4 >"$scratch/rel.log" 2>&1); then
  fail "resuming from another directory with the same text at another path failed:"; tail -3 "$scratch/rel.log"
elif ! (cd / && "$tinylm" train --resume "$scratch/rel/sub/x" >>"$scratch/rel.log" 2>&1); then
  fail "resuming without --data from another directory failed:"; tail -3 "$scratch/rel.log"
elif [ -e "$scratch/rel/sub/x/checkpoint.safetensors.tmp-4194305-0" ]; then
  fail "a dead writer's temporary file was not removed"
else
  echo "ok: resume by content from other directories; a dead writer's temporary file removed"
fi

[ "$failures" -eq 0 ] && echo "all tinylm command-line checks passed" || echo "$failures failed"
exit $((failures > 0))
