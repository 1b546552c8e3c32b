#!/usr/bin/env bash
# Installs Debian's CUDA 11.8 toolkit (nvcc, cuda.h, a libcuda to link
# against) from the contrib and non-free components (DESIGN.md §6). Needs
# root and Debian 12 (bookworm). Takes about 2.5 minutes. No GPU needed.
set -euo pipefail
if command -v nvcc >/dev/null 2>&1 && [ -f /usr/include/cuda.h ]; then
  echo "CUDA toolkit already installed: $(nvcc --version | tail -1)"
  exit 0
fi
src=/etc/apt/sources.list.d/debian.sources
if [ -f "$src" ]; then
  # enable contrib and non-free next to main, once
  sed -i -E '/^Components:/{/contrib/!s/^Components:.*$/Components: main contrib non-free non-free-firmware/}' "$src"
else
  sed -i -E '/^deb /{/contrib/!s/ main( |$)/ main contrib non-free non-free-firmware\1/}' /etc/apt/sources.list
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends nvidia-cuda-toolkit nvidia-cuda-dev
nvcc --version | tail -1
