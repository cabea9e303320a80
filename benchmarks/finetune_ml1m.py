"""Benchmark: PALR_v2 fine-tuning of SmolLM2 on MovieLens-1M, `cpu` preset, 2 CPU cores.

    .venv/bin/python benchmarks/finetune_ml1m.py [--data-dir ../shared/data/ml-1m]

Builds the real inputs of notebook 04 on the real data: the 20% fine-tuning users,
their SmolLM2 profiles, SASRec's candidates after each training prefix (the SASRec
of benchmarks/sasrec.py, reused from its checkpoint when present), the
*Recommend* + *Recommend_Retrieval* examples; then fine-tunes PALR_v2 with the
preset's settings and records the times and losses in
benchmarks/results/finetune_ml1m_cpu.json.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
from common import load_benchmark_data, machine  # benchmarks/common.py (scripts run from this folder)

from palr_utils.core.io import write_json
from palr_utils.core.sampling import finetune_users
from palr_utils.finetune.instructions import build_instruction_examples, profile_history
from palr_utils.finetune.sft import finetune, to_sft_dataset
from palr_utils.llm.loading import load_llm, template_tokens
from palr_utils.profiles import build_profile_prompts, generate_profiles, llm_profile_writer, user_descriptions
from palr_utils.retrieval import SASRec, train
from palr_utils.retrieval.candidates import candidate_rows, top_k_after_histories, training_prefix


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default="../shared/data/ml-1m")
    parser.add_argument("--dataset", default="custom")
    parser.add_argument("--work-dir", default="artifacts/benchmarks/finetune_ml1m")
    parser.add_argument("--sasrec-checkpoint", default="artifacts/benchmarks/sasrec_ml1m")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "finetune_ml1m_cpu.json"))
    args = parser.parse_args()

    config, processed, data = load_benchmark_data("cpu", args.dataset, args.data_dir, args.work_dir)
    preset, work = config.preset, Path(args.work_dir)
    users = finetune_users(data.n_users, preset.finetune_fraction, config.seed)

    started = time.perf_counter()
    sasrec = SASRec(data.n_items, preset.sasrec)
    train(sasrec, data, preset.sasrec_training, args.sasrec_checkpoint, progress=False)  # reuses a finished run
    sasrec_seconds = time.perf_counter() - started
    prefixes = [training_prefix(data.train[u], preset.instructions.n_targets)[0] for u in users]
    items, scores = top_k_after_histories(sasrec, prefixes, preset.n_exported_candidates)
    candidates = candidate_rows(users, "train", items, scores)

    started = time.perf_counter()
    tokenizer, model = load_llm(preset.llm)
    prompts = build_profile_prompts(
        [profile_history(data, u, preset.instructions) for u in users],  # the prefix only: no answer leaks
        processed.items,
        users,
        user_descriptions(processed.users),
        "movie",
        preset.profile_history_items,
    )
    profiles = generate_profiles(
        users,
        prompts,
        llm_profile_writer(tokenizer, model, preset.profile_max_new_tokens),
        work / "profiles_prefix.jsonl",
        preset.profile_batch_size,
    )
    profile_seconds = time.perf_counter() - started
    keywords = dict(zip(profiles["user"], profiles["keywords"], strict=True))

    count_tokens = lambda text: len(tokenizer(text).input_ids)  # noqa: E731
    examples = build_instruction_examples(
        data,
        processed.items,
        users,
        preset.instructions,
        config.seed,
        profiles=keywords,
        candidates=candidates,
        domain="movie",
        count_tokens=count_tokens,
        max_tokens=preset.finetune.max_length - template_tokens(tokenizer),
    )
    lengths = [count_tokens(p + c) for p, c in zip(examples["prompt"], examples["completion"], strict=True)]

    shutil.rmtree(work / "palr_v2", ignore_errors=True)  # measure a full run
    started = time.perf_counter()
    result = finetune(
        preset.llm, tokenizer, to_sft_dataset(examples, tokenizer), work / "palr_v2", preset.finetune, config.seed
    )
    finetune_seconds = time.perf_counter() - started
    history = result.history
    planned_steps = int(np.ceil(len(examples) / preset.finetune.batch_size) * preset.finetune.epochs)
    out = {
        "n_finetune_users": len(users),
        "n_train_examples": len(examples),
        "tokens_per_example_mean": float(np.mean(lengths)),
        "tokens_per_example_max": int(np.max(lengths)),
        "finetune_spec": {
            k: getattr(preset.finetune, k)
            for k in (
                "lora_r",
                "lora_alpha",
                "target_modules",
                "epochs",
                "batch_size",
                "learning_rate",
                "max_length",
                "max_minutes",
            )
        },
        "steps_planned_for_one_epoch": planned_steps,
        "steps_done": int(history["step"].max()),
        "epochs_done": float(history["epoch"].max()),
        "v2_train_loss_first": float(history["loss"].iloc[0]),
        "v2_train_loss_last": float(history["loss"].iloc[-1]),
        "v2_train_loss_last_20_steps_mean": float(history["loss"].tail(20).mean()),
        "finetune_wall_seconds": round(finetune_seconds, 1),
        "seconds_per_step": round(finetune_seconds / int(history["step"].max()), 2),
        "profile_generation_seconds": round(profile_seconds, 1),
        "sasrec_load_or_train_seconds": round(sasrec_seconds, 1),
        "machine": machine(),
    }
    write_json(out, args.out)
    print(out)


if __name__ == "__main__":
    main()
