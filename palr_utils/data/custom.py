"""Bring your own data: ``interactions.tsv[.gz]`` and ``items.tsv`` in one folder.

| file | columns |
| --- | --- |
| interactions.tsv or interactions.tsv.gz | user_id, item_id, timestamp, optional rating |
| items.tsv | item_id, title, optional genres ('|'-separated) |

Every line is checked and a bad one is reported with its file and line number; nothing is dropped,
merged or re-typed without a word. The rules (data/README.md says the same for users):

* regular files (not folders, pipes or broken links), tab-separated, one header line, UTF-8 (a BOM is fine;
  UTF-16 with its BOM, as spreadsheets export "Unicode text", is read too; Latin-1 is read with a warning),
  ``.gz`` allowed for the interactions; no quoting: a title is the text between two tabs, quote characters
  included; control characters and line separators inside a title become spaces (with a warning);
* ``timestamp`` is any finite number that orders one user's interactions (it need not be Unix time), integers
  within 64 bits, in one unit: a user whose Unix-like timestamps differ more than 100-fold (seconds beside
  milliseconds) is refused, since sorting them would reorder the history;
* ids are compared as text; they are used as integers (so that they sort numerically) only when every
  id of the kind is written as a plain integer that fits in 64 bits (``7``, not ``007``, in both files);
* an item listed twice must have the same title both times;
* the file must end with a line break, so that a file cut short cannot pass for a complete one;
* items without a title follow ``missing_titles`` (see :data:`MISSING_TITLE_POLICIES`).
"""

from __future__ import annotations

import codecs
import gzip
import os
import re
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from palr_utils.core.constants import ATTRIBUTES, ITEM, RATING, TIMESTAMP, TITLE, USER
from palr_utils.data.schema import (
    DataFormatError,
    RawDataset,
    normalise_titles,
    raise_for_bad_lines,
    split_attributes,
)

INTERACTION_COLUMNS = ["user_id", "item_id", "timestamp"]
ITEM_COLUMNS = ["item_id", "title"]
FIX_HINT = "Fix these lines in your file (see data/README.md for the format)."
LINE = "_line"  # the 1-based line number of each record, kept for error messages

# What to do with interacted items that have no title (no row in items.tsv, or an empty title):
MISSING_TITLE_POLICIES = {
    "placeholder": "keep them, with the item id as their title (the LLM then reads the id)",
    "drop": "remove them and their interactions before the 5-core filter",
    "error": "stop with an error",
}
_PLAIN_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
INT64 = (-(2**63), 2**63 - 1)
# Unix-like timestamps (from 1973 in seconds) of one user that differ more than this factor mix units
UNIX_LIKE, MIXED_UNITS_RATIO = 1e8, 100.0


def check_input_file(path: Path) -> None:
    """Refuse, with what to do, a path that cannot be read as a data file: a folder, a broken link, a pipe."""
    if path.is_symlink() and not path.exists():
        raise DataFormatError(
            f"{path} is a symbolic link to {os.readlink(path)}, which does not exist. Point the link at the file, "
            "or copy the file there."
        )
    if path.is_dir():
        raise DataFormatError(f"{path} is a folder, not a file: put the tab-separated file itself there.")
    if not path.is_file():
        raise DataFormatError(
            f"{path} is not a regular file (a pipe, socket or device; reading it could wait forever). Save the "
            "data to a file first."
        )


def _decode(path: Path, raw: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with its BOM; Latin-1, as MovieLens' own files are, with a warning that
    names the line. Many zero bytes without a BOM (UTF-16 or UTF-32 without one, or a binary file) are refused."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and not raw.startswith(codecs.BOM_UTF32_LE):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as error:
            raise DataFormatError(f"{path} starts like UTF-16 but is not valid UTF-16 ({error}).") from error
    sample = raw[:4096]
    if sample.count(0) > len(sample) // 10:  # a stray NUL in a title is cleaned later; this many mean another encoding
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise DataFormatError(
            f"{path} holds zero bytes (first on line {line}): it is UTF-16 or UTF-32 without a byte-order mark, or "
            f"not a text file. Convert it to UTF-8, e.g. `iconv -f utf-16 -t utf-8 {path.name} > {path.stem}.utf8`."
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        warnings.warn(
            f"{path} is not UTF-8 (line {line} holds the byte {raw[error.start]:#x}); reading it as Latin-1. "
            "If titles look wrong, convert the file to UTF-8 (e.g. `iconv -f cp1252 -t utf-8`).",
            stacklevel=3,
        )
        return raw.decode("latin-1")


def _read_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read()
    except (EOFError, OSError, zlib.error) as error:  # truncated, corrupt, or not gzip at all
        raise DataFormatError(
            f"{path} is not a complete gzip file ({type(error).__name__}: {error}). It was probably cut short while "
            "copying or compressing: compress the original again (`gzip -k interactions.tsv`) or use the "
            "uncompressed interactions.tsv."
        ) from error


def read_tsv(path: str | Path, required: list[str]) -> pd.DataFrame:
    """Read a tab-separated file with a header into text columns, checking every line.

    No quote processing (a title may start with a quote), blank lines are skipped, and each record keeps its
    line number in the column ``_line``. Wrong field counts, empty required values and a missing final line
    break (a file cut short) raise :class:`DataFormatError` with the line numbers.
    """
    path = Path(path)
    check_input_file(path)
    text = _decode(path, _read_bytes(path))
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        raise DataFormatError(
            f"{path}: the last line ({len(lines)}) does not end with a line break, so the file may have been cut "
            f"short mid-record: {lines[-1][:120]!r}. If that line is complete, add a line break at the end of the "
            "file; otherwise copy the file again."
        )
    numbered = [(n, line.rstrip("\r")) for n, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise DataFormatError(f"{path} is empty; it needs a header line with {required} and at least one record.")
    (_, header_line), *body = numbered
    header = [name.strip() for name in header_line.split("\t")]
    missing = [c for c in required if c not in header]
    if missing:
        raise DataFormatError(
            f"{path} lacks the column(s) {missing}; it has {header}. "
            f"The first line must be a tab-separated header with {required}."
        )
    if len(set(header)) != len(header):
        raise DataFormatError(f"{path}: the header names a column twice: {header}")
    rows, bad = [], []
    for number, line in body:
        fields = [field.strip() for field in line.split("\t")]
        if len(fields) != len(header) or any(fields[header.index(c)] == "" for c in required if c != "title"):
            bad.append((number, line))
        else:
            rows.append([*fields, number])
    raise_for_bad_lines(path, bad, f"{len(header)} tab-separated values ({', '.join(header)}), none empty", FIX_HINT)
    if not rows:
        raise DataFormatError(f"{path} has a header but no records.")
    return pd.DataFrame(rows, columns=[*header, LINE])


def typed_ids(*columns: pd.Series) -> list[pd.Series]:
    """Integer ids when every value in ``columns`` is a plain integer, else the same text for all.

    Deciding for both files at once keeps them comparable (one text id in items.tsv no longer turns only that
    file's ids into text); "007" and "7" stay two ids, because "007" is not a plain integer.
    """
    together = pd.concat(columns, ignore_index=True)
    if together.str.fullmatch(_PLAIN_INTEGER.pattern).all() and _fit_int64(together.unique()):
        return [column.astype("int64") for column in columns]
    return [column.astype(str) for column in columns]


def _fit_int64(texts) -> bool:
    return all(INT64[0] <= int(text) <= INT64[1] for text in texts)


def _numbers(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """A finite number per line, or an error naming the lines that are not (integers beyond 64 bits included:
    they would turn the column into floats, which cannot tell nanosecond timestamps apart)."""
    texts = frame[column]
    plain = texts.str.fullmatch(_PLAIN_INTEGER.pattern)
    too_big = plain & ~texts.where(plain, "0").map(lambda text: _fit_int64([text]))
    values = pd.to_numeric(texts.where(~too_big), errors="coerce")
    bad = ~np.isfinite(values.astype("float64"))  # text (NaN after coercion), inf and -inf, too big
    shown = frame.loc[bad].drop(columns=LINE)
    raise_for_bad_lines(
        path,
        [(int(n), "\t".join(row)) for n, row in zip(frame.loc[bad, LINE], shown.values.tolist(), strict=True)],
        f"a finite, numeric {column} (integers within 64 bits)",
        FIX_HINT,
    )
    return values


def _refuse_mixed_units(interactions: pd.DataFrame, lines: pd.Series, path: Path) -> None:
    """Refuse users whose Unix-like timestamps differ more than 100-fold: seconds beside milliseconds, which
    sorting would silently reorder (the test item would become an early event)."""
    stamps = interactions[TIMESTAMP].astype("float64")
    unix_like = interactions[USER].where(stamps >= UNIX_LIKE).dropna().unique()
    frame = interactions.assign(_stamp=stamps, _line=lines.to_numpy())
    frame = frame[frame[USER].isin(unix_like) & (frame["_stamp"] >= UNIX_LIKE)]  # order keys below stay out
    if frame.empty:
        return
    grouped = frame.groupby(USER)["_stamp"]
    ratio = grouped.max() / grouped.min()
    mixed = ratio[ratio > MIXED_UNITS_RATIO].index
    if not len(mixed):
        return
    shown = []
    for user in list(mixed)[:3]:
        rows = frame[frame[USER] == user].sort_values("_stamp")
        low, high = rows.iloc[0], rows.iloc[-1]
        shown.append(f"  user {user}: line {int(low['_line'])} has {low[TIMESTAMP]}, line {int(high['_line'])} "
                     f"has {high[TIMESTAMP]}")  # fmt: skip
    raise DataFormatError(
        f"{path}: the timestamps of {len(mixed):,} user(s) differ more than {MIXED_UNITS_RATIO:.0f}-fold, which "
        "looks like two units mixed (seconds and milliseconds); sorted as they are, those histories would be "
        "reordered.\n" + "\n".join(shown) + "\nWrite every timestamp in one unit (e.g. divide milliseconds by 1000)."
    )


def _one_title_per_item(items: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Drop exact repeats of an item row; an item listed with two different titles is an error."""
    items = items.drop_duplicates([ITEM, TITLE, "genres"])
    clash = items[items[ITEM].duplicated(keep=False)]
    raise_for_bad_lines(
        path,
        [(int(n), f"{item}\t{title}") for n, item, title in zip(clash[LINE], clash[ITEM], clash[TITLE], strict=True)],
        "one row per item_id (these item ids are listed with different titles or genres)",
        "Keep one row per item_id.",
    )
    return items


def _handle_missing_titles(
    interactions: pd.DataFrame, items: pd.DataFrame, policy: str, interactions_path: Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply ``policy`` to interacted items without a title; say what was done, never silently."""
    titled = set(items.loc[items[TITLE] != "", ITEM])
    interacted = interactions[ITEM].unique()
    untitled = sorted((i for i in interacted if i not in titled), key=str)
    if not untitled:
        return interactions, items
    if len(untitled) == len(interacted):
        raise DataFormatError(
            f"None of the {len(interacted):,} items in {interactions_path.name} has a title in items.tsv: the LLM "
            "reads titles, so items.tsv needs an item_id and a title for (at least most of) them."
        )
    affected = interactions[ITEM].isin(untitled)
    what = (
        f"{len(untitled):,} of {len(interacted):,} interacted item(s) ({int(affected.sum()):,} interactions) have no "
        f"title in items.tsv (e.g. {[str(i) for i in untitled[:5]]})"
    )
    if policy == "error":
        raise DataFormatError(f"{what}. Add their titles, or choose missing_titles='placeholder' or 'drop'.")
    if policy == "drop":
        warnings.warn(f"{what}; dropping them and their interactions (missing_titles='drop').", stacklevel=3)
        return interactions[~affected].reset_index(drop=True), items[~items[ITEM].isin(untitled)]
    warnings.warn(
        f"{what}; their id stands in for the title (missing_titles='placeholder'; 'drop' removes them instead).",
        stacklevel=3,
    )
    items = items[~items[ITEM].isin(untitled)]
    placeholders = pd.DataFrame({ITEM: untitled, TITLE: [str(i) for i in untitled], "genres": ""})
    return interactions, pd.concat([items, placeholders], ignore_index=True)


def interactions_file(folder: Path) -> Path:
    """The one interactions file in ``folder``; both or neither of .tsv and .tsv.gz is an error."""
    # a broken link counts as present: check_input_file then says what it points to
    present = [p for p in (folder / "interactions.tsv", folder / "interactions.tsv.gz") if p.exists() or p.is_symlink()]
    if len(present) == 2:
        raise DataFormatError(
            f"{folder} holds both interactions.tsv and interactions.tsv.gz; which one is meant is unclear. "
            "Remove or rename one of them."
        )
    if not present or not ((folder / "items.tsv").exists() or (folder / "items.tsv").is_symlink()):
        raise FileNotFoundError(
            f"DATASET='custom' needs interactions.tsv (or .tsv.gz) and items.tsv in {folder}; "
            "see data/README.md for the columns."
        )
    return present[0]


def load_custom(folder: str | Path, missing_titles: str = "placeholder") -> RawDataset:
    """Parse a custom data folder into the canonical schema (see the module docstring for the rules)."""
    if missing_titles not in MISSING_TITLE_POLICIES:
        raise ValueError(f"missing_titles must be one of {list(MISSING_TITLE_POLICIES)}, not {missing_titles!r}")
    folder = Path(folder)
    interactions_path, items_path = interactions_file(folder), folder / "items.tsv"
    raw = read_tsv(interactions_path, INTERACTION_COLUMNS)
    item_table = read_tsv(items_path, ITEM_COLUMNS)
    item_table["title"] = normalise_titles(item_table["title"], items_path)  # empty afterwards: missing
    if "genres" not in item_table.columns:
        item_table["genres"] = ""

    interaction_items, listed_items = typed_ids(raw["item_id"], item_table["item_id"])
    (users,) = typed_ids(raw["user_id"])
    interactions = pd.DataFrame(
        {USER: users, ITEM: interaction_items, TIMESTAMP: _numbers(raw, "timestamp", interactions_path)}
    )
    _refuse_mixed_units(interactions, raw[LINE], interactions_path)
    if "rating" in raw.columns:  # optional: only notebook 01's description of the data reads it
        interactions[RATING] = _numbers(raw, "rating", interactions_path)

    items = pd.DataFrame(
        {ITEM: listed_items, TITLE: item_table["title"], "genres": item_table["genres"], LINE: item_table[LINE]}
    )
    items = _one_title_per_item(items, items_path)
    interactions, items = _handle_missing_titles(interactions, items, missing_titles, interactions_path)
    items = items.reset_index(drop=True)
    items[ATTRIBUTES] = split_attributes(items.pop("genres"))
    return RawDataset(
        name="custom", interactions=interactions, items=items[[ITEM, TITLE, ATTRIBUTES]], source=str(interactions_path)
    )
