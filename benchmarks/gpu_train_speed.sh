#!/usr/bin/env bash
# The GPU measurements of issue 12, as one script (<= 8 min on one H100/H200-class GPU):
# training samples/s and peak memory of full and lite SSMA at 384x768 in fp32 and bf16, one
# process and (with two GPUs) two under torchrun; then `ssma-bench model` on CUDA.
# Results: JSON lines in ${OUT:-benchmarks/out}/train_speed.jsonl and model_bench.md.
set -euo pipefail
out=${OUT:-benchmarks/out}
mkdir -p "$out"
gpus=$(python -c "import torch; print(torch.cuda.device_count())")
run() { timeout 150 "$@" --size 384x768 --warmup 10 --steps 40 | tee -a "$out/train_speed.jsonl"; }
for config in full lite; do
  for amp in off bf16; do
    run python benchmarks/train_speed.py --config "$config" --amp "$amp" --channels-last
  done
done
if [ "$gpus" -ge 2 ]; then
  run torchrun --standalone --nproc-per-node 2 benchmarks/train_speed.py --config full \
    --amp bf16 --channels-last --sync-bn
fi
timeout 120 ssma-bench model --runs 50 --write "$out/model_bench.md" | tail -20
