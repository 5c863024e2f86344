#!/usr/bin/env bash
# Runs every cmocka test binary of a build folder, then prints one closing line with the totals.
set -u
build=${1:-build}
passed=0; failed=0; gradchecked=0; bad_bins=()
for t in "$build"/tests/test_*; do
  [ -x "$t" ] || continue
  echo "== $(basename "$t")"
  out=$(TG_BUILD="$build" CMOCKA_MESSAGE_OUTPUT=stdout "$t" 2>&1); rc=$?
  echo "$out"
  p=$(echo "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
  f=$(echo "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
  g=$(echo "$out" | grep -c '^gradcheck ok:')
  passed=$((passed + p)); failed=$((failed + f)); gradchecked=$((gradchecked + g))
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
  [ $rc -ne 0 ] && bad_bins+=("$(basename "$t")")
done

# ---- examples in fast mode (examples/README.md) --------------------------------------------------
# Each example runs on a small subset for one or two epochs, asserts its result and exits non-zero if
# the assertion fails; each counts as one test. Its PNGs go to $build/examples/fast/.
ex_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ex_out="$build/examples/fast"; mkdir -p "$ex_out"
echo "== examples --fast"
for ex in hello_grad mlp_modules data_summary perceptron logistic_regression mlp quadratic_net relu_max xor_interval regression custom_op lenet alexnet; do
  case $ex in
    hello_grad) args=() ;;               # no flags: it is the README's 20-line program
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
# ---- end of examples ------------------------------------------------------------------------------
echo
echo "gradient checks passed (float64, one line 'gradcheck ok:' each above): $gradchecked"
[ ${#bad_bins[@]} -gt 0 ] && echo "failing: ${bad_bins[*]}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ ${#bad_bins[@]} -eq 0 ]
