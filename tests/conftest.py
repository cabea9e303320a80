"""Shared fixtures (small hand-made data sets, written in each supported format) and the test tiers.

Tiers (``pytest -m unit``, ``-m integration``, ``-m notebooks``): a test marked ``integration`` loads a real model,
trains one or starts a Jupyter kernel (seconds to a minute each); ``notebooks`` executes the lessons with
papermill (minutes); every other test is ``unit`` (milliseconds, pure logic) and is marked so here.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from palr_utils.core.constants import ITEM, TIMESTAMP, USER


def pytest_collection_modifyitems(items):
    for item in items:
        if not any(item.get_closest_marker(tier) for tier in ("integration", "notebooks")):
            item.add_marker(pytest.mark.unit)


@pytest.fixture
def frame_of():
    """Build an interaction frame from (user, item, timestamp) triples."""

    def build(rows: list[tuple]) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=[USER, ITEM, TIMESTAMP])

    return build


@pytest.fixture
def movielens_dir(tmp_path: Path) -> Path:
    """Six users, seven movies, in MovieLens-1M's '::' format and latin-1 encoding."""
    folder = tmp_path / "ml"
    folder.mkdir()
    ratings = []
    for user in range(1, 7):
        for step, movie in enumerate(range(1, 7)):
            ratings.append(f"{user}::{(movie + user) % 6 + 1}::{(step % 5) + 1}::{1000 * user + step}")
    ratings.append("6::7::5::9999")  # movie 7: rated once, removed by the 5-core
    (folder / "ratings.dat").write_text("\n".join(ratings) + "\n", encoding="latin-1")
    movies = [f"{m}::Movie {m} (1995)::Drama|Comedy" for m in range(1, 7)] + ["7::Misérables, Les (1995)::Drama"]
    (folder / "movies.dat").write_text("\n".join(movies) + "\n", encoding="latin-1")
    users = [f"{u}::F::25::3::12345" for u in range(1, 7)]
    (folder / "users.dat").write_text("\n".join(users) + "\n", encoding="latin-1")
    return folder


def write_gzip_lines(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path
