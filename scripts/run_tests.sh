#!/usr/bin/env bash
# Runs every cmocka test binary of a build folder, then prints one closing line with the totals.
set -u
build=${1:-build}
passed=0; failed=0; bad_bins=()
for t in "$build"/tests/test_*; do
  [ -x "$t" ] || continue
  echo "== $(basename "$t")"
  out=$(TG_BUILD="$build" CMOCKA_MESSAGE_OUTPUT=stdout "$t" 2>&1); rc=$?
  echo "$out"
  p=$(echo "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
  f=$(echo "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
  passed=$((passed + p)); failed=$((failed + f))
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
  [ $rc -ne 0 ] && bad_bins+=("$(basename "$t")")
done
echo
[ ${#bad_bins[@]} -gt 0 ] && echo "failing: ${bad_bins[*]}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ ${#bad_bins[@]} -eq 0 ]
