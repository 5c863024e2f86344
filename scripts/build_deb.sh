#!/usr/bin/env bash
# Builds the Debian packages (libtapegrad0, libtapegrad-dev, tapegrad-tools) from a copy of the
# working tree with `dpkg-buildpackage -us -uc -b`, then checks them with lintian.
#   scripts/build_deb.sh OUTDIR      (make deb; the .deb files end up in OUTDIR)
set -euo pipefail
out=$(mkdir -p "$1" && cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(dpkg-parsechangelog -l "$root/debian/changelog" -S Version)
src="$out/src/tapegrad-$version"
rm -rf "$out/src" "$out"/*.deb "$out"/*.buildinfo "$out"/*.changes
mkdir -p "$src"
# The tree as it is, without build outputs or version-control files.
tar -C "$root" --exclude=./build --exclude='./build-*' --exclude=./.git --exclude=./out \
    --exclude=./debian/.debhelper -cf - . | tar -C "$src" -xf -
(cd "$src" && dpkg-buildpackage -us -uc -b -j2) > "$out/build.log" 2>&1 || {
  tail -n 30 "$out/build.log" >&2
  echo "build_deb: dpkg-buildpackage failed (log: $out/build.log)" >&2
  exit 1
}
mv "$out"/src/*.deb "$out"/src/*.changes "$out"/src/*.buildinfo "$out"/
rm -rf "$out/src"
ls -1 "$out"/*.deb
# Errors and warnings fail the build; debian/*.lintian-overrides explain the accepted ones.
lintian --fail-on error,warning "$out"/*.changes 2>&1 | { grep -v "running with root privileges" || true; }
echo "build_deb: lintian clean"
