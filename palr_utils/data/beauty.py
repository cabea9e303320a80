"""Amazon Beauty (2014 release, 5-core reviews plus product metadata).

``reviews_Beauty_5.json.gz`` holds one JSON object per line. ``meta_Beauty.json.gz``
holds one *Python literal* per line (single quotes), which JSON cannot read; we
parse it with :func:`ast.literal_eval`, which accepts literals only and never
runs code. Item text is "ASIN (title)", as in the PALR paper.
"""

from __future__ import annotations

import ast
import contextlib
import gzip
import json
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from palr_utils.core.constants import ATTRIBUTES, ITEM, RATING, TIMESTAMP, TITLE, USER
from palr_utils.data.schema import DataFormatError, RawDataset, normalise_titles, raise_for_bad_lines

REVIEWS_FILE = "reviews_Beauty_5.json.gz"
META_FILE = "meta_Beauty.json.gz"
_REVIEW_FIELDS = {"reviewerID": USER, "asin": ITEM, "overall": RATING, "unixReviewTime": TIMESTAMP}


@contextlib.contextmanager
def _gzip_lines(path: str | Path) -> Iterator[Iterator[tuple[int, str]]]:
    """Numbered lines of a .gz file; a truncated or corrupt file raises a :class:`DataFormatError` naming it."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            yield enumerate(handle, start=1)
    except (EOFError, OSError, zlib.error, UnicodeDecodeError) as error:
        raise DataFormatError(
            f"{path} cannot be read to the end ({type(error).__name__}: {error}): the file is truncated or corrupt. "
            "Delete it so that it is downloaded again, or copy it again."
        ) from error


def read_reviews(path: str | Path) -> pd.DataFrame:
    """One row per review: user, item, rating, timestamp (Unix seconds)."""
    rows, bad = [], []
    with _gzip_lines(path) as lines:
        for number, line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                rows.append({ours: record[theirs] for theirs, ours in _REVIEW_FIELDS.items()})
            except (json.JSONDecodeError, KeyError, TypeError):
                bad.append((number, line.strip()))
    raise_for_bad_lines(path, bad, f"a JSON object with {sorted(_REVIEW_FIELDS)}")
    frame = pd.DataFrame(rows)
    frame[TIMESTAMP] = frame[TIMESTAMP].astype("int64")
    return frame


def _categories(record: dict) -> list[str]:
    """Flatten the category paths, dropping the top-level 'Beauty' they all share."""
    seen: list[str] = []
    for path in record.get("categories", []) or []:
        for category in path:
            if category != "Beauty" and category not in seen:
                seen.append(category)
    return seen


def read_meta(path: str | Path) -> pd.DataFrame:
    """One row per product: item (ASIN), title ("ASIN (title)"), attributes (categories)."""
    rows, bad = [], []
    with _gzip_lines(path) as lines:
        for number, line in lines:
            if not line.strip():
                continue
            try:
                record = ast.literal_eval(line)
                asin = record["asin"]
            except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError):
                bad.append((number, line.strip()))
                continue
            rows.append({ITEM: asin, TITLE: str(record.get("title") or ""), ATTRIBUTES: _categories(record)})
    raise_for_bad_lines(path, bad, "a Python dict literal with an 'asin' key")
    meta = pd.DataFrame(rows, columns=[ITEM, TITLE, ATTRIBUTES])
    names = normalise_titles(meta[TITLE], path)
    meta[TITLE] = [f"{asin} ({name})" if name else asin for asin, name in zip(meta[ITEM], names, strict=True)]
    return meta


def load_beauty(folder: str | Path) -> RawDataset:
    """Parse the two Beauty files in ``folder``; products without metadata keep their ASIN as title."""
    folder = Path(folder)
    reviews = read_reviews(folder / REVIEWS_FILE)
    meta = read_meta(folder / META_FILE).drop_duplicates(ITEM)
    reviewed = pd.DataFrame({ITEM: reviews[ITEM].unique()})
    items = reviewed.merge(meta, on=ITEM, how="left")
    no_meta = items[TITLE].isna()
    if no_meta.any():
        warnings.warn(
            f"{int(no_meta.sum()):,} reviewed product(s) have no entry in {META_FILE} (e.g. "
            f"{items.loc[no_meta, ITEM].head(5).tolist()}); their ASIN stands in for the title.",
            stacklevel=2,
        )
    items.loc[no_meta, TITLE] = items.loc[no_meta, ITEM]
    items[ATTRIBUTES] = [value if isinstance(value, list) else [] for value in items[ATTRIBUTES]]
    return RawDataset(name="beauty", interactions=reviews, items=items, source=str(folder / REVIEWS_FILE))
