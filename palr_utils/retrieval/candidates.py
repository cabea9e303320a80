"""Top-K candidates for PALR to re-rank, exported as parquet.

Three kinds of rows, told apart by the ``split`` column:

* ``valid`` - candidates after the training history (target: the validation item);
* ``test``  - candidates after training + validation history (target: the test item);
* ``train`` - candidates after a *training prefix*: the training history without its
  last ``n_targets`` items, which become the labels of notebook 04's instruction data.
  Only training interactions are involved, so nothing leaks from validation or test.

PALR-rank's candidates (:func:`export_rank_candidates`) are ``valid`` rows of the twin trained one step back,
after each training history cut by one, two, ... items (column ``steps_back``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from palr_utils.core.constants import ITEM, SPLIT, TEST, TRAIN, USER, VALID
from palr_utils.retrieval.base import Retriever
from palr_utils.retrieval.sequences import SequenceData

RANK, SCORE = "rank", "score"
STEPS_BACK = "steps_back"  # of PALR-rank's candidates: how many items the training history was cut by
# PALR-rank's earlier prefixes that notebook 03 exports (the preset's rank_prefixes picks among them): a few
# seconds of the twin's inference each, and notebook 04 can try 1 to 3 without notebook 03 running again
RANK_PREFIXES_EXPORTED = 3


def training_prefix(train_items: np.ndarray, n_targets: int) -> tuple[np.ndarray, np.ndarray]:
    """Split a training history into (prefix, the up to ``n_targets`` items that follow it).

    At least one item always stays in the prefix, so the model has something to read.
    """
    cut = max(1, len(train_items) - n_targets)
    return train_items[:cut], train_items[cut:]


def candidate_rows(users: np.ndarray, split: str, items: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    k = items.shape[1]
    return pd.DataFrame({
        USER: np.repeat(users, k),
        SPLIT: split,
        RANK: np.tile(np.arange(k), len(users)),
        ITEM: items.ravel(),
        SCORE: scores.ravel().astype(np.float32),
    })  # fmt: skip


@torch.no_grad()
def top_k_after_histories(model, histories: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` items after arbitrary histories (a sequence model's ``score_histories``), history masked."""
    scores = model.score_histories(histories).float().cpu()
    for row, history in enumerate(histories):
        scores[row, torch.as_tensor(history.copy())] = float("-inf")
    values, items = scores.topk(k, dim=1)
    return items.numpy(), values.numpy()


def answer_rate(model, histories: list[np.ndarray], answers: np.ndarray, k: int, batch_size: int = 1024) -> float:
    """Share of ``histories`` whose ``answers`` item is among the sequence model's top ``k`` after them (history
    masked), in batches of users so that a large catalogue's score matrix stays small."""
    hits = 0
    for start in range(0, len(histories), batch_size):
        top, _ = top_k_after_histories(model, histories[start : start + batch_size], k)
        hits += int((top == np.asarray(answers[start : start + batch_size])[:, None]).any(axis=1).sum())
    return hits / len(histories)


def export_candidates(
    model: Retriever, data: SequenceData, k: int = 50, n_targets: int = 10, batch_size: int = 256,
    splits: tuple[str, ...] = (VALID, TEST, TRAIN),
) -> pd.DataFrame:  # fmt: skip
    """Top-``k`` candidates with scores for every user's valid, test and training-prefix position (``splits``)."""
    frames = []
    users = np.arange(data.n_users)
    for start in range(0, data.n_users, batch_size):
        batch = users[start : start + batch_size]
        for split in (VALID, TEST):
            if split in splits:
                frames.append(candidate_rows(batch, split, *model.top_k(batch, k, split)))
        if TRAIN in splits and hasattr(model, "score_histories"):
            prefixes = [training_prefix(data.train[u], n_targets)[0] for u in batch]
            frames.append(candidate_rows(batch, TRAIN, *top_k_after_histories(model, prefixes, k)))
    return pd.concat(frames, ignore_index=True).sort_values([SPLIT, USER, RANK], kind="mergesort")


def export_rank_candidates(
    twin, data: SequenceData, k: int, prefixes: int = RANK_PREFIXES_EXPORTED, batch_size: int = 256
) -> pd.DataFrame:
    """PALR-rank's training candidates: the top ``k`` of ``twin`` (trained on ``data.one_step_back()``) after every
    user's training history cut by 1 to ``prefixes`` items (the ``steps_back`` column), as ``valid`` rows.

    The first cut is the twin's own validation position (:func:`export_candidates`). The later ones read prefixes
    whose next item the twin trained on, so their lists are a little easier than test lists (notebook 03 measures
    how much easier for its own training answers); users whose history is too short for a cut have no rows for it.
    """
    frames = [export_candidates(twin, data.one_step_back(), k=k, batch_size=batch_size, splits=(VALID,))
              .assign(**{STEPS_BACK: 1})]  # fmt: skip
    for steps in range(2, prefixes + 1):
        earlier = data.steps_back(steps)
        users = earlier.with_prefix()
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            top = top_k_after_histories(twin, [earlier.train[u] for u in batch], k)
            frames.append(candidate_rows(batch, VALID, *top).assign(**{STEPS_BACK: steps}))
    return pd.concat(frames, ignore_index=True).sort_values([STEPS_BACK, USER, RANK], kind="mergesort")


def recall_at_k(candidates: pd.DataFrame, data: SequenceData, split: str = TEST, k: int | None = None) -> float:
    """Share of users whose held-out ``split`` item is among their (first ``k``) candidates: the ceiling of a
    re-ranker that reads that many."""
    rows = candidates[candidates[SPLIT] == split]
    if k is not None:
        rows = rows[rows[RANK] < k]
    targets = pd.Series(data.targets(np.arange(data.n_users), split), name="target")
    hit = rows.merge(targets, left_on=USER, right_index=True)
    return float(hit.loc[hit[ITEM] == hit["target"], USER].nunique() / data.n_users)
