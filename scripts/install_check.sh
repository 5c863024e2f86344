#!/usr/bin/env bash
# The installed library as a user sees it (issue 15's "done when"), twice: a staged install
# (DESTDIR, PREFIX=/usr, as a package build does it) and a private prefix (PREFIX=<dir>, as a
# user without root does it), one after the other from the same build, so a file generated for
# the first (tapegrad.pc) must follow the second's variables. Each time: the .pc's prefix and
# libdir, a program compiled with `pkg-config --cflags --libs tapegrad` and run, `make
# uninstall` removing every file install put there. The staged install also: the soname, no
# internal (tg__) symbol exported, a static link through `pkg-config --static`, the user-defined
# op and optimizer examples (and second_order) built from copies of their sources against the
# staged headers only, the installed programs and their man pages. Where Open MPI is installed
# (make install then also installs libtapegrad_dist.a, <tg/dist.h> and tapegrad-dist.pc), a
# data-parallel program built with `pkg-config --cflags --libs tapegrad-dist` runs on 2
# processes against the private prefix.
#   scripts/install_check.sh [BUILD]     (make install-check)
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
stage=$(mktemp -d)
private=$(mktemp -d)
trap 'rm -rf "$stage" "$private"' EXIT
multi=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
cc=${CC:-cc}
fail() { echo "install-check: $*" >&2; exit 1; }

# The variables a .pc file was written with must be the install's own.
check_pc() {  # FILE PREFIX LIBDIR INCLUDEDIR
  local got
  for var in prefix:$2 libdir:$3 includedir:$4; do
    got=$(sed -n "s|^${var%%:*}=||p" "$1")
    [ "$got" = "${var#*:}" ] || fail "$1: ${var%%:*}=$got, installed with ${var#*:}"
  done
  echo "install-check: $(basename "$1"): prefix=$2 libdir=$3"
}

# Every file and link under a tree (empty folders are left by uninstall, as automake's are).
files_under() { (cd "$1" && find . -mindepth 1 \( -type f -o -type l \) | sort | sed 's|^\.|  |'); }

cat > "$stage/prog.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <tapegrad.h>

int main(void)
{
    tg_tensor *x = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(3), 2.0), true);
    tg_backward(tg_sum(tg_square(x)));                /* d/dx sum(x²) = 2x = 4 */
    double g = tg_get_flat(x->grad, 0);
    tg_tape_reset();
    tg_free(x);
    printf("tapegrad %s (header %s): gradient %g\n", tg_version(), TG_VERSION_STRING, g);
    return g == 4.0 && strcmp(tg_version(), TG_VERSION_STRING) == 0 ? 0 : 1;
}
C
cp "$stage/prog.c" "$private/prog.c"

# ---- 0. tapegrad.pc follows the build's optional libraries (a scratch build folder, no compile)
pcb=$stage/pc-build
for x in 1 0; do
  make -s -C "$root" BUILD="$pcb" NO_SETUP=1 XSMM=$x DNNL=$x "$pcb/tapegrad.pc"
  n=$(grep -c -- '^Libs.private:.*-lxsmm.*-ldnnl' "$pcb/tapegrad.pc" || true)
  [ "$n" -eq $x ] || fail "XSMM=$x DNNL=$x: $(grep Libs.private "$pcb/tapegrad.pc")"
done
rm -rf "$pcb"
echo "install-check: tapegrad.pc's Libs.private follows XSMM and DNNL"

# ---- 1. staged: make install DESTDIR=<stage> PREFIX=/usr ------------------------------------
prefix=/usr
libdir=$prefix/lib/$multi
make -s -C "$root" BUILD="$build" PREFIX=$prefix DESTDIR="$stage/root" install >/dev/null
echo "install-check: staged install in $stage/root:"
files_under "$stage/root"
check_pc "$stage/root$libdir/pkgconfig/tapegrad.pc" $prefix "$libdir" $prefix/include

so=$(readlink -f "$stage/root$libdir/libtapegrad.so")
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
major=$(sed -n 's/^#define TG_VERSION_MAJOR \([0-9]*\)/\1/p' "$root/include/tg/core.h")
[ "$soname" = "libtapegrad.so.$major" ] || fail "soname '$soname'"
echo "install-check: soname $soname"
internal=$(nm -D --defined-only "$so" | awk '{print $3}' | grep '^tg__' || true)
[ -z "$internal" ] || fail "exported internals: $internal"
not_public=$(nm -D --defined-only "$so" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^tg_' || true)
[ -z "$not_public" ] || fail "exported non-tg_ symbols: $not_public"
echo "install-check: $(nm -D --defined-only "$so" | grep -c ' tg_') symbols exported, all tg_, none tg__"

export PKG_CONFIG_SYSROOT_DIR=$stage/root PKG_CONFIG_PATH=$stage/root$libdir/pkgconfig
cc_line="$cc -std=c11 -o $stage/prog $stage/prog.c $(pkg-config --cflags --libs tapegrad)"
echo "install-check: $cc_line"
$cc_line
LD_LIBRARY_PATH=$stage/root$libdir "$stage/prog"
needed=$(readelf -d "$stage/prog" | sed -n 's/.*(NEEDED).*\[\(libtapegrad[^]]*\)\]/\1/p')
[ "$needed" = "$soname" ] || fail "prog needs '$needed'"

static_line="$cc -std=c11 -o $stage/prog_static $stage/prog.c -Wl,-Bstatic $(pkg-config --cflags --libs --static tapegrad | sed 's/-ltapegrad/-ltapegrad -Wl,-Bdynamic/')"
$static_line
"$stage/prog_static" >/dev/null
echo "install-check: static link through pkg-config --static works"

# The extension points out of tree (issue 10): a user's op and optimizer, and second-order
# derivatives, from copies of their sources (no quote-include can reach the repository), with
# the staged headers and library only; each in its fast mode, which asserts its result.
mkdir -p "$stage/src" "$stage/out"
for ex in custom_op custom_optimizer second_order; do
  cp "$root/examples/$ex.c" "$stage/src/"
  own_libs=(-lm)
  [ $ex = second_order ] && own_libs+=(-llapacke -llapack)   # its least-squares comparison
  # shellcheck disable=SC2046 # pkg-config's flags are words
  $cc -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags tapegrad) -o "$stage/$ex" \
    "$stage/src/$ex.c" $(pkg-config --libs tapegrad) "${own_libs[@]}" ||
    fail "examples/$ex.c does not build against the installed headers"
  out=$(LD_LIBRARY_PATH=$stage/root$libdir "$stage/$ex" --fast --out "$stage/out" 2>&1) ||
    { echo "$out" | tail -n 5 >&2; fail "$ex --fast (built against the install) failed"; }
  echo "install-check: examples/$ex.c against the install: $(echo "$out" | tail -n 1)"
done

run() { LD_LIBRARY_PATH=$stage/root$libdir "$@"; }
run "$stage/root$prefix/bin/tapegrad-ls" -h >/dev/null
run "$stage/root$prefix/bin/tapegrad-question2" -h >/dev/null
programs=(tapegrad-ls tapegrad-question2)
if command -v mpicc >/dev/null; then
  [ -x "$stage/root$prefix/bin/tapegrad-question2-mpi" ] ||
    fail "mpicc is here, tapegrad-question2-mpi is not installed"
  run "$stage/root$prefix/bin/tapegrad-question2-mpi" -h >/dev/null
  programs+=(tapegrad-question2-mpi)
fi
echo "install-check: installed programs run: ${programs[*]}"
if command -v man >/dev/null; then
  for p in "${programs[@]}"; do
    case $p in   # a phrase each page must have (the MPI runner's is the runner's page)
      tapegrad-ls) phrase=safetensors ;; tapegrad-question2) phrase=-batch_size ;;
      tapegrad-question2-mpi) phrase=-per_process_batch_size ;;
    esac
    MANPATH=$stage/root$prefix/share/man MANWIDTH=100 man -P cat "$p" 2>/dev/null |
      grep -q -- "$phrase" || fail "man $p: no page, or it does not say $phrase"
  done
  echo "install-check: man pages of ${programs[*]}"
fi

rm -rf "$stage"/prog* "$stage/src" "$stage/out" "${stage:?}"/custom_op "$stage"/custom_optimizer \
       "$stage"/second_order
make -s -C "$root" BUILD="$build" PREFIX=$prefix DESTDIR="$stage/root" uninstall >/dev/null
left=$(files_under "$stage/root")
[ -z "$left" ] || fail "uninstall left: $left"
echo "install-check: uninstall removes every installed file"

# ---- 2. a private prefix: make install PREFIX=<dir>, no DESTDIR ------------------------------
unset PKG_CONFIG_SYSROOT_DIR
prefix=$private/opt/tapegrad
libdir=$prefix/lib/$multi
make -s -C "$root" BUILD="$build" PREFIX="$prefix" install >/dev/null
check_pc "$libdir/pkgconfig/tapegrad.pc" "$prefix" "$libdir" "$prefix/include"
export PKG_CONFIG_PATH=$libdir/pkgconfig
# shellcheck disable=SC2046
$cc -std=c11 -o "$private/prog" "$private/prog.c" $(pkg-config --cflags --libs tapegrad)
LD_LIBRARY_PATH=$libdir "$private/prog" >/dev/null || fail "prog against $prefix failed"
echo "install-check: a pkg-config program builds and runs against $prefix"

if command -v mpicc >/dev/null; then
  { [ -f "$libdir/libtapegrad_dist.a" ] && [ -f "$prefix/include/tg/dist.h" ]; } ||
    fail "mpicc is here, libtapegrad_dist.a or <tg/dist.h> is not installed"
  check_pc "$libdir/pkgconfig/tapegrad-dist.pc" "$prefix" "$libdir" "$prefix/include"
  cat > "$private/ddp.c" <<'C'
#include <stdio.h>
#include <tapegrad.h>
#include <tg/dist.h>

int main(int argc, char **argv)
{
    tg_dist_check(tg_dist_init(&argc, &argv), "tg_dist_init");
    int rank = tg_dist_rank(), n = tg_dist_world_size();
    tg_tensor *w = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(3), rank + 1.0), true);
    tg_dist_broadcast(&w, 1, 0);                      /* rank 0's 1.0 everywhere */
    tg_param_list params = {0};
    tg_param_list_add(&params, "w", w);
    tg_ddp *ddp = tg_ddp_new(&params, NULL);
    /* rank r's loss (r + 1)·Σw has gradient r + 1; averaged with weights 1/n: (n + 1) / 2 */
    tg_ddp_backward(ddp, tg_mul_scalar(tg_sum(w), rank + 1.0), 1.0 / n);
    double v = tg_get_flat(w, 0), g = tg_get_flat(w->grad, 0);
    tg_tape_reset();
    tg_ddp_free(ddp);
    tg_param_list_free(&params);
    tg_free(w);
    if (tg_dist_is_main())
        printf("tapegrad-dist: %d processes, w %g, averaged gradient %g\n", n, v, g);
    tg_dist_finalize();
    return v == 1.0 && g == (n + 1) / 2.0 ? 0 : 1;
}
C
  dist_line="$cc -std=c11 -o $private/ddp $private/ddp.c $(pkg-config --cflags --libs tapegrad-dist)"
  echo "install-check: $dist_line"
  $dist_line
  timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 "$private/ddp" ||
    fail "the tapegrad-dist program failed on 2 processes"
fi

rm -f "$private"/prog* "$private"/ddp*
make -s -C "$root" BUILD="$build" PREFIX="$prefix" uninstall >/dev/null
left=$(files_under "$private")
[ -z "$left" ] || fail "uninstall of $prefix left: $left"
echo "install-check: uninstall of $prefix removes every installed file; ok"
