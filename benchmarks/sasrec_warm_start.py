"""Benchmark: can notebook 03's one SASRec serve both purposes, so that it trains one retriever instead of two?

Notebook 03 trains SASRec on the full training histories and then a twin, with the same settings, one step back
(without each user's last training item, which becomes the twin's validation target): the twin's candidates for
training prefixes are honest because it never saw those answers. The two cost the same, about half of the
notebook's time. This benchmark trains the twin as the notebook does and then measures, on the real validation
and test items (full histories as input):

* the twin as it is (it never trained on the last training items, about one target per user fewer);
* the twin continued on the full training histories for a few epochs (``--continue-epochs``), each of the
  continuation settings below, early-stopped on validation as every retriever is.

Against the from-scratch SASRec of the recorded run (``benchmarks/results/pipeline_<data>_cpu.json``). Needs
notebook 01's output in ``--artifact-dir`` (``benchmarks/pipeline_ml1m.py --only 01_preprocessing``).

    .venv/bin/python benchmarks/sasrec_warm_start.py --artifact-dir artifacts/benchmarks/twin_warm_ml1m
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path

from palr_utils.core.constants import CHECKPOINTS_DIR, TWIN_RETRIEVER
from palr_utils.core.io import write_json
from palr_utils.data import load_processed
from palr_utils.presets import get_preset
from palr_utils.retrieval import SASRec, SequenceData, train
from palr_utils.retrieval.candidates import answer_rate

# how the twin goes on with the full histories: a gentle constant rate, or a short cosine from a higher one
CONTINUATIONS = {
    "constant_3e-4": {"learning_rate": 3e-4, "lr_schedule": None, "warmup_epochs": 0.0},
    "cosine_1e-3": {"learning_rate": 1e-3, "lr_schedule": "cosine", "warmup_epochs": 0.5},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact-dir", required=True)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--record", default="benchmarks/results/pipeline_ml1m_cpu.json", help="the recorded run")
    parser.add_argument("--continue-epochs", type=int, default=6)
    parser.add_argument("--from-scratch", action="store_true", help="also (or, with --skip-continuations, "
                        "only) notebook 03's SASRec from scratch on the full histories, on this machine today")
    parser.add_argument("--skip-continuations", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/sasrec_warm_start_ml1m.json")
    args = parser.parse_args(argv)

    artifact_dir = Path(args.artifact_dir)
    processed = load_processed(artifact_dir)
    data = SequenceData.from_interactions(processed.interactions, processed.n_users, processed.n_items)
    preset, choice = get_preset(args.profile).fit_to_data(processed.info)
    print("settings:", choice.reason, flush=True)
    training = preset.sasrec_training
    started = time.perf_counter()

    back = data.one_step_back()
    twin = SASRec(data.n_items, preset.sasrec)
    twin_history = train(twin, back, training, artifact_dir / CHECKPOINTS_DIR / TWIN_RETRIEVER, progress=False)
    twin_seconds = twin.train_seconds
    k = preset.rerank_candidates
    twin_answer_rate = answer_rate(twin, back.train, back.valid, k)  # the twin's one-step-back answers, as in 03
    twin.data = data  # the same weights, reading the full histories
    twin.eval()
    arms = {"twin_as_is": {"val": twin.evaluate("valid"), "test": twin.evaluate("test"), "train_seconds": 0.0}}
    print("twin as is:", arms["twin_as_is"], flush=True)

    for name, change in ({} if args.skip_continuations else CONTINUATIONS).items():
        model = copy.deepcopy(twin)
        config = dataclasses.replace(training, epochs=args.continue_epochs, eval_every=1, patience=3,
                                     max_minutes=None, **change)  # fmt: skip
        history = train(model, data, config, progress=False)
        arms[name] = {"val": model.evaluate("valid"), "test": model.evaluate("test"),
                      "train_seconds": model.train_seconds, "best_epoch": model.best_epoch,
                      "epochs_run": model.epochs_run, "history": history.to_dict("records")}  # fmt: skip
        print(name, {key: arms[name][key] for key in ("val", "test", "train_seconds", "best_epoch")}, flush=True)

    if args.from_scratch:  # what notebook 03 does today: a second SASRec, trained as long as the twin
        scratch = SASRec(data.n_items, preset.sasrec)
        history = train(scratch, data, training, artifact_dir / CHECKPOINTS_DIR / "sasrec", progress=False)
        arms["from_scratch"] = {"val": scratch.evaluate("valid"), "test": scratch.evaluate("test"),
                                "train_seconds": scratch.train_seconds, "best_epoch": scratch.best_epoch,
                                "epochs_run": scratch.epochs_run, "stop_reason": scratch.stop_reason,
                                "history": history.to_dict("records")}  # fmt: skip
        print("from scratch", {key: arms["from_scratch"][key] for key in ("val", "test", "train_seconds")})
    out = Path(args.out)
    if out.exists():  # arms measured by an earlier invocation on the same twin stay in the record
        arms = json.loads(out.read_text())["arms"] | arms

    recorded = Path(args.record)
    record = {
        "purpose": "one SASRec for both roles: the one-step-back twin, then continued on the full histories",
        "artifact_dir": str(artifact_dir),
        "paper_dataset": processed.info.get("paper_dataset"),
        "settings": choice.reason,
        "sasrec_config": dataclasses.asdict(preset.sasrec),
        "twin_training": dataclasses.asdict(training),
        "twin_train_seconds": twin_seconds,
        "twin_epochs_run": twin.epochs_run,
        "twin_best_epoch": twin.best_epoch,
        "twin_stop_reason": twin.stop_reason,
        "twin_history": twin_history.to_dict("records"),
        f"twin_one_step_back_recall@{k}": twin_answer_rate,
        "arms": arms,
        "benchmark_wall_seconds": round(time.perf_counter() - started, 1),
        "recorded_run": str(recorded) if recorded.exists() else None,
    }
    if recorded.exists():
        metrics = json.loads(recorded.read_text())["notebooks"]["03_sasrec_retrieval"]["metrics"]
        record["recorded_from_scratch"] = {key: metrics.get(key) for key in (
            "sasrec_val_ndcg@10", "sasrec_test_ndcg@10", "sasrec_test_hr@10", "sasrec_train_seconds",
            "one_step_back_recall@rerank")}  # fmt: skip
    write_json(json.loads(json.dumps(record, default=float)), out)
    print("written", args.out)


if __name__ == "__main__":
    main()
