#!/usr/bin/env bash
# Runs every cmocka test binary of a build folder, then prints one closing line with the totals.
set -u
build=${1:-build}
test_timeout=${TG_TEST_TIMEOUT:-600}   # seconds per test binary
passed=0; failed=0; gradchecked=0; gradgradchecked=0; gradgradskipped=0; bad_bins=()
for t in "$build"/tests/test_*; do
  [ -x "$t" ] || continue
  echo "== $(basename "$t")"
  # A hung binary fails by name after the limit instead of stalling the whole suite (and CI).
  out=$(TG_BUILD="$build" CMOCKA_MESSAGE_OUTPUT=stdout \
        timeout --kill-after=10 "$test_timeout" "$t" 2>&1); rc=$?
  echo "$out"
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "[  FAILED  ] $(basename "$t"): no result after ${test_timeout} s (TG_TEST_TIMEOUT)"
  p=$(echo "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
  f=$(echo "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
  g=$(echo "$out" | grep -c '^gradcheck ok:')
  gg=$(echo "$out" | grep -c '^gradgradcheck ok:'); gs=$(echo "$out" | grep -c '^gradgradcheck skipped:')
  passed=$((passed + p)); failed=$((failed + f)); gradchecked=$((gradchecked + g))
  gradgradchecked=$((gradgradchecked + gg)); gradgradskipped=$((gradgradskipped + gs))
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
  [ $rc -ne 0 ] && bad_bins+=("$(basename "$t")")
done

# ---- examples in fast mode (examples/README.md) --------------------------------------------------
# Each example runs on a small subset for one or two epochs, asserts its result and exits non-zero if
# the assertion fails; each counts as one test. Its PNGs go to $build/examples/fast/.
ex_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ex_out="$build/examples/fast"; mkdir -p "$ex_out"
echo "== examples --fast"
for ex in hello_grad shortest_mlp mlp_modules data_summary perceptron logistic_regression mlp \
          quadratic_net relu_max xor_interval regression custom_op second_order lenet alexnet \
          custom_optimizer; do
  case $ex in
    hello_grad) args=() ;;               # no flags: it is the README's first program
    shortest_mlp) args=() ;;             # no flags: the README's shortest Fashion-MNIST program
    mlp_modules) args=(--fast) ;;        # self-contained: writes nothing
    lenet) args=(--fast) ;;              # prints its losses and accuracies, writes nothing
    alexnet) args=(-fast -out "$ex_out/alexnet") ;;   # the homework's single-dash flags
    regression) args=(--fast --out "$ex_out" --csv "$ex_root/examples/data/regression.csv") ;;
    *) args=(--fast --out "$ex_out") ;;
  esac
  t0=$(date +%s.%N)
  out=$(timeout 300 "$build/examples/$ex" "${args[@]}" 2>&1); rc=$?
  secs=$(echo "$t0 $(date +%s.%N)" | awk '{printf "%.1f", $2 - $1}')
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1)); echo "[       OK ] $ex (${secs} s) $(echo "$out" | tail -n 1)"
  else
    failed=$((failed + 1)); bad_bins+=("examples/$ex")
    echo "[  FAILED  ] $ex (${secs} s, exit $rc)"; echo "$out" | tail -n 5 | sed 's/^/    /'
  fi
done
# A program's seed flag reaches its generator: the report of a run with another seed says so
# (one epoch is too short for the fast mode's learning check, so its exit status is not read).
rm -f "$ex_out/alexnet_seed7/report.md"
out=$(timeout 300 "$build/examples/alexnet" -fast -epochs 1 -seed 7 -out "$ex_out/alexnet_seed7" 2>&1)
if grep -q "seed 7\." "$ex_out/alexnet_seed7/report.md" 2>/dev/null; then
  passed=$((passed + 1)); echo "[       OK ] alexnet -seed 7: the report's seed is 7"
else
  failed=$((failed + 1)); bad_bins+=("examples/alexnet -seed 7")
  echo "[  FAILED  ] alexnet -seed 7: $(grep -o 'seed [0-9]*' "$ex_out/alexnet_seed7/report.md" 2>/dev/null)"
  echo "$out" | tail -n 3 | sed 's/^/    /'
fi
# Sizes and counts beyond sane limits are refused before anything is allocated: exit status 2 and
# a message naming the flag (not an abort, an overflow or a stack array that does not fit).
while read -r ex flag value; do
  out=$("$build/examples/$ex" "$flag" "$value" --out "$ex_out" 2>&1); rc=$?
  if [ $rc -eq 2 ] && echo "$out" | grep -q -- "$flag"; then
    passed=$((passed + 1)); echo "[       OK ] $ex $flag $value: exit 2, $(echo "$out" | head -n 1)"
  else
    failed=$((failed + 1)); bad_bins+=("examples/$ex $flag $value")
    echo "[  FAILED  ] $ex $flag $value: exit $rc"; echo "$out" | tail -n 3 | sed 's/^/    /'
  fi
done <<'LIMITS'
mlp --hidden 1e9
mlp --epochs 1e9
quadratic_net --k 1e9
quadratic_net --dim 46341
quadratic_net --steps 1e9
custom_op --epochs 20000000
relu_max --epochs 1e9
xor_interval --dim 17
LIMITS

# shellcheck disable=SC2206 # the library's link flags (make passes LIB_LIBS), split into words
lib_libs=(${LIB_LIBS:--lblis -lzip -lz -lstb -lpthread -lm})
# The same example built by clang must print the same result: random draws never depend on the
# order in which a compiler evaluates a call's arguments (C leaves it unspecified; gcc and clang
# differ). Only for a build without sanitizers (clang cannot link gcc's ASan runtime).
if command -v clang >/dev/null && ! nm "$build/libtapegrad.a" 2>/dev/null | grep -q __asan; then
  multi=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
  blis=/usr/lib/$multi/blis-serial
  for ex in mlp xor_interval relu_max regression custom_op custom_optimizer; do
    args=(--fast --out "$ex_out")
    [ $ex = regression ] && args+=(--csv "$ex_root/examples/data/regression.csv")
    if ! clang -std=c11 -D_DEFAULT_SOURCE -O2 -w -I"$ex_root/include" -I"$ex_root" \
         -isystem "/usr/include/$multi/blis-serial" -o "$build/examples/$ex.clang" \
         "$ex_root/examples/$ex.c" "$build/libtapegrad.a" -L"$blis" -Wl,-rpath,"$blis" \
         "${lib_libs[@]}" -llapacke -llapack; then
      failed=$((failed + 1)); bad_bins+=("examples/$ex (clang build)"); continue
    fi
    a=$("$build/examples/$ex" "${args[@]}" 2>&1 | grep -v '^wrote' | sed 's/([0-9.]* s)//')
    b=$("$build/examples/$ex.clang" "${args[@]}" 2>&1 | grep -v '^wrote' | sed 's/([0-9.]* s)//')
    if [ "$a" = "$b" ]; then
      passed=$((passed + 1)); echo "[       OK ] $ex: gcc and clang builds print the same"
    else
      failed=$((failed + 1)); bad_bins+=("examples/$ex (gcc vs clang)")
      echo "[  FAILED  ] $ex: gcc and clang builds differ"; diff <(echo "$a") <(echo "$b") | head -5
    fi
  done
fi
# ---- end of examples ------------------------------------------------------------------------------

# ---- the public header from C++ (extern "C", no C-only keywords), when a C++ compiler is here ----
if command -v g++ >/dev/null; then
  if echo '#include <tapegrad.h>
int main() { return tg_version() == nullptr; }' | g++ -std=c++17 -Wall -Werror -I"$ex_root/include" \
       -x c++ -fsyntax-only - 2>"$build/cxx_header.log"; then
    passed=$((passed + 1)); echo "[       OK ] <tapegrad.h> compiles as C++17"
  else
    failed=$((failed + 1)); bad_bins+=("C++ header"); echo "[  FAILED  ] <tapegrad.h> as C++"
    head -n 5 "$build/cxx_header.log" | sed 's/^/    /'
  fi
fi

# ---- extension points build out of tree -----------------------------------------------------------
# A user's op (and optimizer) need only the public headers: compile them with -Iinclude alone.
echo "== out-of-tree builds"
for src in examples/custom_op.c examples/second_order.c examples/custom_optimizer.c; do
  bin="$build/out_of_tree_$(basename "$src" .c)"
  # shellcheck disable=SC2086 # SAN (from make) holds several flags
  if cc -std=c11 -Wall -Wextra -Werror ${SAN:-} -I"$ex_root/include" -o "$bin" "$ex_root/$src" \
       "$build/libtapegrad.a" -L/usr/lib/$(gcc -print-multiarch)/blis-serial "${lib_libs[@]}" \
       -llapacke -llapack 2>"$bin.log" &&
     "$bin" --fast --out "$ex_out" >/dev/null 2>&1; then
    passed=$((passed + 1)); echo "[       OK ] $src builds with -Iinclude only and runs"
  else
    failed=$((failed + 1)); bad_bins+=("out-of-tree $src"); echo "[  FAILED  ] $src out of tree"
    sed 's/^/    /' "$bin.log" | head -n 10
  fi
done
echo
echo "gradient checks passed (float64, one line 'gradcheck ok:' each above): $gradchecked"
echo "second-order checks passed ('gradgradcheck ok:'): $gradgradchecked; skipped, an op without a differentiable backward ('gradgradcheck skipped:'): $gradgradskipped"
[ ${#bad_bins[@]} -gt 0 ] && echo "failing: ${bad_bins[*]}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ ${#bad_bins[@]} -eq 0 ]
