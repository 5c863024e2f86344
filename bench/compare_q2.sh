#!/usr/bin/env bash
# Runs one Question 2 configuration in tapegrad (apps/question2) and in PyTorch
# (bench/q2_torch.py) and prints accuracy and seconds per epoch side by side.
#
#   bench/compare_q2.sh MODEL [flags...]     flags as for both programs, e.g.
#   bench/compare_q2.sh mlp -epochs 1 -limit 10000 -threads 2
#   TG_BUILD=build-foo bench/compare_q2.sh logistic_regression -epochs 1 -limit 5000
#
# Both runs get the same flags (-epochs, -batch_size, -learning_rate, -l2_decay, -hidden_size,
# -layers, -dropout, -activation, -optimizer, -data, -seed, -threads, -limit, -eval_limit).
# Seconds per epoch are training time only; with -limit they are also extrapolated to the full
# 50,000-example epoch (linear in the number of steps).
#
# PyTorch's BLAS: Debian's torch calls the system libblas.so.3, which on these machines is BLIS;
# BLIS 0.9.0 does not recognise every CPU (Zen 5) and would run portable generic kernels, so the
# torch run gets the kernels the CPU supports (bench/blis_arch.sh: skx on AVX-512, haswell on
# AVX2+FMA, read from /proc/cpuinfo) unless the caller set BLIS_ARCH_TYPE.
# The torch run also gets BLIS_NUM_THREADS = -threads (BLIS reads its thread count from the
# environment, not from torch.set_num_threads) unless the caller set BLIS_NUM_THREADS.
# tapegrad picks its BLIS kernels itself (its first output line says which).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${TG_BUILD:-$here/build}
case $build in /*) ;; *) build=$here/$build ;; esac
q2=$build/apps/question2
py=/usr/bin/python3   # Debian's interpreter (python3-torch), not a pyenv python3 on PATH

if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
[ -x "$q2" ] || { echo "compare_q2: $q2 not built (run make, or set TG_BUILD)" >&2; exit 1; }

# shellcheck source=bench/blis_arch.sh
. "$here/bench/blis_arch.sh"
blis_arch_pick
threads=1
prev=
for a in "$@"; do
  case $prev in -threads|--threads) threads=$a ;; esac
  case $a in -threads=*|--threads=*) threads=${a#*=} ;; esac
  prev=$a
done
torch_blis_threads=${BLIS_NUM_THREADS:-$threads}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "libblas.so.3 (used by torch): $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo unknown)"
echo "torch runs with BLIS_ARCH_TYPE=${blis_arch:-unset} ($blis_arch_why)" \
  "and BLIS_NUM_THREADS=$torch_blis_threads"
echo "== tapegrad: $q2 $*"
"$q2" "$@" -out "$out/tapegrad" | tee "$out/tg.log"
echo "== pytorch: $py bench/q2_torch.py $*"
env ${blis_arch:+BLIS_ARCH_TYPE=$blis_arch} BLIS_NUM_THREADS=$torch_blis_threads "$py" "$here/bench/q2_torch.py" "$@" | tee "$out/torch.log"

field() { sed -n "s/^RESULT.* $2=\([^ ]*\).*/\1/p" "$1"; }
printf '\n%-10s %10s %10s %14s %20s\n' "" "valid acc" "test acc" "s/epoch" "s/epoch (50k ex.)"
for impl in tapegrad torch; do
  log=$out/$([ $impl = tapegrad ] && echo tg || echo torch).log
  printf '%-10s %10s %10s %14s %20s\n' "$impl" "$(field "$log" valid_acc)" \
    "$(field "$log" test_acc)" "$(field "$log" sec_per_epoch)" "$(field "$log" sec_per_full_epoch)"
done
awk -v a="$(field "$out/torch.log" sec_per_epoch)" -v b="$(field "$out/tg.log" sec_per_epoch)" \
  'BEGIN { if (b > 0) printf "speed-up of tapegrad over torch (training time per epoch): %.1fx\n", a / b }'
