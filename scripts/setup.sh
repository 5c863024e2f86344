#!/usr/bin/env bash
# Installs the Debian packages tapegrad needs, only when one is missing.
# Called by `make` (target `setup`); safe to run by hand and to run twice.
set -euo pipefail

packages=(
  libblis-serial-dev    # BLIS, single-threaded build: lowest per-call overhead (see docs/blas.md)
  libcmocka-dev         # unit tests
  libstb-dev            # stb_image_write / stb_truetype for PNG charts
  fonts-dejavu-core     # the font the charts render
  zlib1g-dev            # .gz IDX files
  libzip-dev            # .npz archives
  liblapacke-dev        # closed-form least squares in examples (LAPACKE_dgels)
  liblapack-dev         # the LAPACK that LAPACKE calls
  dataset-fashion-mnist # the default data set
  pkg-config
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${TG_WITH_TORCH:-0}" = 1 ] && ! dpkg-query -W -f='${Status}' python3-torch 2>/dev/null | grep -q "install ok installed"; then
  missing+=(python3-torch)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: need root to install packages (run: sudo $0)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
