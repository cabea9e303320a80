"""Benchmark: what the `cpu` fine-tuning settings buy, on the real MovieLens-1M instruction data.

    .venv/bin/python benchmarks/finetune_settings_ml1m.py [--artifact-dir artifacts/cpu/ml-1m-custom] [--steps 6]

Reads the PALR_v2 examples notebook 04 wrote in a run's folder (``instructions.parquet``), then measures

* the padded tokens of one epoch with random batches and with length-grouped batches
  (transformers' LengthGroupedSampler), and
* seconds per optimiser step of SFTTrainer with LoRA on every layer and on the last N layers only
  (``--last-layers``, default 10), on the same batches.

Results go to benchmarks/results/finetune_settings_ml1m_cpu.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from common import load_run_data, machine  # benchmarks/common.py (scripts run from this folder)
from transformers.trainer_pt_utils import LengthGroupedSampler

from palr_utils.core.io import require_artifacts, write_json
from palr_utils.finetune.sft import finetune, to_sft_dataset
from palr_utils.llm.loading import load_tokenizer


def padded_tokens(lengths: list[int], order: list[int], batch_size: int) -> int:
    """Tokens a batch holds once padded to its longest example, summed over one epoch."""
    return sum(
        max(lengths[i] for i in order[s : s + batch_size]) * len(order[s : s + batch_size])
        for s in range(0, len(order), batch_size)
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifact-dir", default="artifacts/cpu/ml-1m-custom", help="a run whose notebook 04 ran")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--last-layers", type=int, nargs="+", default=[10], help="adapted layer counts to time")
    parser.add_argument("--skip-all-layers", action="store_true", help="do not time adapters on every layer")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "finetune_settings_ml1m_cpu.json"))
    args = parser.parse_args()

    config, _, _ = load_run_data(args.artifact_dir)
    preset = config.preset
    (path,) = require_artifacts(args.artifact_dir, ["instructions.parquet"], producer="04_finetune_palr")
    examples = pd.read_parquet(path)  # notebook 04's PALR_v2 examples (both tasks), as it trains on them
    tokenizer = load_tokenizer(preset.llm)
    count_tokens = lambda text: len(tokenizer(text).input_ids)  # noqa: E731
    dataset = to_sft_dataset(examples, tokenizer)
    lengths = [count_tokens(p + c) for p, c in zip(dataset["prompt"], dataset["completion"], strict=True)]
    batch_size = preset.finetune.batch_size
    random_order = np.random.default_rng(config.seed).permutation(len(lengths)).tolist()
    grouped_order = list(LengthGroupedSampler(batch_size, lengths=lengths, generator=torch.Generator().manual_seed(0)))

    result = {
        "n_train_examples": len(examples),
        "tokens": int(sum(lengths)),
        "padded_tokens_random_batches": padded_tokens(lengths, random_order, batch_size),
        "padded_tokens_grouped_batches": padded_tokens(lengths, grouped_order, batch_size),
        "instructions": dataclasses.asdict(preset.instructions),
        "steps_measured": args.steps,
        "machine": machine(),
    }
    settings = [] if args.skip_all_layers else [("all_layers", None)]
    settings += [(f"last_{n}_layers", n) for n in args.last_layers]
    for name, last_layers in settings:
        spec = dataclasses.replace(preset.finetune, max_steps=args.steps, max_minutes=None, save_steps=10_000,
                                   group_by_length=False, lora_last_layers=last_layers)  # fmt: skip
        folder = Path(tempfile.mkdtemp())
        started = time.perf_counter()
        finetune(preset.llm, tokenizer, dataset, folder, spec, config.seed)
        result[f"seconds_per_step_{name}"] = round((time.perf_counter() - started) / args.steps, 2)  # incl. loading
        shutil.rmtree(folder)
    write_json(result, args.out)
    print(result)


if __name__ == "__main__":
    main()
