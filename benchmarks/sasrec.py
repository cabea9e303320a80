"""Benchmark: SASRec retrieval quality and training time, `cpu` preset, on real data (MovieLens-1M, Beauty).

    .venv/bin/python benchmarks/sasrec.py [--data-dir ../shared/data/ml-1m]
    .venv/bin/python benchmarks/sasrec.py --data-dir ../shared/data/beauty
    .venv/bin/python benchmarks/sasrec.py --sasrec hidden_size=128 --out results/x.json   # a variant
    .venv/bin/python benchmarks/sasrec.py --training learning_rate=0.003 --out results/y.json  # training variant

Preprocesses the data exactly as notebook 01, trains SASRec with the preset's
settings for that data set (its ``dataset_overrides``; early stopping on validation
NDCG@10), and records validation and test metrics, Recall@50, the popularity baseline
and the wall time in benchmarks/results/sasrec_<data>_cpu.json (<data>: ml1m, beauty,
or the data folder's name).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from common import data_name, load_benchmark_data, training_record  # benchmarks/common.py

from palr_utils.core.io import write_json
from palr_utils.core.paths import project_root
from palr_utils.retrieval import Popularity, SASRec, train


def with_changes(settings, assignments: list[str]):
    """A copy of a frozen settings dataclass with ``FIELD=VALUE`` assignments applied (values in JSON)."""
    changes = {field: json.loads(value) for field, value in (item.split("=", 1) for item in assignments)}
    return dataclasses.replace(settings, **changes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default="../shared/data/ml-1m")
    parser.add_argument("--dataset", default="custom")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--out", default="", help="default: benchmarks/results/sasrec_<data>_<profile>.json")
    parser.add_argument("--checkpoint-dir", default="", help="default: artifacts/benchmarks/sasrec_<data>")
    parser.add_argument("--sasrec", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="change SASRecConfig fields of the preset (values in JSON: 128, 0.0, true)")
    parser.add_argument("--training", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="change TrainingConfig fields of the preset's SASRec training (JSON values)")
    args = parser.parse_args()

    config, processed, data = load_benchmark_data(args.profile, args.dataset, args.data_dir, "")
    name = data_name(processed, args.data_dir)
    out = args.out or str(Path(__file__).parent / "results" / f"sasrec_{name}_{args.profile}.json")
    checkpoint_dir = args.checkpoint_dir or str(project_root() / "artifacts" / "benchmarks" / f"sasrec_{name}")

    popularity = Popularity().fit(data)
    model = SASRec(processed.n_items, with_changes(config.preset.sasrec, args.sasrec))
    training = with_changes(config.preset.sasrec_training, args.training)
    started = time.perf_counter()
    history = train(model, data, training, checkpoint_dir)
    wall = time.perf_counter() - started
    test = model.evaluate("test", ks=(10, 50))
    result = {
        "profile": args.profile,
        "data": f"{args.dataset}:{args.data_dir}",
        "paper_dataset": processed.info["paper_dataset"],
        "n_users": processed.n_users,
        "n_items": processed.n_items,
        "n_interactions": processed.n_interactions,
        "sasrec_config": model.describe(),
        "sasrec_train_seconds": round(model.train_seconds, 1),
        "sasrec_val_ndcg@10": model.evaluate("valid")["ndcg@10"],
        "sasrec_test_hr@10": test["hr@10"],
        "sasrec_test_ndcg@10": test["ndcg@10"],
        "sasrec_recall@50": test["hr@50"],
        "popularity_test_hr@10": popularity.evaluate("test")["hr@10"],
        "popularity_test_ndcg@10": popularity.evaluate("test")["ndcg@10"],
        **training_record(model, training, history, wall),
    }
    write_json(result, out)
    print({k: v for k, v in result.items() if k != "history"})


if __name__ == "__main__":
    main()
