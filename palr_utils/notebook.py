"""The first steps every notebook shares: resolve parameters, seed, set the figure style."""

from __future__ import annotations

import random

import numpy as np

from palr_utils.profiles import RunConfig, resolve_config


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if installed) PyTorch so reruns give the same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)


def setup_notebook(profile: str, dataset: str, data_dir: str, artifact_dir: str, seed: int) -> RunConfig:
    """Resolve a notebook's parameters cell into a config, seed everything and print the plan."""
    import seaborn as sns

    config = resolve_config(profile, dataset, data_dir, artifact_dir, seed)
    seed_everything(config.seed)
    sns.set_theme(style="whitegrid", context="notebook")
    config.artifact_dir.mkdir(parents=True, exist_ok=True)
    print(f"profile   : {config.profile.name} ({config.profile.description})")
    print(f"dataset   : {config.dataset}")
    print(f"data dir  : {config.data_dir}")
    print(f"artifacts : {config.artifact_dir}")
    print(f"seed      : {config.seed}")
    return config
