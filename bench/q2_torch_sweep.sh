#!/usr/bin/env bash
# Runs the Question 2 grid (2.1-2.3, the same configurations as `question2 sweep all`) in PyTorch
# (bench/q2_torch.py), one configuration at a time, and writes one result line per configuration.
#
#   bench/q2_torch_sweep.sh [-out DIR] [-seeds "S1 S2 ..."] [-only NAME,...] [WHICH] [flags...]
#
#   WHICH    2.1, 2.2, 2.3 or all (default: all)
#   -out     folder for results.tsv, a log and a JSON curve file per run (default: q2_torch_sweep)
#   -seeds   seeds to run every configuration with (default: 42, the runner's default)
#   -only    comma-separated configuration names, e.g. 2.1-lr0.01,2.2-default
#   flags    passed to every run after the configuration's own flags, e.g. -limit 10000
#
# Configuration names match the runner's sweep folders: 2.1-lr0.001, 2.1-lr0.01, 2.1-lr0.1,
# 2.2-default, 2.2-lr0.001, 2.2-lr0.1, 2.2-hidden200, 2.2-dropout0.5, 2.2-tanh, 2.3-layers2,
# 2.3-layers3. results.tsv: config, seed, valid_acc, test_acc, sec_per_epoch (training only).
#
# Torch runs with 1 thread (-threads 1, BLIS_NUM_THREADS=1) and the BLIS kernels the CPU supports
# (bench/blis_arch.sh: skx on AVX-512, haswell on AVX2+FMA; BLIS 0.9.0 does not recognise Zen 5),
# as bench/compare_q2.sh does, unless the caller set BLIS_ARCH_TYPE / BLIS_NUM_THREADS.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3   # Debian's interpreter (python3-torch), not a pyenv python3 on PATH
out=q2_torch_sweep
seeds=42
only=
which=all
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -out|--out) out=$2; shift 2 ;;
    -seeds|--seeds) seeds=$2; shift 2 ;;
    -only|--only) only=$2; shift 2 ;;
    2.1|2.2|2.3|all) which=$1; shift ;;
    *) break ;;
  esac
done
extra=("$@")

grid=(
  "2.1-lr0.001    logistic_regression -learning_rate 0.001"
  "2.1-lr0.01     logistic_regression -learning_rate 0.01"
  "2.1-lr0.1      logistic_regression -learning_rate 0.1"
  "2.2-default    mlp"
  "2.2-lr0.001    mlp -learning_rate 0.001"
  "2.2-lr0.1      mlp -learning_rate 0.1"
  "2.2-hidden200  mlp -hidden_size 200"
  "2.2-dropout0.5 mlp -dropout 0.5"
  "2.2-tanh       mlp -activation tanh"
  "2.3-layers2    mlp -layers 2"
  "2.3-layers3    mlp -layers 3"
)

mkdir -p "$out"
tsv=$out/results.tsv
[ -s "$tsv" ] || printf 'config\tseed\tvalid_acc\ttest_acc\tsec_per_epoch\n' >"$tsv"
# shellcheck source=bench/blis_arch.sh
. "$here/bench/blis_arch.sh"
blis_arch_pick
[ -n "$blis_arch" ] && export BLIS_ARCH_TYPE=$blis_arch
export BLIS_NUM_THREADS=${BLIS_NUM_THREADS:-1}
echo "torch sweep $which: BLIS_ARCH_TYPE=${blis_arch:-unset} ($blis_arch_why) BLIS_NUM_THREADS=$BLIS_NUM_THREADS," \
  "1 thread, seeds $seeds -> $tsv"
for line in "${grid[@]}"; do
  read -r name args <<<"$line"
  case $which in all) ;; *) [ "${name%%-*}" = "$which" ] || continue ;; esac
  if [ -n "$only" ]; then case ",$only," in *",$name,"*) ;; *) continue ;; esac; fi
  for seed in $seeds; do
    log=$out/$name-seed$seed.log
    # shellcheck disable=SC2086  # $args is a list of flags
    "$py" "$here/bench/q2_torch.py" $args -seed "$seed" -threads 1 ${extra[@]+"${extra[@]}"} \
      -json "$out/$name-seed$seed.jsonl" >"$log" 2>&1 || { echo "$name seed $seed failed, see $log" >&2; continue; }
    res=$(grep '^RESULT' "$log")
    f() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" ${res#RESULT}"; }
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$seed" "$(f valid_acc)" "$(f test_acc)" \
      "$(f sec_per_epoch)" | tee -a "$tsv"
  done
done
