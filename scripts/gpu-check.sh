#!/usr/bin/env bash
# The GPU check: kernel parity of the cuda backend against cpu, then one training step each of the
# WAE, the conditional ProGAN (R = 128) and the 3DGAN beside PyTorch on the same GPU; prints one
# table. Needs gpu-bundle/ from scripts/gpu/prepare.sh (Node is brought along: the GPU machine has
# none). Runs in < 5 minutes on an H100.
#
#   scripts/gpu-check.sh [--dry] [--reps 3] [--tf32] [--no-torch] [--only parity|steps] [--json out.json]
#
# --dry: no GPU needed; the fake device stands in for it (checks the bundle and the script's CPU side).
# Environment: PYTHON (python3 with PyTorch), PROGGAN_CUDA_LIB_DIRS (else PyTorch's nvidia-* folders).
set -euo pipefail
cd "$(dirname "$0")/.."
B="$PWD/gpu-bundle"
PY="${PYTHON:-python3}"
[ -f "$B/check.mjs" ] && [ -f "$B/proggan_cuda.node" ] || { echo "gpu-check: $B is incomplete; run scripts/gpu/prepare.sh first (on a machine with Node and nvcc)" >&2; exit 2; }

# Node: the bundled one (a machine's own node may be another major version).
NODE_DIR="${TMPDIR:-/tmp}/proggan-node-$(cat "$B/node.version" 2>/dev/null || echo x)"
if [ ! -x "$NODE_DIR/node" ]; then
  mkdir -p "$NODE_DIR"
  "$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$B/node.xz" "$NODE_DIR/node.tmp"
  chmod +x "$NODE_DIR/node.tmp" && mv "$NODE_DIR/node.tmp" "$NODE_DIR/node"
fi
NODE="$NODE_DIR/node"

# cuBLAS / cuDNN / NCCL: PyTorch's own copies when nothing else is set.
if [ -z "${PROGGAN_CUDA_LIB_DIRS:-}" ]; then
  PROGGAN_CUDA_LIB_DIRS="$("$PY" - <<'PYEOF' 2>/dev/null || true
import glob, os, site, sys
roots = set(site.getsitepackages() + [site.getusersitepackages()] + sys.path)
try:
    import torch
    roots.add(os.path.dirname(os.path.dirname(torch.__file__)))
    print(os.path.join(os.path.dirname(torch.__file__), "lib"), end=":")
except Exception:
    pass
dirs = [d for r in roots if r for d in glob.glob(os.path.join(r, "nvidia", "*", "lib"))]
print(":".join(sorted(set(dirs))))
PYEOF
)"
fi
export PROGGAN_CUDA_LIB_DIRS PROGGAN_CUDA_ADDON="$B/proggan_cuda.node"

echo "node $("$NODE" -v); python $("$PY" -c 'import sys; print(sys.version.split()[0])')"
"$PY" -c 'import sys; [compile(open(f).read(), f, "exec") for f in sys.argv[1:]]' test/bench/pytorch_steps.py test/bench/pytorch_progan_step.py
if [[ " $* " != *" --dry "* ]]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi failed"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "gpu", torch.cuda.is_available())' || true
fi
exec timeout 290 "$NODE" "$B/check.mjs" --python "$PY" "$@"
