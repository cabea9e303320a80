"""Benchmark: the throughput of every LLM stage, the code before and after each lever side by side in one run.

    .venv/bin/python benchmarks/llm_throughput.py --artifact-dir artifacts/benchmarks/throughput_ml1m_sample

Reads a run whose notebooks 01-04 ran (a sample of users is enough, e.g. ``pipeline_ml1m.py --only
01_preprocessing 02_user_profiles 03_sasrec_retrieval 04_finetune_palr --overrides "max_users=600 baselines=[]
sasrec_training.max_minutes=2 finetune.max_steps=1 rank_finetune.max_steps=1"``: throughput depends on the
prompts' lengths, not on how well the models learned; generation's answer lengths do depend on the adapter, so
compare its seconds with the recorded pipeline's). On the same users, each stage runs the old and the new code:

* profile generation, PALR-rank scoring and PALR_v2 generation: batches in the users' order (old) and of
  prompts of similar length (new, ``sort_by``);
* PALR_v2's fast scoring with calibration: two forward passes (old) and one, calibrated from its records (new);
* PALR_v2's fast scoring of the users it generated for: a forward pass of its own (old) and read from
  generation's first step (new, ``fast_records_from_generation``), with how many lists agree;
* fine-tuning PALR_v2 (SFTTrainer) and PALR-rank: random batches (old) and length-grouped ones (new).

Each stage records seconds, real (unpadded) tokens per second and the fraction of the CPU's peak those tokens
reach: 2 x the model's non-embedding parameters per token forward (training: forward, then backward through the
adapted layers only, 2 x more per adapted layer), against a dense matmul's measured rate in the model's dtype.
Results go to benchmarks/results/llm_throughput_<data>_cpu.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from common import (  # benchmarks/common.py (scripts run from this folder)
    data_name,
    evaluation_cases,
    load_run_data,
    machine,
)
from finetune_settings_ml1m import padded_tokens

from palr_utils.core.io import require_artifacts, write_json
from palr_utils.core.sampling import evaluation_users
from palr_utils.evaluation.methods import run_method
from palr_utils.evaluation.rerankers import Reranker, calibrated_records, fast_records_from_generation
from palr_utils.finetune.runs import RANK_RUN, adapter_dir
from palr_utils.finetune.sft import finetune, to_sft_dataset
from palr_utils.llm.loading import format_prompt, load_finetuned, load_llm
from palr_utils.llm.prompts import PROFILE_ANSWER_PREFIX, PROFILE_SYSTEM, rank_candidate
from palr_utils.palr_rank.scoring import verdict_token_ids
from palr_utils.palr_rank.trainer import listwise_trainer_class, rank_trainer_kwargs, to_rank_dataset
from palr_utils.profiles import RAW, build_profile_prompts, generate_profiles, llm_profile_writer


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of the best of ``repeats`` dense n x n matmuls: what these cores reach at best in this dtype."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    best = min(_seconds(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best


def _seconds(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def sorted_order(keys: list[int]) -> list[int]:
    """The order ``resumable_map(sort_by=...)`` batches inputs in: longest key first, ties in the given order."""
    return sorted(range(len(keys)), key=lambda i: -keys[i])


def layer_parameters(model) -> int:
    """Parameters every token passes through (the embedding is a lookup, not a matmul)."""
    embedding = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - embedding


def arm(seconds: float, tokens: int, padded: int, flops_per_token: float, peak: float, n: int) -> dict:
    return {"seconds": round(seconds, 2), "seconds_per_unit": round(seconds / n, 4), "units": n,
            "real_tokens": tokens, "padded_tokens": padded, "tokens_per_second": round(tokens / seconds, 1),
            "fraction_of_peak": round(tokens * flops_per_token / seconds / peak, 4)}  # fmt: skip


def side_by_side(old: dict, new: dict) -> dict:
    return {"old": old, "new": new, "speed-up": round(old["seconds"] / new["seconds"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifact-dir", required=True, help="a run whose notebooks 01-04 ran")
    parser.add_argument("--users", type=int, default=64, help="users per inference stage")
    parser.add_argument("--generation-users", type=int, default=24)
    # transformers' LengthGroupedSampler puts the longest batch first and groups within mega-batches of 50 batches:
    # an arm shorter than one mega-batch (50 / gradient accumulation 4 = 12.5 steps) times the longest examples
    parser.add_argument("--steps", type=int, default=13, help="optimiser steps per fine-tuning arm")
    parser.add_argument("--skip-finetuning", action="store_true", help="time the inference stages only")
    parser.add_argument("--skip-inference", action="store_true", help="time the fine-tuning stages only")
    parser.add_argument("--stages", nargs="+", default=None, help="only these inference stages (default: all)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    config, processed, data = load_run_data(args.artifact_dir)
    preset, run = config.preset, Path(args.artifact_dir)
    if preset.rank_item_tokens:
        raise SystemExit("this benchmark times PALR-rank without item tokens; run it on a preset without them")
    titles = processed.items.sort_values("item")["title"].tolist()
    domain = processed.info["domain"]
    users = evaluation_users(data.n_users, preset.n_eval_users, config.seed)[: args.users]
    cases = evaluation_cases(run, data, users, preset, config.seed)
    tokenizer, base = load_llm(preset.llm)
    dtype = base.get_input_embeddings().weight.dtype
    peak = matmul_peak(dtype)
    forward = 2 * layer_parameters(base)
    count = lambda text: len(tokenizer(text, add_special_tokens=False).input_ids)  # noqa: E731
    bs = preset.rerank_batch_size
    result = {"machine": machine(), "dtype": str(dtype), "matmul_peak_gflops": round(peak / 1e9, 1),
              "layer_parameters": layer_parameters(base), "users": len(cases), "stages": {}}  # fmt: skip
    stages = result["stages"]
    tmp = Path(tempfile.mkdtemp(prefix="throughput_"))

    def timed_inference(name, lengths, keys, batch_size, run_arm, extra_tokens=lambda frame: 0):
        """``lengths``: each input's tokens; ``keys``: the sort key the new code orders them by (its batches)."""
        arms, n = {}, len(lengths)
        for label, sort in (("old", False), ("new", True)):
            order = sorted_order(keys) if sort else list(range(n))
            started = time.perf_counter()
            frame = run_arm(sort, tmp / f"{name}_{label}.jsonl")
            seconds = time.perf_counter() - started
            generated = extra_tokens(frame)  # generated tokens counted once: a batch's steps are not padded here
            arms[label] = arm(seconds, sum(lengths) + generated,
                              padded_tokens(lengths, order, batch_size) + generated, forward, peak, n)  # fmt: skip
        stages[name] = side_by_side(arms["old"], arms["new"])
        print(name, stages[name])

    want = lambda stage: not args.skip_inference and (args.stages is None or stage in args.stages)  # noqa: E731
    if want("profiles"):  # --skip-inference: the fine-tuning arms alone
        # 1. profiles: the base model, as notebook 02
        histories = [data.train[u] for u in users]
        prompts = build_profile_prompts(histories, processed.items, users, None, domain, preset.profile_history_items,
                                        max_title_chars=preset.instructions.max_title_chars)  # fmt: skip
        writer = llm_profile_writer(tokenizer, base, preset.profile_max_new_tokens)
        writer(prompts[:2])  # warm-up
        lengths = [count(format_prompt(tokenizer, p, PROFILE_SYSTEM, PROFILE_ANSWER_PREFIX)) for p in prompts]
        timed_inference("profiles", lengths, [len(p) for p in prompts], preset.profile_batch_size,
                        lambda sort, path: generate_profiles(users, prompts, writer, path, preset.profile_batch_size,
                                                             length_sorted=sort),
                        lambda frame: sum(count(t) for t in frame[RAW]))  # fmt: skip

    if want("palr_rank_scoring"):
        # 2. PALR-rank scoring, as notebook 05
        tok_rank, model_rank = load_finetuned(preset.llm, adapter_dir(run, RANK_RUN))
        ranker = Reranker(tok_rank, model_rank, titles, domain, preset.instructions.max_title_chars)
        ranker.score_rank(cases[:2])
        lengths = [count(ranker.rank_prompt(c)) + sum(count(rank_candidate(ranker.titles[i])) for i in c.listed)
                   for c in cases]  # fmt: skip
        timed_inference("palr_rank_scoring", lengths, [ranker.text_length(c) for c in cases], bs, lambda sort, path:
                        run_method(ranker.score_rank, cases, path, bs, sort_by=ranker.text_length if sort else None))

    if any(map(want, ["palr_v2_fast_and_calibrated", "palr_v2_generation", "palr_v2_fast_from_generation"])):
        # 3. PALR_v2: fast scoring with calibration, then generation
        tok_v2, model_v2 = load_finetuned(preset.llm, adapter_dir(run, "v2"))
        v2 = Reranker(tok_v2, model_v2, titles, domain, preset.instructions.max_title_chars)
        lengths = [count(v2.v2_prompt(c)) for c in cases]
        generation_cases = cases[: args.generation_users]
    if want("palr_v2_fast_and_calibrated"):
        prior = v2.letter_prior_v2(cases[:16], bs)  # any prompts will do for timing
        calibrated = lambda b: v2.score_v2_fast(b, prior)  # noqa: E731
        old_seconds = _seconds(lambda: (run_method(v2.score_v2_fast, cases, tmp / "fast_old.jsonl", bs),
                                        run_method(calibrated, cases, tmp / "cal_old.jsonl", bs)))
        new_seconds = _seconds(lambda: calibrated_records(cases, run_method(
            v2.score_v2_fast, cases, tmp / "fast_new.jsonl", bs, sort_by=v2.text_length), prior))
        order = sorted_order([v2.text_length(c) for c in cases])
        stages["palr_v2_fast_and_calibrated"] = side_by_side(
            arm(old_seconds, 2 * sum(lengths), 2 * padded_tokens(lengths, list(range(len(cases))), bs), forward, peak,
                len(cases)),
            arm(new_seconds, sum(lengths), padded_tokens(lengths, order, bs), forward, peak, len(cases)))
        print("palr_v2_fast_and_calibrated", stages["palr_v2_fast_and_calibrated"])
    if want("palr_v2_generation"):
        timed_inference("palr_v2_generation", lengths[: len(generation_cases)],
                        [v2.text_length(c) for c in generation_cases], bs, lambda sort, path: run_method(
                            lambda b: v2.generate_v2(b, preset.rerank_max_new_tokens), generation_cases, path, bs,
                            sort_by=v2.text_length if sort else None),
                        lambda frame: sum(count(t) for t in frame["raw_output"]))  # fmt: skip

    if want("palr_v2_fast_from_generation"):
        generated = run_method(lambda b: v2.generate_v2(b, preset.rerank_max_new_tokens), generation_cases,
                               tmp / "generation_for_fast.jsonl", bs, sort_by=v2.text_length)  # fmt: skip
        n, tokens = len(generation_cases), sum(lengths[: len(generation_cases)])
        started = time.perf_counter()
        own_pass = run_method(v2.score_v2_fast, generation_cases, tmp / "fast_own_pass.jsonl", bs,
                              sort_by=v2.text_length)  # fmt: skip
        old_seconds = time.perf_counter() - started
        started = time.perf_counter()
        read = fast_records_from_generation(generation_cases, generated)
        new_seconds = max(time.perf_counter() - started, 1e-6)
        order = sorted_order([v2.text_length(c) for c in generation_cases])
        # reading takes milliseconds (shown as 0.0 s): the speed-up is the raw seconds' ratio
        stages["palr_v2_fast_from_generation"] = {
            "old": arm(old_seconds, tokens, padded_tokens(lengths[:n], order, bs), forward, peak, n),
            "new": {"seconds": round(new_seconds, 4), "seconds_per_unit": round(new_seconds / n, 6), "units": n},
            "speed-up": round(old_seconds / new_seconds, 1), "users": n,
            "same_lists": int(sum(a == b for a, b in zip(own_pass["final"], read["final"], strict=True)))}
        print("palr_v2_fast_from_generation", stages["palr_v2_fast_from_generation"])

    # 4. fine-tuning: random against length-grouped batches, a few optimiser steps each
    if args.skip_finetuning:
        return _write(result, processed, args)
    (instructions_path, rank_path) = require_artifacts(run, ["instructions.parquet", "rank_examples.parquet"],
                                                       producer="04_finetune_palr")  # fmt: skip
    sft_data = to_sft_dataset(pd.read_parquet(instructions_path), tokenizer)
    rank_examples = pd.read_parquet(rank_path)
    rank_data = to_rank_dataset(rank_examples, tokenizer, residual=preset.rank_residual)
    verdict_ids = verdict_token_ids(tokenizer, format_prompt(tokenizer, rank_examples.iloc[0]["prompt"]))
    n_layers = base.config.num_hidden_layers
    for name, spec, dataset, mean_tokens, extra in (
        ("finetune_palr_v2", preset.finetune, sft_data,
         sum(count(format_prompt(tokenizer, p) + c) for p, c in zip(sft_data["prompt"], sft_data["completion"],
                                                                     strict=True)) / len(sft_data), {}),
        ("finetune_palr_rank", preset.rank_finetune, rank_data,
         sum(map(len, rank_data["input_ids"])) / len(rank_data),
         {"trainer_class": listwise_trainer_class(),
          "trainer_kwargs": rank_trainer_kwargs(verdict_ids, preset.rank_residual, None, preset.rank_item_tokens_lr)}),
    ):  # fmt: skip
        adapted = spec.lora_last_layers or n_layers
        per_token = forward * (1 + adapted / n_layers)
        arms = {}
        for label, grouped in (("old", False), ("new", True)):
            steps_spec = dataclasses.replace(spec, max_steps=args.steps, max_minutes=None, group_by_length=grouped)
            trained = finetune(preset.llm, tokenizer, dataset, tmp / f"{name}_{label}", steps_spec, config.seed,
                               **extra)  # fmt: skip
            examples = args.steps * spec.batch_size * spec.gradient_accumulation_steps
            arms[label] = arm(trained.train_seconds, int(examples * mean_tokens), 0, per_token, peak, examples)
            arms[label]["examples_per_second"] = round(examples / trained.train_seconds, 3)
        stages[name] = side_by_side(arms["old"], arms["new"])
        print(name, stages[name])

    _write(result, processed, args)


def _write(result: dict, processed, args) -> None:
    name = data_name(processed, args.artifact_dir)
    out = args.out or Path(__file__).parent / "results" / f"llm_throughput_{name}_cpu.json"
    write_json(result | {"finetuning_timed": not args.skip_finetuning, "inference_timed": not args.skip_inference},
               out)
    print("written to", out)


if __name__ == "__main__":
    main()
