"""PALR's preprocessing, one small step per function.

0. (optional) a seeded sample of users, for a lesson in minutes on a large data set;
1. every rating becomes an implicit interaction;
2. repeated user-item pairs keep their first (earliest) occurrence;
3. each user's history is sorted by time (stable, so ties keep file order);
4. iterative 5-core: drop users and items with fewer than 5 interactions until none remain;
5. contiguous ids 0..n-1 from the sorted original ids (the maps are kept);
6. leave-one-out: last interaction = test, second-to-last = validation, the rest = train.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from palr_utils.core.constants import ITEM, RAW_ITEM, RAW_USER, SPLIT, TEST, TIMESTAMP, TRAIN, USER, VALID
from palr_utils.data.schema import DataFormatError, RawDataset


def sample_users(raw: RawDataset, max_users: int | None, seed: int) -> RawDataset:
    """A seeded sample of ``max_users`` users with all their interactions (every user when None or more)."""
    users = np.sort(raw.interactions[USER].unique())
    if max_users is None or max_users >= len(users):
        return raw
    if max_users < 1:
        raise ValueError(f"max_users must be at least 1 (or None for every user), not {max_users}")
    chosen = np.random.default_rng([seed, 0]).choice(users, size=max_users, replace=False)
    kept = raw.interactions[raw.interactions[USER].isin(chosen)].reset_index(drop=True)
    return RawDataset(name=raw.name, interactions=kept, items=raw.items, users=raw.users, source=raw.source)


def to_implicit(interactions: pd.DataFrame) -> pd.DataFrame:
    """Keep who interacted with what and when; any rating counts as a positive."""
    return interactions[[USER, ITEM, TIMESTAMP]].copy()


def sort_chronologically(interactions: pd.DataFrame) -> pd.DataFrame:
    """Sort by user, then time; mergesort is stable, so equal timestamps keep file order."""
    return interactions.sort_values([USER, TIMESTAMP], kind="mergesort").reset_index(drop=True)


def drop_duplicate_pairs(interactions: pd.DataFrame) -> pd.DataFrame:
    """Keep the first occurrence of each (user, item) pair in the given order."""
    return interactions.drop_duplicates([USER, ITEM], keep="first").reset_index(drop=True)


def k_core(interactions: pd.DataFrame, k: int = 5, source: str = "the data") -> pd.DataFrame:
    """Iteratively drop users and items with fewer than ``k`` interactions.

    Removing a sparse item can push a user below ``k`` and vice versa, so we
    repeat until a pass removes nothing. When nothing is left, the error shows each round's counts.
    """
    frame, rounds = interactions, []
    while True:
        rounds.append((frame[USER].nunique(), frame[ITEM].nunique(), len(frame)))
        user_counts = frame[USER].map(frame[USER].value_counts())
        item_counts = frame[ITEM].map(frame[ITEM].value_counts())
        keep = (user_counts >= k) & (item_counts >= k)
        if keep.all():
            return frame.reset_index(drop=True)
        frame = frame[keep]
        if frame.empty:
            steps = "\n".join(f"  {'before' if r == 0 else f'after round {r}'}: {u:,} users, {i:,} items, "
                              f"{n:,} interactions" for r, (u, i, n) in enumerate(rounds))  # fmt: skip
            raise DataFormatError(
                f"{source}: no interactions survive the {k}-core filter (every user and item needs at least {k}):\n"
                f"{steps}\n  after round {len(rounds)}: nothing.\nUse a smaller k (the preset's min_interactions, "
                "at least 3 for leave-one-out), or more data: more users per item and items per user."
            )


def build_id_map(raw_ids: pd.Series) -> pd.Series:
    """Map each distinct original id to 0..n-1 in sorted order of the original ids."""
    ordered = np.sort(raw_ids.unique())
    return pd.Series(np.arange(len(ordered)), index=ordered)


def leave_one_out(interactions: pd.DataFrame) -> pd.DataFrame:
    """Label each user's last interaction ``test``, the one before ``valid``, the rest ``train``.

    Expects chronologically sorted input and at least 3 interactions per user.
    """
    position_from_end = interactions.groupby(USER).cumcount(ascending=False)
    labels = np.select([position_from_end == 0, position_from_end == 1], [TEST, VALID], default=TRAIN)
    return interactions.assign(**{SPLIT: labels})


@dataclass
class ProcessedDataset:
    """Contiguous-id interactions with a split column, plus item and user tables with the id maps."""

    interactions: pd.DataFrame  # user, item, timestamp, split (chronological per user)
    items: pd.DataFrame  # item, raw_item_id, title, attributes
    users: pd.DataFrame  # user, raw_user_id (+ optional user information)
    # what later stages need to know about the data: its ``domain`` (how prompts speak of the items) and
    # ``paper_dataset`` (which of the paper's data sets it is, if any); see palr_utils.data.describe_dataset
    info: dict = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)


def data_statistics(interactions: pd.DataFrame, n_users: int, n_items: int) -> dict[str, float | int]:
    """The statistics that decide a run's retrieval settings (``RunPreset.for_data``): how long histories are
    (median, 90th percentile, all splits), how often an item occurs, and the density of the user-item matrix."""
    per_user = interactions.groupby(USER).size().to_numpy()
    per_item = interactions.groupby(ITEM).size().to_numpy()
    return {
        "n_users": int(n_users),
        "n_items": int(n_items),
        "n_interactions": int(len(interactions)),
        "median_history": float(np.median(per_user)),
        "p90_history": float(np.percentile(per_user, 90)),
        "median_interactions_per_item": float(np.median(per_item)),
        "density": float(len(interactions) / (n_users * n_items)),
    }


def preprocess(raw: RawDataset, min_interactions: int = 5) -> ProcessedDataset:
    """Run the whole PALR preprocessing on a parsed data set."""
    frame = sort_chronologically(to_implicit(raw.interactions))
    frame = drop_duplicate_pairs(frame)
    frame = k_core(frame, min_interactions, raw.source or raw.name)
    if min_interactions < 3 and frame.groupby(USER).size().min() < 3:
        raise DataFormatError("leave-one-out needs at least 3 interactions per user")

    user_map, item_map = build_id_map(frame[USER]), build_id_map(frame[ITEM])
    missing_titles = set(item_map.index) - set(raw.items[ITEM])
    if missing_titles:
        example = sorted(missing_titles)[:5]
        raise DataFormatError(f"{len(missing_titles)} interacted items have no title, e.g. {example}")
    items = raw.items.drop_duplicates(ITEM).loc[lambda t: t[ITEM].isin(item_map.index)].rename(columns={ITEM: RAW_ITEM})
    items.insert(0, ITEM, items[RAW_ITEM].map(item_map).to_numpy())
    items = items.sort_values(ITEM).reset_index(drop=True)

    users = pd.DataFrame({USER: np.arange(len(user_map)), RAW_USER: user_map.index.to_numpy()})
    if raw.users is not None:
        info = raw.users.drop_duplicates(USER).rename(columns={USER: RAW_USER})
        users = users.merge(info, on=RAW_USER, how="left")

    # The maps are monotone, so the chronological order per user survives the renaming.
    frame = frame.assign(**{USER: frame[USER].map(user_map).to_numpy(), ITEM: frame[ITEM].map(item_map).to_numpy()})
    frame = leave_one_out(frame)
    return ProcessedDataset(interactions=frame, items=items, users=users)
