"""Per-user sequences from notebook 01's split, in the shapes retrievers need."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from palr_utils.core.constants import ITEM, SPLIT, TEST, TRAIN, USER, VALID
from palr_utils.core.hashing import sha256_hex

SPLITS = (VALID, TEST)


@dataclass
class SequenceData:
    """Each user's chronological training items plus the validation and test targets."""

    n_users: int
    n_items: int
    train: list[np.ndarray]
    valid: np.ndarray
    test: np.ndarray

    @classmethod
    def from_interactions(cls, interactions: pd.DataFrame, n_users: int, n_items: int) -> SequenceData:
        by_split = {name: frame for name, frame in interactions.groupby(SPLIT, sort=False)}
        train = by_split[TRAIN].groupby(USER)[ITEM].apply(lambda items: items.to_numpy().copy()).reindex(range(n_users))
        if train.isna().any():
            raise ValueError("every user needs training interactions; run notebook 01's preprocessing")
        valid = by_split[VALID].set_index(USER)[ITEM].reindex(range(n_users)).to_numpy()
        test = by_split[TEST].set_index(USER)[ITEM].reindex(range(n_users)).to_numpy()
        return cls(n_users, n_items, list(train), valid.astype(np.int64), test.astype(np.int64))

    def one_step_back(self) -> SequenceData:
        """The same users one interaction earlier: each training history loses its last item, which becomes the
        validation target (and the validation item the test target).

        A retriever trained on this data never saw the item that followed a training history, so its candidates
        for that history look like the ones evaluation gives; a retriever trained on the full training data has
        learned that very transition, and its candidates for its own training prefixes are not like test ones
        (PALR-rank's training examples, palr_utils.palr_rank, come from the one-step-back retriever).
        """
        short = [user for user, items in enumerate(self.train) if len(items) < 2]
        if short:
            raise ValueError(f"{len(short)} users (e.g. {short[:3]}) have fewer than 2 training items: nothing is "
                             "left to train on one step back; keep the 5-core filter of notebook 01")  # fmt: skip
        return SequenceData(
            self.n_users, self.n_items, [items[:-1].copy() for items in self.train],
            np.array([items[-1] for items in self.train], dtype=np.int64), self.valid.copy(),
        )  # fmt: skip

    def steps_back(self, steps: int) -> SequenceData:
        """:meth:`one_step_back` ``steps`` times over: each training history loses its last ``steps`` items, and the
        first of them becomes the validation target (PALR-rank's earlier training prefixes, issue 27's fourth lever).

        A user whose training history is not longer than ``steps`` has no such prefix: an empty history and the
        targets -1 (:meth:`with_prefix` lists the others). ``steps_back(1)`` holds the same prefixes as
        :meth:`one_step_back`.
        """
        if steps < 1:
            raise ValueError(f"steps must be at least 1, not {steps}")
        train, valid, test = [], [], []
        for items, held_out in zip(self.train, self.valid, strict=True):
            if len(items) > steps:
                train.append(items[:-steps].copy())
                valid.append(items[-steps])
                test.append(items[-steps + 1] if steps > 1 else held_out)
            else:
                train.append(items[:0].copy())
                valid.append(-1)
                test.append(-1)
        return SequenceData(self.n_users, self.n_items, train, np.array(valid, np.int64), np.array(test, np.int64))

    def with_prefix(self) -> np.ndarray:
        """The users with a training history and a validation target (all of them, but after :meth:`steps_back`)."""
        return np.array([u for u in range(self.n_users) if len(self.train[u]) and self.valid[u] >= 0], np.int64)

    def check_users(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        unknown = users[(users < 0) | (users >= self.n_users)]
        if unknown.size:
            raise ValueError(f"unknown user id(s) {unknown[:5].tolist()}: ids run from 0 to {self.n_users - 1}")
        return users

    def history(self, user: int, split: str) -> np.ndarray:
        """What the model may read before predicting ``split``'s target (train, plus valid for test)."""
        if split == VALID:
            return self.train[user]
        if split == TEST:
            return np.append(self.train[user], self.valid[user])
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")

    def targets(self, users: np.ndarray, split: str) -> np.ndarray:
        return (self.valid if split == VALID else self.test)[users]

    def seen_mask(self, users: np.ndarray, split: str) -> torch.Tensor:
        """Bool [users, items]: True for items already in the history, which ranking must skip."""
        mask = torch.zeros(len(users), self.n_items, dtype=torch.bool)
        for row, user in enumerate(users):
            mask[row, torch.as_tensor(self.history(int(user), split).copy())] = True
        return mask

    def fingerprint(self) -> str:
        """A short hash of the data, so a checkpoint from other data is refused."""
        arrays = (*self.train, self.valid, self.test)
        return sha256_hex((np.asarray(array, dtype=np.int64) for array in arrays), length=16)


def left_pad(sequences: list[np.ndarray], max_len: int, fit_longest: bool = False) -> torch.Tensor:
    """Keep the last ``max_len`` items of each sequence, shift ids by +1 and left-pad with 0.

    Left padding puts every user's most recent item in the last position. With
    ``fit_longest`` the tensor is only as wide as the longest (cut) sequence, not ``max_len``.
    """
    width = min(max_len, max((len(s) for s in sequences), default=0)) if fit_longest else max_len
    out = torch.zeros(len(sequences), width, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        tail = sequence[-width:] if width else sequence[:0]
        if len(tail):
            out[row, -len(tail) :] = torch.as_tensor(tail, dtype=torch.long) + 1
    return out


def training_windows(sequence: np.ndarray, max_len: int, all_windows: bool) -> list[np.ndarray]:
    """Cut a training sequence into pieces of at most ``max_len + 1`` items, from the most recent end.

    A model reading ``max_len`` items sees only the last ones of a long history. With
    ``all_windows`` the older part is cut into further windows so that every
    interaction is a training target once (on MovieLens-1M a quarter of the users
    have more than 200 ratings: the last window alone would use 65% of the data).
    """
    windows = [sequence[-(max_len + 1) :]]
    end = len(sequence) - max_len
    while all_windows and end > 1:  # a window needs two items: one to read, one to predict
        windows.append(sequence[max(0, end - max_len - 1) : end])
        end -= max_len
    return windows


class NextItemBatches:
    """One epoch of (inputs, targets) batches, padded lazily; ``len`` tells a progress bar how many.

    ``batches`` holds the window indices of each batch. With ``fit_longest`` a batch is padded
    only to its longest window rather than to ``max_len``.
    """

    def __init__(self, windows: list[np.ndarray], batches: list[np.ndarray], max_len: int, fit_longest: bool = False):
        self.windows, self.batches, self.max_len, self.fit_longest = windows, batches, max_len, fit_longest

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for indices in self.batches:
            sequences = [self.windows[i] for i in indices]
            inputs, targets = [s[:-1] for s in sequences], [s[1:] for s in sequences]
            yield left_pad(inputs, self.max_len, self.fit_longest), left_pad(targets, self.max_len, self.fit_longest)


def length_grouped_batches(
    lengths: np.ndarray, rng: np.random.Generator, batch_size: int, batches_per_group: int = 50
) -> list[np.ndarray]:
    """Shuffled batches of windows of similar length, each holding about the same number of positions.

    The shuffled windows are cut into groups of ``batches_per_group`` batches; each group is sorted
    by length and cut into batches of about ``batch_size`` average windows' worth of positions, and the
    batches of all groups are shuffled. Short windows thus come in larger batches: as with random
    batches, every position weighs the same in the mean loss of a step (equal-*count* batches of
    short windows would weigh each of their positions several times more).
    """
    order = rng.permutation(len(lengths))
    positions_per_batch = batch_size * float(np.mean(lengths))
    group = batch_size * batches_per_group
    batches = []
    for start in range(0, len(order), group):
        members = order[start : start + group]
        members = members[np.argsort(lengths[members], kind="stable")]
        filled = np.cumsum(lengths[members])
        n_batches = max(1, round(filled[-1] / positions_per_batch))  # equal shares of the group's positions
        cuts = np.searchsorted(filled, filled[-1] * np.arange(1, n_batches) / n_batches, "right")
        batches += [batch for batch in np.split(members, np.unique(cuts)) if len(batch)]
    return [batches[i] for i in rng.permutation(len(batches))]


def next_item_batches(
    data: SequenceData,
    rng: np.random.Generator,
    batch_size: int,
    max_len: int,
    *,
    all_windows: bool = False,
    group_by_length: bool = False,
) -> NextItemBatches:
    """Batches of (inputs, targets) for next-item training at every position of each training sequence.

    For a sequence s, the input is s[:-1] and the target s[1:] (both left-padded):
    position t reads items up to t and must predict item t+1. ``group_by_length`` batches windows
    of similar length and pads each batch only to its longest one (a model must then mask padding).
    """
    windows = [w for u in range(data.n_users) for w in training_windows(data.train[u], max_len, all_windows)]
    if group_by_length:
        batches = length_grouped_batches(np.array([len(w) for w in windows]), rng, batch_size)
    else:
        order = rng.permutation(len(windows))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return NextItemBatches(windows, batches, max_len, fit_longest=group_by_length)


def interaction_batches(data: SequenceData, rng: np.random.Generator, batch_size: int):
    """Batches of (users, items): every training interaction of ``batch_size`` shuffled users."""
    order = rng.permutation(data.n_users)
    for start in range(0, len(order), batch_size):
        users = order[start : start + batch_size]
        items = [data.train[u] for u in users]
        user_column = np.repeat(users, [len(i) for i in items])
        yield torch.as_tensor(user_column), torch.as_tensor(np.concatenate(items))
