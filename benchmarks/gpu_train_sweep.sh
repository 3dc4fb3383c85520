#!/usr/bin/env bash
# Training throughput on one GPU, the grid #14 asks for: phi-1 and phi-1-small at sequence 2048, eager against
# torch.compile, the plain loss against the fused linear + cross-entropy kernels, and the bigger micro-batch
# the fused loss makes room for. One line per configuration (tokens/s, MFU, peak memory) and a RESULT line per
# run; the phi-1 runs come first so that a short device lease still measures the target.
#
#   bash benchmarks/gpu_train_sweep.sh [WHEELS_DIR]     # WHEELS_DIR: liger-kernel / cut-cross-entropy wheels,
#                                                       # for a machine without network (pip --no-index)
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [ $# -ge 1 ]; then
  $PY -m pip install -q --no-index --find-links "$1" liger-kernel cut-cross-entropy || echo "fused kernels not installed"
fi
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'" || exit 1
STEPS=${STEPS:-12}
run() {  # preset micro-batch kernels ["--compile --checkpointing K"]
  echo "== $1, micro-batch $2, kernels $3 ${4:-eager}"
  timeout "${RUN_TIMEOUT:-240}" $PY benchmarks/train_throughput.py --preset "$1" --seq-len 2048 --micro-batch "$2" \
    --steps "$STEPS" --warmup 4 --kernels "$3" --no-baseline ${4:-} 2>&1 | grep -E "phi1 trainer|RESULT|Error|error" \
    || echo "   (failed or out of memory)"
}
run phi-1 16 torch --compile
run phi-1 16 liger --compile
run phi-1 32 liger --compile
run phi-1 16 cce --compile
run phi-1 32 torch "--compile --checkpointing 12"     # half the layers recomputed: twice the micro-batch
run phi-1 48 liger "--compile --checkpointing 8"
run phi-1 16 torch
run phi-1 16 liger
run phi-1-small 32 torch --compile
run phi-1-small 32 liger --compile
