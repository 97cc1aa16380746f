#!/usr/bin/env bash
# hcgrad against PyTorch on the canonical tiny LM, per connection, on the same machine and thread count:
# bench/bench_tinylm and tools/torch_peer.py run alternately (hcgrad, then each PyTorch form, hcgrad, ...) so
# that a change in the machine's load hits all of them, and each keeps its better round.
#
#   bash bench/compare.sh [threads] [rounds]        (default 2 threads, 2 rounds; needs build/ and tools/.venv)
#   PEERS=all bash bench/compare.sh 2 2             (every PyTorch form below)
#   BENCH=build-cpu/bench/bench_tinylm CONNECTIONS="residual mhc mhc-fused" bash bench/compare.sh
#                                                   (another build's bench_tinylm; some of tinylm's connections,
#                                                   an -unfused or -fused one against the peer of its base name)
#
# PEERS picks the PyTorch forms, space- or comma-separated (default "eager"; "all" is all four):
#   eager        torch_peer.py with the `hyper-connections` package's module of the same name
#   compile      the same under torch.compile (--compile; the compile is in its untimed warm-up, but each run
#                spends a minute or more compiling)
#   eq           the connection as the paper's equations in plain tensor ops: hc-eq in the hc row, mhc-eq in
#                the mhc-paper row (hcgrad's paper-form mHC, whose equations and init mhc-eq has)
#   eq-compile   the same under torch.compile
# A form with no peer for a connection reads "-": the package has no paper-form mHC or Frac, and residual,
# frac, frac-paper and the package-form mhc have no -eq variant.
#
# Prints a Markdown table: tokens/s of hcgrad and of each PyTorch form, the ratio hcgrad / the best PyTorch
# form, and the peak RSS of hcgrad and of that best form.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads=${1:-2}
rounds=${2:-2}
peers=${PEERS:-eager}
bench=${BENCH:-build/bench/bench_tinylm}
connections=${CONNECTIONS:-residual hc frac frac-paper mhc mhc-paper}
python=tools/.venv/bin/python
[ -x "$bench" ] || { echo "compare.sh: build bench_tinylm first (bash tools/run.sh test builds it)" >&2; exit 1; }
[ -x "$python" ] || { echo "compare.sh: no tools/.venv; see tools/requirements-fixtures.txt" >&2; exit 1; }
[ "$peers" = all ] && peers="eager compile eq eq-compile"
read -r -a forms <<< "${peers//,/ }"
declare -A label=([eager]="PyTorch eager" [compile]="PyTorch compiled" [eq]="PyTorch -eq eager"
                  [eq-compile]="PyTorch -eq compiled")
for form in "${forms[@]}"; do
  [ -n "${label[$form]:-}" ] ||
    { echo "compare.sh: PEERS: unknown form '$form' (eager, compile, eq, eq-compile, all)" >&2; exit 1; }
done

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" | tail -1; }

# The torch_peer.py arguments of a form for an hcgrad connection; nothing where the form has no peer for it.
peer_args() {
  case "$1:$2" in
    eager:mhc-paper | compile:mhc-paper | eager:frac-paper | compile:frac-paper) ;;
    eager:*) echo "--connection $2" ;;
    compile:*) echo "--connection $2 --compile" ;;
    eq:hc) echo "--connection hc-eq" ;;
    eq:mhc-paper) echo "--connection mhc-eq" ;;
    eq-compile:hc) echo "--connection hc-eq --compile" ;;
    eq-compile:mhc-paper) echo "--connection mhc-eq --compile" ;;
  esac
}

header="| connection | hcgrad tokens/s |" rule="|---|---|"
for form in "${forms[@]}"; do header+=" ${label[$form]} tokens/s |" rule+="---|"; done
echo "$header hcgrad / best PyTorch | hcgrad peak RSS MB | best PyTorch peak RSS MB |"
echo "$rule---|---|---|"
for connection in $connections; do
  base=${connection%-fused}
  base=${base%-unfused}
  best_ours=0 rss_ours=0
  declare -A best=() rss=()
  for _ in $(seq "$rounds"); do
    ours=$("$bench" --connection "$connection" --threads "$threads" --steps 30)
    speed=$(echo "$ours" | field tokens_per_s)
    if awk "BEGIN { exit !($speed > $best_ours) }"; then best_ours=$speed; fi
    rss_ours=$(echo "$ours" | field peak_rss_mb)
    for form in "${forms[@]}"; do
      args=$(peer_args "$form" "$base")
      [ -n "$args" ] || continue
      # shellcheck disable=SC2086  # args is a list of words
      theirs=$("$python" tools/torch_peer.py --device cpu --threads "$threads" $args --steps 30)
      speed=$(echo "$theirs" | field tokens_per_s)
      if awk "BEGIN { exit !($speed > ${best[$form]:-0}) }"; then best[$form]=$speed; fi
      rss[$form]=$(echo "$theirs" | field peak_rss_mb)
    done
  done
  row="| $connection | $best_ours |" top=0 top_rss=-
  for form in "${forms[@]}"; do
    row+=" ${best[$form]:--} |"
    if [ -n "${best[$form]:-}" ] && awk "BEGIN { exit !(${best[$form]} > $top) }"; then
      top=${best[$form]} top_rss=${rss[$form]}
    fi
  done
  ratio=-
  if [ "$top" != 0 ]; then ratio=$(awk "BEGIN { printf \"%.2f\", $best_ours / $top }"); fi
  echo "$row $ratio | $rss_ours | $top_rss |"
  unset best rss
done
