#!/usr/bin/env bash
# LeNet-5 training step (batch 64, one thread): tapegrad against PyTorch at its best setting, in
# one run. PyTorch runs its convolutions through oneDNN (mkldnn) by default; it is also timed
# without oneDNN and with BLIS's haswell kernels forced, and the fastest PyTorch variant is the
# reference. Rounds alternate the programs so that machine noise hits all of them alike; each
# figure is the median over rounds.
#   bash bench/compare_lenet.sh [rounds]      (after make; default 3 rounds)
set -eu
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TG_BUILD:-$root/build}
rounds=${1:-3}
py=/usr/bin/python3
declare -A times
variants=(tapegrad torch torch_no_mkldnn torch_blis_haswell)
for r in $(seq "$rounds"); do
  for v in "${variants[@]}"; do
    case $v in
      tapegrad) ms=$("$build/bench/bench_lenet" 10 | sed -n 's/^tapegrad step ms: \([0-9.]*\).*/\1/p') ;;
      torch) ms=$($py "$root/bench/lenet_torch.py" -bench 200 | sed -n 's/^torch step ms: //p') ;;
      torch_no_mkldnn) ms=$($py "$root/bench/lenet_torch.py" -bench 200 -no-mkldnn | sed -n 's/^torch step ms: //p') ;;
      torch_blis_haswell) ms=$(BLIS_ARCH_TYPE=3 $py "$root/bench/lenet_torch.py" -bench 200 | sed -n 's/^torch step ms: //p') ;;
    esac
    times[$v]="${times[$v]:-} $ms"
    echo "round $r  $v  $ms ms"
  done
done
median() { echo "$@" | tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
tg=$(median ${times[tapegrad]})
best=""; best_v=""
for v in "${variants[@]}"; do
  m=$(median ${times[$v]})
  printf "%-20s %8.3f ms/step (median of %d)\n" "$v" "$m" "$rounds"
  if [ "$v" != tapegrad ] && { [ -z "$best" ] || awk "BEGIN {exit !($m < $best)}"; }; then best=$m; best_v=$v; fi
done
awk -v t="$tg" -v b="$best" -v v="$best_v" 'BEGIN {printf "PyTorch at its best (%s) / tapegrad: %.2fx (above 1: tapegrad is faster)\n", v, b / t}'
"$build/bench/bench_lenet" 3 | sed -n '/allocations/p'
