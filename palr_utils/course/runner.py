"""Execute the tutorial notebooks in order with papermill (used by ``make tutorial`` and the tests).

Usage::

    python -m palr_utils.course.runner --profile tiny
    python -m palr_utils.course.runner --profile cpu --dataset custom --data-dir ../shared/data/ml-1m
    python -m palr_utils.course.runner --profile tiny --start-at 03_sasrec_retrieval   # after fixing a failure

Each notebook reports its wall time and a few headline numbers as it finishes. A failing notebook stops the
run with a short summary (the cell, the error, where the executed copy and the full traceback are, and the
command that resumes from it) instead of a page of traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import sys
import time
from pathlib import Path

# papermill imports tqdm now, before run_notebooks silences progress bars for the kernels it starts: the
# runner's own cell counter keeps working, and executed notebooks carry no frozen "0%|" bars.
import papermill
from papermill.exceptions import PapermillExecutionError

from palr_utils.core.constants import INTERACTIONS_FILE, ITEMS_FILE, MANIFESTS_DIR, METRICS_DIR, NOTEBOOKS, USERS_FILE
from palr_utils.core.io import ArtifactDirError, headline, prepare_artifact_dir, read_metrics
from palr_utils.core.overrides import OverrideError
from palr_utils.core.paths import project_root
from palr_utils.course.notebook import DATA_SOURCE_FILE
from palr_utils.data import DATASET_INFO_FILE
from palr_utils.data.custom import MISSING_TITLE_POLICIES
from palr_utils.presets import parse_seed, resolve_config

# tqdm, and the bars of huggingface_hub and datasets (TRL prepares its training set with datasets' map)
QUIET_KERNEL_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


# What each notebook writes under ARTIFACT_DIR besides its metrics, its manifest and its executed copy. Run again,
# a notebook finds these as its own state and resumes from them; a run that reuses an earlier run's notebooks
# (:func:`reuse_outputs`) takes these from it.
NOTEBOOK_OUTPUTS = {
    "01_preprocessing": (INTERACTIONS_FILE, ITEMS_FILE, USERS_FILE, DATASET_INFO_FILE),
    "02_user_profiles": ("profiles.jsonl", "profiles.identity.json", "profiles_prefix.jsonl",
                         "profiles_prefix.identity.json"),  # fmt: skip
    "03_sasrec_retrieval": ("checkpoints", "candidates.parquet", "rank_candidates.parquet"),
    "04_finetune_palr": ("instructions.parquet", "rank_examples.parquet", "finetune"),
    "05_evaluation": ("rerank",),
}


def _link_tree(source: Path, target: Path) -> None:
    """``source`` (a file or a folder) at ``target`` as hard links: no copy of the bytes. Every stage replaces a
    file by renaming a new one over it, so a later write in ``target`` never changes the file ``source`` holds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, copy_function=os.link)
    else:
        os.link(source, target)


def reuse_outputs(source: str | Path, target: str | Path, first: str) -> list[str]:
    """Give ``target`` the outputs of ``source``'s notebooks before ``first``, so that a run of ``first`` and the
    notebooks after it (with other OVERRIDES, say) starts from them; returns those notebooks' names.

    The outputs are hard-linked, not copied. The data claim comes along, so a run on other data is refused at
    its first cell; every later cache and checkpoint still checks its own identity. Paths ``target`` already
    holds are kept (a benchmark resumed after an interruption links nothing twice).
    """
    source, target = Path(source), Path(target)
    if first not in NOTEBOOKS:
        raise ValueError(f"{first!r} is not one of the notebooks: {list(NOTEBOOKS)}")
    earlier = list(NOTEBOOKS[: NOTEBOOKS.index(first)])
    if missing := [stem for stem in earlier if not (source / METRICS_DIR / f"{stem}.json").exists()]:
        raise FileNotFoundError(f"{source} holds no finished run of {', '.join(missing)} (no metrics file): run "
                                f"them there first, or reuse another folder")  # fmt: skip
    paths = [DATA_SOURCE_FILE]
    for stem in earlier:
        paths += [*NOTEBOOK_OUTPUTS[stem], f"{METRICS_DIR}/{stem}.json", f"{MANIFESTS_DIR}/{stem}.json",
                  f"executed/{stem}.ipynb"]  # fmt: skip
    for relative in paths:
        if (source / relative).exists() and not (target / relative).exists():
            _link_tree(source / relative, target / relative)
    return earlier


class NotebookFailed(RuntimeError):
    """A notebook stopped with an error; the message says where, why and how to go on."""


def present_notebooks(notebooks_dir: str | Path | None = None) -> list[Path]:
    """The tutorial notebooks that exist, in teaching order."""
    notebooks_dir = Path(notebooks_dir or project_root() / "notebooks")
    return [notebooks_dir / f"{stem}.ipynb" for stem in NOTEBOOKS if (notebooks_dir / f"{stem}.ipynb").exists()]


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """Set environment variables for the kernels started inside the block, and restore them after."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _failure_summary(error: PapermillExecutionError, notebook: Path, executed: Path, log: Path, resume: str) -> str:
    message = _ANSI.sub("", str(error.evalue)).strip()
    if len(message) > 800:
        message = message[:800] + " ..."
    return (
        f"{notebook.stem} stopped in cell [{error.exec_count}] with {error.ename}: {message}\n"
        f"  executed copy (the failing cell is marked): {executed}\n"
        f"  full traceback: {log}\n"
        f"  after fixing it, resume from this notebook: {resume}"
    )


def run_notebooks(
    profile: str,
    dataset: str = "",
    data_dir: str = "",
    artifact_dir: str = "",
    seed: int = 42,
    notebooks: list[Path] | None = None,
    missing_titles: str = "placeholder",
    start_at: str | None = None,
    progress: bool = False,
    overrides: str = "",
) -> Path:
    """Run each notebook with the same parameters; executed copies go to ``ARTIFACT_DIR/executed``.

    Returns the artifact directory. ``start_at`` (a notebook's name) skips the ones before it, whose results
    are on disk. A failing notebook raises :class:`NotebookFailed` (its executed copy and a log of the full
    traceback are kept). ``progress`` shows papermill's cell counter. ``overrides`` (OVERRIDES) reaches every
    notebook, and is checked here first: a misspelt key stops the run before any notebook starts.
    """
    config = resolve_config(profile, dataset, data_dir, artifact_dir, seed, overrides)
    parameters = {
        "PROFILE": profile,
        "DATASET": config.dataset,
        "DATA_DIR": str(config.data_dir),
        "ARTIFACT_DIR": str(config.artifact_dir),
        "SEED": config.seed,
        "OVERRIDES": overrides,
    }
    executed_dir = prepare_artifact_dir(config.artifact_dir) / "executed"
    executed_dir.mkdir(exist_ok=True)
    notebooks = notebooks if notebooks is not None else present_notebooks()
    if start_at is not None:
        stems = [n.stem for n in notebooks]
        if start_at not in stems:
            raise ValueError(f"start_at={start_at!r} is not one of the notebooks: {stems}")
        notebooks = notebooks[stems.index(start_at) :]
    for number, notebook in enumerate(notebooks, start=1):
        # only notebook 01 reads the raw data, so only it takes the missing-titles choice
        extra = {"MISSING_TITLES": missing_titles} if notebook.stem == NOTEBOOKS[0] else {}
        print(f"[{number}/{len(notebooks)}] {notebook.stem} ({profile}, {config.dataset}) ...", flush=True)
        executed, started = executed_dir / notebook.name, time.perf_counter()
        try:
            with _environment(QUIET_KERNEL_ENV):
                papermill.execute_notebook(
                    str(notebook), str(executed), parameters=parameters | extra, cwd=str(project_root()),
                    kernel_name="python3", progress_bar=progress,
                )  # fmt: skip
        except PapermillExecutionError as error:
            log = executed.with_suffix(".error.log")
            log.write_text(_ANSI.sub("", "\n".join(error.traceback)) + "\n")
            resume = (
                f"make tutorial PROFILE={profile} DATASET={config.dataset} DATA_DIR={config.data_dir} "
                f"ARTIFACT_DIR={config.artifact_dir} SEED={config.seed} START_AT={notebook.stem}"
                + (f" OVERRIDES={shlex.quote(overrides)}" if overrides else "")  # quoted for the shell
            )
            raise NotebookFailed(_failure_summary(error, notebook, executed, log, resume)) from None
        minutes = (time.perf_counter() - started) / 60
        metrics_file = config.metrics_dir / f"{notebook.stem}.json"
        numbers = headline(read_metrics(config.artifact_dir, notebook.stem)) if metrics_file.exists() else ""
        print(f"      done in {minutes:.1f} min{': ' + numbers if numbers else ''}", flush=True)
    return config.artifact_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--dataset", default="", help="default: the preset's data set")
    parser.add_argument("--data-dir", default="", help="default: data/")
    parser.add_argument(
        "--artifact-dir", default="", help="default: artifacts/<profile>/<dataset>/ (<folder>-custom for custom data)"
    )
    parser.add_argument("--seed", type=parse_seed, default=42)
    parser.add_argument(
        "--missing-titles", default="placeholder", choices=list(MISSING_TITLE_POLICIES),
        help="custom data: what to do with items that have no title",
    )  # fmt: skip
    parser.add_argument("--start-at", default=None, choices=list(NOTEBOOKS), help="skip the notebooks before this one")
    parser.add_argument(
        "--overrides", default="", help='single settings changed, e.g. "sasrec_training.max_minutes=20"'
    )
    args = parser.parse_args()
    started = time.perf_counter()
    try:
        out = run_notebooks(
            args.profile, args.dataset, args.data_dir, args.artifact_dir, args.seed,
            missing_titles=args.missing_titles, start_at=args.start_at, progress=True, overrides=args.overrides,
        )  # fmt: skip
    except NotebookFailed as failure:
        print(f"\nFAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    except (ArtifactDirError, OverrideError) as error:
        print(f"\nCannot start: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"\nDone in {(time.perf_counter() - started) / 60:.1f} min.")
    print(f"  executed notebooks: {out / 'executed'}  (open them with `make lab`)")
    print(f"  metrics:            {out / 'metrics'}")
    evaluation = out / "metrics" / f"{NOTEBOOKS[-1]}.json"
    if evaluation.exists():
        print(f"  headline:           {headline(json.loads(evaluation.read_text()), n=8)}")


if __name__ == "__main__":
    main()
