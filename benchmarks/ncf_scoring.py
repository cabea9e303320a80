"""Benchmark: NCF's full-ranking scoring on Beauty (12,101 items), pair by pair vs. with its layers split.

    .venv/bin/python benchmarks/ncf_scoring.py [--artifact-dir artifacts/cpu/beauty-custom] [--users 2000]

NCF has no dot product to rank all items at once: every (user, item) pair goes through its MLP, and on Beauty a
validation pass over 22,363 users took about 4.5 minutes of a 5-minute training budget. ``NeuMF._score``
applies the first MLP layer and the GMF half of the output layer once per user and once per item instead of
once per pair; this script times validation scoring both ways on the same untrained model and checks that
the scores agree, into benchmarks/results/ncf_scoring_<data>.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from common import data_name, load_run_data, machine  # benchmarks/common.py (scripts run from this folder)

from palr_utils.core.io import write_json
from palr_utils.retrieval import build_baselines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifact-dir", default="artifacts/cpu/beauty-custom", help="a run whose notebook 01 ran")
    parser.add_argument("--users", type=int, default=2000)
    args = parser.parse_args()
    config, processed, data = load_run_data(args.artifact_dir)
    model = build_baselines(data.n_users, data.n_items)["ncf"].eval()
    model.data = data
    users = np.arange(min(args.users, data.n_users))

    def pairwise(batch: np.ndarray, split: str) -> torch.Tensor:  # the former NeuMF._score
        pairs = torch.as_tensor(batch).repeat_interleave(model.n_items)
        return model(pairs, torch.arange(model.n_items).repeat(len(batch))).view(-1, model.n_items)

    timings, metrics = {}, {}
    with torch.no_grad():
        for name, scorer in (("split_layers", model._score), ("pairwise", pairwise)):
            model._score = scorer
            started = time.perf_counter()
            metrics[name] = model.evaluate("valid", users=users)
            timings[name] = time.perf_counter() - started
    result = {
        "data": args.artifact_dir, "n_items": data.n_items, "users_scored": len(users),
        "seconds_pairwise": round(timings["pairwise"], 1), "seconds_split_layers": round(timings["split_layers"], 1),
        "speed_up": round(timings["pairwise"] / timings["split_layers"], 2),
        "same_metrics": metrics["pairwise"] == metrics["split_layers"], "metrics": metrics, "machine": machine(),
    }  # fmt: skip
    name = data_name(processed, args.artifact_dir)
    write_json(result, Path(__file__).parent / "results" / f"ncf_scoring_{name}.json")
    print(result)


if __name__ == "__main__":
    main()
