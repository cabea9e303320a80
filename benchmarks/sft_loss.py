"""Benchmark: a PALR_v1/v2 fine-tuning step with TRL's own loss and with ``completion_loss``, side by side in one run.

    .venv/bin/python benchmarks/sft_loss.py --artifact-dir artifacts/cpu/ml-1m-custom [--steps 6] [--rounds 2]

Reads the data notebook 01 wrote in a run's folder and builds PALR_v2's examples (*Recommend* and
*Recommend_Retrieval*, the preset's lengths, its fitting to ``max_length``) for a seeded share of users, with
a fixed keyword line for every user and the co-watched and same-genre items as negatives (no notebook 02 or 03
needed: a step's cost depends on the examples' lengths, not on whose profile or which retriever). Then the
preset's fine-tuning (LoRA, batch size, length-grouped batches) trains ``--steps`` optimiser steps from the same
seed with each trainer, through ``finetune`` as notebook 04 trains, in alternating rounds (old, new, old, new)
so that a drift of the machine hits both:

* old: TRL's ``SFTTrainer``, whose fused LM head projects every position onto the vocabulary where Triton does
  not run (a CPU), with entropy and accuracy besides;
* new: ``finetune``'s own trainer (``completion_trainer_class()``), the same loss from the labelled positions only.

Records seconds per step, examples per second, the fraction of the CPU's peak (as ``llm_throughput.py`` counts
it: forward through every layer, backward through the adapted ones, against a dense matmul's measured rate in
the model's dtype), the speed-up, and each arm's losses (equal up to rounding: the same examples, batches and
adapter initialisation). Results: benchmarks/results/sft_loss_<data>_cpu.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import pandas as pd
from common import data_name, load_run_data, machine  # benchmarks/common.py (scripts run from this folder)
from llm_throughput import layer_parameters, matmul_peak

from palr_utils.core.constants import ITEM, SPLIT, USER
from palr_utils.core.io import write_json
from palr_utils.core.sampling import finetune_users
from palr_utils.finetune.instructions import build_instruction_examples
from palr_utils.finetune.sft import finetune, to_sft_dataset
from palr_utils.llm.loading import load_llm, load_tokenizer, resolve_dtype, template_tokens

# a keyword line of a typical profile's length (notebook 02's profiles hold about six)
KEYWORDS = ["drama", "comedy", "romance", "thriller", "classic films", "strong characters"]


def palr_v2_dataset(config, processed, data, tokenizer, n_users: int):
    """PALR_v2's examples (both tasks) for the first ``n_users`` of the run's fine-tuning users."""
    preset = config.preset
    users = finetune_users(data.n_users, preset.finetune_fraction, config.seed)[:n_users]
    no_retriever = pd.DataFrame({USER: pd.Series(dtype=int), ITEM: pd.Series(dtype=int), SPLIT: pd.Series(dtype=str)})
    examples = build_instruction_examples(
        data, processed.items, users, preset.instructions, config.seed, profiles={int(u): KEYWORDS for u in users},
        candidates=no_retriever, domain=processed.info["domain"],
        count_tokens=lambda text: len(tokenizer(text).input_ids),
        max_tokens=preset.finetune.max_length - template_tokens(tokenizer),
    )  # fmt: skip
    return to_sft_dataset(examples, tokenizer)


def time_arm(trainer_class, config, tokenizer, dataset, steps: int, folder: Path, flops_per_example: float,
             peak: float) -> dict:  # fmt: skip
    """``steps`` optimiser steps of the preset's fine-tuning through ``finetune`` (``trainer_class`` None: its own
    trainer): seconds, losses, and the fraction of ``peak`` (FLOP/s) that ``flops_per_example`` reach."""
    spec = dataclasses.replace(config.preset.finetune, max_steps=steps, save_steps=10**6, max_minutes=None)
    result = finetune(config.preset.llm, tokenizer, dataset, folder, spec, config.seed, trainer_class=trainer_class)
    seconds = result.train_seconds
    examples = steps * spec.batch_size * spec.gradient_accumulation_steps
    return {"seconds": round(seconds, 1), "seconds_per_step": round(seconds / steps, 2),
            "examples_per_second": round(examples / seconds, 3),
            "fraction_of_peak": round(examples * flops_per_example / seconds / peak, 4),
            "losses": [round(loss, 4) for loss in result.history["loss"]]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact-dir", default="artifacts/cpu/ml-1m-custom")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--users", type=int, default=64, help="fine-tuning users whose examples are drawn from")
    parser.add_argument("--steps", type=int, default=6, help="optimiser steps per arm and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    from trl import SFTTrainer

    config, processed, data = load_run_data(args.artifact_dir, args.profile)
    tokenizer = load_tokenizer(config.preset.llm)
    dataset = palr_v2_dataset(config, processed, data, tokenizer, args.users)
    arms = {"old: SFTTrainer's fused LM head": SFTTrainer, "new: completion_loss": None}  # None: finetune's own
    lengths = [len(tokenizer(p + c).input_ids) for p, c in zip(dataset["prompt"], dataset["completion"], strict=True)]
    mean_tokens = sum(lengths) / len(lengths)
    # as llm_throughput.py counts a training token: forward through every layer, backward through the adapted ones
    _, base = load_llm(config.preset.llm)
    n_layers, adapted = base.config.num_hidden_layers, config.preset.finetune.lora_last_layers
    flops_per_example = mean_tokens * 2 * layer_parameters(base) * (1 + (adapted or n_layers) / n_layers)
    del base
    peak = matmul_peak(resolve_dtype(config.preset.llm))
    rounds = []
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(args.rounds):
            rounds.append({name: time_arm(cls, config, tokenizer, dataset, args.steps,
                                          Path(scratch) / f"{round_index}-{i}", flops_per_example, peak)
                           for i, (name, cls) in enumerate(arms.items())})  # fmt: skip
            print(rounds[-1])
    old, new = (sum(r[name]["seconds"] for r in rounds) for name in arms)
    spec = config.preset.finetune
    labelled = [len(tokenizer(c).input_ids) for c in dataset["completion"]]
    result = {
        "machine": machine(), "data": data_name(processed, args.artifact_dir), "profile": args.profile,
        "examples": len(dataset), "mean_tokens_per_example": round(mean_tokens, 1),
        "matmul_peak_gflops": round(peak / 1e9, 1),
        "mean_completion_tokens": round(sum(labelled) / len(labelled), 1),
        "finetune": {"batch_size": spec.batch_size, "max_length": spec.max_length,
                     "lora_last_layers": spec.lora_last_layers, "group_by_length": spec.group_by_length},
        "steps_per_arm_and_round": args.steps, "rounds": rounds, "speed_up": round(old / new, 2),
    }  # fmt: skip
    out = Path(args.out or Path(__file__).parent / "results" / f"sft_loss_{result['data']}_{args.profile}.json")
    write_json(result, out)
    print(f"speed-up {result['speed_up']}x -> {out}")


if __name__ == "__main__":
    main()
