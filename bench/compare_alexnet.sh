#!/usr/bin/env bash
# The AlexNet-sized training step (one thread): tapegrad (bench/bench_alexnet.c) against PyTorch
# at its best setting (bench/alexnet_step_torch.py), in one run. PyTorch runs its convolutions
# through oneDNN (mkldnn) by default; it is also timed without oneDNN and with BLIS's kernels
# forced to the set the CPU runs (bench/blis_arch.sh), and the fastest PyTorch variant is the
# reference. Every program reports the median over 3 steps (after 2 warm-up steps) in its
# process's CPU time (the other jobs of a shared machine inflate wall time, not CPU time) and in
# wall time; rounds alternate the programs so that machine noise hits all of them alike, and each
# figure is the median over rounds. The last round also times each program's step per op family;
# the table puts tapegrad's next to the reference's. About 40 s per round for the CIFAR-sized
# network, 60 s for the 224x224 one (on a quiet machine).
#   bash bench/compare_alexnet.sh [rounds (3)] [cifar|imagenet]     (after make)
# TG_CONV_IM2COL_TOO=1 adds tapegrad with TG_CONV_DNNL=0 (the im2col convolutions) as a variant.
set -eu
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TG_BUILD:-$root/build}
rounds=${1:-3}
net=${2:-cifar}
py=/usr/bin/python3
bin=$build/bench/bench_alexnet
[ -x "$bin" ] || { echo "compare_alexnet.sh: run make first ($bin is missing)" >&2; exit 1; }
case $net in cifar|imagenet) ;; *) echo "compare_alexnet.sh: network '$net' is not cifar or imagenet" >&2; exit 2 ;; esac
# shellcheck source=bench/blis_arch.sh
. "$root/bench/blis_arch.sh"
blis_arch_pick
declare -A cpu wall breakdown
variants=(tapegrad)
[ "${TG_CONV_IM2COL_TOO:-0}" = 1 ] && variants+=(tapegrad_conv_dnnl_0)
variants+=(torch torch_no_mkldnn)
[ -n "$blis_arch" ] && variants+=(torch_blis_arch)
echo "network $net; BLIS kernels for torch_blis_arch: ${blis_arch:-none} ($blis_arch_why)"
run() {   # variant, extra flags
  local v=$1; shift
  local args=(-net "$net" -blocks 3 -steps 1 -warmup 2 "$@")
  case $v in
    tapegrad) "$bin" "${args[@]}" ;;
    tapegrad_conv_dnnl_0) TG_CONV_DNNL=0 "$bin" "${args[@]}" ;;
    torch) $py "$root/bench/alexnet_step_torch.py" "${args[@]}" ;;
    torch_no_mkldnn) $py "$root/bench/alexnet_step_torch.py" "${args[@]}" -no-mkldnn ;;
    torch_blis_arch) BLIS_ARCH_TYPE=$blis_arch $py "$root/bench/alexnet_step_torch.py" "${args[@]}" ;;
  esac
}
allocs=""
for r in $(seq "$rounds"); do
  for v in "${variants[@]}"; do
    extra=(); [ "$r" = "$rounds" ] && extra=(-breakdown 3)
    status=0; out=$(run "$v" "${extra[@]}") || status=$?
    c=$(echo "$out" | sed -n 's/^[a-z]* step cpu ms: \([0-9.]*\).*/\1/p')
    w=$(echo "$out" | sed -n 's/^[a-z]* step ms: \([0-9.]*\).*/\1/p')
    [ -n "$c" ] && [ -n "$w" ] || { echo "compare_alexnet.sh: no timing from $v:" >&2; echo "$out" >&2; exit 1; }
    if [ "$v" = tapegrad ]; then
      allocs=$(echo "$out" | sed -n '/allocations/p')
      [ "$status" = 0 ] || { echo "compare_alexnet.sh: tapegrad allocated in steady state: $allocs" >&2; exit 1; }
    fi
    cpu[$v]="${cpu[$v]:-} $c"
    wall[$v]="${wall[$v]:-} $w"
    [ "$r" = "$rounds" ] && breakdown[$v]=$(echo "$out" | sed -n 's/^[a-z]* family //p')
    echo "round $r  $v  cpu $c ms  wall $w ms"
  done
done
median() { echo "$@" | tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
best=""; best_v=""
for v in "${variants[@]}"; do
  c=$(median ${cpu[$v]}); w=$(median ${wall[$v]})
  printf "%-22s %9.2f ms/step CPU  %9.2f ms/step wall (medians of %d)\n" "$v" "$c" "$w" "$rounds"
  if [[ $v == torch* ]] && { [ -z "$best" ] || awk "BEGIN {exit !($c < $best)}"; }; then best=$c; best_v=$v; fi
done
tg=$(median ${cpu[tapegrad]}); tgw=$(median ${wall[tapegrad]}); bw=$(median ${wall[$best_v]})
awk -v t="$tg" -v b="$best" -v tw="$tgw" -v bw="$bw" -v v="$best_v" 'BEGIN {
  printf "PyTorch at its best (%s) / tapegrad: %.2fx in CPU time, %.2fx in wall time (above 1: tapegrad is faster)\n", v, b / t, bw / tw }'
echo "tapegrad $allocs"
echo
echo "Per op family, ms of CPU time per step (last round, median of 3 steps), forward / backward:"
printf "%-14s %22s %22s\n" family tapegrad "$best_v"
paste -d'|' <(echo "${breakdown[tapegrad]}") <(echo "${breakdown[$best_v]}") | awk -F'|' '{
  n = split($1, a, "  +"); m = split($2, b, "  +")
  if ($1 ~ /^sum/) printf "%-14s %22s %22s\n", "sum", a[n], b[m]
  else printf "%-14s %10s / %9s %10s / %9s\n", a[1], a[2], a[3], b[2], b[3] }'
