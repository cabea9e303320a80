"""Benchmark: seconds per SASRec training step on MovieLens-1M for a few model variants (`cpu` preset).

    .venv/bin/python benchmarks/sasrec_step_ml1m.py [--artifact-dir artifacts/cpu/ml-1m-custom] [--steps 8]

Training quality within a time budget depends on how many epochs fit, so this measures the cost of one
optimiser step (forward, backward, Adam; the preset's batch size and bf16 setting) for the preset's
SASRec and for variants, on the same batches of the data notebook 01 wrote in that run's folder. It says nothing
about quality: that is notebook 03's (``pipeline_ml1m.py --only 03_sasrec_retrieval --overrides ...``). Results
go to benchmarks/results/sasrec_step_ml1m_cpu.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import time
from pathlib import Path

import numpy as np
import torch
from common import load_run_data, machine  # benchmarks/common.py (scripts run from this folder)

from palr_utils.core.io import write_json
from palr_utils.retrieval import SASRec
from palr_utils.retrieval.training import training_step

VARIANTS = {
    "profile": {},
    "no_attention_dropout": {"attention_dropout": 0.0},
    "hidden_128": {"hidden_size": 128},
    "hidden_128_no_attention_dropout": {"hidden_size": 128, "attention_dropout": 0.0},
}


def seconds_per_step(model: SASRec, batches: list, bf16: bool, warmup: int = 2) -> float:
    """Mean time of the training loop's own step over ``batches``, after ``warmup`` untimed ones."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    timings = []
    for batch in batches:
        started = time.perf_counter()
        training_step(model, optimizer, batch, bf16)
        timings.append(time.perf_counter() - started)
    return float(np.mean(timings[warmup:]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifact-dir", default="artifacts/cpu/ml-1m-custom", help="a run whose notebook 01 ran")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "sasrec_step_ml1m_cpu.json"))
    args = parser.parse_args()

    config, processed, data = load_run_data(args.artifact_dir)
    training, base = config.preset.sasrec_training, config.preset.sasrec
    bf16 = training.uses_bf16()
    model = SASRec(processed.n_items, base)
    batches = list(itertools.islice(model.batches(data, np.random.default_rng(0), training.batch_size), args.steps + 2))
    result = {"batch_size": training.batch_size, "bf16_autocast": bf16, "steps_measured": args.steps,
              "load_average_before": os.getloadavg()[0], "machine": machine(), "seconds_per_step": {}}  # fmt: skip
    for name, change in VARIANTS.items():
        torch.manual_seed(0)
        variant = SASRec(processed.n_items, dataclasses.replace(base, **change))
        result["seconds_per_step"][name] = round(seconds_per_step(variant, batches, bf16), 3)
        print(name, result["seconds_per_step"][name], flush=True)
    result["load_average_after"] = os.getloadavg()[0]
    write_json(result, args.out)
    print(result)


if __name__ == "__main__":
    main()
