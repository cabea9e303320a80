"""Benchmark: one of the paper's baselines on real data, with the preset's settings or a variant of them.

    .venv/bin/python benchmarks/baselines.py --model bpr_mf --data-dir ../shared/data/beauty
    .venv/bin/python benchmarks/baselines.py --model ncf --data-dir ../shared/data/beauty \
        --training weight_decay=1e-6 --out results/x.json                    # a training variant
    .venv/bin/python benchmarks/baselines.py --model ncf --model-config negatives_per_positive=8   # a model variant

Preprocesses the data exactly as notebook 01, builds the baselines exactly as notebook 03 does (the preset's
``baseline_models`` and ``baseline_settings`` for that data set and model, the run's seed), trains one of them
with early stopping on validation NDCG@10 and records validation and test metrics and the wall time in
``benchmarks/results/<model>_<data>_<profile>.json``. Variants are how the per-data-set settings in the
preset were chosen: on validation only.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import data_name, load_benchmark_data, training_record  # benchmarks/common.py
from sasrec import with_changes

from palr_utils.core.io import write_json
from palr_utils.core.paths import project_root
from palr_utils.retrieval import baseline_config, build_baselines, train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, choices=["bpr_mf", "ncf", "gru4rec", "caser"])
    parser.add_argument("--data-dir", default="../shared/data/beauty")
    parser.add_argument("--dataset", default="custom")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--out", default="", help="default: benchmarks/results/<model>_<data>_<profile>.json")
    parser.add_argument("--training", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="change TrainingConfig fields of this baseline's training (JSON values)")
    parser.add_argument("--model-config", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="change fields of this baseline's model configuration, e.g. NCFConfig (JSON values)")
    args = parser.parse_args()

    config, processed, data = load_benchmark_data(args.profile, args.dataset, args.data_dir, "")
    name = data_name(processed, args.data_dir)
    out = args.out or str(Path(__file__).parent / "results" / f"{args.model}_{name}_{args.profile}.json")
    preset = config.preset
    models = preset.baseline_models
    if args.model_config:  # the preset's configuration of this model (or its default), with the changes
        default = baseline_config(args.model, preset.baseline_max_len, models)
        models = {**models, args.model: with_changes(default, args.model_config)}
    model = build_baselines(data.n_users, data.n_items, preset.baseline_max_len, config.seed, models)[args.model]
    training = with_changes(preset.baseline_settings(args.model), args.training)
    variant = "_".join(a.replace("=", "") for a in args.model_config + args.training) or "default"
    checkpoint_dir = project_root() / "artifacts" / "benchmarks" / f"{args.model}_{name}_{variant}"
    started = time.perf_counter()
    history = train(model, data, training, checkpoint_dir, progress=False)
    wall = time.perf_counter() - started
    test = model.evaluate("test")
    result = {
        "profile": args.profile,
        "data": f"{args.dataset}:{args.data_dir}",
        "paper_dataset": processed.info["paper_dataset"],
        "model": model.describe(),
        "train_seconds": round(model.train_seconds, 1),
        "val_ndcg@10": model.evaluate("valid")["ndcg@10"],
        "test_hr@10": test["hr@10"],
        "test_ndcg@10": test["ndcg@10"],
        **training_record(model, training, history, wall),
    }
    write_json(result, out)
    print({k: v for k, v in result.items() if k != "history"})


if __name__ == "__main__":
    main()
