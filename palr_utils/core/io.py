"""Atomic artifact writing, the metrics contract, and checks for missing inputs.

Every file a stage writes goes to a temporary name in the same folder first and
is renamed into place only when complete, so an interrupted run never leaves a
half-written file that a later stage would read back. A stage that writes several
files that belong together (notebook 01's tables) commits them with a manifest
written last (:class:`ArtifactSet`): a set half replaced by an interrupted rerun is
refused on load instead of being read as a mix of two runs.
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

from palr_utils.core.constants import MANIFESTS_DIR, METRICS_DIR, STAGES_WITH_MANIFEST
from palr_utils.core.hashing import sha256_file


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


def create_exclusive(path: str | Path, text: str) -> bool:
    """Write ``text`` to ``path`` only if no file is there, atomically: of several processes trying at once,
    exactly one wins (True); the others get False and find the winner's complete file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.link(tmp_name, path)  # fails if path exists; never shows a half-written file
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links here (exFAT, some network and cloud mounts): create-exclusive, then write
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        return True
    finally:
        os.unlink(tmp_name)


def describe_error(error: BaseException, limit: int = 200) -> str:
    """An error's type and the start of its message, for a warning that says why a file is unreadable. torch's
    refusal of a pickle is summarised: its own text advises loading with ``weights_only`` off, which would run
    whatever code a damaged or planted file holds, and that advice is never passed on."""
    text = str(error)
    if "weights_only" in text or "Weights only load failed" in text:
        text = "not a file of plain tensors; it holds pickled objects, which this project never unpickles"
    return f"{type(error).__name__}: {text[:limit]}"


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


class ArtifactDirError(ValueError):
    """ARTIFACT_DIR cannot hold a run's results: the message says what is wrong with it and what to do."""


def prepare_artifact_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and make sure a run can write there, or say what is wrong, once, at the start.

    Catches a path that is a file, lies below a file, is a broken link, cannot be created (read-only, /proc,
    no permission) or cannot be written to, each with its cause instead of an OS error deep inside a run.
    """
    path = Path(path)
    fix = "Set ARTIFACT_DIR to a folder you can write to (or leave it empty for the default under artifacts/)."
    if path.is_symlink() and not path.exists():
        raise ArtifactDirError(f"ARTIFACT_DIR {path} is a symbolic link to {os.readlink(path)}, which does not exist. "
                               f"Create that folder, or remove the link. {fix}")  # fmt: skip
    if path.exists() and not path.is_dir():
        raise ArtifactDirError(f"ARTIFACT_DIR {path} is a file, not a folder. {fix}")
    blocking = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise ArtifactDirError(f"ARTIFACT_DIR {path} lies below {blocking}, which is a file, not a folder. {fix}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise ArtifactDirError(
            f"ARTIFACT_DIR {path} cannot be {'written to' if path.is_dir() else 'created'} "
            f"({error.strerror or error}). {fix}"
        ) from error
    return path


class MissingArtifactError(FileNotFoundError):
    """A stage was started before the stage that produces its inputs."""


class IncompleteArtifactError(MissingArtifactError):
    """A stage's files on disk are not one complete set that it committed together."""


class ArtifactSet:
    """The files one stage writes that belong together, committed with a manifest written last.

    The first write removes the stage's manifest, so from then until :meth:`commit` the set reads as
    incomplete: a rerun stopped after one of its files leaves no old manifest vouching for a mix.
    """

    def __init__(self, artifact_dir: str | Path, stage: str):
        self.artifact_dir, self.stage = Path(artifact_dir), stage
        self.names: list[str] = []

    @property
    def manifest(self) -> Path:
        return manifest_path(self.artifact_dir, self.stage)

    def path(self, name: str) -> Path:
        """Where ``name`` goes; the set is open (uncommitted) from the first call on."""
        if not self.names:
            self.manifest.unlink(missing_ok=True)
        if name not in self.names:
            self.names.append(name)
        return self.artifact_dir / name

    def write_parquet(self, frame: pd.DataFrame, name: str) -> Path:
        return write_parquet(frame, self.path(name))

    def write_json(self, obj: object, name: str) -> Path:
        return write_json(obj, self.path(name))

    def commit(self) -> Path:
        """Record each file's SHA-256: from now on the set is complete, and a file changed later is refused."""
        files = {name: sha256_file(self.artifact_dir / name) for name in self.names}
        return write_json({"stage": self.stage, "sha256": files}, self.manifest)


def manifest_path(artifact_dir: str | Path, stage: str) -> Path:
    return Path(artifact_dir) / MANIFESTS_DIR / f"{stage}.json"


def check_committed(artifact_dir: str | Path, files: list[str], stage: str) -> None:
    """Refuse ``files`` unless ``stage``'s manifest lists each of them with the fingerprint it has now."""
    manifest = manifest_path(artifact_dir, stage)
    rerun = f"Run notebooks/{stage}.ipynb again (to its end) with the same PROFILE, DATASET and ARTIFACT_DIR."
    try:
        recorded = json.loads(manifest.read_text())["sha256"]
    except FileNotFoundError:
        raise IncompleteArtifactError(
            f"{artifact_dir} holds {', '.join(files)} but no record that {stage} finished writing them together "
            f"({manifest} is missing): a run of {stage} stopped while writing them, so they may mix two runs. {rerun}"
        ) from None
    except (ValueError, KeyError, TypeError) as error:
        raise IncompleteArtifactError(f"{manifest} is damaged ({error}). {rerun}") from error
    unlisted = [name for name in files if name not in recorded]
    changed = [name for name in files if name in recorded and sha256_file(Path(artifact_dir) / name) != recorded[name]]
    problems = [f"{', '.join(unlisted)} were not written by the last complete run of {stage}"] if unlisted else []
    problems += [f"{', '.join(changed)} changed after {stage} wrote them"] if changed else []
    if problems:
        raise IncompleteArtifactError(f"In {artifact_dir}, {'; '.join(problems)}. {rerun}")


def require_artifacts(artifact_dir: str | Path, files: list[str], producer: str) -> list[Path]:
    """Return the paths of ``files`` under ``artifact_dir`` or stop with a clear message.

    ``producer`` is the notebook stem that writes them, e.g. ``"01_preprocessing"``. Files of a stage that
    commits its outputs together (:data:`~palr_utils.core.constants.STAGES_WITH_MANIFEST`) must be one committed set.
    """
    paths = [Path(artifact_dir) / name for name in files]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise MissingArtifactError(
            f"Missing {', '.join(missing)} in {artifact_dir}. "
            f"Run notebooks/{producer}.ipynb first with the same PROFILE, DATASET and ARTIFACT_DIR."
        )
    if producer in STAGES_WITH_MANIFEST:
        check_committed(artifact_dir, files, producer)
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
