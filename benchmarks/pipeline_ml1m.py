"""Benchmark: the whole tutorial, `cpu` preset, real MovieLens-1M, 2 CPU cores.

    .venv/bin/python benchmarks/pipeline_ml1m.py [--data-dir ../shared/data/ml-1m] [--only 03_sasrec_retrieval ...]

Executes notebooks 01-05 with papermill exactly as ``make tutorial PROFILE=cpu
DATASET=custom DATA_DIR=...`` does, times each one, and gathers the metrics
each notebook recorded into benchmarks/results/pipeline_ml1m_cpu.json (the
table in the README). Every stage resumes from what is on disk in the artifact
directory (checkpoints, JSONL caches), so an interrupted run can be started
again; a notebook's wall time is then the time of its last, resumed execution,
and ``resumed`` in the results says so.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import torch

from palr_utils.core.constants import NOTEBOOKS
from palr_utils.core.io import read_metrics, write_json
from palr_utils.core.paths import project_root
from palr_utils.course.runner import run_notebooks

# What a notebook finds on disk when it resumes an earlier, interrupted run
RESUMABLE_STATE = {
    "02_user_profiles": "profiles.jsonl",
    "03_sasrec_retrieval": "checkpoints",
    "04_finetune_palr": "finetune",
    "05_evaluation": "rerank",
}


def code_version() -> str:
    """The commit the notebook ran from (with "+changes" when the working tree differed from it)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=project_root(), capture_output=True, text=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (
        "+changes" if git("status", "--porcelain", "--", "palr_utils", "notebooks") else ""
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default="../shared/data/ml-1m")
    parser.add_argument("--dataset", default="custom")
    parser.add_argument("--artifact-dir", default="artifacts/cpu/ml-1m-custom")
    parser.add_argument("--only", nargs="*", default=list(NOTEBOOKS), help="notebook stems to (re)run")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "pipeline_ml1m_cpu.json"))
    args = parser.parse_args()

    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {"notebooks": {}}
    for stem in args.only:
        notebook = project_root() / "notebooks" / f"{stem}.ipynb"
        resumed = stem in RESUMABLE_STATE and (Path(args.artifact_dir) / RESUMABLE_STATE[stem]).exists()
        started, version = time.perf_counter(), code_version()  # before the kernel imports the code
        artifact_dir = run_notebooks("cpu", args.dataset, args.data_dir, args.artifact_dir, notebooks=[notebook])
        result["notebooks"][stem] = {
            "wall_seconds": round(time.perf_counter() - started, 1),
            "resumed": resumed,
            "metrics": read_metrics(artifact_dir, stem),
            "commit": version,
        }
        result.update(
            profile="cpu",
            data=f"{args.dataset}:{args.data_dir}",
            machine=f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        )
        write_json(result, out)  # after every notebook, so a long run records what it has done
        print(stem, result["notebooks"][stem], flush=True)


if __name__ == "__main__":
    main()
