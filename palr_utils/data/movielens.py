"""MovieLens-1M: ``ratings.dat``, ``movies.dat`` and (optional) ``users.dat``.

The files are ``::``-separated and latin-1 encoded (titles such as
"Misérables, Les (1995)"). The synthetic data set writes the same format, so
this parser is exercised offline by the tests.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from palr_utils.core.constants import ATTRIBUTES, ITEM, RATING, TIMESTAMP, TITLE, USER
from palr_utils.data.schema import DataFormatError, RawDataset, raise_for_bad_lines, split_attributes

RATINGS_COLUMNS = [USER, ITEM, RATING, TIMESTAMP]
MOVIES_COLUMNS = [ITEM, TITLE, "genres"]
USERS_COLUMNS = [USER, "gender", "age", "occupation", "zip_code"]
# Records in each file of the published MovieLens-1M (its README): how a folder unpacked by hand is checked.
ML_1M_RECORDS = {"ratings.dat": 1_000_209, "movies.dat": 3_883, "users.dat": 6_040}


def read_dat(path: str | Path, columns: list[str], integer_columns: list[str]) -> pd.DataFrame:
    """Read a ``::``-separated MovieLens file, checking every line.

    Lines with the wrong number of fields, or with text where a number belongs,
    are reported together with their line numbers.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    rows, line_numbers, bad = [], [], []
    with open(path, encoding="latin-1") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("::")
            if len(fields) != len(columns):
                bad.append((number, line))
                continue
            rows.append(fields)
            line_numbers.append(number)
    expected = "::".join(columns)
    raise_for_bad_lines(path, bad, expected)
    frame = pd.DataFrame(rows, columns=columns)
    for column in integer_columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        not_numbers = values.isna().to_numpy().nonzero()[0]
        raise_for_bad_lines(
            path,
            [(line_numbers[i], "::".join(rows[i])) for i in not_numbers],
            f"{expected} with an integer {column}",
        )
        frame[column] = values.astype("int64")
    if frame.empty:
        raise DataFormatError(f"{path} holds no records")
    return frame


def load_movielens(folder: str | Path, name: str = "ml-1m") -> RawDataset:
    """Parse a MovieLens-1M folder into the canonical schema (original ids)."""
    folder = Path(folder)
    ratings = read_dat(folder / "ratings.dat", RATINGS_COLUMNS, [USER, ITEM, RATING, TIMESTAMP])
    movies = read_dat(folder / "movies.dat", MOVIES_COLUMNS, [ITEM])
    movies[ATTRIBUTES] = split_attributes(movies.pop("genres"))
    users = None
    if (folder / "users.dat").exists():
        users = read_dat(folder / "users.dat", USERS_COLUMNS, [USER, "age", "occupation"])
    return RawDataset(name=name, interactions=ratings, items=movies, users=users, source=str(folder / "ratings.dat"))


def find_movielens_folder(data_dir: str | Path) -> Path | None:
    """Return the folder holding ratings.dat in ``data_dir`` or ``data_dir/ml-1m``."""
    for candidate in (Path(data_dir), Path(data_dir) / "ml-1m"):
        if (candidate / "ratings.dat").exists():
            return candidate
    return None


# users.dat codes, from the MovieLens-1M README
AGE_GROUPS = {1: "under 18", 18: "18-24", 25: "25-34", 35: "35-44", 45: "45-49", 50: "50-55", 56: "56 or older"}
OCCUPATIONS = [
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer", "programmer",
    "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
    "unemployed", "writer",
]  # fmt: skip


def describe_movielens_user(gender: str, age: int, occupation: int) -> str:
    """'female, aged 25-34, programmer' from users.dat codes (unknown codes are left out)."""
    parts = [{"F": "female", "M": "male"}.get(gender, "")]
    parts.append(f"aged {AGE_GROUPS[age]}" if age in AGE_GROUPS else "")
    parts.append(OCCUPATIONS[occupation] if 0 <= occupation < len(OCCUPATIONS) else "")
    return ", ".join(p for p in parts if p)
