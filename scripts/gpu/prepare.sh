#!/usr/bin/env bash
# Prepares gpu-bundle/ (git-ignored) for scripts/gpu-check.sh. Run it HERE, on a machine with Node
# 20, npm ci done and nvcc: the GPU test machine has no Node.js and no internet. Then send
# gpu-bundle/ along with the working tree (device tool: carry ["gpu-bundle"]).
#
#   gpu-bundle/node.xz            this machine's `node` binary, xz-compressed (unpacked with Python's lzma)
#   gpu-bundle/proggan_cuda.node  the CUDA addon (sm_90; cudart static; cuDNN/cuBLAS/NCCL dlopened)
#   gpu-bundle/check.mjs          scripts/gpu/check.ts + tfjs + proggan's sources, one ES module (esbuild)
#
# Fails when the bundle plus the tracked working tree exceed 64 MiB (the machine's upload limit).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=gpu-bundle
mkdir -p "$out"

if [ ! -f build/Release/proggan_cuda.node ] || [ -n "$(find src/native/cuda -newer build/Release/proggan_cuda.node -print -quit)" ]; then
  PROGGAN_REQUIRE_CUDA_BUILD=1 node scripts/build-cuda.mjs
fi
cp build/Release/proggan_cuda.node "$out/"
node scripts/gpu/bundle.mjs

node_bin="$(command -v node)"
if [ ! -f "$out/node.xz" ] || [ "$node_bin" -nt "$out/node.xz" ] || [ "$(cat "$out/node.version" 2>/dev/null)" != "$(node -v)" ]; then
  echo "compressing $node_bin ($(node -v)) ..."
  xz -T0 -6 -c "$node_bin" > "$out/node.xz.tmp" && mv "$out/node.xz.tmp" "$out/node.xz"
  node -v > "$out/node.version"
fi

bundle=$(du -cb "$out"/* | tail -1 | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
total=$((bundle + tree))
printf 'gpu-bundle: %.1f MiB (node.xz %.1f, addon %.1f, check.mjs %.1f); with the tracked tree %.1f MiB of 64\n' \
  "$(echo "$bundle / 1048576" | bc -l)" "$(echo "$(stat -c %s $out/node.xz) / 1048576" | bc -l)" \
  "$(echo "$(stat -c %s $out/proggan_cuda.node) / 1048576" | bc -l)" "$(echo "$(stat -c %s $out/check.mjs) / 1048576" | bc -l)" \
  "$(echo "$total / 1048576" | bc -l)"
if [ "$total" -gt $((64 * 1048576)) ]; then
  echo "gpu-bundle: over the 64 MiB limit" >&2
  exit 1
fi
