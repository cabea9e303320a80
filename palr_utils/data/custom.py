"""Bring your own data: ``interactions.tsv[.gz]`` and ``items.tsv`` in one folder.

| file | columns |
| --- | --- |
| interactions.tsv or interactions.tsv.gz | user_id, item_id, timestamp, optional rating |
| items.tsv | item_id, title, optional genres ('|'-separated) |

``timestamp`` only has to order one user's interactions; it need not be Unix time.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from palr_utils.constants import ATTRIBUTES, ITEM, RATING, TIMESTAMP, TITLE, USER
from palr_utils.data.schema import DataFormatError, RawDataset, raise_for_bad_lines, split_attributes

INTERACTION_COLUMNS = ["user_id", "item_id", "timestamp"]
FIX_HINT = "Fix these lines in your file (see data/README.md for the format)."
ITEM_COLUMNS = ["item_id", "title"]


def _ids(values: pd.Series) -> pd.Series:
    """Integer ids when every id is a whole number (so they sort numerically), text otherwise."""
    as_numbers = pd.to_numeric(values, errors="coerce")
    if as_numbers.notna().all() and (as_numbers % 1 == 0).all():
        return as_numbers.astype("int64")
    return values.astype(str)


def _read_tsv(path: Path, required: list[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.ParserError as error:
        raise DataFormatError(f"{path} is not a valid tab-separated file: {error}") from error
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataFormatError(
            f"{path} lacks the column(s) {missing}; it has {list(frame.columns)}. "
            f"The first line must be a tab-separated header with {required}."
        )
    empty = frame[required].eq("").any(axis=1).to_numpy().nonzero()[0]
    # +2: one for the header line, one because line numbers start at 1
    raise_for_bad_lines(path, [(i + 2, "\t".join(frame.iloc[i])) for i in empty], f"values for {required}", FIX_HINT)
    return frame


def load_custom(folder: str | Path) -> RawDataset:
    """Parse a custom data folder into the canonical schema."""
    folder = Path(folder)
    candidates = [folder / "interactions.tsv", folder / "interactions.tsv.gz"]
    interactions_path = next((p for p in candidates if p.exists()), None)
    if interactions_path is None or not (folder / "items.tsv").exists():
        raise FileNotFoundError(
            f"DATASET='custom' needs interactions.tsv (or .tsv.gz) and items.tsv in {folder}; "
            "see palr_utils/data/custom.py or data/README.md for the columns."
        )
    raw = _read_tsv(interactions_path, INTERACTION_COLUMNS)
    timestamps = pd.to_numeric(raw["timestamp"], errors="coerce")
    raise_for_bad_lines(
        interactions_path,
        [(i + 2, "\t".join(raw.iloc[i])) for i in timestamps.isna().to_numpy().nonzero()[0]],
        "a numeric timestamp",
        FIX_HINT,
    )
    interactions = pd.DataFrame(
        {USER: _ids(raw["user_id"]), ITEM: _ids(raw["item_id"]), TIMESTAMP: timestamps.to_numpy()}
    )
    if "rating" in raw.columns:
        interactions[RATING] = pd.to_numeric(raw["rating"], errors="coerce")

    item_table = _read_tsv(folder / "items.tsv", ITEM_COLUMNS)
    items = pd.DataFrame({ITEM: _ids(item_table["item_id"]), TITLE: item_table["title"]})
    genres = item_table["genres"] if "genres" in item_table.columns else pd.Series("", index=item_table.index)
    items[ATTRIBUTES] = split_attributes(genres)

    unknown = set(interactions[ITEM].unique()) - set(items[ITEM])
    if unknown:
        example = sorted(map(str, unknown))[:5]
        raise DataFormatError(
            f"{len(unknown)} item_id(s) in {interactions_path.name} are missing from items.tsv "
            f"(e.g. {example}); every item needs a title."
        )
    return RawDataset(name="custom", interactions=interactions, items=items)
