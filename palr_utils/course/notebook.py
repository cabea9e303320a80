"""The first steps every notebook shares: resolve parameters, seed, set the figure style."""

from __future__ import annotations

import json
import os
import random
import socket
import time

import numpy as np

from palr_utils.core.io import StaleArtifactError, create_exclusive, prepare_artifact_dir
from palr_utils.presets import RunConfig, resolve_config

DATA_SOURCE_FILE = "data_source.json"


def show_source(*objects) -> object:
    """The source code of functions or classes from the package, highlighted, for a lesson to read before it
    calls them: what the cell shows is what runs, so lesson and package cannot drift apart."""
    import inspect

    from IPython.display import Code

    return Code("\n\n".join(inspect.getsource(obj) for obj in objects), language="python")


def data_source(config: RunConfig) -> dict:
    """Which data an artifact folder's results come from: the folder of custom data, the seed of synthetic data
    (verified downloads are the same data wherever they are cached)."""
    source: dict = {"dataset": config.dataset}
    if config.dataset == "custom":
        source["data_dir"] = str(config.data_dir)
    if config.dataset == "synthetic":
        source["seed"] = config.seed
    if config.preset.max_users is not None:  # a seeded sample of users is other data than the whole set
        source.update(max_users=config.preset.max_users, seed=config.seed)
    return source


CLAIMED_BY = "claimed_by"


def claim_artifact_dir(config: RunConfig) -> None:
    """Record which data the artifact folder belongs to, or refuse a folder that holds another data set's results.

    The claim is atomic (created only if absent), so of two runs that start at once on different data, one
    holds the folder and the other is refused with who holds it. Caches and checkpoints check their own inputs
    too; this check names the real cause at the first cell.
    """
    path = config.artifact_dir / DATA_SOURCE_FILE
    wanted = data_source(config)
    holder = f"process {os.getpid()} on {socket.gethostname()} at {time.strftime('%Y-%m-%d %H:%M:%S')}"
    claim = {**wanted, CLAIMED_BY: holder}
    if create_exclusive(path, json.dumps(claim, indent=2, sort_keys=True) + "\n"):
        return
    stored = json.loads(path.read_text())
    holder = stored.pop(CLAIMED_BY, "an earlier run")
    if stored != wanted:
        raise StaleArtifactError(
            f"{config.artifact_dir} holds results of other data ({stored}, claimed by {holder}), not of {wanted}. "
            "Use another ARTIFACT_DIR (or leave it empty: the default folder is named after the data), or delete "
            "the folder once that run has ended."
        )


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if installed) PyTorch so reruns give the same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)


def setup_notebook(
    preset: str, dataset: str, data_dir: str, artifact_dir: str, seed: object, overrides: str = ""
) -> RunConfig:
    """Resolve a notebook's parameters cell into a config, seed everything and print the plan."""
    import seaborn as sns

    config = resolve_config(preset, dataset, data_dir, artifact_dir, seed, overrides)
    seed_everything(config.seed)
    sns.set_theme(style="whitegrid", context="notebook")
    prepare_artifact_dir(config.artifact_dir)
    claim_artifact_dir(config)
    print(f"preset    : {config.preset.name} ({config.preset.description})")
    print(f"dataset   : {config.dataset}")
    print(f"data dir  : {config.data_dir}")
    print(f"artifacts : {config.artifact_dir}")
    print(f"seed      : {config.seed}")
    if config.overrides:
        print(f"overrides : {config.overrides}")
    return config
