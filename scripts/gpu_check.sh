#!/usr/bin/env bash
# GPU check of the fused QK-norm + RoPE kernels and the fast J-DiT inference path (issue 9).
#
#   scripts/gpu_check.sh            # from anywhere; about 4-6 minutes on one H100, at most 8
#
# Needs one CUDA GPU, PyTorch and Triton, plus the pure-Python packages the code imports (attrs,
# einops, fsspec, safetensors, tqdm, numpy; pytest and hypothesis for the tests). The package need
# not be installed: the repository root goes on PYTHONPATH. Steps:
#   1. the kernel tests (tests/test_kernels.py) with TRITON_INTERPRET unset, so the Triton kernels
#      are compiled for the GPU and compared with the reference on CUDA tensors (at most 3 min);
#   2. the benchmark (`benchmarks/bench_gpu.py`): the kernel vs the reference vs torch.compile of it, one
#      3.4B J-DiT forward at 512x512 with 4 pairs, 19 Euler steps with CFG; prints the table and
#      writes bench_gpu.json into $OUT if set, else the current directory (at most 5 min).
# Both steps run even if the first fails; the exit status is non-zero if either did.
# Extra arguments go to the benchmark (e.g. --no-compile, --kernel-only, --preset lavin-base).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset TRITON_INTERPRET LAVIN_KERNELS
JSON="${OUT:-.}/bench_gpu.json"

"$PY" - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible to PyTorch; run this on the GPU machine")
try:
    import triton
except ImportError:
    sys.exit("gpu_check: triton is not installed; the fused kernels need it (pip install triton)")
props = torch.cuda.get_device_properties(0)
print(f"gpu_check: {props.name}, {props.multi_processor_count} SMs, {props.total_memory / 2**30:.0f} GiB; "
      f"torch {torch.__version__}, triton {triton.__version__}, python {sys.version.split()[0]}")
PY

status=0
echo "== 1/2 kernel tests, compiled for the GPU"
timeout 180 "$PY" -m pytest tests/test_kernels.py -q -p no:cacheprovider || status=$?

echo "== 2/2 benchmark"
timeout 300 "$PY" benchmarks/bench_gpu.py --json "$JSON" "$@" || status=$?
[ "$status" -eq 0 ] || echo "gpu_check: a step FAILED (last failing exit status $status); see above"
exit "$status"
