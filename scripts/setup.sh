#!/usr/bin/env bash
# Installs the Debian packages a build target needs, only when one is missing.
#   setup.sh lib        the library's own dependencies (what `make lib` and `make install` need)
#   setup.sh examples   + what the examples and benchmarks link (LAPACKE)
#   setup.sh test       + the test framework and the charts' font
#   setup.sh data       the default data set (Fashion-MNIST), for `make run` and `make test`
#   setup.sh deb        + Debian packaging tools (dpkg-buildpackage, debhelper, lintian)
#   setup.sh docs       Doxygen, for the API reference
#   setup.sh fuzz       clang and libFuzzer, for `make fuzz`
#   setup.sh torch      Debian's PyTorch (a comparison tool, never a build dependency)
#   setup.sh mpi        Open MPI, for data-parallel training (dist/, mk/dist.mk)
# Several sets may be named at once; no argument means lib, examples, test and data. Called by
# make (one stamp per set under build/); safe to run by hand and to run twice.
# TG_WITH_TORCH=1 adds the torch set to whatever is asked for.
set -euo pipefail

packages_of() {
  case $1 in
    lib) echo libblis-serial-dev  # BLIS, single-threaded build: lowest per-call overhead (docs/blas.md)
         echo libxsmm-dev         # libxsmm JIT kernels for small products (optional: make XSMM=0)
         echo libdnnl-dev         # oneDNN for large float32 convolutions (optional: make DNNL=0)
         echo libstb-dev          # stb_image_write / stb_truetype for PNG charts
         echo zlib1g-dev          # .gz IDX files
         echo libzip-dev          # .npz archives
         echo pkg-config ;;
    examples) packages_of lib
         echo liblapacke-dev      # closed-form least squares in examples (LAPACKE_dgels)
         echo liblapack-dev ;;    # the LAPACK that LAPACKE calls
    test) packages_of examples
         echo libcmocka-dev       # unit tests
         echo fonts-dejavu-core ;; # the font the charts render (tests draw charts)
    data) echo dataset-fashion-mnist ;;
    deb) packages_of lib
         echo dpkg-dev debhelper fakeroot lintian build-essential doxygen ;;
    docs) echo doxygen ;;
    fuzz) echo clang libclang-rt-dev ;;  # make fuzz: libFuzzer ships with Debian's clang
    torch) echo python3-torch ;;
    mpi) echo libopenmpi-dev openmpi-bin ;;
    *) echo "setup: unknown package set '$1'" \
            "(lib, examples, test, data, deb, docs, fuzz, torch, mpi)" >&2
       exit 2 ;;
  esac
}

sets=("$@")
[ ${#sets[@]} -eq 0 ] && sets=(lib examples test data)
[ "${TG_WITH_TORCH:-0}" = 1 ] && sets+=(torch)

# make -j may start several sets at once; one apt-get at a time (dpkg's lock), each checking
# what is missing only once it holds the lock.
exec 9>"${TMPDIR:-/tmp}/tapegrad-setup.lock"
flock 9

missing=()
for s in "${sets[@]}"; do
  list=$(packages_of "$s") || exit 2
  for p in $list; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

echo "setup: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: need root to install packages (run: sudo $0 ${sets[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
