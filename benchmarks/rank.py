"""Benchmark: does PALR-rank (an LLM trained to rank, palr_utils.palr_rank) improve on SASRec? `cpu` preset, real data.

    .venv/bin/python benchmarks/rank.py [--data-dir ../shared/data/ml-1m] [--minutes 30] [--users 2000]

The LLM stage of issue 13 on its own, without PALR_v1/v2 and without profiles (LlamaRec's setting):

1. preprocess as notebook 01; SASRec with the preset's settings for the data set, its checkpoint reused from
   benchmarks/sasrec.py when present (same folder, identity checked);
2. candidates after every user's validation and test histories (notebook 03's export);
3. a second SASRec trained one step back (each user's last training item held out, ``--back-minutes``), whose
   candidates after the shortened histories make the ranking examples (the full SASRec learned those answers);
4. ranking examples from every user whose last training item is among those candidates; PALR-rank (parallel
   candidates, listwise loss) trained for at most ``--minutes``;
5. the same seeded evaluation users as notebook 05: SASRec's order, chance (the shuffled list), PALR-rank alone,
   and the fusion of both with the weight chosen on those users' *validation* cases; paired bootstrap
   intervals of every method's NDCG@10 minus SASRec's.

Everything is written to benchmarks/results/rank_<data>_cpu.json, stage times included. Stages resume from
ARTIFACT folders (checkpoint, adapter, score caches), so an interrupted run can be started again.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

from common import data_name, load_benchmark_data, machine  # benchmarks/common.py (scripts run from this folder)

from palr_utils.core.constants import TEST, VALID
from palr_utils.core.io import write_json, write_parquet
from palr_utils.core.paths import project_root
from palr_utils.core.sampling import evaluation_users, finetune_users
from palr_utils.evaluation.cases import build_cases
from palr_utils.evaluation.fusion import choose_fusion_weight, delta_intervals, fused_records
from palr_utils.evaluation.methods import rerank_identity, retriever_records, run_method, shuffled_records, summarize
from palr_utils.evaluation.rerankers import Reranker
from palr_utils.finetune.sft import finetune
from palr_utils.llm.loading import format_prompt, load_finetuned, load_tokenizer, template_tokens
from palr_utils.palr_rank.examples import build_rank_examples
from palr_utils.palr_rank.scoring import verdict_token_ids
from palr_utils.palr_rank.trainer import listwise_trainer_class, to_rank_dataset
from palr_utils.retrieval import SASRec, train
from palr_utils.retrieval.candidates import export_candidates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default="../shared/data/ml-1m")
    parser.add_argument("--dataset", default="custom")
    parser.add_argument("--minutes", type=float, default=None, help="training budget (default: the preset's)")
    parser.add_argument("--users", type=int, default=None, help="evaluated users (default: the preset's)")
    parser.add_argument("--back-minutes", type=float, default=None,
                        help="budget of the one-step-back SASRec (default: the preset's SASRec budget)")
    parser.add_argument("--work-dir", default="", help="default: artifacts/benchmarks/rank_<data>")
    parser.add_argument("--out", default="", help="default: benchmarks/results/rank_<data>_cpu.json")
    args = parser.parse_args()

    stages: dict[str, float] = {}
    started = time.perf_counter()
    config, processed, data = load_benchmark_data("cpu", args.dataset, args.data_dir, "")
    preset, name = config.preset, data_name(processed, args.data_dir)
    work = Path(args.work_dir or project_root() / "artifacts" / "benchmarks" / f"rank_{name}")
    out = args.out or str(Path(__file__).parent / "results" / f"rank_{name}_cpu.json")
    spec = preset.rank_finetune if args.minutes is None else dataclasses.replace(
        preset.rank_finetune, max_minutes=args.minutes
    )  # fmt: skip
    n_users = args.users or preset.n_eval_users
    k, n_history, n_targets = preset.rerank_candidates, preset.instructions.n_history, preset.instructions.n_targets
    stages["preprocess"] = time.perf_counter() - started

    started = time.perf_counter()
    sasrec = SASRec(data.n_items, preset.sasrec)
    train(sasrec, data, preset.sasrec_training, project_root() / "artifacts" / "benchmarks" / f"sasrec_{name}")
    candidates = export_candidates(sasrec, data, k=preset.n_exported_candidates, n_targets=n_targets)
    write_parquet(candidates, work / "candidates.parquet")
    stages["sasrec_and_candidates"] = time.perf_counter() - started

    # PALR-rank's training candidates: SASRec trained one step back, which never saw the answers it lists
    started = time.perf_counter()
    back = data.one_step_back()
    back_training = preset.sasrec_training if args.back_minutes is None else dataclasses.replace(
        preset.sasrec_training, max_minutes=args.back_minutes
    )  # fmt: skip
    sasrec_back = SASRec(data.n_items, preset.sasrec)
    back_history = train(sasrec_back, back, back_training,
                         project_root() / "artifacts" / "benchmarks" / f"sasrec_{name}_one_step_back")  # fmt: skip
    rank_candidates = export_candidates(sasrec_back, back, k=k, splits=(VALID,))
    write_parquet(rank_candidates, work / "rank_candidates.parquet")
    stages["one_step_back_sasrec"] = time.perf_counter() - started

    started = time.perf_counter()
    tokenizer = load_tokenizer(preset.llm)
    count_tokens = lambda text: len(tokenizer(text).input_ids)  # noqa: E731
    domain = processed.info["domain"]
    rank_users = finetune_users(data.n_users, preset.rank_fraction, config.seed)
    examples = build_rank_examples(
        back, processed.items, rank_users, rank_candidates, n_candidates=k, n_history=n_history, seed=config.seed,
        domain=domain, max_title_chars=preset.instructions.max_title_chars, count_tokens=count_tokens,
        max_tokens=spec.max_length - template_tokens(tokenizer),
    )  # fmt: skip
    verdict_ids = verdict_token_ids(tokenizer, format_prompt(tokenizer, examples.iloc[0]["prompt"]))
    result = finetune(
        preset.llm, tokenizer, to_rank_dataset(examples, tokenizer), work / "palr_rank", spec, config.seed,
        trainer_class=listwise_trainer_class(), trainer_kwargs={"verdict_ids": verdict_ids},
    )  # fmt: skip
    stages["rank_training"] = time.perf_counter() - started
    history = result.history
    tenth = max(1, len(history) // 10)

    started = time.perf_counter()
    users = evaluation_users(data.n_users, n_users, config.seed)
    cases = {split: build_cases(data, candidates, users, {}, n_history, config.seed, k, split=split)
             for split in (VALID, TEST)}  # fmt: skip
    tokenizer, model = load_finetuned(preset.llm, result.adapter_dir)
    ranker = Reranker(tokenizer, model, processed.items.sort_values("item")["title"].tolist(), domain,
                      preset.instructions.max_title_chars)  # fmt: skip
    scored = {
        split: run_method(ranker.score_rank, split_cases, work / f"palr_rank_{split}.jsonl", preset.rerank_batch_size,
                          rerank_identity(result.adapter_dir, preset, config.seed, split_cases))
        for split, split_cases in cases.items()
    }  # fmt: skip
    weight, curve = choose_fusion_weight(cases[VALID], scored[VALID], preset.fusion_weights)
    records = {
        "sasrec": retriever_records(cases[TEST]),
        "shuffled": shuffled_records(cases[TEST]),
        "palr_rank": scored[TEST],
        "palr_fused": fused_records(cases[TEST], scored[TEST], weight),
    }
    stages["rank_scoring"] = time.perf_counter() - started

    metrics = {}
    for method, frame in records.items():
        metrics.update(summarize(method, frame))
    metrics.update(delta_intervals(records, "sasrec", n_resamples=1000, seed=config.seed))
    result_json = {
        "data": f"{args.dataset}:{args.data_dir}",
        "paper_dataset": processed.info["paper_dataset"],
        "n_eval_users": len(users),
        # the ceiling of every re-ranker of these users: the test item is among their k candidates
        "target_in_candidates": sum(c.target in c.retrieved for c in cases[TEST]) / len(users),
        "n_candidates": k,
        "n_rank_examples": len(examples),
        # the retriever of the training examples: trained without each user's last training item
        "one_step_back_sasrec": {"epochs": int(back_history["epoch"].max()) if len(back_history) else None,
                                 "best_epoch": sasrec_back.best_epoch, "valid_ndcg@10": float(
                                     back_history["val_ndcg@10"].max()) if len(back_history) else None,
                                 "answer_in_candidates": len(examples) / len(rank_users)},
        "n_rank_users": len(rank_users),
        "rank_finetune": dataclasses.asdict(spec),
        "rank_epochs_done": float(history["epoch"].max()),
        "rank_steps": int(history["step"].max()),
        "rank_loss_first_tenth": float(history["loss"].head(tenth).mean()),
        "rank_loss_last_tenth": float(history["loss"].tail(tenth).mean()),
        "chance_loss": math.log(k),
        "fusion_weight": weight,
        "fusion_curve_validation": curve.to_dict(orient="records"),
        "metrics": metrics,
        "stage_seconds": {stage: round(seconds, 1) for stage, seconds in stages.items()},
        "machine": machine(),
    }
    write_json(result_json, out)
    print({key: value for key, value in result_json.items() if key != "fusion_curve_validation"})


if __name__ == "__main__":
    main()
