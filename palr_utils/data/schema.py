"""The canonical schema every data set is reduced to, and line-level validation.

Parsers return a :class:`RawDataset` with the original ids; preprocessing then
maps them to contiguous ids. Malformed input lines are reported with their
line numbers instead of being dropped silently.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from palr_utils.core.constants import ATTRIBUTES, ITEM, TIMESTAMP, TITLE, USER
from palr_utils.core.titles import normalise_title


class DataFormatError(ValueError):
    """An input file does not have the expected format."""


@dataclass
class RawDataset:
    """Interactions (user, item, timestamp[, rating]) and items (item, title, attributes).

    ``users`` holds optional user information (MovieLens' users.dat) keyed by ``user``.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None = None
    source: str = ""  # the file the interactions came from, for messages

    def __post_init__(self) -> None:
        for frame, columns, what in (
            (self.interactions, (USER, ITEM, TIMESTAMP), "interactions"),
            (self.items, (ITEM, TITLE, ATTRIBUTES), "items"),
        ):
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                raise DataFormatError(f"{self.name}: {what} lack the columns {missing}")
        if self.interactions.empty:
            raise DataFormatError(f"{self.name}: the data set has no interactions")


DOWNLOAD_HINT = "The file is probably truncated or corrupt: delete it and download it again, or fix these lines."


def raise_for_bad_lines(
    path: str | Path, bad: Iterable[tuple[int, str]], expected: str, hint: str = DOWNLOAD_HINT
) -> None:
    """Raise one :class:`DataFormatError` listing the first malformed lines, if any.

    ``bad`` holds (1-based line number, line text) pairs; ``hint`` says how to fix it.
    """
    bad = list(bad)
    if not bad:
        return
    shown = "\n".join(f"  line {number}: {text[:120]!r}" for number, text in bad[:5])
    raise DataFormatError(f"{path}: {len(bad)} malformed line(s); expected {expected}. First ones:\n{shown}\n{hint}")


def split_attributes(values: pd.Series, separator: str = "|") -> pd.Series:
    """'Action|Comedy' -> ['Action', 'Comedy']; missing or empty -> []."""
    return values.fillna("").astype(str).map(lambda text: [v for v in text.split(separator) if v])


def normalise_titles(titles: pd.Series, source: str | Path) -> pd.Series:
    """Titles with control characters and line separators as spaces (:func:`palr_utils.core.titles.normalise_title`);
    a warning says how many changed. A title that is empty afterwards counts as missing."""
    cleaned = titles.fillna("").astype(str).map(normalise_title)
    changed = cleaned != titles.fillna("").astype(str).str.strip()
    if changed.any():
        examples = [repr(t[:40]) for t in titles[changed].head(3)]
        warnings.warn(
            f"{source}: {int(changed.sum()):,} title(s) held control characters, line separators or runs of spaces "
            f"(e.g. {', '.join(examples)}); they were replaced by single spaces, since they would split a prompt's "
            "lines.",
            stacklevel=3,
        )
    return cleaned
