"""Train every adapter notebook 04 trains, outside the notebook, e.g. on several GPUs with Accelerate.

    accelerate launch -m palr_utils.finetune.cli --profile paper --artifact-dir artifacts/paper/ml-1m

Reads the examples notebook 04 wrote (``instructions.parquet``, and ``rank_examples.parquet`` for PALR-rank) and
trains the same runs (``palr_utils.finetune.runs``) with the same settings and TRL trainers into the same
folders; notebook 04, run afterwards with the same parameters, finds them finished and reads their logs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pandas as pd

from palr_utils.core.io import require_artifacts
from palr_utils.finetune.runs import RANK_RUN, instruction_runs, run_dir
from palr_utils.finetune.sft import finetune, to_sft_dataset
from palr_utils.llm.loading import format_prompt, load_tokenizer
from palr_utils.palr_rank.item_tokens import twin_item_table
from palr_utils.palr_rank.scoring import verdict_token_ids
from palr_utils.palr_rank.trainer import listwise_trainer_class, rank_trainer_kwargs, to_rank_dataset
from palr_utils.presets import resolve_config


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--dataset", default="")
    parser.add_argument("--artifact-dir", default="")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--overrides", default="", help="the OVERRIDES notebook 04 ran with (docs/running.md)")
    args = parser.parse_args(argv)

    config = resolve_config(args.profile, args.dataset, "", args.artifact_dir, args.seed, args.overrides)
    preset = config.preset
    (path,) = require_artifacts(config.artifact_dir, ["instructions.parquet"], producer="04_finetune_palr")
    tokenizer = load_tokenizer(preset.llm)
    for name, rows in instruction_runs(pd.read_parquet(path)).items():
        dataset = to_sft_dataset(rows, tokenizer)
        result = finetune(preset.llm, tokenizer, dataset, run_dir(config.artifact_dir, name), preset.finetune,
                          config.seed)  # fmt: skip
        print(f"PALR_{name}: adapter in {result.adapter_dir}")

    rank_path = config.artifact_dir / "rank_examples.parquet"
    if not rank_path.exists():
        print(f"PALR-rank: no {rank_path.name} in {config.artifact_dir} (notebook 04 writes it); not trained")
        return
    examples = pd.read_parquet(rank_path)
    verdict_ids = verdict_token_ids(tokenizer, format_prompt(tokenizer, examples.iloc[0]["prompt"]))
    item_table = twin_item_table(config.artifact_dir) if preset.rank_item_tokens else None
    dataset = to_rank_dataset(examples, tokenizer, residual=preset.rank_residual, item_slots=preset.rank_item_tokens)
    result = finetune(
        preset.llm, tokenizer, dataset, run_dir(config.artifact_dir, RANK_RUN), preset.rank_finetune, config.seed,
        trainer_class=listwise_trainer_class(),
        trainer_kwargs=rank_trainer_kwargs(verdict_ids, preset.rank_residual, item_table, preset.rank_item_tokens_lr),
    )  # fmt: skip
    print(f"PALR-rank: adapter in {result.adapter_dir}")


if __name__ == "__main__":
    main()
