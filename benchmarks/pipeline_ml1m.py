"""Benchmark: the tutorial's notebooks on real data, as one run or as a variant of one; every benchmark that trains
or scores is this script with other arguments.

    .venv/bin/python benchmarks/pipeline_ml1m.py --data-dir ../shared/data/ml-1m     # the recorded cpu run
    .venv/bin/python benchmarks/pipeline_ml1m.py --data-dir ../shared/data/beauty    # the same on Beauty
    .venv/bin/python benchmarks/pipeline_ml1m.py --only 05_evaluation                # one stage again
    # a variant: SASRec alone with another width, from the recorded run's notebook 01, into its own folder
    .venv/bin/python benchmarks/pipeline_ml1m.py --name sasrec_ml1m_hidden64 --reuse-from artifacts/cpu/ml-1m-custom \
        --only 03_sasrec_retrieval --overrides "sasrec.hidden_size=64 baselines=[]"

Executes the notebooks with papermill exactly as ``make tutorial PROFILE=... DATASET=custom DATA_DIR=...
OVERRIDES=...`` does, times each one, and gathers the metrics each notebook recorded into
``benchmarks/results/<name>.json`` (the recorded runs: ``pipeline_ml1m_cpu.json`` and ``pipeline_beauty_cpu.json``,
the README's tables). A variant (``--overrides``, or a ``--name`` of its own) runs in ``artifacts/benchmarks/<name>``;
``--reuse-from`` gives that folder the outputs of another run's notebooks before the first one of ``--only``
(hard links, nothing copied), whose identities every later cache and checkpoint checks as usual. Every stage
resumes from what is on disk, so an interrupted run can be started again; a notebook's wall time is then the
time of its last, resumed execution, and ``resumed`` in the results says so.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from common import machine  # benchmarks/common.py (scripts run from this folder)

from palr_utils.core.constants import NOTEBOOKS
from palr_utils.core.io import read_metrics, write_json
from palr_utils.core.paths import project_root
from palr_utils.course.runner import NOTEBOOK_OUTPUTS, reuse_outputs, run_notebooks
from palr_utils.presets import resolve_config


def code_version() -> str:
    """The commit the notebook ran from (with "+changes" when the working tree differed from it)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=project_root(), capture_output=True, text=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (
        "+changes" if git("status", "--porcelain", "--", "palr_utils", "notebooks") else ""
    )


def default_name(data_dir: str, profile: str) -> str:
    """``pipeline_<data>_<profile>``: the data folder's name without dashes (ml1m, beauty)."""
    return f"pipeline_{Path(data_dir).name.replace('-', '')}_{profile}"


def was_resumed(artifact_dir: Path, stem: str) -> bool:
    """Whether ``stem`` finds its own state on disk (checkpoints, caches) from an earlier, interrupted run."""
    return stem != NOTEBOOKS[0] and any((artifact_dir / path).exists() for path in NOTEBOOK_OUTPUTS[stem])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data/ml-1m")
    parser.add_argument("--dataset", default="custom")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--overrides", default="", help="OVERRIDES for every notebook (docs/running.md)")
    parser.add_argument("--name", default="", help="the record's name; default pipeline_<data>_<profile>")
    parser.add_argument("--artifact-dir", default="", help="default: the tutorial's folder for the recorded run, "
                        "artifacts/benchmarks/<name> for a variant")  # fmt: skip
    parser.add_argument("--reuse-from", default="", help="an artifact folder whose notebooks before the first "
                        "of --only this run starts from")  # fmt: skip
    parser.add_argument("--only", nargs="*", default=list(NOTEBOOKS), help="notebook stems to (re)run, in order")
    parser.add_argument("--out", default="", help="default: benchmarks/results/<name>.json")
    args = parser.parse_args(argv)

    name = args.name or default_name(args.data_dir, args.profile)
    variant = bool(args.overrides or args.name)
    artifact_dir = args.artifact_dir or (str(project_root() / "artifacts" / "benchmarks" / name) if variant else "")
    # resolving first refuses a misspelt override, or unknown data, before anything is linked or run
    artifact_dir = resolve_config(args.profile, args.dataset, args.data_dir, artifact_dir, args.seed,
                                  args.overrides).artifact_dir  # fmt: skip
    only = [stem for stem in NOTEBOOKS if stem in args.only]
    out = Path(args.out or Path(__file__).parent / "results" / f"{name}.json")
    result = json.loads(out.read_text()) if out.exists() else {"notebooks": {}}
    result.update(profile=args.profile, data=f"{args.dataset}:{args.data_dir}", overrides=args.overrides,
                  artifact_dir=str(artifact_dir), machine=machine())  # fmt: skip
    if args.reuse_from:
        reused = reuse_outputs(args.reuse_from, artifact_dir, only[0])
        result["reused"] = {"from": args.reuse_from, "notebooks": reused}
    for stem in only:
        notebook = project_root() / "notebooks" / f"{stem}.ipynb"
        resumed = was_resumed(artifact_dir, stem)
        started, version = time.perf_counter(), code_version()  # before the kernel imports the code
        run_notebooks(args.profile, args.dataset, args.data_dir, str(artifact_dir), args.seed, notebooks=[notebook],
                      overrides=args.overrides)  # fmt: skip
        result["notebooks"][stem] = {
            "wall_seconds": round(time.perf_counter() - started, 1),
            "resumed": resumed,
            "metrics": read_metrics(artifact_dir, stem),
            "commit": version,
            "machine": machine(),  # a run made in sittings may meet more than one machine
        }
        write_json(result, out)  # after every notebook, so a long run records what it has done
        print(stem, result["notebooks"][stem], flush=True)


if __name__ == "__main__":
    main()
