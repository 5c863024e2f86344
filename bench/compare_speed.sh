#!/usr/bin/env bash
# Runs bench/bench_speed (tapegrad) and bench/speed_torch.py (PyTorch, the same models and loops)
# and prints PyTorch's time over tapegrad's for each figure with issue 14's goal:
#   Table-1 MLP epoch (1 thread)        PyTorch >= 6x slower
#   logistic regression, batch 1        PyTorch >= 80x slower
#   GEMM-bound MLP, 2 threads           PyTorch >= 1.2x slower
#   GEMM-bound MLP, 1 thread            (shown, no goal)
# each twice for tapegrad: gradient then step, and SGD's update written in the backward.
#
#   bench/compare_speed.sh [-quick]       TG_BUILD=build-foo bench/compare_speed.sh
#
# PyTorch's BLAS: Debian's torch calls the system libblas.so.3, BLIS on these machines; it gets
# the kernels the CPU supports (bench/blis_arch.sh: skx on AVX-512, haswell on AVX2+FMA, read
# from /proc/cpuinfo) unless the caller set BLIS_ARCH_TYPE, and BLIS_NUM_THREADS = 1 (its two-
# thread figure uses torch.set_num_threads(2)). tapegrad picks its kernels itself (its first line
# says which). Each program takes under a minute on a quiet machine.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${TG_BUILD:-$here/build}
case $build in /*) ;; *) build=$here/$build ;; esac
bench=$build/bench/bench_speed
py=/usr/bin/python3   # Debian's interpreter (python3-torch), not a pyenv python3 on PATH
quick=
for a in "$@"; do
  case $a in
    -quick) quick=-quick ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare_speed: unknown argument '$a' (expected -quick)" >&2; exit 2 ;;
  esac
done
[ -x "$bench" ] || { echo "compare_speed: $bench not built (run make, or set TG_BUILD)" >&2; exit 1; }

# shellcheck source=bench/blis_arch.sh
. "$here/bench/blis_arch.sh"
blis_arch_pick
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "libblas.so.3 (used by torch): $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo unknown)"
echo "torch runs with BLIS_ARCH_TYPE=${blis_arch:-unset} ($blis_arch_why)"
echo "== tapegrad: $bench $quick"
"$bench" $quick | tee "$out/tg.log"
echo "== pytorch: $py bench/speed_torch.py $quick"
env ${blis_arch:+BLIS_ARCH_TYPE=$blis_arch} BLIS_NUM_THREADS=${BLIS_NUM_THREADS:-1} \
  "$py" "$here/bench/speed_torch.py" $quick | tee "$out/torch.log"

field() { sed -n "s/^RESULT $2=\(.*\)/\1/p" "$1"; }
printf '\n%-32s %12s %12s %14s %10s %s\n' "figure" "tapegrad" "pytorch" "torch/tapegrad" "goal" ""
row() { # key label unit goal [tapegrad's key, when not the same]
  local tg torch ratio verdict
  tg=$(field "$out/tg.log" "${5:-$1}"); torch=$(field "$out/torch.log" "$1")
  ratio=$(awk -v a="$torch" -v b="$tg" 'BEGIN { printf "%.2f", a / b }')
  verdict=
  if [ -n "$4" ]; then
    verdict=$(awk -v r="$ratio" -v g="$4" 'BEGIN { print (r >= g) ? "met" : "NOT MET" }')
  fi
  printf '%-32s %9s %-2s %9s %-2s %13sx %10s %s\n' "$2" "$tg" "$3" "$torch" "$3" "$ratio" \
    "${4:+>= ${4}x}" "$verdict"
}
row table1_epoch_s "Table-1 MLP epoch, 1 thread" s 6
row logreg_us "logistic regression, batch 1" us 80
row gemm_1t_ms "GEMM MLP step, 1 thread" ms ""
row gemm_2t_ms "GEMM MLP step, 2 threads" ms 1.2
# tapegrad with SGD's update in backward (tg_optimizer_set_in_backward), PyTorch as above
row table1_epoch_s "Table-1, update in backward" s 6 table1_in_backward_s
row logreg_us "logreg, update in backward" us 80 logreg_in_backward_us
row gemm_1t_ms "GEMM 1 thread, in backward" ms "" gemm_1t_in_backward_ms
row gemm_2t_ms "GEMM 2 threads, in backward" ms 1.2 gemm_2t_in_backward_ms
