#!/usr/bin/env bash
# Installs the packages make deb built (with their dependencies, through apt), compiles and runs
# a program with `pkg-config --cflags --libs tapegrad` (and the examples of a user's op and
# optimizer, from copies of their sources), runs the installed programs, checks that no MPI part
# is packaged, then removes the packages again (unless they were installed before).
#   scripts/deb_test.sh DEBDIR       (make deb-test; needs root)
set -euo pipefail
dir=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "deb_test: needs root to install packages" >&2; exit 1; }
pkgs=(libtapegrad0 libtapegrad-dev tapegrad-tools)
had=$(dpkg-query -W -f='${Status}\n' "${pkgs[@]}" 2>/dev/null | grep -c "install ok installed" || true)
cleanup() {
  rm -rf "$work"
  [ "$had" -eq 0 ] && DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${pkgs[@]}" >/dev/null
}
work=$(mktemp -d)
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "$dir"/libtapegrad0_*.deb "$dir"/libtapegrad-dev_*.deb "$dir"/tapegrad-tools_*.deb >/dev/null
cat > "$work/prog.c" <<'C'
#include <stdio.h>
#include <tapegrad.h>

int main(void)
{
    tg_tensor *w = tg_set_requires_grad(tg_full(TG_F32, TG_SHAPE(2, 2), 0.5), true);
    tg_tensor *x = tg_ones(TG_F32, TG_SHAPE(2, 1));
    tg_backward(tg_sum(tg_tanh(tg_matmul(w, x))));  /* a BLIS product through the package */
    double g = tg_get_flat(w->grad, 0);
    tg_tape_reset();
    tg_free(w), tg_free(x);
    printf("tapegrad %s from the package: gradient %.6f\n", tg_version(), g);
    return g > 0.41 && g < 0.42 ? 0 : 1;   /* 1 - tanh(1)^2 = 0.419974 */
}
C
echo "deb_test: cc prog.c \$(pkg-config --cflags --libs tapegrad) = $(pkg-config --cflags --libs tapegrad)"
# shellcheck disable=SC2046 # pkg-config's flags are words
cc -std=c11 -o "$work/prog" "$work/prog.c" $(pkg-config --cflags --libs tapegrad)
"$work/prog"
# shellcheck disable=SC2046
cc -std=c11 -o "$work/prog_static" "$work/prog.c" -Wl,-Bstatic -ltapegrad -Wl,-Bdynamic \
  $(pkg-config --libs --static tapegrad | sed 's/-ltapegrad//')
"$work/prog_static" >/dev/null
for ex in custom_op custom_optimizer; do   # each asserts its result in --fast mode
  cp "$root/examples/$ex.c" "$work/"
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags tapegrad) -o "$work/$ex" "$work/$ex.c" \
    $(pkg-config --libs tapegrad) -lm
  "$work/$ex" --fast --out "$work" >/dev/null
done
mpi_part=$(dpkg -L "${pkgs[@]}" | grep -E 'tg/dist\.h|_dist\.a|tapegrad-dist\.pc|question2-mpi' || true)
[ -z "$mpi_part" ] || { echo "deb_test: the packages hold an MPI part: $mpi_part" >&2; exit 1; }
tapegrad-ls -h >/dev/null
tapegrad-question2 -h >/dev/null
man -w tapegrad-question2 tapegrad-ls >/dev/null
echo "deb_test: packages install, a pkg-config program (shared and static) and the custom op and"
echo "deb_test: optimizer examples build and run, no MPI part; ok"
