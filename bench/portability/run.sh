#!/usr/bin/env bash
# Native vs portable vs portable-with-clones (docs/portability.md): builds the library three
# ways under /tmp, links kernels.c and steps.c against each, runs them interleaved ROUNDS times
# and prints medians and ratios to native.   bench/portability/run.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-6}
out=${TMPDIR:-/tmp}/tg_portability
blis=/usr/lib/$(gcc -print-multiarch)/blis-serial
libs="-L$blis -Wl,-rpath,$blis $(make -s print-lib-libs)"
make -s -j2 BUILD="$out/native" NATIVE=1 "$out/native/libtapegrad.a"
make -s -j2 BUILD="$out/portable" EXTRA_CFLAGS=-DTG_NO_CPU_CLONES "$out/portable/libtapegrad.a"
make -s -j2 BUILD="$out/clones" "$out/clones/libtapegrad.a"
for v in native portable clones; do
  cc -std=c11 -D_DEFAULT_SOURCE -O2 -Iinclude -I. -o "$out/kernels_$v" bench/portability/kernels.c \
     "$out/$v/libtapegrad.a" $libs
  cc -std=c11 -D_DEFAULT_SOURCE -O3 -DNDEBUG -march=native -Iinclude -I. \
     -isystem "/usr/include/$(gcc -print-multiarch)/blis-serial" -o "$out/steps_$v" \
     bench/portability/steps.c "$out/$v/libtapegrad.a" $libs
done
log="$out/measure.log"; : > "$log"
for i in $(seq "$rounds"); do
  for v in native portable clones; do
    echo "$v $("$out/kernels_$v")" >> "$log"
    echo "$v $("$out/steps_$v")" >> "$log"
  done
done
python3 bench/portability/medians.py "$log"
