"""What every benchmark script starts with: the data preprocessed as notebook 01 does it, and the machine."""

from __future__ import annotations

import platform

import torch

from palr_utils.data import load_raw_dataset, preprocess
from palr_utils.profiles import resolve_config
from palr_utils.retrieval import SequenceData


def load_benchmark_data(profile: str, dataset: str, data_dir: str, work_dir: str = ""):
    """(config, processed data, training sequences) for a run profile on a raw data folder."""
    config = resolve_config(profile, dataset, data_dir, work_dir)
    processed = preprocess(load_raw_dataset(config), config.profile.min_interactions)
    data = SequenceData.from_interactions(processed.interactions, processed.n_users, processed.n_items)
    return config, processed, data


def machine() -> str:
    """The processor and the threads torch uses: timings mean little without them."""
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
