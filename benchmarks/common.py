"""What every benchmark script starts with: the data preprocessed as notebook 01 does it, and the machine."""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path

import torch

from palr_utils.data import describe_dataset, load_raw_dataset, preprocess
from palr_utils.presets import resolve_config
from palr_utils.retrieval import SequenceData


def load_benchmark_data(preset: str, dataset: str, data_dir: str, work_dir: str = ""):
    """(config, processed data, training sequences) for a run preset on a raw data folder.

    The config's preset carries the settings for the data set recognised (``RunPreset.for_data``), as
    notebook 03 uses them.
    """
    config = resolve_config(preset, dataset, data_dir, work_dir)
    processed = preprocess(load_raw_dataset(config), config.preset.min_interactions)
    processed.info = describe_dataset(config, processed)
    config = dataclasses.replace(config, preset=config.preset.for_data(processed.info))
    data = SequenceData.from_interactions(processed.interactions, processed.n_users, processed.n_items)
    return config, processed, data


def data_name(processed, data_dir: str) -> str:
    """A short name for result files: ml1m or beauty when recognised, else the data folder's name."""
    known = processed.info.get("paper_dataset")
    return known.replace("-", "") if known else Path(data_dir).name


def machine() -> str:
    """The processor and the threads torch uses: timings mean little without them."""
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def training_record(model, training, history, wall_seconds: float) -> dict:
    """What every retriever benchmark records about one training run (its settings, epochs, times, curve)."""
    return {
        "training_config": dataclasses.asdict(training),
        "best_epoch": model.best_epoch,
        "epochs_run": int(history["epoch"].max()),
        "benchmark_wall_seconds": round(wall_seconds, 1),
        "history": history.to_dict(orient="records"),
        "machine": machine(),
    }
