#!/usr/bin/env bash
# tinylm under mpirun (data-parallel training, docs/tinylm.md): with every connection kind, 2 ranks sharing a
# global batch of 16 train as 1 process with 16 does (losses within 1e-5 relative); one run directory; the
# gradients averaged during backward or after it give the same run; a 2-rank run resumes exactly under 2 ranks
# and is refused under another count; a global batch the ranks cannot share, a rank failing mid-run and a
# rank killed mid-run each end the job with a non-zero exit, not a hang, and leave the last checkpoint good.
#   bash tests/tinylm_mpi.sh TINYLM MPIEXEC
set -euo pipefail
tinylm=$1
mpi=("$2" --allow-run-as-root --oversubscribe -np 2)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() {
  echo "tinylm_mpi: $*" >&2
  exit 1
}
model=(--batch 16 --layers 2 --dim 32 --heads 2 --ctx 16 --threads 1)
small=(--steps 20 --eval-every 5 "${model[@]}")

# step, train_loss, val_loss of every evaluation in two metrics.csv: the same within `tolerance` relative
same_metrics() {
  paste -d, <(cut -d, -f1-3 "$1/metrics.csv") <(cut -d, -f1-3 "$2/metrics.csv") | awk -F, -v tol="$3" -v what="$4" '
    NR == 1 { next }
    function off(a, b) { d = a - b; if (d < 0) d = -d; return d > tol * (b < 0 ? -b : b) }
    $1 != $4 || off($2, $5) || off($3, $6) { print "tinylm_mpi: " what ": 1 process and 2 ranks differ: " $0; bad = 1 }
    END { if (NR < 5) { print "tinylm_mpi: " what ": too few metrics rows"; bad = 1 }; exit bad }'
}

for connection in residual hc frac frac-paper mhc mhc-paper mhc-identity mhc-paper-identity \
                  hc-fused frac-fused frac-paper-fused mhc-fused mhc-paper-fused; do
  "$tinylm" train "${small[@]}" --connection "$connection" --out "$scratch/one-$connection" > /dev/null
  "${mpi[@]}" "$tinylm" train "${small[@]}" --connection "$connection" --out "$scratch/two-$connection" > /dev/null
  same_metrics "$scratch/one-$connection" "$scratch/two-$connection" 1e-5 "$connection"
done
echo "ok: 2 ranks x 8 match 1 process x 16 for 20 steps with every connection kind ($SECONDS s)"
[ "$(ls "$scratch" | grep -c residual)" = 2 ] || fail "expected one run directory per run: $(ls "$scratch")"

# Overlap off: the same buckets, all-reduced after backward: the same numbers.
"${mpi[@]}" "$tinylm" train "${small[@]}" --connection mhc --no-overlap --out "$scratch/no-overlap" > /dev/null
cmp <(cut -d, -f1-3 "$scratch/two-mhc/metrics.csv") <(cut -d, -f1-3 "$scratch/no-overlap/metrics.csv") ||
  fail "--no-overlap changed the run"
echo "ok: --no-overlap gives the same run ($SECONDS s)"

# With dropout (a stream per rank), stopped at step 10 under 2 ranks: refused alone, then resumed under 2
# ranks: the uninterrupted run's rows.
"${mpi[@]}" "$tinylm" train "${small[@]}" --dropout 0.1 --out "$scratch/uninterrupted" > /dev/null
"${mpi[@]}" "$tinylm" train "${small[@]}" --dropout 0.1 --out "$scratch/resumed" --stop-at 10 > /dev/null
if "$tinylm" train --resume "$scratch/resumed" --threads 1 > "$scratch/alone.log" 2>&1; then
  fail "a 2-rank checkpoint was resumed by 1 process"
fi
grep -q "trained by 2 rank(s) and this run has 1" "$scratch/alone.log" || fail "no message: $(cat "$scratch/alone.log")"
"${mpi[@]}" "$tinylm" train --resume "$scratch/resumed" --threads 1 > /dev/null
cmp <(cut -d, -f1-3 "$scratch/uninterrupted/metrics.csv") <(cut -d, -f1-3 "$scratch/resumed/metrics.csv") ||
  fail "a resumed 2-rank run differs from an uninterrupted one"
echo "ok: a 2-rank run with dropout resumes exactly under 2 ranks and is refused by 1 process ($SECONDS s)"

# 15 rows cannot be shared by 2 ranks: every rank stops with the message, the job exits non-zero.
if timeout 60 "${mpi[@]}" "$tinylm" train --steps 5 --batch 15 --threads 1 --out "$scratch/bad" > "$scratch/bad.log" 2>&1; then
  fail "a global batch of 15 on 2 ranks was accepted"
fi
grep -q "must be divisible by the 2 ranks" "$scratch/bad.log" || fail "no message for --batch 15: $(cat "$scratch/bad.log")"
echo "ok: --batch 15 on 2 ranks is refused ($SECONDS s)"

# The PID of rank $2 of the job training into run directory $1.
rank_pid() {
  for pid in $(pgrep -f "$1" || true); do
    if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then echo "$pid"; fi
  done
}
# Starts a long 2-rank run into $1 (log $1.log) in the background and waits for its first checkpoint.
start_long_run() {
  "${mpi[@]}" "$tinylm" train "${model[@]}" --steps 100000 --eval-every 5 --out "$1" > "$1.log" 2>&1 &
  job=$!
  for _ in $(seq 600); do [ -f "$1/checkpoint.safetensors" ] && return; sleep 0.1; done
  kill -9 "$job" 2>/dev/null || true
  fail "no first checkpoint in $1: $(cat "$1.log")"
}
# Waits at most 60 s for the job (then kills it); sets status and elapsed.
wait_bounded() {
  local start=$SECONDS
  while kill -0 "$job" 2>/dev/null && [ $((SECONDS - start)) -lt 60 ]; do sleep 0.2; done
  kill -9 "$job" 2>/dev/null || true
  status=0
  wait "$job" || status=$?
  elapsed=$((SECONDS - start))
}

# Rank 0 alone fails mid-run: its disk is full (a file-size limit set on it alone) at its next checkpoint. The
# job ends with rank 0's message, and the last good checkpoint loads.
start_long_run "$scratch/full"
prlimit --pid "$(rank_pid "$scratch/full" 0)" --fsize=65536
wait_bounded
[ "$status" != 0 ] && [ "$elapsed" -lt 60 ] || fail "a rank failing mid-run -> exit $status after $elapsed s"
grep -q "tinylm: rank 0 of 2: .*is kept in" "$scratch/full.log" || fail "no message naming the rank: $(cat "$scratch/full.log")"
"$tinylm" sample --checkpoint "$scratch/full" --tokens 8 > /dev/null || fail "the checkpoint left behind does not load"
echo "ok: a rank failing mid-run ends the job in $elapsed s: $(grep -o 'tinylm: rank 0 of 2: .*' "$scratch/full.log" | cut -c1-120)... ($SECONDS s)"

# Rank 1 killed (kill -9) mid-run: the job exits non-zero within 60 s, and the checkpoint it leaves loads.
start_long_run "$scratch/killed"
kill -9 "$(rank_pid "$scratch/killed" 1)"
wait_bounded
[ "$status" != 0 ] && [ "$elapsed" -lt 60 ] || fail "a killed rank -> exit $status after $elapsed s"
"$tinylm" sample --checkpoint "$scratch/killed" --tokens 8 > /dev/null || fail "the checkpoint left behind does not load"
echo "ok: a killed rank ends the job in $elapsed s (exit $status), the checkpoint left behind loads ($SECONDS s)"
