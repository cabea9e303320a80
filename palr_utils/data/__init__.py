"""Data sets, reduced to one schema, and the preprocessing artifacts of notebook 01.

``load_raw_dataset(config)`` picks the data set named by ``config.dataset``:

* ``ml-1m``     - MovieLens-1M: an existing folder in DATA_DIR, or downloaded (checksum-verified);
* ``beauty``    - Amazon Beauty 2014 5-core: existing files in DATA_DIR, or downloaded;
* ``custom``    - your own interactions.tsv[.gz] + items.tsv in DATA_DIR;
* ``synthetic`` - generated from the profile's :class:`SyntheticSpec` and the seed.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from palr_utils.constants import ATTRIBUTES, INTERACTIONS_FILE, ITEMS_FILE, USERS_FILE
from palr_utils.data.beauty import META_FILE, REVIEWS_FILE, load_beauty
from palr_utils.data.custom import load_custom
from palr_utils.data.download import BEAUTY_META, BEAUTY_REVIEWS, ML_1M_ZIP, DownloadError, fetch
from palr_utils.data.movielens import find_movielens_folder, load_movielens
from palr_utils.data.preprocessing import ProcessedDataset, preprocess
from palr_utils.data.schema import DataFormatError, RawDataset
from palr_utils.data.synthetic import write_synthetic
from palr_utils.io import atomic_path, require_artifacts, write_parquet
from palr_utils.profiles import RunConfig, SyntheticSpec

__all__ = [
    "DataFormatError",
    "DownloadError",
    "ProcessedDataset",
    "RawDataset",
    "load_processed",
    "load_raw_dataset",
    "preprocess",
    "save_processed",
    "synthetic_folder",
]


def _unzip_movielens(archive: Path, data_dir: Path) -> Path:
    """Unpack ml-1m.zip into DATA_DIR/ml-1m as one atomic rename."""
    target = data_dir / "ml-1m"
    try:
        with zipfile.ZipFile(archive) as bundle, atomic_path(target) as tmp:
            bundle.extractall(tmp)
            inner = tmp / "ml-1m"  # the archive holds one top-level folder
            if inner.is_dir():
                for path in inner.iterdir():
                    path.rename(tmp / path.name)
                inner.rmdir()
    except zipfile.BadZipFile as error:
        raise DownloadError(f"{archive} is not a valid zip file: delete it and run again.") from error
    return target


def synthetic_folder(data_dir: str | Path, spec: SyntheticSpec, seed: int) -> Path:
    """Where the synthetic data for (spec, seed) lives; the name changes when either does."""
    digest = hashlib.sha256(repr(sorted(asdict(spec).items())).encode()).hexdigest()[:8]
    return Path(data_dir) / f"synthetic-seed{seed}-{digest}"


def load_raw_dataset(config: RunConfig) -> RawDataset:
    """Parse the data set that ``config`` names, downloading or generating it if needed."""
    data_dir = config.data_dir
    if config.dataset == "synthetic":
        folder = write_synthetic(
            synthetic_folder(data_dir, config.profile.synthetic, config.seed),
            config.profile.synthetic,
            config.seed,
        )
        return load_movielens(folder, name="synthetic")
    if config.dataset == "custom":
        return load_custom(data_dir)
    if config.dataset == "ml-1m":
        folder = find_movielens_folder(data_dir)
        if folder is None:
            folder = _unzip_movielens(fetch(ML_1M_ZIP, data_dir), data_dir)
        return load_movielens(folder)
    if config.dataset == "beauty":
        for remote, name in ((BEAUTY_REVIEWS, REVIEWS_FILE), (BEAUTY_META, META_FILE)):
            if not (data_dir / name).exists():
                fetch(remote, data_dir)
        return load_beauty(data_dir)
    raise ValueError(f"Unknown DATASET {config.dataset!r}")


def save_processed(processed: ProcessedDataset, artifact_dir: str | Path) -> list[Path]:
    """Write the three parquet artifacts of notebook 01 (each atomically)."""
    artifact_dir = Path(artifact_dir)
    return [
        write_parquet(processed.interactions, artifact_dir / INTERACTIONS_FILE),
        write_parquet(processed.items, artifact_dir / ITEMS_FILE),
        write_parquet(processed.users, artifact_dir / USERS_FILE),
    ]


def load_processed(artifact_dir: str | Path) -> ProcessedDataset:
    """Read notebook 01's artifacts, or say to run notebook 01 first."""
    interactions, items, users = require_artifacts(
        artifact_dir, [INTERACTIONS_FILE, ITEMS_FILE, USERS_FILE], producer="01_preprocessing"
    )
    items_frame = pd.read_parquet(items)
    items_frame[ATTRIBUTES] = items_frame[ATTRIBUTES].map(list)  # parquet gives numpy arrays
    return ProcessedDataset(pd.read_parquet(interactions), items_frame, pd.read_parquet(users))
