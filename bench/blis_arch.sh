# Sourced by bench/compare_q2.sh and bench/q2_torch_sweep.sh: the BLIS kernels of the torch runs.
# Debian's torch calls the system libblas.so.3 (BLIS 0.9.0 here), which does not recognise every
# CPU (Zen 5) and then runs its slow generic kernels; BLIS_ARCH_TYPE (an integer in 0.9.0) picks a
# set. The set must be one the CPU runs: skx (0) needs AVX-512, haswell (3) AVX2 and FMA; forcing
# skx on an AVX2-only CPU dies with SIGILL. Sets blis_arch and blis_arch_why; a BLIS_ARCH_TYPE the
# caller exported wins.
blis_arch_pick() {
  local flags
  flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  if [ -n "${BLIS_ARCH_TYPE:-}" ]; then
    blis_arch=$BLIS_ARCH_TYPE; blis_arch_why="set by the caller"
  elif [[ $flags == *" avx512f "* ]]; then
    blis_arch=0; blis_arch_why="skx kernels: the CPU has avx512f"
  elif [[ $flags == *" avx2 "* && $flags == *" fma "* ]]; then
    blis_arch=3; blis_arch_why="haswell kernels: the CPU has avx2 and fma, no avx512f"
  else
    blis_arch=; blis_arch_why="BLIS's own choice: no avx2+fma"
  fi
}
