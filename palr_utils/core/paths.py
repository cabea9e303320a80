"""Where the repository is: relative paths in notebook parameters start here."""

from __future__ import annotations

from pathlib import Path


def project_root() -> Path:
    """The repository root.

    Resolving against the repository (not the current directory) means the same
    ``DATA_DIR`` works from Jupyter (which runs in ``notebooks/``) and from
    papermill or make (which run in the root).
    """
    return Path(__file__).resolve().parents[2]
