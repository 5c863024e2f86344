#!/usr/bin/env bash
# LeNet-5 training step (batch 64, one thread): tapegrad against PyTorch at its best setting, in
# one run. PyTorch runs its convolutions through oneDNN (mkldnn) by default; it is also timed
# without oneDNN and with BLIS's haswell kernels forced, and the fastest PyTorch variant is the
# reference. Every program reports the median over blocks of 20 steps in its process's CPU time
# (the other jobs of a shared machine inflate wall time, not CPU time) and in wall time. Rounds
# alternate the programs so that machine noise hits all of them alike; each figure is the median
# over rounds. About 30 s per round.
#   bash bench/compare_lenet.sh [rounds]      (after make; default 3 rounds)
set -eu
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TG_BUILD:-$root/build}
rounds=${1:-3}
py=/usr/bin/python3
[ -x "$build/bench/bench_lenet" ] || { echo "compare_lenet.sh: run make first ($build/bench/bench_lenet is missing)" >&2; exit 1; }
declare -A cpu wall
variants=(tapegrad torch torch_no_mkldnn torch_blis_haswell)
run() {
  case $1 in
    tapegrad) "$build/bench/bench_lenet" 10 ;;
    torch) $py "$root/bench/lenet_torch.py" -bench 200 ;;
    torch_no_mkldnn) $py "$root/bench/lenet_torch.py" -bench 200 -no-mkldnn ;;
    torch_blis_haswell) BLIS_ARCH_TYPE=3 $py "$root/bench/lenet_torch.py" -bench 200 ;;
  esac
}
for r in $(seq "$rounds"); do
  for v in "${variants[@]}"; do
    out=$(run "$v")
    c=$(echo "$out" | sed -n 's/^[a-z]* step cpu ms: \([0-9.]*\).*/\1/p')
    w=$(echo "$out" | sed -n 's/^[a-z]* step ms: \([0-9.]*\).*/\1/p')
    [ -n "$c" ] && [ -n "$w" ] || { echo "compare_lenet.sh: no timing from $v:" >&2; echo "$out" >&2; exit 1; }
    cpu[$v]="${cpu[$v]:-} $c"
    wall[$v]="${wall[$v]:-} $w"
    echo "round $r  $v  cpu $c ms  wall $w ms"
  done
done
median() { echo "$@" | tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
best=""; best_v=""
for v in "${variants[@]}"; do
  c=$(median ${cpu[$v]}); w=$(median ${wall[$v]})
  printf "%-20s %8.3f ms/step CPU  %8.3f ms/step wall (medians of %d)\n" "$v" "$c" "$w" "$rounds"
  if [ "$v" != tapegrad ] && { [ -z "$best" ] || awk "BEGIN {exit !($c < $best)}"; }; then best=$c; best_v=$v; fi
done
tg=$(median ${cpu[tapegrad]}); tgw=$(median ${wall[tapegrad]}); bw=$(median ${wall[$best_v]})
awk -v t="$tg" -v b="$best" -v tw="$tgw" -v bw="$bw" -v v="$best_v" 'BEGIN {
  printf "PyTorch at its best (%s) / tapegrad: %.2fx in CPU time, %.2fx in wall time (above 1: tapegrad is faster)\n", v, b / t, bw / tw }'
"$build/bench/bench_lenet" 3 | sed -n '/allocations/p'
