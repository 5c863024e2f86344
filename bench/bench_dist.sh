#!/usr/bin/env bash
# Data-parallel scaling from 1 to 2 processes on this machine, tapegrad (examples/ddp_mlp over
# Open MPI, loopback) next to PyTorch DistributedDataParallel with gloo (bench/ddp_torch.py), for
# the GEMM-bound MLP (784-1024-1024-10, global batch 256) and the batch-16 MLP (784-100-10).
#
#   bash bench/bench_dist.sh [ROUNDS]      default 3 rounds; TG_BUILD names the build folder
#
# Every round runs the eight configurations back to back, so a change in the machine's load hits
# all of them; the table gives, per configuration, the median over rounds of each run's median
# step time, the speedup T1/T2 and the efficiency T1/(2·T2) (same global batch: 2 processes
# each do half the work), and for tapegrad with 2 processes the part of the step spent in
# tg_ddp_finish ("wait ms": communication the backward did not hide, and waiting for the slower
# process). Both sides use one BLAS thread per process. Load averages are printed
# before and after: on a shared 2-core machine they say how much of the 2 cores the runs had.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${TG_BUILD:-$here/build}
case $build in /*) ;; *) build=$here/$build ;; esac
rounds=${1:-3}
py=/usr/bin/python3
mpi=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
export BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1
# torch calls the system BLIS, which may not recognise this CPU (bench/compare_q2.sh): the same
# kernels tapegrad picks, skx (0) with AVX-512, haswell (3) otherwise.
if grep -qw avx512f /proc/cpuinfo; then torch_arch=0; else torch_arch=3; fi
[ -x "$build/examples/ddp_mlp" ] || { echo "bench_dist: build $build/examples/ddp_mlp first (make)"; exit 1; }
$py -c 'import torch.distributed' 2>/dev/null || { echo "bench_dist: no torch (TG_WITH_TORCH=1 bash scripts/setup.sh)"; exit 1; }

steps_of() { [ "$1" = gemm ] && echo 30 || echo 1500; }
tg_run() { # model np
  "${mpi[@]}" -np "$2" "$build/examples/ddp_mlp" --model "$1" --steps "$(steps_of "$1")" |
    sed -n 's/^median step \([0-9.]*\) ms, of which \([0-9.]*\) ms.*/\1 \2/p'
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
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(getconf _NPROCESSORS_ONLN) cores)"
for ((k = 1; k <= rounds; k++)); do
  for m in gemm small; do
    for np in 1 2; do
      echo "$m tapegrad $np $(tg_run $m $np)" >> "$tmp/all"
      echo "$m torch $np $(torch_run $m $np)" >> "$tmp/all"
    done
  done
  echo "round $k done, load $(cut -d' ' -f1 /proc/loadavg)"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
awk -v rounds="$rounds" '
  { t[$1" "$2" "$3] = t[$1" "$2" "$3] " " $4; if (NF == 5) w[$1" "$2" "$3] = w[$1" "$2" "$3] " " $5 }
  function med(s,   a, n, i, j, x) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j+1] = a[j]; a[j+1] = x }
    return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
  }
  END {
    printf "%-6s %-9s %12s %12s %8s %10s %10s   runs (ms, 1 proc | 2 procs)\n", "model", "impl", "1 proc ms", "2 procs ms", "speedup", "efficiency", "wait ms"
    split("gemm small", ms, " "); split("tapegrad torch", is, " ")
    for (a = 1; a <= 2; a++) for (b = 1; b <= 2; b++) {
      k1 = ms[a]" "is[b]" 1"; k2 = ms[a]" "is[b]" 2"; t1 = med(t[k1]); t2 = med(t[k2])
      wt = (k2 in w) ? sprintf("%.3f", med(w[k2])) : "-"
      printf "%-6s %-9s %12.3f %12.3f %8.2f %9.0f%% %10s  %s |%s\n", ms[a], is[b], t1, t2, t1/t2, 50*t1/t2, wt, t[k1], t[k2]
    }
  }' "$tmp/all"
