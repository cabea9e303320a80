"""Benchmark: what the `cpu` fine-tuning settings buy, on the real MovieLens-1M instruction data.

    .venv/bin/python benchmarks/finetune_settings_ml1m.py [--data-dir ../shared/data/ml-1m] [--steps 6]

Builds the PALR_v2 examples of notebook 04 (candidates from an untrained SASRec: only the prompt lengths
matter here, and profiles from a notebook-02 cache when one exists), then measures

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
import torch
from common import load_benchmark_data, machine  # benchmarks/common.py (scripts run from this folder)
from transformers.trainer_pt_utils import LengthGroupedSampler

from palr_utils.core.io import write_json
from palr_utils.core.sampling import finetune_users
from palr_utils.finetune.instructions import build_instruction_examples
from palr_utils.finetune.sft import finetune, to_sft_dataset
from palr_utils.llm.loading import load_tokenizer, template_tokens
from palr_utils.profiles import read_profiles
from palr_utils.retrieval import SASRec
from palr_utils.retrieval.candidates import candidate_rows, top_k_after_histories, training_prefix


def padded_tokens(lengths: list[int], order: list[int], batch_size: int) -> int:
    """Tokens a batch holds once padded to its longest example, summed over one epoch."""
    return sum(
        max(lengths[i] for i in order[s : s + batch_size]) * len(order[s : s + batch_size])
        for s in range(0, len(order), batch_size)
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default="../shared/data/ml-1m")
    parser.add_argument("--dataset", default="custom")
    parser.add_argument("--profiles", default="artifacts/cpu/ml-1m-custom/profiles_prefix.jsonl")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--last-layers", type=int, nargs="+", default=[10], help="adapted layer counts to time")
    parser.add_argument("--skip-all-layers", action="store_true", help="do not time adapters on every layer")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "finetune_settings_ml1m_cpu.json"))
    args = parser.parse_args()

    config, processed, data = load_benchmark_data("cpu", args.dataset, args.data_dir, "")
    preset = config.preset
    users = finetune_users(data.n_users, preset.finetune_fraction, config.seed)
    retriever = SASRec(data.n_items, preset.sasrec).eval()
    retriever.data = data
    prefixes = [training_prefix(data.train[u], preset.instructions.n_targets)[0] for u in users]
    top_k = top_k_after_histories(retriever, prefixes, preset.n_exported_candidates)
    candidates = candidate_rows(users, "train", *top_k)
    keywords = {}
    if Path(args.profiles).exists():
        profiles = read_profiles(args.profiles)
        keywords = dict(zip(profiles["user"], profiles["keywords"], strict=True))
    tokenizer = load_tokenizer(preset.llm)
    count_tokens = lambda text: len(tokenizer(text).input_ids)  # noqa: E731
    examples = build_instruction_examples(
        data, processed.items, users, preset.instructions, config.seed, profiles=keywords, candidates=candidates,
        domain="movie", count_tokens=count_tokens, max_tokens=preset.finetune.max_length - template_tokens(tokenizer),
    )  # fmt: skip
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
