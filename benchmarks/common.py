"""What the micro-benchmarks (one function timed) start from: the data notebook 01 wrote in a run's folder.

They read it rather than preprocess again, so there is one preprocessing, notebook 01's; a benchmark of a whole
stage is ``pipeline_ml1m.py`` with overrides.
"""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path

import pandas as pd
import torch

from palr_utils.core.constants import METRICS_DIR, NOTEBOOKS
from palr_utils.core.io import require_artifacts
from palr_utils.data import load_processed
from palr_utils.evaluation.cases import EvalCase, build_cases
from palr_utils.presets import resolve_config
from palr_utils.profiles import read_profiles
from palr_utils.retrieval import SequenceData


def load_run_data(artifact_dir: str, profile: str = "cpu"):
    """(config, processed data, training sequences) of the run in ``artifact_dir`` whose notebook 01 has run.

    The config's preset carries the settings for the data set recognised (``RunPreset.for_data``), as notebook
    03 uses them.
    """
    if not (Path(artifact_dir) / METRICS_DIR / f"{NOTEBOOKS[0]}.json").exists():
        raise FileNotFoundError(
            f"{artifact_dir} holds no run of notebook 01; run it first, e.g. .venv/bin/python "
            f"benchmarks/pipeline_ml1m.py --only {NOTEBOOKS[0]} --artifact-dir {artifact_dir}"
        )
    config = resolve_config(profile, artifact_dir=artifact_dir)
    processed = load_processed(artifact_dir)
    config = dataclasses.replace(config, preset=config.preset.for_data(processed.info))
    data = SequenceData.from_interactions(processed.interactions, processed.n_users, processed.n_items)
    return config, processed, data


def evaluation_cases(artifact_dir: str, data, users, preset, seed: int) -> list[EvalCase]:
    """The users' test cases as notebook 05 builds them: notebook 03's candidates, notebook 02's keywords."""
    (profiles_path,) = require_artifacts(artifact_dir, ["profiles.jsonl"], "02_user_profiles")
    (candidates_path,) = require_artifacts(artifact_dir, ["candidates.parquet"], "03_sasrec_retrieval")
    keywords = dict(zip(*read_profiles(profiles_path)[["user", "keywords"]].to_numpy().T, strict=True))
    return build_cases(data, pd.read_parquet(candidates_path), users, keywords, preset.instructions.n_history, seed,
                       preset.rerank_candidates)  # fmt: skip


def data_name(processed, artifact_dir: str) -> str:
    """A short name for result files: ml1m or beauty when recognised, else the run folder's name."""
    known = processed.info.get("paper_dataset")
    return known.replace("-", "") if known else Path(artifact_dir).name


def machine() -> str:
    """The processor, its model and bf16 instructions, and the threads torch uses: timings mean little without
    them (2-core machines of the same kind have differed by 1.8 times in generation speed)."""
    model, bf16 = "", ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():  # Linux; elsewhere the platform's name alone
        lines = cpuinfo.read_text().splitlines()
        model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
        flags = set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))
        bf16 = "with AVX512-BF16" if "avx512_bf16" in flags else "without AVX512-BF16"
        bf16 += ", AMX" if "amx_bf16" in flags else ""
    return ", ".join(part for part in (platform.processor() or platform.machine(), model, bf16,
                                       f"{torch.get_num_threads()} threads") if part)
