#!/usr/bin/env bash
# The installed library as a user sees it (issue 15's "done when"): `make install` into a staged
# tree, a program compiled with `pkg-config --cflags --libs tapegrad` against it and run, a
# static link through `pkg-config --static`, the soname, no internal (tg__) symbol exported, and
# `make uninstall` removing every file install put there.
#   scripts/install_check.sh [BUILD]     (make install-check)
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
prefix=/usr
multi=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
libdir=$prefix/lib/$multi

make -s -C "$root" BUILD="$build" PREFIX=$prefix DESTDIR="$stage" install >/dev/null
echo "install-check: staged install in $stage:"
(cd "$stage" && find . -mindepth 1 \( -type f -o -type l \) | sort | sed 's|^\.|  |')

so=$(readlink -f "$stage$libdir/libtapegrad.so")
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
major=$(sed -n 's/^#define TG_VERSION_MAJOR \([0-9]*\)/\1/p' "$root/include/tg/core.h")
[ "$soname" = "libtapegrad.so.$major" ] || { echo "install-check: soname '$soname'" >&2; exit 1; }
echo "install-check: soname $soname"
internal=$(nm -D --defined-only "$so" | awk '{print $3}' | grep '^tg__' || true)
[ -z "$internal" ] || { echo "install-check: exported internals: $internal" >&2; exit 1; }
not_public=$(nm -D --defined-only "$so" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^tg_' || true)
[ -z "$not_public" ] || { echo "install-check: exported non-tg_ symbols: $not_public" >&2; exit 1; }
echo "install-check: $(nm -D --defined-only "$so" | grep -c ' tg_') symbols exported, all tg_, none tg__"

export PKG_CONFIG_SYSROOT_DIR=$stage PKG_CONFIG_PATH=$stage$libdir/pkgconfig
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
cc_line="${CC:-cc} -std=c11 -o $stage/prog $stage/prog.c $(pkg-config --cflags --libs tapegrad)"
echo "install-check: $cc_line"
$cc_line
LD_LIBRARY_PATH=$stage$libdir "$stage/prog"
needed=$(readelf -d "$stage/prog" | sed -n 's/.*(NEEDED).*\[\(libtapegrad[^]]*\)\]/\1/p')
[ "$needed" = "$soname" ] || { echo "install-check: prog needs '$needed'" >&2; exit 1; }

static_line="${CC:-cc} -std=c11 -o $stage/prog_static $stage/prog.c -Wl,-Bstatic $(pkg-config --cflags --libs --static tapegrad | sed 's/-ltapegrad/-ltapegrad -Wl,-Bdynamic/')"
$static_line
"$stage/prog_static" >/dev/null
echo "install-check: static link through pkg-config --static works"
LD_LIBRARY_PATH=$stage$libdir "$stage$prefix/bin/tapegrad-ls" -h >/dev/null
LD_LIBRARY_PATH=$stage$libdir "$stage$prefix/bin/tapegrad-question2" -h >/dev/null
echo "install-check: installed programs run"

rm -f "$stage"/prog*
make -s -C "$root" BUILD="$build" PREFIX=$prefix DESTDIR="$stage" uninstall >/dev/null
left=$(cd "$stage" && find . \( -type f -o -type l \) | sort)
[ -z "$left" ] || { echo "install-check: uninstall left: $left" >&2; exit 1; }
echo "install-check: uninstall removes every installed file; ok"
