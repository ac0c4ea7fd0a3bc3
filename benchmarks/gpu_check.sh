#!/usr/bin/env bash
# One prepared check for a CUDA machine, at most about 8 minutes:
#   1. the tests marked for CUDA (bf16 AMP, channels-last, stage 2 on the GPU, NCCL with 1 rank under torchrun);
#   2. the sandwich step's images/s and TFLOP/s on the attentivenas space at batch 64 and 128 per GPU
#      (bf16, channels-last; with and without torch.compile), and stage 2's subnets/min;
# and writes everything to ${OUT:-.}/gpu_check.json (the test log beside it).
#   bash benchmarks/gpu_check.sh            # QUICK=1 for batch 64 only
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
[ -x "$PY" ] || make -s .venv/.installed-dev   # a fresh machine: create the venv (torch from the local index)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/nvidia_smi.txt" 2>&1 || true
timeout 150 "$PY" -m pytest -m cuda -q -p no:cacheprovider tests/test_cuda.py > "$OUT/gpu_tests.log" 2>&1
echo "cuda tests: exit $? (log: $OUT/gpu_tests.log)"
tail -1 "$OUT/gpu_tests.log"
timeout 330 "$PY" benchmarks/gpu_check.py --out "$OUT/gpu_check.json" ${QUICK:+--quick}
echo "gpu_check.py: exit $? -> $OUT/gpu_check.json"
