"""Data sets, reduced to one schema, and the preprocessing artifacts of notebook 01.

``load_raw_dataset(config)`` picks the data set named by ``config.dataset``:

* ``ml-1m``     - MovieLens-1M: an existing folder in DATA_DIR, or downloaded (checksum-verified);
* ``beauty``    - Amazon Beauty 2014 5-core: existing files in DATA_DIR, or downloaded;
* ``custom``    - your own interactions.tsv[.gz] + items.tsv in DATA_DIR;
* ``synthetic`` - generated from the run preset's :class:`SyntheticConfig` and the seed.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from palr_utils.core.constants import ATTRIBUTES, DOMAINS, INTERACTIONS_FILE, ITEMS_FILE, NOTEBOOKS, USERS_FILE
from palr_utils.core.hashing import sha256_file, sha256_hex
from palr_utils.core.io import ArtifactSet, atomic_path, require_artifacts, write_json
from palr_utils.core.paper import paper_dataset
from palr_utils.data.beauty import META_FILE, REVIEWS_FILE, load_beauty
from palr_utils.data.custom import MISSING_TITLE_POLICIES, load_custom
from palr_utils.data.download import BEAUTY_META, BEAUTY_REVIEWS, ML_1M_ZIP, DownloadError, fetch
from palr_utils.data.movielens import ML_1M_RECORDS, find_movielens_folder, load_movielens
from palr_utils.data.preprocessing import ProcessedDataset, data_statistics, preprocess
from palr_utils.data.schema import DataFormatError, RawDataset
from palr_utils.data.synthetic import SyntheticConfig, write_synthetic

if TYPE_CHECKING:  # the run settings sit above the data layer: imported for annotations only
    from palr_utils.presets import RunConfig

__all__ = [
    "DataFormatError",
    "DownloadError",
    "MISSING_TITLE_POLICIES",
    "ProcessedDataset",
    "RawDataset",
    "data_statistics",
    "describe_dataset",
    "load_processed",
    "load_raw_dataset",
    "preprocess",
    "save_processed",
    "synthetic_folder",
]


UNPACKED_MANIFEST = "unpacked_from_verified_zip.json"


def _unzip_movielens(archive: Path, data_dir: Path) -> Path:
    """Unpack ml-1m.zip into DATA_DIR/ml-1m as one atomic rename, with the SHA-256 of every file it holds."""
    target = data_dir / "ml-1m"
    try:
        with zipfile.ZipFile(archive) as bundle, atomic_path(target) as tmp:
            bundle.extractall(tmp)
            inner = tmp / "ml-1m"  # the archive holds one top-level folder
            if inner.is_dir():
                for path in inner.iterdir():
                    path.rename(tmp / path.name)
                inner.rmdir()
            hashes = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.suffix == ".dat"}
            write_json({"archive": archive.name, "sha256": hashes}, tmp / UNPACKED_MANIFEST)
    except zipfile.BadZipFile as error:
        raise DownloadError(f"{archive} is not a valid zip file: delete it and run again.") from error
    return target


def _check_movielens_folder(folder: Path, raw: RawDataset) -> None:
    """Make sure an unpacked ``ml-1m`` folder is the complete MovieLens-1M.

    A folder this code unpacked from the checksum-verified zip carries the hash of each file, checked again
    here; any other folder (unpacked by hand) must hold exactly MovieLens-1M's published record counts. A
    ``ratings.dat`` cut at a line boundary, or other data in MovieLens' format, is refused rather than used.
    """
    manifest = folder / UNPACKED_MANIFEST
    if manifest.exists():
        expected = json.loads(manifest.read_text())["sha256"]
        changed = [name for name, digest in expected.items() if sha256_file(folder / name) != digest]
        if changed:
            raise DataFormatError(
                f"{', '.join(changed)} in {folder} changed since they were unpacked from the verified zip. "
                f"Delete {folder} (the zip next to it is unpacked again)."
            )
        return
    counts = {"ratings.dat": len(raw.interactions), "movies.dat": len(raw.items)}
    if raw.users is not None:
        counts["users.dat"] = len(raw.users)
    wrong = {name: n for name, n in counts.items() if n != ML_1M_RECORDS[name]}
    if wrong:
        found = ", ".join(f"{name} has {n:,} records, MovieLens-1M {ML_1M_RECORDS[name]:,}"
                          for name, n in wrong.items())
        raise DataFormatError(
            f"{folder} is not the complete MovieLens-1M ({found}): a file was cut short, or this is other data in "
            f"MovieLens' format. Delete the folder to download MovieLens-1M again, or use DATASET='custom' for "
            "other data (data/README.md)."
        )


def synthetic_folder(data_dir: str | Path, spec: SyntheticConfig, seed: int) -> Path:
    """Where the synthetic data for (spec, seed) lives; the name changes when either does."""
    digest = sha256_hex([repr(sorted(asdict(spec).items()))], length=8)
    return Path(data_dir) / f"synthetic-seed{seed}-{digest}"


def load_raw_dataset(config: RunConfig, missing_titles: str = "placeholder") -> RawDataset:
    """Parse the data set that ``config`` names, downloading or generating it if needed.

    ``missing_titles`` says what happens to custom data's items without a title (:data:`MISSING_TITLE_POLICIES`).
    """
    data_dir = config.data_dir
    if config.dataset == "synthetic":
        folder = write_synthetic(
            synthetic_folder(data_dir, config.preset.synthetic, config.seed),
            config.preset.synthetic,
            config.seed,
        )
        return load_movielens(folder, name="synthetic")
    if config.dataset == "custom":
        return load_custom(data_dir, missing_titles)
    if config.dataset == "ml-1m":
        folder = find_movielens_folder(data_dir)
        if folder is None:
            folder = _unzip_movielens(fetch(ML_1M_ZIP, data_dir), data_dir)
        raw = load_movielens(folder)
        _check_movielens_folder(folder, raw)
        return raw
    if config.dataset == "beauty":
        for remote, name in ((BEAUTY_REVIEWS, REVIEWS_FILE), (BEAUTY_META, META_FILE)):
            if not (data_dir / name).exists():
                fetch(remote, data_dir)
        return load_beauty(data_dir)
    raise ValueError(f"Unknown DATASET {config.dataset!r}")


DATASET_INFO_FILE = "dataset_info.json"
DECLARATION_FILE = "dataset.json"  # optional, in a custom data folder: {"domain": "book"}


def _declared_domain(data_dir: Path) -> str | None:
    path = data_dir / DECLARATION_FILE
    if not path.exists():
        return None
    try:
        domain = json.loads(path.read_text()).get("domain")
    except (json.JSONDecodeError, AttributeError) as error:
        raise DataFormatError(f'{path} must be a JSON object such as {{"domain": "book"}} ({error})') from error
    if domain not in DOMAINS:
        raise DataFormatError(f"{path}: domain must be one of {list(DOMAINS)}, not {domain!r}")
    return domain


def describe_dataset(config: RunConfig, processed: ProcessedDataset) -> dict:
    """What later stages need to know about the data, decided once in notebook 01.

    ``paper_dataset``: ml-1m or beauty when the counts are the paper's Table 1 (a download or a custom copy;
    None otherwise, a sample of either included). ``domain``: how prompts speak of the items (movies are
    watched, products bought), declared in a custom folder's ``dataset.json`` or taken from the data set;
    plain "items" when unknown.
    ``statistics``: history lengths, interactions per item and density, from which the ``cpu`` preset picks
    the retrieval settings of data it does not recognise (``RunPreset.for_data``).
    """
    known = paper_dataset(config.dataset, processed.n_users, processed.n_items, processed.n_interactions)
    declared = _declared_domain(config.data_dir) if config.dataset == "custom" else None
    # the synthetic data imitates MovieLens; a sample of MovieLens-1M is not the paper's data, but holds movies
    default = {"ml-1m": "movie", "beauty": "product", "synthetic": "movie"}.get(known or config.dataset, "item")
    statistics = data_statistics(processed.interactions, processed.n_users, processed.n_items)
    return {"dataset": config.dataset, "paper_dataset": known, "domain": declared or default, "statistics": statistics}


def save_processed(processed: ProcessedDataset, artifact_dir: str | Path) -> list[Path]:
    """Write the three parquet artifacts of notebook 01 and the data set's description, each atomically, and
    commit them as one set (a manifest last): a rerun stopped half-way leaves a set that loading refuses."""
    files = ArtifactSet(artifact_dir, NOTEBOOKS[0])
    paths = [
        files.write_parquet(processed.interactions, INTERACTIONS_FILE),
        files.write_parquet(processed.items, ITEMS_FILE),
        files.write_parquet(processed.users, USERS_FILE),
        files.write_json(processed.info, DATASET_INFO_FILE),
    ]
    files.commit()
    return paths


def load_processed(artifact_dir: str | Path) -> ProcessedDataset:
    """Read notebook 01's artifacts, or say to run notebook 01 first."""
    interactions, items, users, info = require_artifacts(
        artifact_dir, [INTERACTIONS_FILE, ITEMS_FILE, USERS_FILE, DATASET_INFO_FILE], producer="01_preprocessing"
    )
    items_frame = pd.read_parquet(items)
    items_frame[ATTRIBUTES] = items_frame[ATTRIBUTES].map(list)  # parquet gives numpy arrays
    return ProcessedDataset(
        pd.read_parquet(interactions), items_frame, pd.read_parquet(users), json.loads(info.read_text())
    )
