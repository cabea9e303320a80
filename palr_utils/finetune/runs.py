"""The adapters notebook 04 trains, in one table: the notebook and the command line read the same one.

PALR_v1 trains on *Recommend*, PALR_v2 on *Recommend* + *Recommend_Retrieval* (the paper's two models);
PALR-rank (our extension, ``palr_utils.palr_rank``) trains on its own ranking examples.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from palr_utils.finetune.instructions import RECOMMEND, RECOMMEND_RETRIEVAL
from palr_utils.finetune.sft import ADAPTER_DIR

# the instruction runs and the tasks each trains on, in the order notebook 04 trains them
INSTRUCTION_RUNS: dict[str, tuple[str, ...]] = {"v1": (RECOMMEND,), "v2": (RECOMMEND, RECOMMEND_RETRIEVAL)}
RANK_RUN = "rank"


def instruction_runs(examples: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each instruction run's training examples: the rows of its tasks, in the order they were built."""
    return {name: examples[examples["task"].isin(tasks)] for name, tasks in INSTRUCTION_RUNS.items()}


def run_dir(artifact_dir: str | Path, name: str) -> Path:
    """Where the run ``name`` ("v1", "v2" or ``RANK_RUN``) keeps its checkpoints, identity and adapter."""
    return Path(artifact_dir) / "finetune" / f"palr_{name}"


def adapter_dir(artifact_dir: str | Path, name: str) -> Path:
    """The finished adapter of the run ``name``, as notebook 05 loads it."""
    return run_dir(artifact_dir, name) / ADAPTER_DIR
