"""Benchmark: do the ``cpu`` preset's settings rules (palr_utils.rules) fit data they were not written from?

    .venv/bin/python benchmarks/settings_rules.py [--data-dir ../shared/data/beauty] [--only half_beauty]

The rules were written from MovieLens-1M and the full Beauty. Each variant here is other data made from Beauty
by the pipeline's own settings: notebook 01 runs (``DATASET=custom``) with OVERRIDES that (a) keep a seeded
random half of the users and re-filter to 5-core (``max_users``) or (b) filter to 8-core (``min_interactions``);
neither matches the paper's Table 1, so neither is recognised as Beauty. On each, notebook 03 runs (through
``pipeline_ml1m.py``, from that notebook 01, SASRec alone: ``baselines=[]``) with three settings, the first and
last with two seeds (the gap between seeds is the noise to read a difference against):

* ``rule``  - the settings the rules choose from the variant's statistics (what notebook 03 uses);
* ``hand``  - Beauty's own settings given as OVERRIDES, rules off, as if the data were Beauty (the expert's choice);
* ``before`` - the preset's own MovieLens-1M settings, rules off (``settings_rules=[]``): what such data got before.

Recorded in benchmarks/results/settings_rules_cpu.json: the statistics, each run's OVERRIDES and settings choice,
validation and test NDCG@10 / HR@10, how training ended, its best epoch, its time, and the share of its epochs
spent after the validation peak (a model that degrades for most of its training spends most of them there).
Statistics are those of seed 42's data. Notebook 03 also trains the one-step-back SASRec that notebook 04
needs; its time is in the notebook's wall time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from common import machine  # benchmarks/common.py
from pipeline_ml1m import main as run_pipeline

from palr_utils.core.io import read_metrics, write_json
from palr_utils.core.overrides import format_overrides
from palr_utils.core.paths import project_root
from palr_utils.presets import get_preset

VARIANTS = {
    "half_beauty": "max_users=11181",  # half of Beauty's 22,363 users, then 5-core again
    "beauty_8core": "min_interactions=8",
}
# two seeds where the comparison is the point (the rules against what such data got before), one for the
# expert's settings (on these variants they differ from the rule's only in time budgets)
SEEDS = {"rule": (42, 43), "hand": (42,), "before": (42, 43)}
RESULTS = Path(__file__).parent / "results" / "settings_rules_cpu.json"
RETRIEVAL = "03_sasrec_retrieval"


def beauty_by_hand() -> str:
    """Beauty's own SASRec settings in the ``cpu`` preset, as OVERRIDES (the seed stays the run's)."""
    pairs = []
    for group in ("sasrec", "sasrec_training"):
        settings = get_preset("cpu").dataset_overrides["beauty"][group]
        pairs += [(f"{group}.{f.name}", getattr(settings, f.name)) for f in dataclasses.fields(settings)
                  if f.name != "seed"]  # fmt: skip
    return format_overrides(pairs)


LABELS = {"rule": "", "hand": f"settings_rules=[] {beauty_by_hand()}", "before": "settings_rules=[]"}


def run(name: str, variant: str, label: str, seed: int, data_dir: str, work: Path) -> dict:
    """Notebook 03 (SASRec alone) with one label's settings and one seed, from the variant's notebook 01."""
    folder, out = work / name / f"{label}_seed{seed}", work / name / f"{label}_seed{seed}.json"
    overrides = " ".join(filter(None, (variant, "baselines=[]", LABELS[label])))
    run_pipeline(["--data-dir", data_dir, "--dataset", "custom", "--artifact-dir", str(folder), "--out", str(out),
                  "--seed", str(seed), "--reuse-from", str(prepare_data(name, variant, seed, data_dir, work)),
                  "--only", RETRIEVAL,
                  "--overrides", overrides])  # fmt: skip
    recorded = json.loads(out.read_text())["notebooks"][RETRIEVAL]
    metrics = recorded["metrics"]
    best, epochs = metrics["sasrec_best_epoch"], metrics["sasrec_epochs_run"]
    sasrec_seconds = metrics["sasrec_train_seconds"]  # continued from the twin, SASRec's cost includes the twin's
    if metrics.get("sasrec_from_twin"):
        sasrec_seconds += metrics["sasrec_one_step_back_train_seconds"]
    return {
        "seed": seed, "overrides": overrides, "settings_rule": metrics["settings_rule"],
        "settings_reason": metrics["settings_reason"], "val_ndcg@10": metrics["sasrec_val_ndcg@10"],
        "test_hr@10": metrics["sasrec_test_hr@10"], "test_ndcg@10": metrics["sasrec_test_ndcg@10"],
        "stop_reason": metrics["sasrec_stop_reason"], "best_epoch": best, "epochs_run": epochs,
        "share_after_peak": round((epochs - best) / epochs, 3),
        "train_seconds": round(sasrec_seconds, 1),
        "notebook_wall_seconds": recorded["wall_seconds"], "commit": recorded["commit"],
    }  # fmt: skip


def summarise(runs: dict) -> dict:
    """Means over seeds, and each difference on the seeds both settings ran with."""

    def mean(label: str, seeds) -> float:
        return sum(runs[f"{label}_seed{seed}"]["test_ndcg@10"] for seed in seeds) / len(seeds)

    def minus(label: str, other: str) -> float:
        shared = sorted(set(SEEDS[label]) & set(SEEDS[other]))
        return mean(label, shared) - mean(other, shared)

    return {
        "mean_test_ndcg@10": {label: mean(label, seeds) for label, seeds in SEEDS.items()},
        "rule_minus_hand_test_ndcg@10": minus("rule", "hand"),
        "rule_minus_before_test_ndcg@10": minus("rule", "before"),
        "share_after_peak": {key: run["share_after_peak"] for key, run in runs.items()},
    }


def prepare_data(name: str, variant: str, seed: int, data_dir: str, work: Path) -> Path:
    """The variant's notebook 01, once per seed: a sample of users (``max_users``) is drawn with the run's SEED,
    so each seed trains on its own sample and the seeds' gap holds the sampling noise too."""
    folder = work / name / f"data_seed{seed}"
    if not (folder / "metrics" / "01_preprocessing.json").exists():
        run_pipeline(["--data-dir", data_dir, "--dataset", "custom", "--artifact-dir", str(folder), "--out",
                      str(folder.with_suffix(".json")), "--seed", str(seed), "--only", "01_preprocessing",
                      "--overrides", variant])  # fmt: skip
    return folder


def run_variant(name: str, overrides: str, data_dir: str, work: Path) -> dict:
    info = json.loads((prepare_data(name, overrides, 42, data_dir, work) / "dataset_info.json").read_text())
    record = {"overrides": overrides, "paper_dataset": info["paper_dataset"], "statistics": info["statistics"],
              "runs": {}}  # fmt: skip
    for label, seeds in SEEDS.items():
        for seed in seeds:
            print(f"{name}: SASRec with the {label} settings, seed {seed} ...", flush=True)
            result = record["runs"][f"{label}_seed{seed}"] = run(name, overrides, label, seed, data_dir, work)
            print(f"  val {result['val_ndcg@10']:.4f} test {result['test_ndcg@10']:.4f} ({result['stop_reason']}, "
                  f"best epoch {result['best_epoch']} of {result['epochs_run']})", flush=True)  # fmt: skip
    record["choice"] = read_metrics(work / name / "rule_seed42", RETRIEVAL)["settings_reason"]
    record.update(summarise(record["runs"]))
    return record


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default="../shared/data/beauty")
    parser.add_argument("--only", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--work-dir", default=str(project_root() / "artifacts" / "benchmarks" / "settings_rules"))
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update({"profile": "cpu", "data": f"custom:{args.data_dir}", "machine": machine()})
    for name in args.only:
        results.setdefault("variants", {})[name] = run_variant(name, VARIANTS[name], args.data_dir, Path(args.work_dir))
        write_json(results, RESULTS)  # after each variant: a stopped run keeps what it measured
    print("written to", RESULTS)


if __name__ == "__main__":
    main()
