#!/usr/bin/env bash
# tinylm under mpirun (issue: data-parallel training): 2 ranks sharing a global batch of 16 train as 1 process
# with 16 does (losses within 1e-4 relative), write one run directory, resume under 2 ranks exactly, and a
# global batch the ranks cannot share is refused with a message and a non-zero exit, not a hang.
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
small=(--steps 20 --batch 16 --eval-every 10 --layers 2 --dim 64 --heads 2 --ctx 32 --threads 1)

"$tinylm" train "${small[@]}" --out "$scratch/one" > "$scratch/one.log"
"${mpi[@]}" "$tinylm" train "${small[@]}" --out "$scratch/two" > "$scratch/two.log"
[ "$(ls "$scratch")" = "$(printf 'one\none.log\ntwo\ntwo.log')" ] || fail "expected one run directory per run: $(ls "$scratch")"
# step, train_loss, val_loss of every evaluation: the same within 1e-4 relative
paste -d, <(cut -d, -f1-3 "$scratch/one/metrics.csv") <(cut -d, -f1-3 "$scratch/two/metrics.csv") | awk -F, '
  NR == 1 { next }
  function off(a, b) { d = a - b; if (d < 0) d = -d; return d > 1e-4 * (1 + (b < 0 ? -b : b)) }
  $1 != $4 || off($2, $5) || off($3, $6) { print "tinylm_mpi: 1 process and 2 ranks differ: " $0; bad = 1 }
  END { if (NR < 3) { print "tinylm_mpi: too few metrics rows"; bad = 1 }; exit bad }'

# Stopped at step 10 and resumed under 2 ranks: the rows of the uninterrupted 2-rank run.
"${mpi[@]}" "$tinylm" train "${small[@]}" --out "$scratch/resumed" --stop-at 10 > /dev/null
"${mpi[@]}" "$tinylm" train --resume "$scratch/resumed" --threads 1 > /dev/null
cmp <(cut -d, -f1-3 "$scratch/two/metrics.csv") <(cut -d, -f1-3 "$scratch/resumed/metrics.csv") ||
  fail "a resumed 2-rank run differs from an uninterrupted one"

# 15 rows cannot be shared by 2 ranks: every rank stops with the message, the job exits non-zero.
if timeout 60 "${mpi[@]}" "$tinylm" train --steps 5 --batch 15 --threads 1 --out "$scratch/bad" > "$scratch/bad.log" 2>&1; then
  fail "a global batch of 15 on 2 ranks was accepted"
fi
grep -q "must be divisible by the 2 ranks" "$scratch/bad.log" || fail "no message for --batch 15: $(cat "$scratch/bad.log")"
echo "tinylm_mpi: 2 ranks match 1 process, resume exactly, and refuse an unshareable batch"
