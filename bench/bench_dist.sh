#!/usr/bin/env bash
# Data-parallel scaling from 1 to 2 processes on this machine, tapegrad (examples/ddp_mlp over
# Open MPI, loopback) next to PyTorch DistributedDataParallel with gloo (bench/ddp_torch.py), for
# the GEMM-bound MLP (784-1024-1024-10, global batch 256) and the batch-16 MLP (784-100-10).
#
#   bash bench/bench_dist.sh [ROUNDS]      default 3 rounds; TG_BUILD names the build folder
#
# A round took 89 s at a load average of 9 on 2 cores, for about 37 s of CPU time (most of it
# start-up: loading the data, importing torch): 3 rounds should take about 2 minutes when idle.
#
# Every round runs all configurations back to back, so a change in the machine's load hits all of
# them. Per configuration the table gives the median over rounds of each run's median step time;
# speedup T1/T2 and efficiency T1/(2·T2) with the same global batch (2 processes each do half the
# work). "bound" is what the machine allows without any communication: two independent
# 1-process runs of half the batch at the same time (T½, the step time when both cores compute at
# once); efficiency bound = T1/(2·T½). What separates the efficiency from its bound is the cost of
# data parallelism itself (communication, waiting for the slower process); what separates the
# bound from 100% is the machine (two processes sharing caches, memory bandwidth, other users).
# For tapegrad with 2 processes "wait ms" is the part of the step in tg_ddp_finish, and
# "overlap" the share of timed steps whose reduction started during the backward; a last line
# compares the GEMM MLP's 2-process step with the same run reducing only after the backward.
# One BLAS/OpenMP thread per process on both sides; load averages are printed before and after.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${TG_BUILD:-$here/build}
case $build in /*) ;; *) build=$here/$build ;; esac
rounds=${1:-3}
py=/usr/bin/python3
mpi=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
export BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1 TG_NUM_THREADS=1 MKL_NUM_THREADS=1
# torch calls the system BLIS, which may not recognise this CPU (bench/compare_q2.sh): the same
# kernels tapegrad picks, skx (0) with AVX-512, haswell (3) otherwise.
if grep -qw avx512f /proc/cpuinfo; then torch_arch=0; else torch_arch=3; fi
[ -x "$build/examples/ddp_mlp" ] || { echo "bench_dist: build $build/examples/ddp_mlp first (make)"; exit 1; }
$py -c 'import torch.distributed' 2>/dev/null || { echo "bench_dist: no torch (TG_WITH_TORCH=1 bash scripts/setup.sh)"; exit 1; }

steps_of() { [ "$1" = gemm ] && echo 16 || echo 500; }
batch_of() { [ "$1" = gemm ] && echo 256 || echo 16; }
tg_args() { # model batch
  echo --model "$1" --batch_size "$2" --steps "$(steps_of "$1")" --epochs 1000 --fast
}
# "median_ms wait_ms overlapped_steps timed_steps" of rank 0's line
tg_parse() {
  sed -n 's/^median step \([0-9.]*\) ms, of which \([0-9.]*\) ms.*, \([0-9]*\) steps timed per rank, \([0-9]*\) with.*/\1 \2 \4 \3/p'
}
tg_run() { # model np [ddp_mlp flags]
  # shellcheck disable=SC2046
  "${mpi[@]}" -np "$2" "$build/examples/ddp_mlp" $(tg_args "$1" "$(batch_of "$1")") "${@:3}" | tg_parse
}
# Two independent 1-process runs of half the batch at once: rank 0's median.
tg_bound() { # model
  local half=$(($(batch_of "$1") / 2))
  # shellcheck disable=SC2046
  "$build/examples/ddp_mlp" $(tg_args "$1" $half) > "$tmp/bound.0" &
  local p=$!
  # shellcheck disable=SC2046
  "$build/examples/ddp_mlp" $(tg_args "$1" $half) > "$tmp/bound.1"
  wait $p
  tg_parse < "$tmp/bound.0" | cut -d' ' -f1
}
torch_run() { # model np
  local port=$((29500 + RANDOM % 1000)) pids=() r
  for ((r = 0; r < $2; r++)); do
    BLIS_ARCH_TYPE=${BLIS_ARCH_TYPE:-$torch_arch} RANK=$r WORLD_SIZE=$2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      $py "$here/bench/ddp_torch.py" --model "$1" --steps "$(steps_of "$1")" > "$tmp/torch.$r" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  sed -n 's/^median step \([0-9.]*\) ms.*/\1/p' "$tmp/torch.0"
}
torch_bound() { # model
  local half=$(($(batch_of "$1") / 2)) p
  BLIS_ARCH_TYPE=${BLIS_ARCH_TYPE:-$torch_arch} $py "$here/bench/ddp_torch.py" --model "$1" \
    --batch $half --steps "$(steps_of "$1")" > "$tmp/torch.0" &
  p=$!
  BLIS_ARCH_TYPE=${BLIS_ARCH_TYPE:-$torch_arch} $py "$here/bench/ddp_torch.py" --model "$1" \
    --batch $half --steps "$(steps_of "$1")" > "$tmp/torch.1"
  wait $p
  sed -n 's/^median step \([0-9.]*\) ms.*/\1/p' "$tmp/torch.0"
}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

t_start=$(date +%s)
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(getconf _NPROCESSORS_ONLN) cores)"
for ((k = 1; k <= rounds; k++)); do
  for m in gemm small; do
    echo "$m tapegrad 1 $(tg_run $m 1)" >> "$tmp/all"
    echo "$m tapegrad 2 $(tg_run $m 2)" >> "$tmp/all"
    # the same 2 processes reducing only after the backward: what the overlap buys
    [ $m = gemm ] && echo "$m tapegrad n $(tg_run $m 2 --no_overlap)" >> "$tmp/all"
    echo "$m tapegrad b $(tg_bound $m)" >> "$tmp/all"
    echo "$m torch 1 $(torch_run $m 1)" >> "$tmp/all"
    echo "$m torch 2 $(torch_run $m 2)" >> "$tmp/all"
    echo "$m torch b $(torch_bound $m)" >> "$tmp/all"
  done
  echo "round $k done after $(($(date +%s) - t_start)) s, load $(cut -d' ' -f1 /proc/loadavg)"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
awk '
  { k = $1" "$2" "$3; t[k] = t[k] " " $4
    if (NF >= 7) { w[k] = w[k] " " $5; ov[k] += $6; tot[k] += $7 } }
  function med(s,   a, n, i, j, x) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j+1] = a[j]; a[j+1] = x }
    return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
  }
  END {
    printf "%-6s %-9s %10s %10s %10s %8s %10s %8s %9s %8s\n", "model", "impl", "T1 ms", "T2 ms", "T1/2 ms", \
      "speedup", "efficiency", "bound", "wait ms", "overlap"
    split("gemm small", ms, " "); split("tapegrad torch", is, " ")
    for (a = 1; a <= 2; a++) for (b = 1; b <= 2; b++) {
      p = ms[a]" "is[b]; t1 = med(t[p" 1"]); t2 = med(t[p" 2"]); tb = med(t[p" b"]); t2s[a, b] = t2
      wt = (p" 2" in w) ? sprintf("%.3f", med(w[p" 2"])) : "-"
      o = (p" 2" in tot) && tot[p" 2"] ? sprintf("%.0f%%", 100 * ov[p" 2"] / tot[p" 2"]) : "-"
      printf "%-6s %-9s %10.3f %10.3f %10.3f %8.2f %9.0f%% %7.0f%% %9s %8s\n", ms[a], is[b], t1, t2, tb, \
        t1/t2, 50*t1/t2, 50*t1/tb, wt, o
    }
    print ""
    for (a = 1; a <= 2; a++)
      printf "%s, 2 processes: tapegrad step / PyTorch DDP step = %.2f\n", ms[a], t2s[a, 1] / t2s[a, 2]
    if ("gemm tapegrad n" in t)
      printf "gemm, tapegrad 2 processes: step with overlap / without (--no_overlap) = %.2f (wait %.3f ms without)\n", \
        t2s[1, 1] / med(t["gemm tapegrad n"]), med(w["gemm tapegrad n"])
    print ""
    print "runs (ms, per round):"
    for (a = 1; a <= 2; a++) for (b = 1; b <= 2; b++) {
      p = ms[a]" "is[b]
      printf "  %-6s %-9s 1:%s | 2:%s | bound:%s\n", ms[a], is[b], t[p" 1"], t[p" 2"], t[p" b"]
    }
    if ("gemm tapegrad n" in t) printf "  gemm   tapegrad  2, --no_overlap:%s\n", t["gemm tapegrad n"]
  }' "$tmp/all"
echo "total $(($(date +%s) - t_start)) s"
