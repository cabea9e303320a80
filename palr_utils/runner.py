"""Execute the tutorial notebooks in order with papermill (used by ``make tutorial`` and the tests).

Usage::

    python -m palr_utils.runner --profile tiny
    python -m palr_utils.runner --profile cpu --dataset custom --data-dir ../shared/data/ml-1m
"""

from __future__ import annotations

import argparse
from pathlib import Path

import papermill

from palr_utils.constants import NOTEBOOKS
from palr_utils.data.custom import MISSING_TITLE_POLICIES
from palr_utils.paths import project_root
from palr_utils.profiles import parse_seed, resolve_config


def present_notebooks(notebooks_dir: str | Path | None = None) -> list[Path]:
    """The tutorial notebooks that exist, in teaching order."""
    notebooks_dir = Path(notebooks_dir or project_root() / "notebooks")
    return [notebooks_dir / f"{stem}.ipynb" for stem in NOTEBOOKS if (notebooks_dir / f"{stem}.ipynb").exists()]


def run_notebooks(
    profile: str,
    dataset: str = "",
    data_dir: str = "",
    artifact_dir: str = "",
    seed: int = 42,
    notebooks: list[Path] | None = None,
    missing_titles: str = "placeholder",
) -> Path:
    """Run each notebook with the same parameters; executed copies go to ``ARTIFACT_DIR/executed``.

    Returns the artifact directory. A failing notebook stops the run (papermill
    raises and still writes the executed copy, so the failing cell can be read).
    """
    config = resolve_config(profile, dataset, data_dir, artifact_dir, seed)
    parameters = {
        "PROFILE": profile,
        "DATASET": config.dataset,
        "DATA_DIR": str(config.data_dir),
        "ARTIFACT_DIR": str(config.artifact_dir),
        "SEED": config.seed,
    }
    executed_dir = config.artifact_dir / "executed"
    executed_dir.mkdir(parents=True, exist_ok=True)
    for notebook in notebooks if notebooks is not None else present_notebooks():
        # only notebook 01 reads the raw data, so only it takes the missing-titles choice
        extra = {"MISSING_TITLES": missing_titles} if notebook.stem == NOTEBOOKS[0] else {}
        print(f"Running {notebook.name} with {parameters | extra}", flush=True)
        papermill.execute_notebook(
            str(notebook),
            str(executed_dir / notebook.name),
            parameters=parameters | extra,
            cwd=str(project_root()),
            kernel_name="python3",
            progress_bar=False,
        )
    return config.artifact_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--dataset", default="", help="default: the profile's data set")
    parser.add_argument("--data-dir", default="", help="default: data/")
    parser.add_argument(
        "--artifact-dir", default="", help="default: artifacts/<profile>/<dataset>/ (<folder>-custom for custom data)"
    )
    parser.add_argument("--seed", type=parse_seed, default=42)
    parser.add_argument(
        "--missing-titles", default="placeholder", choices=list(MISSING_TITLE_POLICIES),
        help="custom data: what to do with items that have no title",
    )  # fmt: skip
    args = parser.parse_args()
    out = run_notebooks(
        args.profile, args.dataset, args.data_dir, args.artifact_dir, args.seed, missing_titles=args.missing_titles
    )
    print(f"Done. Executed notebooks and artifacts are in {out}")


if __name__ == "__main__":
    main()
