"""Fine-tune PALR_v1 and PALR_v2 outside the notebook, e.g. on several GPUs with Accelerate.

    accelerate launch -m palr_utils.finetune.cli --profile paper --artifact-dir artifacts/paper/ml-1m

Reads the instruction data notebook 04 wrote (``instructions.parquet``) and trains the
same adapters, in the same folders, with the same TRL trainer; notebook 04 then
finds them finished and only plots their losses.
"""

from __future__ import annotations

import argparse

import pandas as pd

from palr_utils.core.io import require_artifacts
from palr_utils.finetune.instructions import RECOMMEND
from palr_utils.finetune.sft import finetune, to_sft_dataset
from palr_utils.llm.loading import load_tokenizer
from palr_utils.presets import resolve_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--dataset", default="")
    parser.add_argument("--artifact-dir", default="")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    config = resolve_config(args.profile, args.dataset, "", args.artifact_dir, args.seed)
    (path,) = require_artifacts(config.artifact_dir, ["instructions.parquet"], producer="04_finetune_palr")
    examples = pd.read_parquet(path)
    tokenizer = load_tokenizer(config.preset.llm)
    for name, rows in {"v1": examples[examples["task"] == RECOMMEND], "v2": examples}.items():
        result = finetune(
            config.preset.llm, tokenizer, to_sft_dataset(rows, tokenizer),
            config.artifact_dir / "finetune" / f"palr_{name}", config.preset.finetune, config.seed,
        )  # fmt: skip
        print(f"PALR_{name}: adapter in {result.adapter_dir}")


if __name__ == "__main__":
    main()
