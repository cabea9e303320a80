"""Atomic artifact writing, the metrics contract, and checks for missing inputs.

Every file a stage writes goes to a temporary name in the same folder first and
is renamed into place only when complete, so an interrupted run never leaves a
half-written file that a later stage would read back.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pandas as pd

from palr_utils.constants import METRICS_DIR


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    On any exception the temporary file or folder is removed and ``target`` is
    untouched. Works for files and for folders; an existing folder is replaced (moved aside,
    then deleted: a kill in between leaves the old folder under a hidden name, never a mix).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # the caller creates it, as a file or as a folder
    try:
        yield tmp
        if tmp.is_dir() and target.is_dir():
            old = target.with_name(f".{target.name}.replaced-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_parquet(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` to parquet atomically and return the path."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(path)


def write_json(obj: object, path: str | Path) -> Path:
    """Write ``obj`` as pretty JSON atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    return Path(path)


def write_metrics(artifact_dir: str | Path, notebook_stem: str, metrics: Mapping[str, object]) -> Path:
    """Record a notebook's headline numbers as a flat JSON object.

    This is the contract with the tests: ``ARTIFACT_DIR/metrics/<stem>.json``
    holds only numbers, strings and booleans, never nested objects or NaN.
    """
    flat: dict[str, object] = {}
    for key, value in metrics.items():
        if hasattr(value, "item"):  # numpy / torch scalars
            value = value.item()
        if not isinstance(value, (int, float, str, bool)):
            raise TypeError(f"metric {key!r} must be a number, string or bool, not {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"metric {key!r} is {value}; fix the computation rather than recording it")
        flat[str(key)] = value
    return write_json(flat, Path(artifact_dir) / METRICS_DIR / f"{notebook_stem}.json")


def progress_bars_disabled() -> bool:
    """True where progress bars would be noise: ``TQDM_DISABLE`` is set, as the runner does for the notebooks it
    executes (a saved notebook would show each bar frozen at its first state)."""
    return bool(os.environ.get("TQDM_DISABLE"))


def read_metrics(artifact_dir: str | Path, notebook_stem: str) -> dict[str, object]:
    """Read the metrics a notebook recorded (see :func:`write_metrics`)."""
    path = Path(artifact_dir) / METRICS_DIR / f"{notebook_stem}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run notebooks/{notebook_stem}.ipynb first.")
    return json.loads(path.read_text())


def headline(metrics: dict, n: int = 4) -> str:
    """A few numbers worth printing when a notebook ends: the best methods' test NDCG@10 when there are any,
    otherwise the first counts."""
    numbers = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    ndcg = sorted((k for k in numbers if k.endswith("test_ndcg@10")), key=lambda k: -numbers[k])  # best first
    chosen = ndcg or list(numbers)
    return ", ".join(
        f"{k} {numbers[k]:,}" if isinstance(numbers[k], int) else f"{k} {numbers[k]:.4g}" for k in chosen[:n]
    )


class MissingArtifactError(FileNotFoundError):
    """A stage was started before the stage that produces its inputs."""


def require_artifacts(artifact_dir: str | Path, files: list[str], producer: str) -> list[Path]:
    """Return the paths of ``files`` under ``artifact_dir`` or stop with a clear message.

    ``producer`` is the notebook stem that writes them, e.g. ``"01_preprocessing"``.
    """
    paths = [Path(artifact_dir) / name for name in files]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise MissingArtifactError(
            f"Missing {', '.join(missing)} in {artifact_dir}. "
            f"Run notebooks/{producer}.ipynb first with the same PROFILE, DATASET and ARTIFACT_DIR."
        )
    return paths


class StaleArtifactError(ValueError):
    """Results on disk were produced with other settings, data or model than the ones asked for now."""


def ensure_identity(identity_path: str | Path, identity: Mapping[str, object], guarded: str | Path) -> None:
    """Record what produced ``guarded`` (a cache or a training folder), or check that it matches.

    Resuming a long stage must never mix results of two settings silently: a mismatch, or
    results without a record of their settings, raise :class:`StaleArtifactError`.
    """
    identity_path, guarded = Path(identity_path), Path(guarded)
    wanted = json.loads(json.dumps(identity))  # tuples become lists, as they come back from disk
    if identity_path.exists():
        stored = json.loads(identity_path.read_text())
        if stored != wanted:
            changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
            raise StaleArtifactError(
                f"{guarded} was produced with other settings ({', '.join(changed)} differ: {identity_path} has "
                f"{ {k: stored.get(k) for k in changed} }, this run wants { {k: wanted.get(k) for k in changed} }). "
                f"Delete {guarded} to start afresh, or use another ARTIFACT_DIR."
            )
        return
    if guarded.exists() and (guarded.is_file() and guarded.stat().st_size > 0 or guarded.is_dir() and any(
        p != identity_path for p in guarded.iterdir()
    )):  # fmt: skip
        raise StaleArtifactError(
            f"{guarded} holds results without a record of the settings that produced them ({identity_path} is "
            f"missing). Delete {guarded} to start afresh."
        )
    write_json(wanted, identity_path)
