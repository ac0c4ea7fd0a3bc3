#!/usr/bin/env bash
# One prepared check for a CUDA machine, at most about 8 minutes:
#   1. the tests marked for CUDA (bf16 AMP, channels-last, stage 2 on the GPU, NCCL with 1 rank under torchrun);
#   2. the sandwich step's images/s and TFLOP/s on the attentivenas space at batch 64 and 128 per GPU
#      (bf16, channels-last; with and without torch.compile), and stage 2's subnets/min;
#   3. optional, GPU_CHECK_SAMPLING=1 (about 8 more minutes): the whole sampling comparison of
#      reproduce_sampling.py on the GPU (--device cuda --jobs 8 --seeds 0,1,2,3,4 --train-size 54000
#      --epochs 8) into ${SAMPLING_OUT:-$OUT/sampling}, stopped after ${SAMPLING_LIMIT_S:-600} s; its wall
#      time goes into gpu_check.json ("sampling"); run again with the same folder to finish a stopped one
#      (SAMPLING_JOBS=N: N runs at once instead of 8);
# and writes everything to ${OUT:-.}/gpu_check.json (the test log beside it).
#   bash benchmarks/gpu_check.sh            # QUICK=1 for batch 64 only
#   GPU_CHECK_SAMPLING=1 bash benchmarks/gpu_check.sh
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
if [ "${GPU_CHECK_SAMPLING:-0}" = 1 ]; then
  SAMPLING_OUT=${SAMPLING_OUT:-$OUT/sampling}
  "$PY" benchmarks/gpu_check.py --out "$OUT/gpu_check.json" --sampling "$SAMPLING_OUT" \
    --sampling-limit-s "${SAMPLING_LIMIT_S:-600}" --sampling-jobs "${SAMPLING_JOBS:-8}"
  echo "sampling comparison: exit $? -> $OUT/gpu_check.json (log: $SAMPLING_OUT/gpu_check_sampling.log)"
fi
