"""A seeded, MovieLens-shaped synthetic data set for offline lessons and tests.

It is written in MovieLens-1M's own file format, so the real ``ml-1m`` parser
reads it. The data has structure a recommender can learn:

* **latent tastes** - each user prefers a few genres (a sparse Dirichlet draw);
* **popularity** - a long tail of item popularity (Zipf-like weights);
* **sequences** - movies come in series ("Midnight Harbor", "... II", "... III")
  and each movie has a few same-genre follow-ups; users often continue with
  the next part or a follow-up, which only an order-aware model can exploit.

It also contains what preprocessing must clean: re-rated (duplicate) pairs,
users with fewer than five ratings and rarely rated items.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from palr_utils.core.io import atomic_path

GENRES = [
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
    "Western",
]  # fmt: skip
_ADJECTIVES = [
    "Silent", "Midnight", "Golden", "Broken", "Hidden", "Crimson", "Last", "Electric", "Frozen",
    "Wild", "Lost", "Iron", "Velvet", "Secret", "Burning", "Distant", "Lucky", "Savage", "Quiet",
    "Neon", "Forgotten", "Paper", "Stolen", "Endless",
]  # fmt: skip
_NOUNS = [
    "Harbor", "Frontier", "Garden", "Empire", "River", "Detective", "Symphony", "Planet", "Castle",
    "Highway", "Circus", "Island", "Kingdom", "Mirror", "Orchard", "Station", "Voyage", "Witness",
    "Canyon", "Dragon", "Carnival", "Lighthouse", "Signal", "Summer",
]  # fmt: skip
_SEQUEL_SUFFIXES = ["", " II", " III", " IV"]


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of the seeded synthetic MovieLens-like data set."""

    n_users: int = 400
    n_items: int = 300
    min_history: int = 3  # a few users fall below the 5-core threshold on purpose
    max_history: int = 60
    follow_probability: float = 0.6  # chance the next item continues a "series"
    duplicate_rate: float = 0.02  # re-rated pairs, so de-duplication has work to do


def _make_items(spec: SyntheticConfig, rng: np.random.Generator):
    """Titles, genres, series membership and popularity weights of every item."""
    stems = [f"{a} {n}" for a in _ADJECTIVES for n in _NOUNS]
    rng.shuffle(stems)
    titles, genres, next_in_series = [], [], []
    stem_index = 0
    while len(titles) < spec.n_items:
        length = min(int(rng.choice([1, 1, 1, 2, 2, 3, 4])), spec.n_items - len(titles))
        primary = int(rng.integers(len(GENRES)))
        extra = [int(rng.integers(len(GENRES)))] if rng.random() < 0.4 else []
        item_genres = sorted({primary, *extra})
        year = int(rng.integers(1950, 2000))
        stem = stems[stem_index]
        stem_index += 1
        for part in range(length):
            titles.append(f"{stem}{_SEQUEL_SUFFIXES[part]} ({year + 2 * part})")
            genres.append(item_genres)
            next_in_series.append(len(titles) if part < length - 1 else -1)
    popularity = 1.0 / np.arange(1, spec.n_items + 1) ** 0.8
    popularity = popularity[rng.permutation(spec.n_items)]
    return titles, genres, np.array(next_in_series), popularity


def _follow_ups(genres: list[list[int]], rng: np.random.Generator, per_item: int = 3) -> list[np.ndarray]:
    """For each item, a few other items sharing its first genre (the 'what people watch next')."""
    by_genre: dict[int, list[int]] = {}
    for item, item_genres in enumerate(genres):
        by_genre.setdefault(item_genres[0], []).append(item)
    result = []
    for item, item_genres in enumerate(genres):
        pool = [other for other in by_genre[item_genres[0]] if other != item]
        size = min(per_item, len(pool))
        result.append(rng.choice(pool, size=size, replace=False) if size else np.array([], dtype=int))
    return result


def generate_synthetic(spec: SyntheticConfig, seed: int):
    """Return (ratings rows, movie rows, user rows) as lists of tuples."""
    rng = np.random.default_rng(seed)
    titles, genres, next_in_series, popularity = _make_items(spec, rng)
    follow_ups = _follow_ups(genres, rng)
    genre_matrix = np.zeros((spec.n_items, len(GENRES)))
    for item, item_genres in enumerate(genres):
        genre_matrix[item, item_genres] = 1.0 / len(item_genres)

    ratings, users = [], []
    for user in range(1, spec.n_users + 1):
        taste = rng.dirichlet(np.full(len(GENRES), 0.3))
        affinity = genre_matrix @ taste
        preference = popularity * (affinity + 0.02)
        length = int(np.clip(spec.min_history + rng.geometric(1 / 18), spec.min_history, spec.max_history))
        history: list[int] = []
        seen = np.zeros(spec.n_items, dtype=bool)
        while len(history) < length and not seen.all():
            item = -1
            if history and rng.random() < spec.follow_probability:
                last = history[-1]
                options = [next_in_series[last]] if next_in_series[last] >= 0 else []
                options += list(follow_ups[last])
                options = [o for o in options if not seen[o]]
                if options:
                    item = int(options[0] if rng.random() < 0.6 else rng.choice(options))
            if item < 0:
                weights = np.where(seen, 0.0, preference)
                item = int(rng.choice(spec.n_items, p=weights / weights.sum()))
            history.append(item)
            seen[item] = True
        clock = int(rng.integers(956_700_000, 990_000_000))  # the ml-1m era, 2000-2001
        for item in history:
            clock += int(rng.integers(60, 86_400))
            stars = int(np.clip(round(2.5 + 3 * affinity[item] + rng.normal(0, 0.8)), 1, 5))
            ratings.append((user, item + 1, stars, clock))
            if rng.random() < spec.duplicate_rate:  # the same movie rated again later
                ratings.append((user, item + 1, int(rng.integers(1, 6)), clock + 3_600))
        users.append(
            (
                user,
                str(rng.choice(["F", "M"])),
                int(rng.choice([18, 25, 35, 45])),
                int(rng.integers(0, 21)),
                f"{rng.integers(10000, 99999)}",
            )
        )
    movies = [(item + 1, titles[item], "|".join(GENRES[g] for g in genres[item])) for item in range(spec.n_items)]
    return ratings, movies, users


def write_synthetic(folder: str | Path, spec: SyntheticConfig, seed: int) -> Path:
    """Write ratings.dat, movies.dat and users.dat to ``folder`` (atomically, as one folder)."""
    folder = Path(folder)
    if (folder / "ratings.dat").exists():
        return folder  # deterministic given (spec, seed): the folder name encodes both
    ratings, movies, users = generate_synthetic(spec, seed)
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        for name, rows in (("ratings.dat", ratings), ("movies.dat", movies), ("users.dat", users)):
            lines = ("::".join(map(str, row)) for row in rows)
            (tmp / name).write_text("\n".join(lines) + "\n", encoding="latin-1")
    return folder
